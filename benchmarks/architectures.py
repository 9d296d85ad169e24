"""Every supported architecture, one row each: plan, levels and MACs, stock loading, family logits, ONNX, and the CPU
latency efficiency of the core.

    HF_HUB_OFFLINE=1 python benchmarks/architectures.py                       # every architecture, 224 px
    HF_HUB_OFFLINE=1 python benchmarks/architectures.py --models timm-mobilenetv2 --image_size 128
    HF_HUB_OFFLINE=1 python benchmarks/architectures.py --models hf-beit-base,hf-dinov2-small,timm-swin-tiny,hf-swin-tiny

For each model (random weights: a structure benchmark; the real-weight run is the MobileNetV2 demo): plan 4 nested
levels (l1, ratio 0.4, 3 steps, round_to auto), write them as a run (each level grown from the one below with its
blocks frozen, then perturbed: ``write_synthetic_run``), and check

* **stock load**: the core opens in a fresh process with stock transformers (``AutoModelForImageClassification``,
  ``trust_remote_code=True`` for the elastoformer form), or timm for the timm form, with the same logits;
* **family**: the family artifact's every level against its ``dn{k}/`` (max abs logit difference);
* **onnx**: the core exported as ``elastoformer export`` does, checked in onnxruntime (max abs difference);
* **efficiency**: the core's speed-up over the dense model divided by the ideal (dense FLOPs / core FLOPs, the full
  cost: module MACs + attention matmuls), batch 1, torch eager (in the layout ``elastoformer bench`` uses:
  channels_last for CNNs) and onnxruntime, levels interleaved (median of ``--repeats``).

A step that fails is reported in its column and the row goes on. Prints a table; writes
``benchmarks/results/architectures.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
import transformers

from elastoformer_hf.base_model import load_base_model
from elastoformer_hf.descendant import bare_model, load_descendant
from elastoformer_hf.latency.timing import fixed_threads, summarize, time_interleaved
from elastoformer_hf.nesting import build_family, write_synthetic_run
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.run_folder import read_level_info

#: key -> (what load_base_model takes; a transformers config (class, kwargs) for transformers models)
MODELS = {
    "timm-resnet50": ("resnet50", None),
    "timm-vit-small": ("vit_small_patch16_224", None),
    "timm-mobilenetv2": ("mobilenetv2_100", None),
    "timm-mobilenetv3": ("mobilenetv3_large_100", None),
    "timm-efficientnet-b0": ("efficientnet_b0", None),
    "timm-efficientnet-lite0": ("tf_efficientnet_lite0", None),
    "timm-convnext-tiny": ("convnext_tiny", None),
    "timm-regnety-002": ("regnety_002", None),
    "torchvision-mobilenetv2": ("torchvision:mobilenet_v2", None),
    "torchvision-efficientnet-b0": ("torchvision:efficientnet_b0", None),
    "hf-convnext-tiny": (None, ("ConvNextConfig", {})),
    "hf-mobilenetv2": (None, ("MobileNetV2Config", {})),
    # attention models with adapters of their own (BEiT-B as microsoft/beit-base-patch16-224 is configured)
    "hf-beit-base": (None, ("BeitConfig", dict(use_relative_position_bias=True, use_mean_pooling=True,
                                               layer_scale_init_value=0.1))),
    "hf-dinov2-small": (None, ("Dinov2Config", dict(hidden_size=384, num_attention_heads=6, patch_size=14))),
    "timm-swin-tiny": ("swin_tiny_patch4_window7_224", None),
    "hf-swin-tiny": (None, ("SwinConfig", {})),  # refused: the row says why
}

STOCK_CHECK = textwrap.dedent("""
    import json, sys, torch
    path, form, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    x = torch.load(sys.argv[4])
    if form == "timm":
        import timm
        model = timm.create_model("local-dir:" + path, pretrained=True).eval()
        out = model(x)
    else:
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True).eval()
        out = model(x).logits
    torch.save(out.detach(), sys.argv[5])
