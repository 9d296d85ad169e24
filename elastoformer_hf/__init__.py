"""elastoformer-hf: one pre-trained vision model becomes a family of nested, elastic descendant networks.

Importing the package registers :class:`ElastoformerConfig` / :class:`ElastoformerForImageClassification`
with the transformers Auto classes, so descendant folders of any form open with ``from_pretrained``.
"""

__version__ = "0.1.0"

from .checkpoints import load_descendant, save_descendant  # noqa: E402
from .errors import CheckpointError, ElastoformerError, UnsupportedModelError  # noqa: E402
from .modeling import ElastoformerConfig, ElastoformerForImageClassification  # noqa: E402
from .models import BaseModelSpec, load_base_model  # noqa: E402
from .pruning.config import PruningConfig  # noqa: E402
from .pruning.planner import plan_levels  # noqa: E402
from .pruning.record import ElasticPlan, LevelRecord  # noqa: E402
from .pruning.replay import apply_level, extract_level  # noqa: E402

_LAZY = {"ElasticTrainer": ".training", "ElasticTrainingArguments": ".training", "ElasticFamily": ".family"}


def __getattr__(name: str):
    """The trainer pulls in transformers.Trainer and accelerate: imported on first use, not with the package."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BaseModelSpec",
    "ElasticFamily",
    "ElasticTrainer",
    "ElasticTrainingArguments",
    "CheckpointError",
    "ElasticPlan",
    "ElastoformerConfig",
    "ElastoformerError",
    "ElastoformerForImageClassification",
    "LevelRecord",
    "PruningConfig",
    "UnsupportedModelError",
    "apply_level",
    "extract_level",
    "load_base_model",
    "load_descendant",
    "plan_levels",
    "save_descendant",
]
