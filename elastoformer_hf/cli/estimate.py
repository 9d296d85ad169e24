"""``elastoformer estimate``: estimated Jetson latency of every level, without the device: a per-kernel roofline
from published peak specs, optionally calibrated on latencies measured on the device (``--calibrate``).

The numbers are recorded as ``method: "estimated"`` entries with their own runtime label ("PyTorch eager
(roofline estimate)") in ``dn{k}/latency.json``; the cards (a column of their own, each number marked "(est.)")
and the family metadata are then refreshed from the records; measurements are never replaced by estimates. Only ``elastoformer bench`` on the device gives
measured numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ElastoformerError
from ..latency.profiles import PRECISIONS, PROFILES, check_precision, load_profile
from ..latency.roofline import calibrate, estimate_level
from ..latency.store import read_latency
from ..refresh import record_latency
from ..run_folder import LATENCY_FILE, read_level_info, select_levels, write_json
from .options import command_description


def add_parser(sub) -> None:
    p = sub.add_parser("estimate", help="estimate the Jetson latency of every level (roofline, no device needed)",
                       description=command_description(__doc__),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a run folder (with dn1/ .. dn{N+1}/) or one dn{k}/ folder")
    p.add_argument("--profile", required=True,
                   help=f"device profile: {', '.join(PROFILES)}, or a JSON file (name, peak_flops, "
                        "memory_bandwidth, kernel_overhead_s, ...)")
    p.add_argument("--calibrate", nargs="+", metavar="LATENCY_JSON",
                   help="latency.json files measured on the device (or dn folders holding one): fit the profile's "
                        "efficiencies and kernel overhead to their measured entries (>= 2 points)")
    p.add_argument("--batch_size", type=int, default=1, help="batch size to estimate (default 1)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="precision to estimate (default fp32)")
    p.add_argument("--save_profile", metavar="FILE.json", help="write the (calibrated) profile to this JSON file, "
                                                               "for later --profile FILE.json")
    p.add_argument("--no_write", action="store_true", help="print only; record nothing in the folders")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")


def measured_points(files: list[str], precision: str) -> tuple[list[tuple], str]:
    """``([(dn_dir, median_ms, batch_size)], device name)`` from the measured entries of ``files`` at
    ``precision`` timed with PyTorch eager on a GPU (runtime ``torch``, device type not ``cpu``: what the roofline
    models; TensorRT or onnxruntime timings would fit other parameters). Every point must come from one device;
    the model is the folder holding the file."""
    points, devices = [], set()
    for name in files:
        path = Path(name)
        folder = path if path.is_dir() else path.parent
        if path.is_dir():
            path = path / LATENCY_FILE
        if not path.is_file():
            raise ElastoformerError(f"--calibrate {name}: {path} does not exist")
        if path.name != LATENCY_FILE:
            raise ElastoformerError(f"--calibrate {name}: expected a {LATENCY_FILE} inside a dn{{k}}/ folder (the "
                                    "model it was measured on)")
        for e in read_latency(folder):
            if (e["method"] == "measured" and e["precision"] == precision and e["runtime"] == "torch"
                    and e["device"].get("type") != "cpu"):
                points.append((folder, e["median_ms"], e["batch_size"]))
                devices.add(e["device"]["name"])
    if not points:
        raise ElastoformerError(f"--calibrate: no measured {precision} PyTorch eager GPU entries (runtime 'torch') in "
                                f"{', '.join(files)} (run elastoformer bench --runtime torch on the device first)")
    if len(devices) > 1:
        raise ElastoformerError(f"--calibrate: the entries come from several devices ({', '.join(sorted(devices))}); "
                                "calibrate one device at a time")
    return points, devices.pop()


def format_table(rows: list[dict], profile) -> str:
    head = (f"{profile.name} ({profile.key}), {rows[0]['precision']}, batch {rows[0]['batch_size']}: "
            f"{rows[0]['notes']}")
    table = [("level", "params (M)", "GFLOPs", "kernels", "estimated ms", "compute", "memory", "overhead")]
    for r in rows:
        table.append((r["level_dir"], f"{r['params'] / 1e6:.2f}" if r.get("params") else "-",
                      f"{r['flops'] / 1e9:.2f}", str(r["kernels"]), f"{r['ms']:.2f}", f"{r['compute_ms']:.2f}",
                      f"{r['memory_ms']:.2f}", f"{r['overhead_ms']:.2f}"))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))) for t in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    foot = ("compute/memory: ms of kernels limited by FLOPs / by bytes moved; overhead: eager launch cost per kernel. "
            f"Efficiency {profile.eff_compute:.3g} (compute), {profile.eff_memory:.3g} (memory), "
            f"{1e6 * profile.kernel_overhead_s:.3g} us per kernel.")
    return "\n".join([head, *lines, foot])


def run(args: argparse.Namespace) -> int:
    check_precision(args.precision)
    if args.batch_size < 1:
        raise ElastoformerError(f"--batch_size must be >= 1, got {args.batch_size}")
    profile = load_profile(args.profile)  # before any model is loaded: a bad name fails fast
    dirs = [folder for _, folder in select_levels(args.path)]
    calibration_device = None
    if args.calibrate:
        points, calibration_device = measured_points(args.calibrate, args.precision)
        profile = calibrate(profile, points, precision=args.precision)
    rows, entries = [], {}
    for folder in dirs:
        info = read_level_info(folder)
        result, entry = estimate_level(folder, profile, batch_size=args.batch_size, precision=args.precision)
        result.update(level_dir=folder.name, level=info.get("level"), params=info.get("params"))
        rows.append(result)
        entries[folder] = [entry]
    if args.save_profile:
        _save_profile(profile, Path(args.save_profile))
    if not args.no_write:
        record_latency(entries)
    if args.json:
        print(json.dumps({"profile": profile.to_dict(), "calibration_device": calibration_device,
                          "written": not args.no_write, "levels": rows}))
    else:
        print(format_table(rows, profile))
        if calibration_device:
            print(f"calibrated on {profile.calibration['points']} measured points from {calibration_device}; "
                  f"residuals (%): {profile.calibration['residuals_pct']}")
        if not args.no_write:
            print(f"recorded as method 'estimated' in {len(dirs)} latency.json file(s) (and their cards)")
    return 0


def _save_profile(profile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, profile.to_dict(), sort_keys=False)
