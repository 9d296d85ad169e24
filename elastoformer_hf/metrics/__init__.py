"""Offline evaluation metrics: shipped ``evaluate`` modules (top-1, top-k) and a Trainer ``compute_metrics``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ACCURACY_METRIC_PATH", "TOP_K", "TOP_K_METRIC_PATH", "compute_accuracy", "level_consistency",
           "load_accuracy", "load_top_k", "predicted_classes"]

#: Folder of the shipped ``evaluate`` module (``accuracy/accuracy.py``); pass it to ``evaluate.load``.
ACCURACY_METRIC_PATH = Path(__file__).resolve().parent / "accuracy"
#: Folder of the shipped top-k ``evaluate`` module (``top_k_accuracy/top_k_accuracy.py``).
TOP_K_METRIC_PATH = Path(__file__).resolve().parent / "top_k_accuracy"
#: ``compute_accuracy`` adds ``top{TOP_K}_accuracy`` when there are more than this many classes (ImageNet's top-5).
TOP_K = 5


def load_accuracy(**kwargs: Any):
    """``evaluate.load`` the shipped accuracy module by local path (no Hub access, HF_HUB_OFFLINE=1 is fine).

    Args:
        **kwargs: go to ``evaluate.load`` (e.g. ``experiment_id``, ``num_process``/``process_id``).

    Returns:
        `evaluate.EvaluationModule`: the accuracy metric.
    """
    import evaluate

    return evaluate.load(str(ACCURACY_METRIC_PATH), **kwargs)


def load_top_k(**kwargs: Any):
    """``evaluate.load`` the shipped top-k accuracy module by local path (works offline).

    Args:
        **kwargs: go to ``evaluate.load``.

    Returns:
        `evaluate.EvaluationModule`: computes ``{"top_k_accuracy": ...}`` from ranked class ids.
    """
    import evaluate

    return evaluate.load(str(TOP_K_METRIC_PATH), **kwargs)


@functools.cache
def _in_memory(loader):
    # One module per process, kept in memory: evaluate's default Arrow cache files under ~/.cache would be shared
    # (and locked) by every DDP rank computing the same gathered predictions.
    return loader(keep_in_memory=True)


def _first(x: Any) -> Any:
    # transformers returns the main output first: Trainer's predictions are (logits, *extras) when the model
    # returns more than logits (hidden states, attentions, or DeiT-with-teacher's cls/distillation logits).
    while isinstance(x, (tuple, list)):
        x = x[0]
    return x


def compute_accuracy(eval_pred: Any) -> dict[str, float]:
    """``compute_metrics`` for ``transformers.Trainer``: top-1 (and top-5) accuracy from logits, through ``evaluate``.

    ``eval_pred`` is an ``EvalPrediction`` or a ``(predictions, label_ids)`` pair. When ``predictions`` is a
    tuple, the FIRST element is used, not an average: transformers models put ``logits`` first and the rest
    are extras (hidden states, attentions) that must not be averaged in; for
    ``DeiTForImageClassificationWithTeacher`` the first element already is the mean of the class- and
    distillation-head logits (the DeiT inference rule), and timm distilled models average the heads
    themselves in eval mode. Soft (mixup) label rows are reduced with argmax. With more than :data:`TOP_K`
    classes, ``top5_accuracy`` is added (the ImageNet convention); the numbers come from the shipped
    ``evaluate`` modules (:func:`load_accuracy`, :func:`load_top_k`), so they match ``evaluate.load`` by hand.

    Args:
        eval_pred (`EvalPrediction` or `tuple`): an ``EvalPrediction`` or a ``(predictions, label_ids)`` pair.

    Returns:
        `dict[str, float]`: ``{"accuracy": ...}`` (plus ``"top5_accuracy"``), fractions of correct predictions
        (0.0 without labels).

    Raises:
        ValueError: the numbers of predictions and labels differ.
    """
    if hasattr(eval_pred, "predictions"):
        logits, labels = eval_pred.predictions, eval_pred.label_ids
    else:
        logits, labels = eval_pred
    logits = np.asarray(_first(logits))
    labels = np.asarray(_first(labels))
    preds = logits.argmax(axis=-1) if logits.ndim > 1 else logits
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1)
    preds, labels = preds.reshape(-1), labels.reshape(-1)
    if preds.shape != labels.shape:
        raise ValueError(f"compute_accuracy: {preds.shape[0]} predictions vs {labels.shape[0]} labels")
    if not labels.size:
        return {"accuracy": 0.0}
    out = {"accuracy": _in_memory(load_accuracy).compute(predictions=preds, references=labels)["accuracy"]}
    if logits.ndim > 1 and logits.shape[-1] > TOP_K:
        ranked = np.argsort(-logits.reshape(-1, logits.shape[-1]), axis=-1, kind="stable")[:, :TOP_K]
        top = _in_memory(load_top_k).compute(predictions=ranked, references=labels)["top_k_accuracy"]
        out[f"top{TOP_K}_accuracy"] = top
    return out


def predicted_classes(predictions: Any) -> np.ndarray:
    """Class ids from Trainer predictions (logits first, as in :func:`compute_accuracy`)."""
    logits = np.asarray(_first(predictions))
    return (logits.argmax(axis=-1) if logits.ndim > 1 else logits).reshape(-1)


def level_consistency(predictions: dict[int, np.ndarray], labels: np.ndarray,
                      label_names: list[str] | None = None) -> dict[int, dict]:
    """How the levels of a family agree with each other on the same evaluation images.

    No benchmark reports this, and it is what a device that switches levels at run time feels: a prediction
    that flips when the budget changes. Per level: the share of images whose top-1 class equals the full
    level's (``agreement_full``) and the next larger level's (``agreement_next``, None for the full level), and
    the class whose accuracy drops most against the full level (``worst_class``, ``worst_class_drop`` in
    accuracy points as a fraction; negative when the level is better on every class).

    Args:
        predictions (`dict[int, np.ndarray]`): level -> predicted class ids, every level on the same images.
        labels (`np.ndarray`): the true class ids of those images.
        label_names (`list[str]`, *optional*): names the worst class (default: its id).

    Returns:
        `dict[int, dict]`: level -> its consistency numbers (rounded to 4 decimals).
    """
    labels = np.asarray(labels).reshape(-1)
    levels = sorted(predictions)
    full = np.asarray(predictions[levels[-1]]).reshape(-1)
    classes = np.unique(labels)

    def per_class(pred: np.ndarray) -> np.ndarray:
        return np.array([(pred[labels == c] == c).mean() for c in classes])

    full_acc = per_class(full)
    out = {}
    for i, level in enumerate(levels):
        pred = np.asarray(predictions[level]).reshape(-1)
        drops = full_acc - per_class(pred)
        worst = int(np.argmax(drops))
        nxt = np.asarray(predictions[levels[i + 1]]).reshape(-1) if i + 1 < len(levels) else None
        cls = int(classes[worst])
        out[level] = {
            "agreement_full": round(float((pred == full).mean()), 4),
            "agreement_next": None if nxt is None else round(float((pred == nxt).mean()), 4),
            "worst_class": label_names[cls] if label_names and cls < len(label_names) else str(cls),
            "worst_class_drop": round(float(drops[worst]), 4),
        }
    return out
