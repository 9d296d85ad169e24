"""Top-k accuracy as an ``evaluate`` metric module that works offline.

The Hub has no canonical top-k metric (``evaluate-metric/accuracy`` is top-1 only), and ImageNet results are
reported as top-1 and top-5, so this self-contained module ships inside the package and is loaded by path:
``evaluate.load("<...>/elastoformer_hf/metrics/top_k_accuracy")`` (see ``elastoformer_hf.metrics.load_top_k``).
It depends only on numpy/datasets/evaluate and must not import the package itself: ``evaluate`` copies this
single file into its modules cache and imports it from there.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Top-k accuracy: the proportion of cases whose reference class is among the k classes ranked highest.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `int`): per case, the class ids ranked highest (the first k are used;
        pass ``logits.argsort(-1)[:, ::-1][:, :k]``).
    references (`list` of `int`): ground-truth class ids.
    k (`int`, *optional*): how many ranked ids count (default: all given).
Returns:
    top_k_accuracy (`float`): in [0, 1].
Examples:
    >>> metric = evaluate.load("path/to/elastoformer_hf/metrics/top_k_accuracy")
    >>> metric.compute(references=[0, 1], predictions=[[2, 0], [0, 2]])
    {'top_k_accuracy': 0.5}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("int64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k=None):
        ranked = np.asarray(predictions, dtype=np.int64).reshape(len(references), -1)
        if k is not None:
            ranked = ranked[:, :k]
        refs = np.asarray(references, dtype=np.int64).reshape(-1, 1)
        hits = (ranked == refs).any(axis=1)
        return {"top_k_accuracy": float(hits.mean()) if len(hits) else 0.0}
