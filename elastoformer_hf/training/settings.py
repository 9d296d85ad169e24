"""The run's records: the settings a run was started with (to refuse mixing runs) and its summary table."""

from __future__ import annotations

import contextlib
from dataclasses import MISSING, fields

import torch
from transformers import TrainingArguments

from ..pruning.config import PruningConfig
from .arguments import ElasticTrainingArguments

#: Trainer arguments that change what a level learns (a resumed run must use the same ones)
TRAINER_SETTINGS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "lr_scheduler_type",
    "warmup_steps", "warmup_ratio", "optim", "seed", "bf16", "fp16",
)


def data_identity(train_dataset, eval_dataset, described: dict | None = None) -> dict:
    """What the levels learn from and are scored on: the rows of each split (and the ``datasets`` fingerprint,
    which changes with another subset or other files), the training resolution, and the caller's description
    (``described``: dataset name, path, splits, sample counts)."""
    identity = dict(described or {})
    for split, dataset in (("train", train_dataset), ("eval", eval_dataset)):
        if dataset is None:
            continue
        if is_stream(dataset):  # no length, no fingerprint: the description (name, splits, sample counts) is it
            identity["streaming"] = True
            continue
        identity[f"{split}_rows"] = len(dataset)
        fingerprint = getattr(dataset, "_fingerprint", None)
        if fingerprint:
            identity[f"{split}_fingerprint"] = fingerprint
    with contextlib.suppress(TypeError, KeyError, IndexError, AttributeError, StopIteration):  # no images
        identity["image_size"] = int(first_row(train_dataset)["pixel_values"].shape[-1])
    return identity


def is_stream(dataset) -> bool:
    """Whether ``dataset`` is read as a stream (a ``datasets.IterableDataset`` or a torch ``IterableDataset``:
    no length, no indices)."""
    return isinstance(dataset, torch.utils.data.IterableDataset)


def first_row(dataset):
    """The first row of a dataset or a stream (a stream reads only what its first row needs)."""
    return next(iter(dataset)) if is_stream(dataset) else dataset[0]


def run_settings(args: ElasticTrainingArguments, model_name: str, data: dict | None = None) -> dict:
    """JSON-friendly settings, grouped: ``model``, ``pruning``, ``training`` and (when given) ``data``."""
    elastic = {f.name for f in fields(ElasticTrainingArguments)} - {f.name for f in fields(TrainingArguments)}
    elastic -= {"keep_level_checkpoints", "remove_unused_columns", "push_levels", "save_family"}  # do not change the result
    pruning = args.pruning_config.to_dict()
    training = {name: getattr(args, name) for name in sorted(elastic) if name not in pruning}
    training.update({name: _plain(getattr(args, name, None)) for name in TRAINER_SETTINGS})
    settings = {"model": {"model_name": model_name}, "pruning": pruning, "training": training}
    if data is not None:
        settings["data"] = data
    return settings


def setting_default(group: str, name: str):
    """The default of a recorded setting (``pruning``: a :class:`PruningConfig` field, ``training``: an elastic
    argument), or None when it has none. New settings default to the old behaviour, so a run recorded before a
    setting existed implicitly used its default: resuming such a run compares a missing entry with this."""
    if group == "pruning":
        candidates = fields(PruningConfig)
    elif group == "training":
        base = {f.name for f in fields(TrainingArguments)}
        candidates = [f for f in fields(ElasticTrainingArguments) if f.name not in base]
    else:
        return None
    default = next((f.default for f in candidates if f.name == name), None)
    return None if default is MISSING else default


def recorded_setting(settings: dict, group: str, name: str):
    """``settings[group][name]`` of a recorded run (``elastic_run.json``), or :func:`setting_default` when the
    run predates that setting."""
    values = settings.get(group) or {}
    if group == "pruning" and name == "head_pruning" and name not in values and values.get("prune_heads"):
        return "heads"  # recorded before head_pruning, as prune_heads: true (false was the default: compared as auto,
        # and the plan check then holds auto to the head dims that plan was made with)
    return values[name] if name in values else setting_default(group, name)


def _plain(value):
    return value.value if hasattr(value, "value") else value  # enums (lr_scheduler_type, optim)


def format_summary(summary: dict) -> str:
    consistent = any(lv.get("consistency") for lv in summary["levels"])
    rows = [("level", "params (M)", "MACs (G)", "top-1 (%)", "eval loss")
            + (("agrees w/ full (%)", "worst class drop") if consistent else ())]
    dense = summary["levels"][-1]
    for lv in summary["levels"]:
        m = lv.get("metrics", {})
        acc = m.get("eval_accuracy")
        loss = m.get("eval_loss")
        name = f"DN{lv['level']}" + (" (core)" if lv["level"] == 1 else " (full)" if lv is dense else "")
        row = (name, f"{lv['params'] / 1e6:.3f}", f"{lv['macs'] / 1e9:.4f}",
               "-" if acc is None else f"{100 * acc:.2f}", "-" if loss is None else f"{loss:.4f}")
        if consistent:
            c = lv.get("consistency") or {}
            row += ("-" if c.get("agreement_full") is None else f"{100 * c['agreement_full']:.1f}",
                    "-" if lv is dense or "worst_class_drop" not in c
                    else f"{100 * c['worst_class_drop']:.1f} pts ({c['worst_class']})")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return f"{summary['model_name']}: the elastic family\n" + "\n".join(lines)
