"""Nesting: how level k's channels sit inside level k+1's, the frozen blocks that keep them there while a level
grows, and a finished run turned into one switchable family (:func:`build_family`).

Part of the engine with :mod:`elastoformer_hf.pruning`: it replays plans through torch-pruning, so loading a
saved level or family never imports it.
"""

from .build import build_family
from .levels import (
    FrozenBlocks,
    grow_level,
    level_specific_names,
    nested_positions,
    original_indices,
)
from .synthetic import write_synthetic_run

__all__ = [
    "FrozenBlocks",
    "build_family",
    "grow_level",
    "level_specific_names",
    "nested_positions",
    "original_indices",
    "write_synthetic_run",
]
