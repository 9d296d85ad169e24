"""The ``elastoformer`` command: one subcommand per module (``plan``, ``train``, ``push``, ``bench``, ``export``,
``estimate``); ``python -m elastoformer_hf.cli`` runs it too (e.g. under ``accelerate launch -m``)."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from ..errors import run_command
from ..version import __version__
from . import bench, estimate, export, plan, push, train

SUBCOMMANDS = {"plan": plan, "train": train, "push": push, "bench": bench, "export": export, "estimate": estimate}
#: The libraries whose versions decide what a run produces; ``--version`` reports them (bug reports need them).
STACK = ("torch", "torchvision", "transformers", "timm", "torch-pruning", "accelerate", "datasets", "huggingface-hub")


def version_text() -> str:
    """``elastoformer X.Y.Z`` and, on a second line, the installed versions of :data:`STACK` (package metadata:
    nothing is imported, so it answers in milliseconds)."""
    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"elastoformer {__version__}\n" + ", ".join(f"{name} {installed(name)}" for name in STACK)


class _VersionAction(argparse.Action):
    # argparse's own "version" action re-wraps the text into one paragraph; the stack reads better on its own line.
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastoformer",
        description="Turn one pre-trained vision model into a family of nested, elastic descendant networks.",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version of elastoformer and of the libraries it runs on, then exit")
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
