"""``elastoformer bench``: measure every level's latency on this machine and record it with the levels.

PATH is a run folder (every ``dn{k}/``, from ``ElasticTrainer`` or ``elastoformer plan --output_dir``) or one
``dn{k}/`` folder. Levels are timed together (warm-up, then interleaved round-robin over the repeats, a fixed
thread count) and the median, min and 90th percentile of each are printed and recorded in ``dn{k}/latency.json``;
then the run's views are refreshed from the records: the model cards (``dn{k}/README.md``, ``family/README.md``,
if any) and the family artifact's metadata (``family/``, if any). The onnxruntime and tensorrt runtimes time the
level's ``onnx/model.onnx``: export it first (``elastoformer export``). In eager torch a CNN's levels run in
channels_last by default (``--memory_format``); the layout is recorded with each measurement.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..cards import human
from ..errors import ElastoformerError
from ..latency.bench import MEMORY_FORMATS, PRECISIONS, RUNTIMES
from ..latency.suite import benchmark
from ..refresh import record_latency
from .options import command_description, int_list


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure each level's latency and record it (latency.json, cards, family)",
                       description=command_description(__doc__),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="a run folder (dn1/ .. dn{N+1}/) or one dn{k}/ folder")
    p.add_argument("--batch_sizes", type=int_list, default=[1], help="comma-separated batch sizes (default 1)")
    p.add_argument("--runtime", default="torch", choices=RUNTIMES,
                   help="torch (eager), onnxruntime (dn{k}/onnx/model.onnx) or tensorrt (CUDA)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="fp32 (default), bf16, fp16 (CUDA); tensorrt defaults to fp16")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per level and batch size (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per level first (default 3)")
    p.add_argument("--threads", type=int, help="CPU threads for torch/onnxruntime (default: torch's current count)")
    p.add_argument("--memory_format", default="auto", choices=MEMORY_FORMATS,
                   help="torch only: the layout of each level's 4-D tensors; auto (default) = channels_last for "
                        "CNNs (eager CPU convolutions follow their FLOPs far closer in it), contiguous for ViTs")
    p.add_argument("--levels", type=int_list, help="only these levels, e.g. 1,3 (default: all)")
    p.add_argument("--image_size", type=int, help="input resolution (default: the plan's, else the model's)")
    p.add_argument("--no_write", action="store_true", help="print only; write no latency.json, card or family")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")

def table(result: dict) -> str:
    """The printed table: one line per (batch size, level)."""
    header = ["Level", "Params", "MACs", "FLOPs", "Batch", "Median ms", "Min ms", "P90 ms", "Speedup", "FLOPs ratio",
              "Efficiency", "MACs ratio", "Eff. (MACs)"]
    lines = [header]
    for r in result["rows"]:
        lines.append([f"dn{r['level']}" if r["level"] is not None else r["folder"], human(r["params"]),
                      human(r["macs"]), human(r.get("flops")), str(r["batch_size"]), f"{r['median_ms']:.3f}",
                      f"{r['min_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['speedup']:.2f}x",
                      _percent(r.get("flops_ratio")), _fixed(r.get("efficiency")), _percent(r["macs_ratio"]),
                      _fixed(r.get("efficiency_macs"))])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    record = result["device"]
    layout = f" {result['memory_format']}" if result.get("memory_format") else ""
    title = (f"{record['name']} | {result['runtime']} {result['precision']}{layout} | median of {result['repeats']} runs "
             f"(levels interleaved, {result['warmup']} warm-up) | speedup and cost ratios vs the largest level timed; "
             "efficiency = speedup / ideal speedup (1 / FLOPs ratio: module MACs + attention matmuls), "
             "Eff. (MACs) against module MACs only")
    return "\n".join([title, *text])


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _fixed(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def run(args) -> int:
    for name in ("repeats", "threads", "image_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ElastoformerError(f"--{name} must be >= 1, got {value}")
    if args.warmup < 0:
        raise ElastoformerError(f"--warmup must be >= 0, got {args.warmup}")
    result = benchmark(args.path, batch_sizes=args.batch_sizes, runtime=args.runtime, precision=args.precision,
                       device=args.device, repeats=args.repeats, warmup=args.warmup, threads=args.threads,
                       levels=args.levels, image_size=args.image_size, memory_format=args.memory_format)
    written = [] if args.no_write else [str(p) for p in record_latency(result["entries"])]
    if args.json:
        out = {k: v for k, v in result.items() if k != "entries"}
        out["written"] = written
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(table(result))
        if written:
            print("\nrecorded in:\n" + "\n".join(f"  {p}" for p in written))
        else:
            print("\n(--no_write: nothing recorded)")
    return 0
