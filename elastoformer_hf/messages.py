"""The package's messages: one logger tree, ``elastoformer_hf``, printed as ``[elastoformer] ...`` on stderr.

The transformers convention: a library logger with a handler of its own (progress shows without any set-up) that
does not propagate to the root logger (no duplicates when an application configures logging), and whose level a
run sets: ``ElasticTrainer`` applies ``--log_level`` (``warning`` silences the progress lines, ``debug`` adds
detail); ``passive`` (the default) keeps ours at ``INFO``.

Long work (planning levels, exporting, benchmarking) shows :func:`progress` bars: huggingface_hub's ``tqdm``, so
``HF_HUB_DISABLE_PROGRESS_BARS=1`` and ``huggingface_hub.utils.disable_progress_bars()`` turn them off as they do
the Hub's own, and so does a level above ``INFO`` here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from huggingface_hub.utils import tqdm

__all__ = ["ROOT", "get_logger", "progress", "set_level"]

ROOT = "elastoformer_hf"


class _CurrentStderr(logging.StreamHandler):
    # the stderr of the moment a message is written (not the one at import): redirections, pytest's capsys
    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _root() -> logging.Logger:
    root = logging.getLogger(ROOT)
    if not any(isinstance(h, _CurrentStderr) for h in root.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("[elastoformer] %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return root


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``), under the package's logger."""
    _root()
    return logging.getLogger(name if name == ROOT or name.startswith(ROOT + ".") else f"{ROOT}.{name}")


def set_level(level: int | str) -> None:
    """Set the level of every message of the package (a ``logging`` level or its name)."""
    _root().setLevel(level.upper() if isinstance(level, str) else level)


def progress(iterable: Iterable, desc: str, *, unit: str = "it", total: int | None = None) -> Iterable:
    """``iterable``, with a progress bar on stderr while it is consumed (huggingface_hub's ``tqdm``, group
    ``elastoformer_hf``): off where the Hub's bars are off, or where the package's messages are quieter than INFO.
    The bar goes away when the work is done (``leave=False``): what stays is the result it printed."""
    quiet = _root().getEffectiveLevel() > logging.INFO
    return tqdm(iterable, desc=f"[elastoformer] {desc}", unit=unit, total=total, leave=False, disable=quiet,
                name=ROOT, file=sys.stderr)