""")


def _stock_diff(level: Path, x: torch.Tensor, want: torch.Tensor, tmp: Path) -> float:
    form = read_level_info(level)["checkpoint_format"]
    torch.save(x, tmp / "x.pt")
    proc = subprocess.run([sys.executable, "-c", STOCK_CHECK, str(level), form, str(x.shape[-1]), str(tmp / "x.pt"),
                           str(tmp / "y.pt")], capture_output=True, text=True, timeout=600, cwd="/",
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1][:200])
    return float((torch.load(tmp / "y.pt") - want).abs().max())


def _efficiency(run: Path, levels: list[int], flops: dict[int, int], size: int, runtime: str, repeats: int) -> float:
    """(core speed-up over the largest level) / (ideal speed-up: the full-cost ratio, module MACs + attention
    matmuls, as the plan counts it), batch 1."""
    x = torch.randn(1, 3, size, size)
    if runtime == "torch":
        from elastoformer_hf.latency.bench import TorchRunner

        runners = {k: TorchRunner(run / f"dn{k}", "cpu", "fp32", size) for k in levels}
        for runner in runners.values():
            runner.prepare(1)
        steps = {k: r.step for k, r in runners.items()}
    else:
        import onnxruntime as ort

        from elastoformer_hf.export import export_onnx
        from elastoformer_hf.latency.bench import ort_session_options

        sessions = {}
        for k in levels:
            export_onnx(run / f"dn{k}", overwrite=True)
            sessions[k] = ort.InferenceSession(str(run / f"dn{k}" / "onnx" / "model.onnx"),
                                               ort_session_options(torch.get_num_threads()))
        steps = {k: (lambda s=s: s.run(None, {"pixel_values": x.numpy()})) for k, s in sessions.items()}
    times = time_interleaved(steps, repeats=repeats, warmup=3)
    core, full = levels[0], levels[-1]
    speedup = summarize(times[full])["median_ms"] / summarize(times[core])["median_ms"]
    return speedup / (flops[full] / flops[core])


def bench(key: str, root: Path, size: int, repeats: int) -> dict:
    name, hf = MODELS[key]
    row: dict = {"model": key}
    start = time.perf_counter()
    try:
        if hf is not None:
            cls, kwargs = hf
            name = str(root / key)
            getattr(transformers, cls)(num_labels=1000, image_size=size, **kwargs,
                                       architectures=[cls.replace("Config", "ForImageClassification")]
                                       ).save_pretrained(name)
        torch.manual_seed(0)
        loaded = load_base_model(name, random_init=True)
        plan = plan_levels(loaded.model, PruningConfig(pruning_ratio=0.4, pruning_steps=3), model_name=key,
                           image_size=size)
        row.update(adapter=plan.architecture, round_to=plan.config.round_to,
                   macs_g=[round(lv.macs / 1e9, 3) for lv in plan.levels],
                   params_m=[round(lv.params / 1e6, 2) for lv in plan.levels])
        run = write_synthetic_run(loaded, plan, root / f"{key}-run")
        row["forms"] = [read_level_info(run / f"dn{k}")["checkpoint_format"] for k in range(1, plan.num_levels + 1)]
    except Exception as err:  # a row per model: a failure is reported, the table goes on
        row["error"] = f"plan/save: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
        return row
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    core = bare_model(load_descendant(run / "dn1")).eval()
    from elastoformer_hf.adapters import get_adapter

    with torch.no_grad():
        want = get_adapter(core).forward_logits(core, x)
    for column, check in (
        ("stock_load_diff", lambda: _stock_diff(run / "dn1", x, want, root)),
        ("family_diff", lambda: _family_diff(run, x)),
        ("onnx_diff", lambda: _onnx_diff(run)),
    ):
        try:
            row[column] = float(f"{check():.2e}")
        except Exception as err:
            row[column] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    flops = {lv.level: lv.flops for lv in plan.levels}
    levels = [1, plan.num_levels]
    for runtime in ("torch", "onnxruntime"):
        try:
            row[f"core_efficiency_{runtime}"] = round(_efficiency(run, levels, flops, size, runtime, repeats), 3)
        except Exception as err:
            row[f"core_efficiency_{runtime}"] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _family_diff(run: Path, x: torch.Tensor) -> float:
    family = build_family(run, verify=False)
    worst = 0.0
    for k in range(1, family.num_levels + 1):
        model = bare_model(load_descendant(run / f"dn{k}")).eval()
        from elastoformer_hf.adapters import get_adapter

        with torch.no_grad():
            want = get_adapter(model).forward_logits(model, x)
            worst = max(worst, float((family.set_level(k)(x) - want).abs().max()))
    return worst


def _onnx_diff(run: Path) -> float:
    from elastoformer_hf.export import export_onnx

    record = export_onnx(run / "dn1", overwrite=True)
    return max(record["max_abs_diff"].values())


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "/".join(str(v) for v in value)
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated keys of {list(MODELS)}")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per level for the efficiency")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/results/architectures.json")
    args = parser.parse_args(argv)
    keys = [k for k in args.models.split(",") if k]
    unknown = sorted(set(keys) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    rows = []
    with fixed_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            row = bench(key, Path(tmp), args.image_size, args.repeats)
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(Path(tmp) / f"{key}-run", ignore_errors=True)
    columns = ["model", "adapter", "macs_g", "forms", "stock_load_diff", "family_diff", "onnx_diff",
               "core_efficiency_torch", "core_efficiency_onnxruntime", "error"]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"image_size": args.image_size, "threads": args.threads, "repeats": args.repeats,
                               "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                               "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
