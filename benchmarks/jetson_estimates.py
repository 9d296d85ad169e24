"""Jetson latency estimates against the published reference points (``elastoformer estimate``'s roofline).

Builds DeiT-B (transformers ``ViTConfig`` defaults: hidden 768, 12 layers, 12 heads, MLP 3072, 224 px / 16,
1000 classes) and ResNet-50 (timm ``resnet50``), both randomly initialised (no download), plans the levels the
reference used with the project's planner (DeiT-B: l1, ratio 0.4, 5 steps, round_to 8; ResNet-50: l1, ratio 0.5,
5 steps, round_to 8), estimates every level on the three built-in Jetson profiles (PyTorch eager, FP32, batch 1)
and compares with the published latencies (``../shared/reference/ELASTOFORMER.md``): DeiT-B full and core on
"Orin" and on the Jetson Nano, ResNet-50 full and core on the Nano.

Errors reported, per point (estimate / measured - 1, in %):

* ``uncalibrated``: the published-spec profile (peaks from NVIDIA's data sheets, assumed efficiencies and overhead);
* ``leave-one-out``: the profile calibrated on the *other* points of the same device (needs >= 2 of them: the
  Nano's 4 points give 3 each; the 2 Orin points leave 1, so no leave-one-out there);
* ``leave-one-model-out`` (Nano): calibrated on the other model's two points (DeiT-B -> ResNet-50 and back).

The paper says "Orin" without the module: both Orin profiles (Orin Nano 8GB, AGX Orin 64GB) are compared.
The script is a benchmark, not a test: it always exits 0. Results: ``benchmarks/results/jetson_estimates.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import torch
import transformers

from elastoformer_hf.base_model import load_base_model
from elastoformer_hf.latency.profiles import PROFILES
from elastoformer_hf.latency.roofline import calibrate, estimate_latency, extract_costs
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.replay import extract_level

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "jetson_estimates.json"
#: the paper's "Orin" is compared against both Orin modules
ORIN = ("jetson-orin-nano-8gb", "jetson-agx-orin-64gb")
NANO = ("jetson-nano",)
#: (model, level "full"/"core", reference device, ms), batch 1, PyTorch eager FP32 on the Jetson GPU
REFERENCE = [
    ("deit-b", "full", "Orin", 71.6),
    ("deit-b", "core", "Orin", 33.7),
    ("deit-b", "full", "Nano", 263.0),
    ("deit-b", "core", "Nano", 110.0),
    ("resnet50", "full", "Nano", 88.0),
    ("resnet50", "core", "Nano", 35.9),
]
PLANS = {
    "deit-b": PruningConfig(pruning_type="l1", pruning_ratio=0.4, pruning_steps=5, round_to=8),
    "resnet50": PruningConfig(pruning_type="l1", pruning_ratio=0.5, pruning_steps=5, round_to=8),
}


def build(name: str, tiny: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "deit-b":
        small = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     image_size=32, patch_size=8) if tiny else {}
        config = transformers.ViTConfig(**small, num_labels=1000, architectures=["ViTForImageClassification"])
        with tempfile.TemporaryDirectory() as folder:
            config.save_pretrained(folder)
            return load_base_model(folder, random_init=True).model
    return load_base_model("resnet18" if tiny else "resnet50", random_init=True).model


def level_costs(name: str, tiny: bool) -> list[dict]:
    """Plan ``name``, extract every level and its kernel costs (one forward pass per level)."""
    model = build(name, tiny)
    t0 = time.perf_counter()
    plan = plan_levels(model, PLANS[name], model_name=name)
    print(f"{name}: planned {plan.num_levels} levels in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = []
    for lv in plan.levels:
        level_model = extract_level(model, plan, lv.level)
        costs = extract_costs(level_model, label=f"{name} DN{lv.level}")
        rows.append({"level": lv.level, "params": lv.params, "macs": lv.macs, "flops": lv.flops, "costs": costs})
        del level_model
    return rows


def pct(est: float, measured: float) -> float:
    return 100.0 * (est / measured - 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--tiny", action="store_true", help="smoke test on tiny models (errors meaningless)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    levels = {name: level_costs(name, args.tiny) for name in PLANS}
    by_ref = {(m, "full"): levels[m][-1]["costs"] for m in levels} | {(m, "core"): levels[m][0]["costs"] for m in levels}

    # every level on every profile, uncalibrated
    table = {}
    for name, rows in levels.items():
        table[name] = []
        for r in rows:
            est = {k: estimate_latency(r["costs"], p) for k, p in PROFILES.items()}
            table[name].append({"level": r["level"], "params": r["params"], "macs": r["macs"], "flops": r["flops"],
                                "kernels": {k: e["kernels"] for k, e in est.items()},
                                "estimated_ms": {k: round(e["ms"], 2) for k, e in est.items()},
                                "breakdown_ms": {k: {x: round(e[x], 2) for x in ("compute_ms", "memory_ms",
                                                                                   "overhead_ms")}
                                                 for k, e in est.items()}})

    points = []
    for profile_key in (*ORIN, *NANO):
        device = "Orin" if profile_key in ORIN else "Nano"
        refs = [r for r in REFERENCE if r[2] == device]
        measured = [(by_ref[(m, lvl)], ms) for m, lvl, _, ms in refs]
        for i, (model, lvl, _, ms) in enumerate(refs):
            costs = by_ref[(model, lvl)]
            unc = estimate_latency(costs, profile_key)["ms"]
            row = {"model": model, "level": lvl, "reference_device": device, "profile": profile_key,
                   "measured_ms": ms, "uncalibrated_ms": round(unc, 2), "uncalibrated_error_pct": round(pct(unc, ms), 1),
                   "loo_ms": None, "loo_error_pct": None, "loo_points": len(refs) - 1,
                   "lomo_ms": None, "lomo_error_pct": None}
            rest = measured[:i] + measured[i + 1:]
            if len(rest) >= 2:
                fitted = calibrate(profile_key, rest)
                loo = estimate_latency(costs, fitted)["ms"]
                row.update(loo_ms=round(loo, 2), loo_error_pct=round(pct(loo, ms), 1),
                           loo_fitted={"eff_compute": round(fitted.eff_compute, 4),
                                       "eff_memory": round(fitted.eff_memory, 4),
                                       "kernel_overhead_us": round(1e6 * fitted.kernel_overhead_s, 2)})
            others = [(by_ref[(m, lv)], t) for m, lv, _, t in refs if m != model]
            if len(others) >= 2:
                fitted = calibrate(profile_key, others)
                lomo = estimate_latency(costs, fitted)["ms"]
                row.update(lomo_ms=round(lomo, 2), lomo_error_pct=round(pct(lomo, ms), 1))
            points.append(row)
        if len(measured) >= 2:  # in-sample fit on every point: reported for the fitted values, not as an error
            fitted = calibrate(profile_key, measured)
            fit = {"eff_compute": round(fitted.eff_compute, 4), "eff_memory": round(fitted.eff_memory, 4),
                   "kernel_overhead_us": round(1e6 * fitted.kernel_overhead_s, 2),
                   "fitted": fitted.calibration["fitted"]}
            for row, residual in zip(points[-len(refs):], fitted.calibration["residuals_pct"]):
                row.update(in_sample_fit_residual_pct=residual, all_points_fit=fit)

    summary = {}
    for profile_key in (*ORIN, *NANO):
        rows = [p for p in points if p["profile"] == profile_key]
        unc = [abs(p["uncalibrated_error_pct"]) for p in rows]
        loo = [abs(p["loo_error_pct"]) for p in rows if p["loo_error_pct"] is not None]
        lomo = [abs(p["lomo_error_pct"]) for p in rows if p["lomo_error_pct"] is not None]
        summary[profile_key] = {"points": len(rows),
                                "uncalibrated_mean_abs_error_pct": round(statistics.mean(unc), 1),
                                "loo_mean_abs_error_pct": round(statistics.mean(loo), 1) if loo else None,
                                "lomo_mean_abs_error_pct": round(statistics.mean(lomo), 1) if lomo else None}

    print_report(table, points, summary)
    result = {
        "benchmark": "jetson_estimates", "tiny": args.tiny,
        "setting": "batch 1, PyTorch eager, FP32, 224 px; random-init models planned with the project's planner",
        "reference": [dict(zip(("model", "level", "device", "ms"), r)) for r in REFERENCE],
        "plans": {k: v.to_dict() for k, v in PLANS.items()},
        "profiles": {k: p.to_dict() for k, p in PROFILES.items()},
        "levels": table, "points": points, "summary": summary,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "timm": version("timm"),
                        "torch_pruning": version("torch-pruning"), "machine": platform.machine()},
        "seconds": round(time.perf_counter() - t_start, 1),
        "command": "python benchmarks/jetson_estimates.py" + (" --tiny" if args.tiny else ""),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.output} ({result['seconds']} s)")


def _fmt(value, suffix="") -> str:
    return "n/a" if value is None else f"{value:+.1f}{suffix}" if suffix == "%" else f"{value:.1f}{suffix}"


def print_report(table: dict, points: list[dict], summary: dict) -> None:
    keys = list(PROFILES)
    print("Estimated latency (ms), PyTorch eager FP32, batch 1, uncalibrated published-spec profiles")
    print(f"{'model':9} {'level':5} {'GFLOPs':>7} " + " ".join(f"{k:>21}" for k in keys))
    for name, rows in table.items():
        for r in rows:
            print(f"{name:9} DN{r['level']:<3} {r['flops'] / 1e9:7.2f} "
                  + " ".join(f"{r['estimated_ms'][k]:21.1f}" for k in keys))
    print("\nAgainst the published points (error = estimate / measured - 1)")
    print(f"{'point':26} {'profile':21} {'measured':>8} {'uncal.':>7} {'err':>7} {'LOO':>7} {'err':>7} "
          f"{'LOMO':>7} {'err':>7}")
    for p in points:
        print(f"{p['model'] + ' ' + p['level'] + ' (' + p['reference_device'] + ')':26} {p['profile']:21} "
              f"{p['measured_ms']:8.1f} {p['uncalibrated_ms']:7.1f} {_fmt(p['uncalibrated_error_pct'], '%'):>7} "
              f"{_fmt(p['loo_ms']):>7} {_fmt(p['loo_error_pct'], '%'):>7} "
              f"{_fmt(p['lomo_ms']):>7} {_fmt(p['lomo_error_pct'], '%'):>7}")
    print("\nMean absolute error (%)")
    for k, s in summary.items():
        print(f"  {k:21} uncalibrated {_fmt(s['uncalibrated_mean_abs_error_pct'])}  leave-one-out "
              f"{_fmt(s['loo_mean_abs_error_pct'])}  leave-one-model-out {_fmt(s['lomo_mean_abs_error_pct'])} "
              f"({s['points']} points)")


if __name__ == "__main__":
    main()
