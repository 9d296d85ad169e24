"""``elastoformer plan``: the levels of a family, their widths and costs, before spending GPU days."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..adapters import get_adapter
from ..base_model import load_base_model
from ..data import build_transforms, load_image_datasets, with_transforms
from ..descendant import save_descendant
from ..errors import ElastoformerError
from ..messages import get_logger
from ..pruning.config import add_pruning_arguments, pruning_config_from
from ..pruning.importance import synthetic_batches
from ..pruning.planner import plan_levels
from ..pruning.record import ElasticPlan
from ..pruning.replay import extract_level
from ..run_folder import (
    BASE_MODEL_FILE,
    PLAN_FILE,
    check_output_dir,
    clean_leftovers,
    level_dir,
    staged_folder,
    training_contents,
    write_json,
)
from .options import add_model_arguments, command_description, positive_int

logger = get_logger(__name__)  # progress on stderr, [elastoformer] ...

def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="plan the nested levels of a model and print their costs",
                       description=command_description(__doc__))
    add_model_arguments(p)
    add_pruning_arguments(p)
    p.add_argument("--calibration", choices=("synthetic",),
                   help="taylor/hessian without a dataset: random images and labels (structure-only plan)")
    p.add_argument("--dataset_name", help="calibration data for taylor/hessian (see elastoformer_hf.data)")
    p.add_argument("--data_path", help="local data folder for --dataset_name")
    p.add_argument("--dataset_config", help="the dataset's configuration, for a Hub id or local dataset folder")
    p.add_argument("--image_column_name", help="the image column (default: image/img, else the first Image column)")
    p.add_argument("--label_column_name", help="the label column (default: label/fine_label/labels, else the first "
                                               "ClassLabel column)")
    p.add_argument("--batch_size", type=positive_int, default=16, help="calibration batch size")
    p.add_argument("--image_size", type=positive_int, help="resolution costs are counted at (default: the model's)")
    p.add_argument("--output_dir", help="write elastic_plan.json and the untrained dn1..dn{N+1} folders here")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --output_dir that holds no training (an earlier plan); a folder with "
                        "trained levels, checkpoints or a training run's records is refused")
    p.add_argument("--overwrite_trained", action="store_true",
                   help="replace an existing --output_dir even when it holds a trained run: its trained levels, "
                        "checkpoints and records are deleted (implies --overwrite)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")


def _calibration(args, loaded, config):
    if not config.needs_gradients:
        return None
    if args.dataset_name:
        return _dataset_batches(args, loaded, config)
    example = get_adapter(loaded.model).example_inputs(loaded.model, args.image_size)
    num_classes = len(loaded.label_names or []) or 1000
    return synthetic_batches(example, num_classes, batch_size=args.batch_size)


def _require_calibration(args, config) -> None:
    if config.needs_gradients and not (args.dataset_name or args.calibration):
        raise ElastoformerError(
            f"--pruning_type {config.pruning_type} needs data for its gradients: pass --dataset_name "
            "(and --data_path), or --calibration synthetic for a structure-only plan"
        )


def _dataset_batches(args, loaded, config):
    train, _, label_names = load_image_datasets(args.dataset_name, args.data_path, dataset_config=args.dataset_config,
                                                image_column_name=args.image_column_name,
                                                label_column_name=args.label_column_name,
                                                max_train_samples=args.batch_size * config.taylor_batches)
    num_classes = get_adapter(loaded.model).classifier_layers(loaded.model)[0].out_features
    if len(label_names) != num_classes:
        raise ElastoformerError(
            f"{args.dataset_name} has {len(label_names)} classes but the model's classifier has {num_classes}: "
            f"pass --num_labels {len(label_names)}"
        )
    dc = loaded.data_config
    transform = build_transforms(dc["input_size"][-1], dc["mean"], dc["std"], is_training=False,
                                 interpolation=dc.get("interpolation", "bicubic"), crop_pct=dc.get("crop_pct"))
    return torch.utils.data.DataLoader(with_transforms(train, transform), batch_size=args.batch_size,
                                       shuffle=True, collate_fn=_stack)


def _stack(rows):
    return {"pixel_values": torch.stack([r["pixel_values"] for r in rows]),
            "labels": torch.tensor([int(r["labels"]) for r in rows])}


def _widths(level, dense) -> str:
    s = level.structure
    if "num_attention_heads" in s:
        return f"hidden {s['hidden_size']}, heads {s['num_attention_heads']}x{s['head_dim']}, mlp {s['intermediate_size']}"
    if "hidden_size" in s:
        return f"hidden {s['hidden_size']}, per-layer heads/mlp"
    total, full = sum(level.dims.values()), sum(dense.dims.values())
    return f"{total}/{full} channels ({100 * total / full:.0f}%)"


def _heads_note(c) -> str:
    if c.head_pruning == "auto":  # a model without attention heads
        return ""
    return f", {'whole heads' if c.whole_heads else 'head dims'}{' (auto)' if c.head_pruning_auto else ''}"


def format_table(plan: ElasticPlan) -> str:
    dense = plan.levels[-1]
    rows = [("level", "keep", "widths", "params (M)", "MACs (G)", "FLOPs (G)", "MACs vs dense")]
    for lv in plan.levels:
        name = f"DN{lv.level}" + (" (core)" if lv.level == 1 else " (dense)" if lv is dense else "")
        rows.append((name, f"{lv.keep_fraction:.2f}", _widths(lv, dense), f"{lv.params / 1e6:.2f}",
                     f"{lv.macs / 1e9:.3f}", f"{lv.flops / 1e9:.3f}", f"{100 * lv.macs / dense.macs:.1f}%"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 2 or i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    c = plan.config
    head = (f"{plan.model_name} ({plan.architecture}): {c.pruning_type}, ratio {c.pruning_ratio}, "
            f"{c.pruning_steps} steps, round_to {c.round_to}"
            f"{f' (auto, {c.round_to_profile})' if c.auto_round_to else ''}{', global' if c.global_pruning else ''}"
            f"{_heads_note(c)}; costs at {plan.image_size}px, batch 1")
    return "\n".join([head, *lines])


def _prepare_output(args: argparse.Namespace) -> Path:
    """``--output_dir``, once what an interrupted plan left beside it is cleared (a folder it was replacing is put
    back first) and it is known to be replaceable (:func:`_check_replaceable`). Inside it nothing is touched: it
    may be a run that is training now. A file is never replaced, not even with ``--overwrite``."""
    out = check_output_dir(args.output_dir)
    clean_leftovers(out, inside=False, log=logger.info)
    _check_replaceable(out, args)
    return out


def _check_replaceable(out: Path, args: argparse.Namespace) -> None:
    """Refuse an existing, non-empty ``out`` without ``--overwrite``, and one holding training (trained levels,
    checkpoints, a run's records: days of GPU time) without ``--overwrite_trained``."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())) or args.overwrite_trained:
        return
    if not args.overwrite:
        raise ElastoformerError(f"--output_dir {out} exists and is not empty; pass --overwrite to replace it")
    held = training_contents(out) if out.is_dir() else []
    if held:
        raise ElastoformerError(f"--output_dir {out} holds a trained run ({'; '.join(held)}): --overwrite replaces "
                                "only an untrained plan; pass --overwrite_trained to delete the run and plan there, "
                                "or pick another --output_dir")


def write_family(plan, loaded, out: Path, args: argparse.Namespace) -> None:
    """Write every level into a hidden sibling folder, then rename it into place: an interrupted run never
    leaves an ``--output_dir`` that looks complete."""
    with staged_folder(out) as tmp:
        for lv in plan.levels:
            logger.info(f"writing dn{lv.level} ...")
            save_descendant(
                extract_level(loaded.model, plan, lv.level), level_dir(tmp, lv.level), spec=loaded.spec,
                level_info={**lv.summary(), "num_levels": plan.num_levels, "model_name": plan.model_name,
                            "trained": False, "pruning": plan.config.to_dict()},
                label_names=loaded.label_names, data_config=loaded.data_config,
                image_processor=loaded.image_processor,
            )
        plan.save(tmp)
        write_json(tmp / BASE_MODEL_FILE, loaded.spec.to_dict(), sort_keys=False)
        if out.exists():  # written to while planning: judged again
            _check_replaceable(out, args)


def run(args: argparse.Namespace) -> int:
    config = pruning_config_from(args)
    _require_calibration(args, config)  # before any model is loaded
    out = _prepare_output(args) if args.output_dir else None
    loaded = load_base_model(args.model_name_or_path, random_init=args.random_init, weights=args.weights,
                             num_labels=args.num_labels)
    plan = plan_levels(loaded.model, config, model_name=args.model_name_or_path,
                       calibration=_calibration(args, loaded, config), image_size=args.image_size)
    if out is not None:
        write_family(plan, loaded, out, args)
    if args.json:
        summary = plan.to_dict(include_kept=False)
        print(json.dumps({"model_name": plan.model_name, **{k: v for k, v in summary.items() if k != "model_name"}}))
    else:
        print(format_table(plan))
        if out is not None:
            print(f"\nwrote {out}/{PLAN_FILE} and dn1..dn{plan.num_levels}/")
    return 0
