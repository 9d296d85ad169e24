"""Offline accuracy: the shipped ``evaluate`` module and Trainer ``compute_metrics``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from transformers import EvalPrediction

from elastoformer_hf.metrics import ACCURACY_METRIC_PATH, TOP_K_METRIC_PATH, compute_accuracy


@pytest.mark.parametrize("script", [ACCURACY_METRIC_PATH / "accuracy.py", TOP_K_METRIC_PATH / "top_k_accuracy.py"],
                         ids=["accuracy", "top_k_accuracy"])
def test_metric_module_layout(script):
    assert script.is_file()
    # evaluate copies this one file into its modules cache: it may only import installed libraries
    tree = ast.parse(script.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert all(n.level == 0 for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert imported <= {"datasets", "evaluate", "numpy"}


_OFFLINE_SCRIPT = """
import json
import numpy as np
from elastoformer_hf.metrics import load_accuracy, load_top_k

metric = load_accuracy()
out = {
    "simple": metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 2, 0]),
    "weighted": metric.compute(
        predictions=[0, 1, 1, 0], references=[0, 1, 2, 0], normalize=False, sample_weight=[1, 2, 3, 4]
    ),
}
rng = np.random.default_rng(0)
preds, refs = rng.integers(0, 5, 500), rng.integers(0, 5, 500)
for p, r in zip(np.array_split(preds, 4), np.array_split(refs, 4)):
    metric.add_batch(predictions=p, references=r)
out["batched"] = metric.compute()
out["expected_batched"] = float((preds == refs).mean())
out["top_k"] = load_top_k().compute(predictions=[[2, 0], [0, 2], [1, 0]], references=[0, 1, 1], k=2)
print(json.dumps(out))
"""


def test_load_accuracy_offline(tmp_path):
    """A fresh interpreter with HF_HUB_OFFLINE=1 and an empty HF cache loads the shipped module by path.

    (A subprocess, because huggingface_hub/evaluate read the offline flag at import time.)
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_MODULES_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["simple"] == {"accuracy": 0.75}
    assert out["weighted"]["accuracy"] == pytest.approx(7.0)
    assert out["batched"]["accuracy"] == pytest.approx(out["expected_batched"])
    assert out["top_k"]["top_k_accuracy"] == pytest.approx(2 / 3)
    assert (tmp_path / "hf" / "modules").is_dir()  # evaluate imported the copied script from there


def test_compute_accuracy_plain_and_eval_prediction():
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 0.1], [0.5, 0.2, 0.1], [0.0, 0.0, 9.0]])
    labels = np.array([0, 1, 2, 2])
    assert compute_accuracy((logits, labels)) == {"accuracy": 0.75}
    assert compute_accuracy(EvalPrediction(predictions=logits, label_ids=labels)) == {"accuracy": 0.75}


def test_compute_accuracy_tuple_logits_takes_first():
    # DeiTForImageClassificationWithTeacher -> Trainer predictions (logits, cls_logits, distillation_logits);
    # logits (first) is already the mean of both heads, extras must not be averaged in.
    labels = np.array([0, 1, 2, 0])
    logits = np.eye(3)[[0, 1, 2, 1]] * 5.0  # 3/4 right
    other = np.eye(3)[[2, 2, 2, 2]] * 100.0  # would dominate an average
    assert compute_accuracy(EvalPrediction(predictions=(logits, other, other), label_ids=labels)) == {
        "accuracy": 0.75
    }
    assert compute_accuracy(((logits, (other,)), labels))["accuracy"] == 0.75


def test_compute_accuracy_soft_labels_and_mismatch():
    logits = np.eye(4)[[0, 1, 2, 3]]
    soft = np.full((4, 4), 0.025) + np.eye(4)[[0, 1, 3, 3]] * 0.9
    assert compute_accuracy((logits, soft)) == {"accuracy": 0.75}
    with pytest.raises(ValueError, match="predictions"):
        compute_accuracy((logits, np.array([0, 1])))


def test_compute_accuracy_adds_top5_with_more_than_five_classes():
    """ImageNet-style reporting: top-5 from the shipped evaluate module, equal to a direct count."""
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(64, 10)), rng.integers(0, 10, 64)
    out = compute_accuracy(EvalPrediction(predictions=logits, label_ids=labels))
    top5 = np.argsort(-logits, axis=-1)[:, :5]
    assert set(out) == {"accuracy", "top5_accuracy"}
    assert out["accuracy"] == pytest.approx(float((logits.argmax(-1) == labels).mean()))
    assert out["top5_accuracy"] == pytest.approx(float((top5 == labels[:, None]).any(1).mean()))
    assert out["top5_accuracy"] >= out["accuracy"]
    assert set(compute_accuracy((logits[:, :5], labels % 5))) == {"accuracy"}  # five classes: top-5 is always 1


def test_compute_accuracy_goes_through_evaluate(monkeypatch):
    """The numbers come from the evaluate modules (not a parallel numpy count that could drift from them)."""
    import elastoformer_hf.metrics as metrics

    calls = []

    class Spy:
        def __init__(self, name):
            self.name = name

        def compute(self, predictions, references):
            calls.append(self.name)
            return {"accuracy": 0.125, "top_k_accuracy": 0.5}

    monkeypatch.setattr(metrics, "_in_memory", lambda loader: Spy(loader.__name__))
    out = compute_accuracy((np.eye(8), np.arange(8)))
    assert out == {"accuracy": 0.125, "top5_accuracy": 0.5}
    assert calls == ["load_accuracy", "load_top_k"]


def test_level_consistency_counts_agreement_and_the_worst_class():
    from elastoformer_hf.metrics import level_consistency

    labels = np.array([0, 0, 1, 1, 2, 2])
    full = np.array([0, 0, 1, 1, 2, 2])
    mid = np.array([0, 0, 1, 0, 2, 2])  # loses one image of class 1
    core = np.array([0, 1, 1, 0, 2, 1])  # loses one of each class: 0 first in ties
    out = level_consistency({1: core, 2: mid, 3: full}, labels, ["cat", "dog", "eel"])
    assert out[3] == {"agreement_full": 1.0, "agreement_next": None, "worst_class": "cat", "worst_class_drop": 0.0}
    assert out[2] == {"agreement_full": round(5 / 6, 4), "agreement_next": round(5 / 6, 4), "worst_class": "dog",
                      "worst_class_drop": 0.5}
    assert out[1]["agreement_full"] == 0.5 and out[1]["agreement_next"] == round(4 / 6, 4)
    assert out[1]["worst_class_drop"] == 0.5 and out[1]["worst_class"] == "cat"
