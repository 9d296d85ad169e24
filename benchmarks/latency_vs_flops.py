"""Latency against FLOPs: does a pruned level run as much faster as its MACs say it should?

Unaligned widths (a hidden size of 307, a head_dim of 25, 409 conv channels) can make a pruned model slower than
its MACs predict, even slower than the dense one. This plans a family per ``--round_to`` value with the
project's planner (l1 importance on random weights: only the widths matter here), extracts every level
(``extract_level``, the replay ``plan --output_dir`` uses) and times one forward at batch 1: dense and all
levels of all families interleaved round-robin (the start rotates every repeat), after a warm-up, at a fixed
torch thread count, under ``torch.inference_mode``. Per level: FLOPs (the plan's full cost, 2 x (module MACs +
attention matmuls)), FLOPs ratio to the dense model, ideal speedup 1/ratio, measured speedup (dense median / level
median), efficiency = measured / ideal, and PASS when efficiency >= 0.85 (issues #6, #19). ``eff.(MACs)`` is the
same against module MACs only (torch-pruning's count, as the paper's tables give it; what efficiency meant
before issue #19: it leaves out the attention matmuls, which do not shrink with the MACs). A benchmark, not a
test: it exits 0 either way.

    python benchmarks/latency_vs_flops.py --smoke                       # tiny models, plumbing in seconds
    python benchmarks/latency_vs_flops.py                               # DeiT-B (CR 0.6) + ResNet-50 (CR 0.5)
    python benchmarks/latency_vs_flops.py --round_to auto,1,8,16,32,64 --models resnet50 --repeats 30
    python benchmarks/latency_vs_flops.py --device cuda --batch_size 1   # on a GPU machine
    python benchmarks/latency_vs_flops.py --device cuda --cuda_graph --precision fp16 --batch_size 32
    python benchmarks/latency_vs_flops.py --runtime onnxruntime          # the levels exported, in ONNX Runtime
    python benchmarks/latency_vs_flops.py --models deit-b --round_to 8,32,64 --head_pruning heads,head_dims

``auto`` is the project's default (``PruningConfig(round_to=None)``, resolved per architecture and device
profile by ``elastoformer_hf.pruning.alignment``); a value too wide for a model's narrowest core width is
reported and skipped. ``--head_pruning`` takes a comma list too (auto, heads, head_dims: one family per
rounding and choice, all timed in the same interleaved run); ``auto`` is the project's default, resolved per
model by ``elastoformer_hf.pruning.heads`` (CNNs have no heads: the choice is not read). ``--memory_format``
(torch runtime; default auto: channels_last for CNNs, contiguous for ViTs, as ``elastoformer bench`` times them;
``elastoformer_hf.latency.bench.resolve_memory_format`` says why). ``--profile`` adds a torch.profiler op table
(dense vs core level) to the JSON, to see which ops do not shrink with the widths.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import timm
import torch
import transformers

from elastoformer_hf.adapters import get_adapter
from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.export.onnx import DEFAULT_OPSET
from elastoformer_hf.latency.bench import MEMORY_FORMATS, TORCH_MEMORY_FORMATS, resolve_memory_format
from elastoformer_hf.latency.device import cpu_model
from elastoformer_hf.pruning.config import HEAD_PRUNING, PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.replay import extract_level

GOAL = 0.85  # measured speedup / ideal speedup (1 / full-cost ratio), at every level
RESULTS = Path(__file__).parent / "results"
MODELS = {
    # ViTConfig() defaults are ViT-B/16 at 224 px: the DeiT-B shape (hidden 768, 12 heads of 64, MLP 3072)
    "deit-b": {"kind": "vit", "config": {}, "ratio": 0.6},
    "resnet50": {"kind": "timm", "name": "resnet50", "ratio": 0.5},
    # --smoke: the same code paths in seconds
    "vit-tiny": {"kind": "vit", "ratio": 0.6, "config": {
        "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512,
        "image_size": 32, "patch_size": 8}},
    "resnet18-64px": {"kind": "timm", "name": "resnet18", "ratio": 0.5, "image_size": 64},
}
SMOKE_MODELS = ("vit-tiny", "resnet18-64px")


def build_model(name: str) -> tuple[torch.nn.Module, int | None]:
    """A randomly initialised model (no download) and the resolution to plan and time it at."""
    spec = MODELS[name]
    torch.manual_seed(0)
    if spec["kind"] == "vit":
        config = transformers.ViTConfig(**spec["config"], num_labels=1000)
        return transformers.ViTForImageClassification(config).eval(), None
    return timm.create_model(spec["name"], pretrained=False).eval(), spec.get("image_size")


def parse_head_pruning(text: str) -> list[str]:
    values: list[str] = []
    for token in text.split(","):
        token = token.strip().lower()
        if token not in HEAD_PRUNING:
            raise argparse.ArgumentTypeError(f"{token!r}: accepted {', '.join(HEAD_PRUNING)}")
        if token not in values:
            values.append(token)
    return values


def parse_round_to(text: str) -> list[int | None]:
    values: list[int | None] = []
    for token in text.split(","):
        token = token.strip().lower()
        value = None if token == "auto" else int(token)
        if value not in values:
            values.append(value)
    return values



def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def widths(level) -> str:
    s = level.structure
    if "num_attention_heads" in s:
        return f"{s['hidden_size']}/{s['num_attention_heads']}x{s['head_dim']}/{s['intermediate_size']}"
    if "hidden_size" in s:
        return f"{s['hidden_size']}/per-layer"
    return f"{s.get('channels', '?')} ch"


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class GraphedForward:
    """One forward pass captured as a CUDA graph and replayed (``torch.cuda.graphs``): the GPU's kernel time
    without Python dispatch and per-kernel launch cost, which at batch 1 on a large GPU can be most of an eager
    forward and is the same for every level (so eager latency there cannot follow FLOPs)."""

    def __init__(self, model, inputs):
        self.inputs = inputs.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up on a side stream before capture, as torch.cuda.graphs asks
                model(self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = model(self.inputs)

    def __call__(self, inputs):
        self.graph.replay()
        return self.output


class OrtForward:
    """One forward in ONNX Runtime (CPU): the module exported to ONNX as ``elastoformer export`` exports it
    (``export_graph``: the adapter's export mode, ``--exporter``, ``--opset``), run in a session with the options
    ``elastoformer bench --runtime onnxruntime`` uses."""

    def __init__(self, model, adapter, inputs, threads: int, folder: Path, name: str, exporter: str,
                 opset: int | None):
        import onnxruntime as ort

        from elastoformer_hf.export.onnx import INPUT_NAME, export_graph
        from elastoformer_hf.latency.bench import ort_session_options

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.onnx"
        # a batch of 2 to trace (torch.export specialises a batch of 1), as export_onnx does
        export_graph(model, adapter, inputs.expand(2, *inputs.shape[1:]).contiguous(), path, exporter=exporter,
                     opset=opset)
        self.session = ort.InferenceSession(str(path), ort_session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.feed = {INPUT_NAME: inputs.numpy()}

    def __call__(self, inputs):
        return self.session.run(None, self.feed)


class Timer:
    """Seconds of one forward; on CUDA the queue is drained before and after (batch-1 latency, not throughput).

    ``clock="cpu"`` reads the calling thread's CPU time instead of the wall clock: with one torch thread the
    whole forward runs on that thread, so the time it was descheduled for other processes is left out. On a
    shared, oversubscribed machine that is the difference between a usable and a useless measurement (the
    wall-clock medians then swing by 2x from one repeat to the next); cache contention still shows.
    """

    def __init__(self, device: torch.device, clock: str = "wall"):
        self.cuda = device.type == "cuda"
        self.now = time.thread_time if clock == "cpu" else time.perf_counter

    def __call__(self, model, inputs) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        start = self.now()
        model(inputs)
        if self.cuda:
            torch.cuda.synchronize()
        return self.now() - start


def profile_ops(model, inputs, runs: int = 3, top: int = 12) -> list[dict]:
    """Self time per op (torch.profiler, ``runs`` forwards): where the milliseconds go."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if inputs.is_cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(runs):
            model(inputs)
    key = "self_device_time_total" if inputs.is_cuda else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)[:top]
    return [{"op": e.key, "self_ms_per_forward": round(getattr(e, key) / 1e3 / runs, 3),
             "calls_per_forward": e.count // runs} for e in events]


def run_model(name: str, args, device: torch.device) -> dict:
    spec = MODELS[name]
    model, image_size = build_model(name)
    adapter = get_adapter(model)
    families, skipped = [], []
    t0 = time.perf_counter()
    choices = args.head_pruning if spec["kind"] == "vit" else ["auto"]  # a CNN has no heads to choose
    for round_to, heads in [(r, h) for h in choices for r in args.round_to]:
        config = PruningConfig(pruning_type="l1", pruning_ratio=spec["ratio"], pruning_steps=args.steps,
                               round_to=round_to, head_pruning=heads,
                               round_to_profile="cuda" if device.type == "cuda" else "cpu")
        try:
            plan = plan_levels(model, config, model_name=name, image_size=image_size)
        except ElastoformerError as err:  # a rounding wider than the core's narrowest width
            skipped.append({"round_to": "auto" if round_to is None else round_to, "head_pruning": heads,
                            "reason": str(err)})
            print(f"  round_to {round_to}, head_pruning {heads}: skipped ({err})")
            continue
        label = family_label(plan.config, spec["kind"], round_to is None)
        key = (plan.config.round_to, plan.config.head_pruning)
        twin = next((f for f in families if (f["plan"].config.round_to, f["plan"].config.head_pruning) == key), None)
        if twin is not None:  # an auto resolved to a family also listed: time it once, say it is auto's
            twin["label"] = family_label(plan.config, spec["kind"], round_to is None or twin["requested"] == "auto",
                                         heads == "auto" or twin["head_pruning_requested"] == "auto")
            continue
        families.append({"label": label, "requested": "auto" if round_to is None else round_to,
                         "head_pruning_requested": heads, "plan": plan})
    plan_s = time.perf_counter() - t0
    print(f"  planned {len(families)} families in {plan_s:.1f} s")

    example = adapter.example_inputs(model, image_size)
    dtype = DTYPES[args.precision]
    layout = resolve_memory_format(adapter, args.memory_format) if args.runtime == "torch" else None
    memory_format = TORCH_MEMORY_FORMATS[layout or "contiguous"]
    inputs = torch.randn(args.batch_size, *example.shape[1:], device=device, dtype=dtype)
    inputs = inputs.contiguous(memory_format=memory_format)
    items = []
    for fam in families:
        for lv in fam["plan"].levels[:-1]:  # the last level is the dense model itself
            level_model = extract_level(model, fam["plan"], lv.level).to(device, dtype)
            items.append((fam["label"], lv.level, level_model.to(memory_format=memory_format)))
    dense = model.to(device, dtype).to(memory_format=memory_format)
    items.insert(0, ("dense", None, dense))
    timer = Timer(device, args.clock)
    times: dict[tuple, list[float]] = {(label, level): [] for label, level, _ in items}
    load_before = loadavg()
    if args.runtime == "onnxruntime":
        with tempfile.TemporaryDirectory() as tmp:
            items = [(label, level, OrtForward(m, adapter, inputs, args.threads, Path(tmp),
                                               f"{label.split()[0]}-{level}", args.exporter, args.opset))
                     for label, level, m in items]
        print(f"  exported {len(items)} models to ONNX", flush=True)
    with torch.inference_mode():
        if args.cuda_graph:
            items = [(label, level, GraphedForward(m, inputs)) for label, level, m in items]
        for _label, _level, m in items:
            for _ in range(args.warmup):
                timer(m, inputs)
        for r in range(args.repeats):
            k = r % len(items)
            for label, level, m in items[k:] + items[:k]:
                times[(label, level)].append(timer(m, inputs))
        profiles = {}
        if args.profile and not args.cuda_graph and args.runtime == "torch":
            profiles["dense"] = profile_ops(dense, inputs)
            for label, level, m in items:
                if level == 1:
                    profiles[f"{label} core"] = profile_ops(m, inputs)
    load_after = loadavg()

    dense_lv = families[0]["plan"].levels[-1] if families else None
    dense_med = statistics.median(times[("dense", None)])
    dense_min = min(times[("dense", None)])
    out_families = []
    for fam in families:
        plan = fam["plan"]
        rows = []
        for lv in plan.levels:
            t = times[("dense", None)] if lv.level == plan.num_levels else times[(fam["label"], lv.level)]
            med, low = statistics.median(t), min(t)
            ratio, macs_ratio = lv.flops / dense_lv.flops, lv.macs / dense_lv.macs
            ideal = 1.0 / ratio  # the full cost: module MACs and attention matmuls
            speedup = dense_med / med
            rows.append({
                "level": lv.level, "keep_fraction": lv.keep_fraction, "widths": widths(lv),
                "structure": lv.structure, "params": lv.params, "macs": lv.macs, "flops": lv.flops,
                "macs_ratio": round(macs_ratio, 4), "flops_ratio": round(ratio, 4),
                "ideal_speedup": round(ideal, 3), "median_ms": round(med * 1e3, 3), "min_ms": round(low * 1e3, 3),
                "speedup": round(speedup, 3), "speedup_of_mins": round(dense_min / low, 3),
                "efficiency": round(speedup / ideal, 3), "efficiency_of_mins": round(dense_min / low / ideal, 3),
                # against module MACs only (what "efficiency" meant before issue #19)
                "efficiency_macs": round(speedup * macs_ratio, 3),
                "passed": speedup / ideal >= GOAL, "times_ms": [round(x * 1e3, 3) for x in t],
            })
        out_families.append({"round_to": plan.config.round_to, "requested": fam["requested"],
                             "head_pruning": plan.config.head_pruning,
                             "head_pruning_requested": fam["head_pruning_requested"], "label": fam["label"],
                             "config": plan.config.to_dict(), "levels": rows,
                             "passed": all(row["passed"] for row in rows)})
    return {"model": name, "architecture": adapter.name, "pruning_ratio": spec["ratio"],
            "image_size": int(example.shape[-1]), "memory_format": layout, "plan_seconds": round(plan_s, 1),
            "loadavg_before": load_before, "loadavg_after": load_after, "families": out_families,
            "skipped": skipped, "profiles": profiles}


def family_label(config: PruningConfig, kind: str, auto_round: bool, auto_heads: bool | None = None) -> str:
    """``8 (auto)``, and for a ViT the head choice: ``8 (auto), heads (auto)``."""
    label = f"{config.round_to}{' (auto)' if auto_round else ''}"
    if kind != "vit":
        return label
    auto_heads = config.head_pruning_auto if auto_heads is None else auto_heads
    return f"{label}, {config.head_pruning}{' (auto)' if auto_heads else ''}"


def format_table(result: dict) -> str:
    head = ("family", "level", "widths", "GFLOPs", "ratio", "ideal", "median ms", "min ms", "speedup",
            "eff.", "eff.(min)", "eff.(MACs)", "")
    rows = [head]
    for fam in result["families"]:
        for row in fam["levels"]:
            rows.append((fam["label"], f"DN{row['level']}", row["widths"], f"{row['flops'] / 1e9:.3f}",
                         f"{row['flops_ratio']:.3f}", f"{row['ideal_speedup']:.2f}x", f"{row['median_ms']:.1f}",
                         f"{row['min_ms']:.1f}", f"{row['speedup']:.2f}x", f"{row['efficiency']:.3f}",
                         f"{row['efficiency_of_mins']:.2f}", f"{row['efficiency_macs']:.2f}",
                         "PASS" if row["passed"] else "FAIL"))
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w[i]) if i in (0, 2) else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def plot(path: Path, results: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False)
    for ax, result in zip(axes[0], results):
        xs = [i / 100 for i in range(10, 101)]
        ax.plot(xs, [1 / x for x in xs], "-", color="black", lw=1, label="ideal 1/ratio")
        ax.plot(xs, [GOAL / x for x in xs], ":", color="tab:red", lw=1, label=f"goal {GOAL}x ideal")
        for fam in result["families"]:
            ax.plot([r["flops_ratio"] for r in fam["levels"]], [r["speedup"] for r in fam["levels"]], "o-",
                    ms=4, label=f"round_to {fam['label']}")
        low = min((r["flops_ratio"] for f in result["families"] for r in f["levels"]), default=0.1)
        ax.set_xlim(max(0.0, low - 0.05), 1.02)
        ax.set_ylim(0, max(1.2 / max(low, 0.05), 1.5))
        ax.set_xlabel("FLOPs / dense FLOPs (module MACs + attention matmuls)")
        ax.set_ylabel("measured speedup (dense median / level median)")
        ax.set_title(f"{result['model']} (CR {result['pruning_ratio']})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="deit-b,resnet50", help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--round_to", type=parse_round_to,
                        help="comma list of roundings, one family each; 'auto' = the project's default "
                             "(default auto,1,8,16; --smoke: auto,1)")
    parser.add_argument("--steps", type=int, default=5, help="pruning steps (N+1 levels)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--precision", choices=tuple(DTYPES), default="fp32",
                        help="weights and inputs in this dtype (fp16/bf16: CUDA; bf16 also runs on CPU)")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                        help="torch: eager PyTorch; onnxruntime: each model exported to ONNX and run in ONNX Runtime "
                             "(CPU)")
    parser.add_argument("--memory_format", choices=MEMORY_FORMATS, default="auto",
                        help="--runtime torch: the models' 4-D layout; auto = channels_last for CNNs, contiguous "
                             "for ViTs (what elastoformer bench times)")
    parser.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                        help="--runtime onnxruntime: the ONNX exporter (auto = elastoformer export's default: dynamo, "
                             "TorchScript if it fails; torchscript exports in 1 s instead of 5-15 s per model)")
    parser.add_argument("--opset", type=int, help="--runtime onnxruntime: ONNX opset (default: elastoformer export's)")
    parser.add_argument("--cuda_graph", action="store_true",
                        help="CUDA: replay each forward as a captured CUDA graph (no launch overhead)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: latency; cpu: the thread's CPU time, immune to other processes' load "
                             "(needs --threads 1 and a CPU device)")
    parser.add_argument("--repeats", type=int, default=15, help="timed forwards per model and level")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards per model and level first")
    parser.add_argument("--head_pruning", type=parse_head_pruning, default=["auto"],
                        help="ViTs: comma list of auto, heads, head_dims, one family each per rounding (default auto: "
                             "the project's default, resolved per model)")
    parser.add_argument("--prune_heads", dest="head_pruning", action="store_const", const=["heads"],
                        help="the older spelling of --head_pruning heads")
    parser.add_argument("--profile", action="store_true", help="torch.profiler op table for dense and each core")
    parser.add_argument("--smoke", action="store_true",
                        help=f"tiny models ({', '.join(SMOKE_MODELS)}), 2 steps, 3 repeats")
    parser.add_argument("--output", type=Path, help="JSON file (default results/latency_vs_flops[_smoke].json)")
    args = parser.parse_args(argv)
    models = list(SMOKE_MODELS) if args.smoke else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    if args.smoke:
        args.repeats, args.warmup, args.steps = min(args.repeats, 3), 1, 2
    if args.round_to is None:
        args.round_to = parse_round_to("auto,1" if args.smoke else "auto,1,8,16")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.runtime == "onnxruntime" and (device.type != "cpu" or args.precision != "fp32" or args.cuda_graph):
        parser.error("--runtime onnxruntime runs fp32 on the CPU here (no --device cuda, --precision, --cuda_graph)")
    if args.runtime == "onnxruntime" and args.memory_format != "auto":
        parser.error("--memory_format applies to --runtime torch (ONNX Runtime lays out its tensors itself)")
    if args.cuda_graph and device.type != "cuda":
        parser.error("--cuda_graph needs --device cuda")
    if args.precision == "fp16" and device.type != "cuda":
        parser.error("--precision fp16 runs on CUDA only (use fp32 or bf16 on the CPU)")
    if args.clock == "cpu" and (args.threads != 1 or device.type != "cpu"):
        parser.error("--clock cpu measures one thread's CPU time: use it with --threads 1 on the CPU")
    suffix = ("_ort" if args.runtime == "onnxruntime" else "") + ("_smoke" if args.smoke else "")
    output = args.output or RESULTS / f"latency_vs_flops{suffix}.json"

    torch.set_num_threads(args.threads)
    env = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "device": str(device), "clock": args.clock,
           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "torch": torch.__version__, "torch_pruning": version("torch-pruning"),
           "onnxruntime": version("onnxruntime") if args.runtime == "onnxruntime" else None,
           "transformers": transformers.__version__, "timm": timm.__version__,
           "python": platform.python_version(), "loadavg_at_start": loadavg()}
    print("env  " + ", ".join(f"{k} {v}" for k, v in env.items() if v is not None), flush=True)
    results = []
    for name in models:
        print(f"\n{name}: planning round_to {['auto' if r is None else r for r in args.round_to]} ...", flush=True)
        result = run_model(name, args, device)
        results.append(result)
        layout = f", {result['memory_format']}" if result["memory_format"] else ""
        print(f"{name} ({result['architecture']}, {result['image_size']} px, batch {args.batch_size}{layout}, "
              f"{args.repeats} repeats), load average {result['loadavg_before']} -> {result['loadavg_after']}")
        print(format_table(result), flush=True)
        for fam in result["families"]:
            print(f"  {fam['label']}: {'PASS' if fam['passed'] else 'FAIL'} (>= {GOAL}x the full-cost ideal at every "
                  "level)")
        for what, ops in result["profiles"].items():
            total = sum(op["self_ms_per_forward"] for op in ops)
            print(f"  profile {what}: " + ", ".join(
                f"{op['op'].removeprefix('aten::')} {100 * op['self_ms_per_forward'] / total:.0f}%" for op in ops[:6]))
    env["loadavg_at_end"] = loadavg()
    record = {"benchmark": "latency_vs_flops", "goal": GOAL, "batch_size": args.batch_size,
              "efficiency_against": "flops: 2 x (module MACs + attention matmuls); efficiency_macs: module MACs",
              "head_pruning": args.head_pruning,
              "runtime": args.runtime, "exporter": args.exporter if args.runtime == "onnxruntime" else None,
              "opset": (args.opset or DEFAULT_OPSET) if args.runtime == "onnxruntime" else None,
              "precision": args.precision, "cuda_graph": args.cuda_graph,
              "repeats": args.repeats, "warmup": args.warmup, "steps": args.steps, "env": env, "models": results}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    png = output.with_suffix(".png")
    where = (f"{env['gpu']}{', CUDA graphs' if args.cuda_graph else ', eager'}" if env["gpu"]
             else f"{env['cpu']}, {args.runtime}, {env['threads']} thread(s), {args.clock} clock")
    plot(png, results, f"batch {args.batch_size}, {args.precision}, on {where}, head_pruning "
                       f"{','.join(args.head_pruning)}")
    print(f"\nresults written to {output} and {png}")


if __name__ == "__main__":
    main()
