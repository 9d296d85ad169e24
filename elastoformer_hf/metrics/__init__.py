"""Offline evaluation metrics: a shipped ``evaluate`` accuracy module and a Trainer ``compute_metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ACCURACY_METRIC_PATH", "compute_accuracy", "load_accuracy"]

#: Folder of the shipped ``evaluate`` module (``accuracy/accuracy.py``); pass it to ``evaluate.load``.
ACCURACY_METRIC_PATH = Path(__file__).resolve().parent / "accuracy"


def load_accuracy(**kwargs: Any):
    """``evaluate.load`` the shipped accuracy module by local path (no Hub access, HF_HUB_OFFLINE=1 is fine).

    Args:
        **kwargs: go to ``evaluate.load`` (e.g. ``experiment_id``, ``num_process``/``process_id``).

    Returns:
        `evaluate.EvaluationModule`: the accuracy metric.
    """
    import evaluate

    return evaluate.load(str(ACCURACY_METRIC_PATH), **kwargs)


def _first(x: Any) -> Any:
    # transformers returns the main output first: Trainer's predictions are (logits, *extras) when the model
    # returns more than logits (hidden states, attentions, or DeiT-with-teacher's cls/distillation logits).
    while isinstance(x, (tuple, list)):
        x = x[0]
    return x


def compute_accuracy(eval_pred: Any) -> dict[str, float]:
    """``compute_metrics`` for ``transformers.Trainer``: top-1 accuracy from logits.

    ``eval_pred`` is an ``EvalPrediction`` or a ``(predictions, label_ids)`` pair. When ``predictions`` is a
    tuple, the FIRST element is used, not an average: transformers models put ``logits`` first and the rest
    are extras (hidden states, attentions) that must not be averaged in; for
    ``DeiTForImageClassificationWithTeacher`` the first element already is the mean of the class- and
    distillation-head logits (the DeiT inference rule), and timm distilled models average the heads
    themselves in eval mode. Soft (mixup) label rows are reduced with argmax.

    Args:
        eval_pred (`EvalPrediction` or `tuple`): an ``EvalPrediction`` or a ``(predictions, label_ids)`` pair.

    Returns:
        `dict[str, float]`: ``{"accuracy": ...}``, the fraction of correct predictions (0.0 without labels).

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
    return {"accuracy": float((preds == labels).mean()) if labels.size else 0.0}
