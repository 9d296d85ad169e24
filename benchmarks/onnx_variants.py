"""Which ONNX graph of a ViT level runs fastest in ONNX Runtime: attention traced as SDPA or explicitly, opset 18,
20 or 23 (where torch writes SDPA as ONNX's ``Attention`` op), transformers' own eager attention, which under
torch.export adds an all-zero attention bias to every layer's scores (``eager@20``; elastoformer's export attention
drops it), and the export rewritten by onnxscript's ONNX Runtime fusions (``ortfused@20``: ``optimize_for_ort`` fuses
Q/K/V and attention into ONNX Runtime's contrib ``Attention`` op, plus SkipLayerNormalization and BiasGelu; a graph
only ONNX Runtime can run).

Plans the DeiT-B-shaped family of ``latency_vs_flops.py`` (CR 0.6, 5 steps, round_to auto), exports the dense model
and one level in every variant with torch's dynamo exporter, and times all of them interleaved round-robin in ONNX
Runtime (CPU, batch 1, the ``elastoformer bench`` session options) after a warm-up. Per variant: nodes after ONNX
Runtime's optimiser, median and min of the dense model and the level, and the level's efficiency (speed-up over
its own dense graph / ideal 1/(MACs ratio)). ``explicit@20`` is what ``elastoformer export`` writes. A benchmark,
not a test.

    python benchmarks/onnx_variants.py                      # 2 threads, DN1, 30 repeats
    python benchmarks/onnx_variants.py --threads 1 --level 2
    python benchmarks/onnx_variants.py --spin stop          # threads spin during a run, stop after it
    python benchmarks/onnx_variants.py --profile            # + ONNX Runtime's kernel time per op type (explicit@20)
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from latency_vs_flops import MODELS, RESULTS, build_model, loadavg

from elastoformer_hf.adapters import get_adapter
from elastoformer_hf.export.onnx import LogitsOnly, _export, export_graph
from elastoformer_hf.latency.bench import ort_session_options
from elastoformer_hf.latency.device import cpu_model
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.replay import extract_level

#: (attention as traced, opset)
VARIANTS = (("sdpa", 18), ("eager", 20), ("explicit", 18), ("explicit", 20), ("sdpa", 23), ("ortfused", 20))


def session(path: Path, threads: int, spin: str, optimized: Path | None = None):
    options = ort_session_options(threads)
    if spin == "stop":
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fuse_for_ort(path: Path) -> None:
    """Rewrite ``path`` in place with onnxscript's ONNX Runtime fusions (contrib ops)."""
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model, counts = optimize_for_ort(ir.load(str(path)))
    ir.save(model, str(path))
    print(f"  ort fusions in {path.name}: {({k: v for k, v in counts.items() if v})}", flush=True)


