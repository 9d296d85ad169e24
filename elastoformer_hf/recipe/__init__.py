"""Training recipes: trl-style argument dataclasses, one YAML + command-line parser, the offline demo's parent and
the run.

* :mod:`.arguments`: :class:`ModelArguments`, :class:`DataArguments`, :class:`ParentArguments`;
* :mod:`.parser`: :func:`make_parser` / :func:`parse_recipe_args` (``--config FILE.yaml``, then flags);
* :mod:`.data`: the splits and the timm transforms;
* :mod:`.parent`: the demo's parent ViT, trained first with a plain ``transformers.Trainer``;
* :mod:`.run`: :func:`run_recipe` and :func:`recipe_main`, behind ``recipes/*.py`` and ``elastoformer train``.
"""

from .arguments import DataArguments, ModelArguments, ParentArguments
from .parent import train_parent
from .parser import make_parser, parse_recipe_args
from .run import model_kind, recipe_main, run_recipe

__all__ = [
    "DataArguments",
    "ModelArguments",
    "ParentArguments",
    "make_parser",
    "model_kind",
    "parse_recipe_args",
    "recipe_main",
    "run_recipe",
    "train_parent",
]
