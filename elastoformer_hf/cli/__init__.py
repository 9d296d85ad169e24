"""The ``elastoformer`` command: one subcommand per module (``plan``, ``train``, ``push``, ``bench``, ``export``,
``estimate``); ``python -m elastoformer_hf.cli`` runs it too (e.g. under ``accelerate launch -m``)."""

from __future__ import annotations

import argparse
import sys

from ..errors import run_command
from . import bench, estimate, export, plan, push, train

SUBCOMMANDS = {"plan": plan, "train": train, "push": push, "bench": bench, "export": export, "estimate": estimate}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastoformer",
        description="Turn one pre-trained vision model into a family of nested, elastic descendant networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # the recipe's own parser reads its arguments (YAML config, then flags)
        return train.run_argv(argv[1:])
    args = build_parser().parse_args(argv)
    return run_command(f"elastoformer {args.command}", lambda: SUBCOMMANDS[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
