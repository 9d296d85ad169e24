"""User-facing errors.

Everything the user can get wrong (a ratio outside (0, 1), an unknown model, a corrupt checkpoint, ...) raises an
:class:`ElastoformerError`; the command line prints its message as one line and exits with status 2 instead of
showing a traceback (:func:`run_command`).
"""

import sys
from collections.abc import Callable


class ElastoformerError(Exception):
    """A problem with the user's input or files, explained in one line."""


class UnsupportedModelError(ElastoformerError):
    """The model (or architecture) is not one elastoformer-hf can transform."""


class CheckpointError(ElastoformerError):
    """A checkpoint folder is missing, incomplete, corrupt or does not match its config."""


class SettingError(ElastoformerError, ValueError):
    """A setting whose value is outside what it accepts (a ``ValueError`` too, as argument parsers expect)."""


def run_command(prog: str, command: Callable[[], int | None]) -> int:
    """Run a command-line entry point: an :class:`ElastoformerError` becomes one line on stderr and status 2, an
    interrupt status 130, no traceback for either."""
    try:
        return command() or 0
    except ElastoformerError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