def profile_ops(path: Path, feed: dict, threads: int, runs: int = 10) -> dict[str, float]:
    """Milliseconds per forward of each op type, from ONNX Runtime's profiler (after a warm-up)."""
    options = ort_session_options(threads)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_op: collections.Counter = collections.Counter()
    for event in kernels[len(kernels) * 3 // (3 + runs):]:  # the timed runs only
        per_op[event["args"]["op_name"]] += event["dur"] / 1e3 / runs
    return {op: round(ms, 3) for op, ms in per_op.most_common()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--level", type=int, default=1, help="the level to compare with the dense model (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--spin", choices=("off", "stop"), default="off",
                        help="off: elastoformer bench's options; stop: spin during a run, stop after it")
    parser.add_argument("--profile", action="store_true",
                        help="also profile explicit@20 (dense and level): kernel milliseconds per op type")
    parser.add_argument("--output", type=Path, help="JSON file (default results/onnx_variants.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model, _ = build_model("deit-b")
    adapter = get_adapter(model)
    config = PruningConfig(pruning_type="l1", pruning_ratio=MODELS["deit-b"]["ratio"], pruning_steps=5,
                           round_to=None, round_to_profile="cpu")
    plan = plan_levels(model, config, model_name="deit-b")
    if not 1 <= args.level < plan.num_levels:
        parser.error(f"--level must be in 1..{plan.num_levels - 1}")
    level = extract_level(model, plan, args.level)
    ideal = plan.levels[-1].macs / plan.level(args.level).macs
    example = torch.randn(2, 3, 224, 224)  # a batch of 2 to trace, as export_onnx does
    feed = {"pixel_values": np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)}

    sessions, nodes, profiles = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for attention, opset in VARIANTS:
            for name, m in (("dense", model), (f"DN{args.level}", level)):
                path = Path(tmp) / f"{name}-{attention}-{opset}.onnx"
                if attention in ("explicit", "ortfused"):
                    export_graph(m, adapter, example, path, exporter="dynamo", opset=opset)
                    if attention == "ortfused":
                        fuse_for_ort(path)
                elif attention == "eager":  # transformers' eager attention, as elastoformer exported it before
                    previous = m.config._attn_implementation
                    m.set_attn_implementation("eager")
                    _export("dynamo", LogitsOnly(m, adapter).eval(), example, path, opset)
                    m.set_attn_implementation(previous)
                else:  # as traced without the adapter's export mode
                    _export("dynamo", LogitsOnly(m, adapter).eval(), example, path, opset)
                optimized = path.with_suffix(".opt.onnx")
                key = (f"{attention}@{opset}", name)
                sessions[key] = session(path, args.threads, args.spin, optimized)
                counts = collections.Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
                nodes[key] = {"total": sum(counts.values()), "by_op": dict(counts.most_common())}
                if args.profile and key[0] == "explicit@20":
                    profiles[name] = profile_ops(path, feed, args.threads)
            print(f"exported {attention}@{opset}", flush=True)

    keys = list(sessions)
    times: dict[tuple, list[float]] = {k: [] for k in keys}
    load_before = loadavg()
    for k in keys:
        for _ in range(args.warmup):
            sessions[k].run(None, feed)
    for r in range(args.repeats):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            start = time.perf_counter()
            sessions[k].run(None, feed)
            times[k].append(time.perf_counter() - start)
    load_after = loadavg()

    rows = []
    for attention, opset in VARIANTS:
        variant = f"{attention}@{opset}"
        dense, lv = times[(variant, "dense")], times[(variant, f"DN{args.level}")]
        rows.append({
            "variant": variant, "nodes_dense": nodes[(variant, "dense")]["total"],
            "nodes_level": nodes[(variant, f"DN{args.level}")]["total"],
            "dense_median_ms": round(statistics.median(dense) * 1e3, 2), "dense_min_ms": round(min(dense) * 1e3, 2),
            "level_median_ms": round(statistics.median(lv) * 1e3, 2), "level_min_ms": round(min(lv) * 1e3, 2),
            "efficiency": round(statistics.median(dense) / statistics.median(lv) / ideal, 3),
            "nodes": {"dense": nodes[(variant, "dense")], "level": nodes[(variant, f"DN{args.level}")]},
        })
    head = ("variant", "nodes (dense/level)", "dense median", "dense min", f"DN{args.level} median",
            f"DN{args.level} min", "eff.")
    table = [head] + [(r["variant"], f"{r['nodes_dense']}/{r['nodes_level']}", f"{r['dense_median_ms']:.1f}",
                       f"{r['dense_min_ms']:.1f}", f"{r['level_median_ms']:.1f}", f"{r['level_min_ms']:.1f}",
                       f"{r['efficiency']:.3f}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print(f"\nDeiT-B CR 0.6, DN{args.level} (ideal {ideal:.2f}x), {args.threads} thread(s), spin {args.spin}, "
          f"{args.repeats} repeats, load {load_before} -> {load_after}")
    for i, row in enumerate(table):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if profiles:
        level_name = f"DN{args.level}"
        dense_total, level_total = sum(profiles["dense"].values()), sum(profiles[level_name].values())
        print(f"\nexplicit@20, kernel ms per forward (ONNX Runtime profiler): dense {dense_total:.1f}, "
              f"{level_name} {level_total:.1f}")
        for op, ms in list(profiles["dense"].items())[:10]:
            lv = profiles[level_name].get(op, 0.0)
            print(f"  {op:24s} {ms:8.2f} {lv:8.2f}  ratio {lv / ms:.3f}  share {100 * ms / dense_total:4.1f}% / "
                  f"{100 * lv / level_total:4.1f}%")
    record = {"benchmark": "onnx_variants", "profiles": profiles, "level": args.level, "ideal_speedup": round(ideal, 3),
              "threads": args.threads, "spin": args.spin, "repeats": args.repeats, "warmup": args.warmup,
              "env": {"cpu": cpu_model(), "onnxruntime": ort.__version__, "torch": torch.__version__,
                      "loadavg_before": load_before, "loadavg_after": load_after},
              "rows": rows, "times_ms": {f"{v} {n}": [round(t * 1e3, 3) for t in ts] for (v, n), ts in times.items()}}
    output = args.output or RESULTS / "onnx_variants.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresults written to {output}")


if __name__ == "__main__":
    main()
