"""The elastic plan: a JSON record of every level that replays on a fresh copy of the base model.

Kept channels are stored as indices into the *original* (dense) dimension, ascending, so level k's indices are
directly comparable with level k+1's (nesting) and with the dense weights (slicing). No pickles.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ElastoformerError
from .config import PruningConfig

PLAN_FILE = "elastic_plan.json"
PLAN_FORMAT = "elastoformer-plan"
PLAN_VERSION = 1


@dataclass
class Dimension:
    """One prunable dimension: a torch-pruning group, identified by its root module and axis."""

    name: str
    root: str
    axis: str  # "out" or "in": which side of ``root`` the dimension is
    size: int
    kind: str  # "hidden" | "attention" | "mlp" | "channels"
    #: channels per head for attention dimensions (heads keep the same indices), else ``size``
    group_size: int
    attention: str | None = None  # attention module whose width this is


@dataclass
class LevelRecord:
    level: int
    keep_fraction: float
    params: int
    macs: int
    flops: int
    dims: dict[str, int]  # width of every dimension
    kept: dict[str, list[int]] = field(repr=False)  # original indices kept, ascending
    heads: dict[str, int] = field(default_factory=dict)  # attention module -> number of heads
    structure: dict = field(default_factory=dict)  # architecture summary (hidden size, head dim, ...)

    def summary(self) -> dict:
        """The level without its index lists (what ``plan --json`` prints)."""
        data = asdict(self)
        del data["kept"]
        return data


@dataclass
class ElasticPlan:
    model_name: str
    architecture: str  # adapter name
    image_size: int  # resolution the costs were counted at
    config: PruningConfig
    dims: dict[str, Dimension]
    levels: list[LevelRecord]  # ascending: levels[0] is the core, levels[-1] the dense model
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def level(self, k: int) -> LevelRecord:
        if not 1 <= k <= len(self.levels):
            raise ElastoformerError(f"level must be in 1..{len(self.levels)}, got {k}")
        return self.levels[k - 1]

    def to_dict(self, include_kept: bool = True) -> dict:
        return {
            "format": PLAN_FORMAT,
            "format_version": PLAN_VERSION,
            "model_name": self.model_name,
            "architecture": self.architecture,
            "image_size": self.image_size,
            "pruning": self.config.to_dict(),
            "versions": self.versions,
            "dims": {name: asdict(dim) for name, dim in self.dims.items()},
            "levels": [asdict(lv) if include_kept else lv.summary() for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict) -> ElasticPlan:
        if data.get("format") != PLAN_FORMAT:
            raise ElastoformerError("not an elastoformer plan (missing 'format': 'elastoformer-plan')")
        if data.get("format_version", 0) > PLAN_VERSION:
            raise ElastoformerError(
                f"plan format version {data['format_version']} is newer than this elastoformer-hf "
                f"understands ({PLAN_VERSION}); upgrade elastoformer-hf"
            )
        return cls(
            model_name=data["model_name"],
            architecture=data["architecture"],
            image_size=data["image_size"],
            config=PruningConfig.from_dict(data["pruning"]),
            dims={name: Dimension(**dim) for name, dim in data["dims"].items()},
            levels=[LevelRecord(**lv) for lv in data["levels"]],
            versions=data.get("versions", {}),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temporary file, then rename): an interrupted write never leaves half a plan."""
        path = Path(path)
        if path.is_dir():
            path = path / PLAN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, separators=(",", ":"))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ElasticPlan:
        path = Path(path)
        if path.is_dir():
            path = path / PLAN_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ElastoformerError(f"no elastic plan at {path}") from None
        except json.JSONDecodeError as err:
            raise ElastoformerError(f"{path} is not valid JSON ({err}); the file is corrupt") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as err:
            raise ElastoformerError(f"{path} is not a complete elastic plan ({err})") from None
