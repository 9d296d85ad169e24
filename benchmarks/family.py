"""The elastic family as one artifact: size on disk, level-switch time against rebuilding a level, exactness.

For every model: plan 6 nested levels (l1, pruning ratio 0.4, 5 steps, round_to 8) of a randomly initialised
model, make "trained" levels without training (``write_synthetic_run``: each level grown from the previous one
with the nesting functions, then perturbed), and build the family with ``build_family``. Measured:

* artifact size: ``family.safetensors`` against the dense model's safetensors (goal <= 1.02x) and against the
  sum of the ``dn{k}/model.safetensors`` files;
* switching: median of ``family.set_level(k)`` over many switches (goal <= 1 ms), against rebuilding the level
  from metadata the way the reference does (``apply_level(copy of the dense model, plan, k)`` + loading the
  ``dn{k}/`` weights: the trainer's ``_load_level``), goal >= 50x;
* logits of every family level against ``load_descendant(dn{k})`` (atol 1e-5), and the forward time of the
  family's level (weights are views: per-head prefixes are copied per call) against the ``dn{k}`` model.

A benchmark, not a test: it prints PASS/FAIL and exits 0.

    python benchmarks/family.py                        # DeiT-B, 1000 classes (about 5 minutes on 2 busy cores)
    python benchmarks/family.py --models deit-b deit-b-2cls resnet50
    python benchmarks/family.py --models tiny          # smoke test, seconds
    python benchmarks/family.py --models deit-b deit-b-shared resnet50 resnet50-shared

A ``-shared`` model is the same family with the classifier weight shared across levels (``share_classifier``:
nested and stored once, like every other layer; only the bias per level) instead of one classifier per level.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

from elastoformer_hf.adapters import get_adapter
from elastoformer_hf.base_model import load_base_model
from elastoformer_hf.descendant import load_descendant
from elastoformer_hf.family import WEIGHTS_FILE, ElasticFamily, PrefixLinear
from elastoformer_hf.nesting import build_family
from elastoformer_hf.nesting.synthetic import write_synthetic_run
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.replay import apply_level
from elastoformer_hf.training.trainer import _load_level

GOALS = {"size_ratio": 1.02, "switch_ms": 1.0, "speedup": 50.0, "atol": 1e-5}
DEIT = {"architectures": ["DeiTForImageClassification"]}  # DeiTConfig() defaults are DeiT-B at 224 px
MODELS = {
    "deit-b": ("transformers", {**DEIT, "num_labels": 1000}),
    "deit-b-2cls": ("transformers", DEIT),  # DeiTConfig() as it comes: num_labels=2
    "resnet50": ("timm", "resnet50"),
    "tiny": ("transformers", {**DEIT, "num_labels": 10, "hidden_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "intermediate_size": 128, "image_size": 32, "patch_size": 8}),
}
MODELS.update({f"{name}-shared": what for name, what in list(MODELS.items())})  # share_classifier=True
SHARED_SUFFIX = "-shared"
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "family.json"


def build(name: str, folder: Path):
    torch.manual_seed(0)
    source, what = MODELS[name]
    if source == "timm":
        return load_base_model(what, random_init=True)
    transformers.DeiTConfig(**what).save_pretrained(folder / "config")
    return load_base_model(str(folder / "config"), random_init=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def mb(n: int) -> float:
    return round(n / 2**20, 2)


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def classifier_names(family: ElasticFamily) -> list[str]:
    model = family.model
    names = {m: n for n, m in model.named_modules()}
    return [names[m] + "." for m in get_adapter(model).classifier_layers(model)]


def copied_per_forward(model: torch.nn.Module) -> int:
    """Bytes of weight that one forward pass copies out of the storage: ``F.conv2d`` makes a strided weight
    contiguous, ``PrefixLinear`` flattens its per-head view (``F.linear`` takes a row-strided weight as it is)."""
    total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, PrefixLinear) or (isinstance(module, torch.nn.Conv2d) and not weight.is_contiguous()):
            total += weight.numel() * weight.element_size()
    return total


def logits_of(model, x):
    inner = model.model if type(model).__name__ == "ElastoformerForImageClassification" else model
    return get_adapter(inner).output_transform(model(x))


@torch.no_grad()
def run_model(name: str, work: Path, args) -> dict:
    share = name.endswith(SHARED_SUFFIX)
    row: dict = {"model": name, "share_classifier": share, "loadavg_start": loadavg()}
    t0 = time.perf_counter()
    lm = build(name, work)
    config = PruningConfig(pruning_type="l1", pruning_ratio=0.4, pruning_steps=5, round_to=8)
    with torch.enable_grad():
        start = time.perf_counter()
        plan = plan_levels(lm.model, config, model_name=name)
        row["plan_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        run = write_synthetic_run(lm, plan, work / "run", verify=False, share_classifier=share)
        row["synthetic_run_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        family = build_family(run)
        row["build_family_s"] = round(time.perf_counter() - start, 1)
    levels = plan.num_levels
    start = time.perf_counter()
    folder = family.save_pretrained(work / "family")
    row["save_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    family = ElasticFamily.from_pretrained(folder)
    row["from_pretrained_s"] = round(time.perf_counter() - start, 2)

    # sizes
    save_file({k: v.contiguous() for k, v in lm.model.state_dict().items()}, str(work / "dense.safetensors"))
    dense = (work / "dense.safetensors").stat().st_size
    artifact = (folder / WEIGHTS_FILE).stat().st_size
    dns = [(run / f"dn{k}" / "model.safetensors").stat().st_size for k in range(1, levels + 1)]
    stored = json.loads((folder / "family_config.json").read_text())["storage"]["bytes"]
    prefixes = tuple(classifier_names(family))
    classifiers = [sum(t.numel() * t.element_size() for n, t in own.items() if n.startswith(prefixes))
                   for own in family.storage()[1]]  # shared classifier: the bias only
    row["size"] = {"dense_mb": mb(dense), "shared_mb": mb(stored["shared"]),
                   "own_mb_per_level": [mb(b) for b in stored["own"]],
                   "classifier_mb_per_level": [mb(b) for b in classifiers],
                   "orders_kb": round(stored["orders"] / 1024, 1), "family_mb": mb(artifact),
                   "dn_folders_mb": [mb(s) for s in dns],
                   "dn_sum_mb": mb(sum(dns)), "family_vs_dense": round(artifact / dense, 4),
                   "dn_sum_vs_dense": round(sum(dns) / dense, 3), "family_vs_dn_sum": round(artifact / sum(dns), 3),
                   "config_kb": round((folder / "family_config.json").stat().st_size / 1024, 1)}

    # switching vs rebuilding
    switches = []
    for i in range(args.switches):
        start = time.perf_counter()
        family.set_level(i % levels + 1)
        switches.append(time.perf_counter() - start)
    rebuild = []
    for k in range(1, levels + 1):
        start = time.perf_counter()
        with torch.enable_grad():
            template = apply_level(copy.deepcopy(lm.model), plan, k)
        _load_level(run / f"dn{k}", template)
        rebuild.append(time.perf_counter() - start)
    switch_ms = statistics.median(switches) * 1e3
    rebuild_ms = statistics.median(rebuild) * 1e3
    p99 = sorted(switches)[int(0.99 * len(switches))] * 1e6
    row["switch"] = {"median_us": round(switch_ms * 1e3, 3), "p99_us": round(p99, 3), "switches": len(switches),
                     "rebuild_ms_per_level": [round(t * 1e3, 1) for t in rebuild],
                     "rebuild_median_ms": round(rebuild_ms, 1), "speedup": round(rebuild_ms / switch_ms)}

    # exactness and forward time
    size = plan.image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    x1 = x[:1]
    per_level = []
    for k in range(1, levels + 1):
        reference = load_descendant(run / f"dn{k}")
        got, want = family.set_level(k)(x), logits_of(reference, x)
        entry = {"level": k, "params": family.levels[k - 1]["params"], "macs": family.levels[k - 1]["macs"],
                 "max_abs_diff": float((got - want).abs().max()), "max_abs_logit": float(want.abs().max()),
                 "equal_atol_1e-5": bool(torch.allclose(got, want, atol=GOALS["atol"], rtol=1.3e-6)),
                 "copied_per_forward_mb": mb(copied_per_forward(family.model))}
        if args.forward_repeats:  # interleaved, batch 1: the family's views against the dn{k} model's own weights
            fam_ms, dn_ms = [], []
            for i in range(args.forward_repeats + 1):
                fam_t, dn_t = median_ms(lambda: family(x1), 1, 0), median_ms(lambda r=reference: logits_of(r, x1), 1, 0)
                if i:  # the first pair warms up
                    fam_ms.append(fam_t)
                    dn_ms.append(dn_t)
            entry.update(family_forward_ms=round(statistics.median(fam_ms), 1),
                         dn_forward_ms=round(statistics.median(dn_ms), 1),
                         forward_ratio=round(statistics.median(f / d for f, d in zip(fam_ms, dn_ms)), 3))
        per_level.append(entry)
        del reference
    row["levels"] = per_level
    row["all_equal"] = all(e["equal_atol_1e-5"] for e in per_level)
    row["loadavg_end"] = loadavg()
    row["total_s"] = round(time.perf_counter() - t0, 1)
    return row


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_row(row: dict) -> None:
    size, switch = row["size"], row["switch"]
    sharing = "classifier weight shared" if row.get("share_classifier") else "one classifier per level"
    print(f"\n== {row['model']} ({sharing}): {len(row['levels'])} levels (plan {row['plan_s']} s, build_family {row['build_family_s']} s, "
          f"from_pretrained {row['from_pretrained_s']} s; load {row['loadavg_start']} -> {row['loadavg_end']})")
    print(f"  size     dense {size['dense_mb']} MiB | family {size['family_mb']} MiB = "
          f"{size['family_vs_dense']}x dense "
          f"(goal <= {GOALS['size_ratio']}x: {verdict(size['family_vs_dense'] <= GOALS['size_ratio'])}) | "
          f"{len(row['levels'])} dn folders {size['dn_sum_mb']} MiB = {size['dn_sum_vs_dense']}x dense")
    extra, heads = sum(size["own_mb_per_level"][:-1]), sum(size["classifier_mb_per_level"][:-1])
    print(f"           over dense: the smaller levels' own tensors {extra:.2f} MiB (classifiers {heads:.2f} MiB), "
          f"channel orders {size['orders_kb']} KiB")
    print(f"  switch   median {switch['median_us']} us, p99 {switch['p99_us']} us over {switch['switches']} switches "
          f"(goal <= 1 ms: {verdict(switch['median_us'] <= 1e3 * GOALS['switch_ms'])}) | rebuild from metadata "
          f"median {switch['rebuild_median_ms']} ms -> {switch['speedup']}x "
          f"(goal >= {GOALS['speedup']:.0f}x: {verdict(switch['speedup'] >= GOALS['speedup'])})")
    print("  level  params(M)  GMACs  max|dlogit|  |logit|  atol1e-5  copied/fwd  forward family / dn (ms, batch 1)")
    for e in row["levels"]:
        fwd = (f"{e['family_forward_ms']} / {e['dn_forward_ms']}  {e['forward_ratio']}x" if "family_forward_ms" in e
               else "-")
        print(f"  dn{e['level']:<4} {e['params'] / 1e6:9.2f} {e['macs'] / 1e9:6.2f} {e['max_abs_diff']:12.2e} "
              f"{e['max_abs_logit']:8.3f}  {verdict(e['equal_atol_1e-5']):8}  {e['copied_per_forward_mb']:6.1f} MiB  {fwd}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["deit-b"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on shared, busy cores more threads are slower)")
    parser.add_argument("--switches", type=int, default=20000)
    parser.add_argument("--forward-repeats", type=int, default=5, help="0: skip the forward-time comparison")
    parser.add_argument("--workdir", type=Path, default=None, help="where the runs are written (default: a tmp dir)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    env = {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "transformers": transformers.__version__, "python": platform.python_version(),
           "uptime": os.popen("uptime").read().strip()}
    print(f"[family benchmark] {env['uptime']}; torch threads {env['threads']}")
    rows = []
    for name in args.models:
        work = Path(tempfile.mkdtemp(prefix=f"family-{name}-", dir=args.workdir))
        try:
            rows.append(run_model(name, work, args))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print_row(rows[-1])
    if len(rows) > 1:
        print(f"\n== artifact size against the dense model's safetensors (goal <= {GOALS['size_ratio']}x)")
        for row in rows:
            size = row["size"]
            print(f"  {row['model']:<18} {size['family_mb']:9.2f} MiB / {size['dense_mb']:9.2f} MiB = "
                  f"{size['family_vs_dense']:.4f}x  {verdict(size['family_vs_dense'] <= GOALS['size_ratio'])}")
    env["uptime_end"] = os.popen("uptime").read().strip()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"benchmark": "family", "goals": GOALS, "env": env, "rows": rows}, indent=2)
                           + "\n")
    print(f"\n[family benchmark] {env['uptime_end']}; results in {args.output}")


if __name__ == "__main__":
    main()
