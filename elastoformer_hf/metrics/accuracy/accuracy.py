"""Top-1 accuracy as an ``evaluate`` metric module that works offline.

``evaluate.load("accuracy")`` fetches ``evaluate-metric/accuracy`` from the Hub; this file is a
self-contained equivalent shipped inside the package, loaded by path:
``evaluate.load("<...>/elastoformer_hf/metrics/accuracy")`` (see ``elastoformer_hf.metrics.load_accuracy``).
It depends only on numpy/datasets/evaluate (no scikit-learn) and must not import the package itself:
``evaluate`` copies this single file into its modules cache and imports it from there.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy is the proportion of correct predictions among the total number of cases processed:
Accuracy = (TP + TN) / (TP + TN + FP + FN).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted class ids.
    references (`list` of `int`): Ground-truth class ids.
    normalize (`bool`, defaults to `True`): If `False`, return the number (or total sample weight) of
        correctly classified samples instead of the fraction.
    sample_weight (`list` of `float`, optional): Per-sample weights.
Returns:
    accuracy (`float`): in [0, 1] when `normalize=True`.
Examples:
    >>> accuracy_metric = evaluate.load("path/to/elastoformer_hf/metrics/accuracy")
    >>> accuracy_metric.compute(references=[0, 1, 2, 0], predictions=[0, 1, 1, 0])
    {'accuracy': 0.75}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        correct = np.asarray(predictions, dtype=np.int64) == np.asarray(references, dtype=np.int64)
        weights = (
            np.ones(len(correct)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        )
        total = float(np.dot(correct, weights))
        if normalize:
            total = total / float(weights.sum()) if len(correct) else 0.0
        return {"accuracy": float(total)}
