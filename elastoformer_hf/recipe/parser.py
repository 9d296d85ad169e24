"""The recipe's command line: the four argument dataclasses, read from ``--config FILE.yaml`` and then flags.

One parser for every entry point: ``recipes/deit.py``, ``recipes/cnn.py`` and ``elastoformer train`` (trl's
``make_parser`` pattern), so ``accelerate launch recipes/deit.py ...`` and ``accelerate launch -m elastoformer_hf.cli
train ...`` are the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from ..errors import ElastoformerError
from ..training.arguments import ElasticTrainingArguments
from .arguments import RECIPE_DATACLASSES, DataArguments, ModelArguments, ParentArguments

__all__ = ["load_config_file", "make_parser", "parse_recipe_args"]


def make_parser(prog: str | None = None) -> HfArgumentParser:
    """An ``HfArgumentParser`` over the four recipe dataclasses, plus ``--config``."""
    parser = HfArgumentParser(list(RECIPE_DATACLASSES), prog=prog,
                              description="Train an elastic family (core, then every rebuilt level).")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML file of argument values (any field below); command-line flags override it")
    return parser


def _field_names() -> set[str]:
    return {f.name for cls in RECIPE_DATACLASSES for f in dataclasses.fields(cls) if f.init}


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a recipe YAML file: a mapping of dataclass field names to values (unknown names are an error)."""
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a file" if p.exists() else "does not exist"
        raise ElastoformerError(f"config file {str(p)!r} {what}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ElastoformerError(f"config file {p} is not valid YAML: {' '.join(str(err).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ElastoformerError(f"config file {p} must hold a mapping of argument names to values, "
                                f"got a {type(data).__name__}")
    known = _field_names()
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ElastoformerError(f"config file {p} has unknown keys: {', '.join(hints)}")
    return data


def _construction_error(err: Exception) -> ElastoformerError:
    message = " ".join(str(err).split())
    if "bf16" in message and "use_cpu" in message:
        message += " (no bf16-capable GPU here: pass --bf16 false, or --use_cpu true for bf16 on the CPU)"
    return ElastoformerError(f"invalid arguments: {message}")


def parse_recipe_args(
    argv: list[str] | None = None, prog: str | None = None
) -> tuple[ModelArguments, DataArguments, ElasticTrainingArguments, ParentArguments]:
    """``(model_args, data_args, training_args, parent_args)`` from ``--config FILE.yaml`` and flags.

    The YAML values become the parser's defaults, so every flag given on the command line overrides them;
    required arguments (``--dataset_name``) may come from either. Bad values raise :class:`ElastoformerError`;
    malformed flags exit through argparse (status 2, with usage).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    parser = make_parser(prog)
    if known.config:
        values = load_config_file(known.config)
        for action in parser._actions:  # YAML 1.1 reads a bare `no` (eval_strategy: no) as false
            if values.get(action.dest, None) is False and action.type is not string_to_bool:
                values[action.dest] = "no"
        parser.set_defaults(**values)
        for action in parser._actions:  # a required field given by the file is no longer required
            if action.dest in values:
                action.required = False
    try:
        outputs = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    except ElastoformerError:
        raise
    except (ValueError, TypeError) as err:
        raise _construction_error(err) from None
    model_args, data_args, training_args, parent_args = outputs[:4]
    if model_args.model_name_or_path is None and not parent_args.from_scratch:
        raise ElastoformerError("--model_name_or_path is required (or --parent_config, to train a demo parent first)")
    if model_args.model_name_or_path is not None and parent_args.from_scratch:
        raise ElastoformerError("give --model_name_or_path or --parent_config, not both: the demo's parent becomes the "
                                "model the family comes from (--parent_config none drops a config file's)")
    if data_args.streaming:
        _check_streaming(training_args, parent_args)
    return model_args, data_args, training_args, parent_args


def _check_streaming(training_args: ElasticTrainingArguments, parent_args: ParentArguments) -> None:
    """What a stream cannot do, refused before any data is read (the trainer says the same to API users)."""
    if training_args.max_steps <= 0:
        raise ElastoformerError("--streaming reads the data as a stream, which has no length, so epochs cannot be "
                                "counted: set --max_steps (the optimizer steps of every level; --core_max_steps for "
                                "the core)")
    if training_args.ra_sampler:
        raise ElastoformerError("--ra_sampler (timm's RepeatAugSampler) draws indices, which a stream does not have: "
                                "drop --ra_sampler or --streaming")
    if parent_args.enabled:
        raise ElastoformerError("--parent_config/--parent_finetune train the dense parent on data held in memory: drop "
                                "them or --streaming")
