"""The ``elastoformer`` command: one subcommand per module (``plan``, ``push``, ``bench``, ``export``, ``estimate``)."""

from __future__ import annotations

import argparse
import sys

from ..errors import ElastoformerError
from . import bench, estimate, export, plan, push

SUBCOMMANDS = {"plan": plan, "push": push, "bench": bench, "export": export, "estimate": estimate}


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
    args = build_parser().parse_args(argv)
    try:
        return SUBCOMMANDS[args.command].run(args) or 0
    except ElastoformerError as err:
        print(f"elastoformer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"elastoformer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
