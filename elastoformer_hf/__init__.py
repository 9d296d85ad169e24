"""elastoformer-hf: one pre-trained vision model becomes a family of nested, elastic descendant networks.

Importing the package registers :class:`ElastoformerConfig` / :class:`ElastoformerForImageClassification` with the
transformers Auto classes (so every saved level opens with ``from_pretrained``) and nothing else: every other name
below is imported when first used. Loading a level or a family therefore never imports the engine
(torch-pruning), the trainer, accelerate or datasets::

    from elastoformer_hf import ElasticFamily
    family = ElasticFamily.from_pretrained("org/deit-elastic")      # or a local family/ folder
    family.set_level(family.select(max_macs=8e9))
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import CheckpointError, ElastoformerError, UnsupportedModelError
from .modeling import ElastoformerConfig, ElastoformerForImageClassification
from .version import __version__

#: public name -> module that defines it (imported on first access, PEP 562)
_LAZY = {
    "BaseModelSpec": ".base_model",
    "load_base_model": ".base_model",
    "load_descendant": ".descendant",
    "save_descendant": ".descendant",
    "ElasticFamily": ".family",
    "build_family": ".nesting",
    "PruningConfig": ".pruning.config",
    "plan_levels": ".pruning.planner",
    "ElasticPlan": ".pruning.record",
    "LevelRecord": ".pruning.record",
    "apply_level": ".pruning.replay",
    "extract_level": ".pruning.replay",
    "ElasticTrainer": ".training",
    "ElasticTrainingArguments": ".training",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .base_model import BaseModelSpec, load_base_model
    from .descendant import load_descendant, save_descendant
    from .family import ElasticFamily
    from .nesting import build_family
    from .pruning.config import PruningConfig
    from .pruning.planner import plan_levels
    from .pruning.record import ElasticPlan, LevelRecord
    from .pruning.replay import apply_level, extract_level
    from .training import ElasticTrainer, ElasticTrainingArguments


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = [
    "BaseModelSpec",
    "CheckpointError",
    "ElasticFamily",
    "ElasticPlan",
    "ElasticTrainer",
    "ElasticTrainingArguments",
    "ElastoformerConfig",
    "ElastoformerError",
    "ElastoformerForImageClassification",
    "LevelRecord",
    "PruningConfig",
    "UnsupportedModelError",
    "__version__",
    "apply_level",
    "build_family",
    "extract_level",
    "load_base_model",
    "load_descendant",
    "plan_levels",
    "save_descendant",
]
