"""``elastoformer train``: train an elastic family from a recipe config (the same parser and run as
``recipes/deit.py`` and ``recipes/cnn.py``, for any supported architecture)::

    accelerate launch -m elastoformer_hf.cli train --config recipes/configs/deit_base_imagenet.yaml
    elastoformer train --config recipes/configs/demo.yaml --output_dir runs/demo
"""

from __future__ import annotations

import argparse

from ..recipe import recipe_main
from .options import command_description


def add_parser(sub) -> None:
    # its arguments are the recipe parser's: handed over unparsed (main() passes everything after `train`)
    p = sub.add_parser("train", add_help=False, help="train an elastic family from a recipe (--config FILE.yaml, "
                       "flags; `elastoformer train --help` lists them)", description=command_description(__doc__))
    p.add_argument("recipe_args", nargs=argparse.REMAINDER)


def run_argv(argv: list[str]) -> int:
    """Parse ``argv`` with the recipe parser (``elastoformer train --help`` lists every argument) and train."""
    return recipe_main(argv, prog="elastoformer train")


def run(args: argparse.Namespace) -> int:
    return run_argv(args.recipe_args)
