"""``elastoformer export``: write each level as ONNX (``dn{k}/onnx/model.onnx``), checked in onnxruntime against
the PyTorch logits, and print the ``trtexec`` command that builds and times its TensorRT engine."""

from __future__ import annotations

import argparse
import json

from ..errors import ElastoformerError
from ..export import build_engine, export_onnx, onnx_path, require_tensorrt, trtexec_command
from ..export.compat import compatibility_note
from ..messages import progress
from ..refresh import refresh_run
from ..run_folder import run_of, select_levels
from .options import command_description, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export levels to ONNX (checked in onnxruntime); print the trtexec command",
                       description=command_description(__doc__))
    p.add_argument("path", help="a run folder (with dn1/ .. dn{N+1}/) or one dn{k}/ folder")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format (default onnx)")
    p.add_argument("--levels", help="comma-separated levels of a run folder, e.g. 1,3 (default: all)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 20, torch's own, for TensorRT 10 / JetPack 6.1+; "
                   "17 for TensorRT 8.6, 16 for 8.5 / JetPack 5.1, 13 for 8.2 / the original Jetson Nano)")
    p.add_argument("--atol", type=float, default=1e-4,
                   help="largest max-abs logit difference onnxruntime vs PyTorch accepted (default 1e-4)")
    p.add_argument("--no_check", action="store_true", help="skip the onnxruntime check (not recommended)")
    p.add_argument("--image_size", type=positive_int,
                   help="CNNs: export resolution (default: the run's, else the model's)")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "torchscript"),
                   help="torch.onnx exporter: auto = dynamo, falling back to TorchScript if dynamo fails")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dn{k}/onnx/")
    p.add_argument("--tensorrt", action="store_true",
                   help="also build a TensorRT engine (dn{k}/onnx/model_{precision}.plan); needs tensorrt + CUDA")
    p.add_argument("--precision", default="fp16", choices=("fp16", "fp32"),
                   help="TensorRT precision of --tensorrt and of the printed trtexec command (default fp16)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")


def _parse_levels(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        levels = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ElastoformerError(f"--levels takes comma-separated integers (e.g. 1,3), got {text!r}") from None
    if not levels:
        raise ElastoformerError(f"--levels takes comma-separated integers (e.g. 1,3), got {text!r}")
    return levels


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_table(rows: list[dict]) -> str:
    table = [("level", "file", "size", "exporter", "max abs diff")]
    for r in rows:
        diffs = r["max_abs_diff"]
        table.append((f"DN{r['level']}" if r["level"] is not None else "-", r["path"], _size(r["bytes"]),
                      r["exporter"], "not checked" if diffs is None else f"{max(diffs.values()):.2e}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    targets = select_levels(args.path, _parse_levels(args.levels))
    if args.tensorrt:
        require_tensorrt()  # before any export: a clear error, not one after minutes of work
    rows = []
    for level, folder in progress(targets, "exporting", unit="level"):
        record = export_onnx(folder, opset=args.opset, check=not args.no_check, atol=args.atol,
                             overwrite=args.overwrite, image_size=args.image_size, exporter=args.exporter)
        path = onnx_path(folder)
        _, channels, size, _ = record["input_shape"]
        row = {"level": level, "path": str(path), "bytes": record["bytes"], "exporter": record["exporter"],
               "opset": record["opset"], "op_types": record["op_types"], "max_abs_diff": record["max_abs_diff"],
               "input_shape": record["input_shape"],
               "trtexec": trtexec_command(path, precision=args.precision, image_size=size, channels=channels)}
        if args.tensorrt:
            row["engine"] = str(build_engine(path, args.precision))
        rows.append(row)
    # the cards' Deploy sections are views of the export records
    for run in dict.fromkeys(run_of(folder) for _, folder in targets):
        if run is not None:
            refresh_run(run)
    if args.json:
        print(json.dumps({"format": args.format, "levels": rows}))
        return 0
    print(format_table(rows))
    print(f"\nTensorRT ({args.precision}): build and time each engine with (on a Jetson, trtexec is "
          "/usr/src/tensorrt/bin/trtexec):")
    for row in rows:
        print(f"  {row['trtexec']}")
    for note in dict.fromkeys(compatibility_note(row["opset"], row["op_types"],
                                                 command="elastoformer export RUN_DIR --format onnx --overwrite")
                              for row in rows):
        print(note.replace("`", ""))
    for row in rows:
        if row.get("engine"):
            print(f"built {row['engine']}")
    return 0
