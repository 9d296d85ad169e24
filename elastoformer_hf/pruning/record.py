"""The elastic plan: a JSON record of every level that replays on a fresh copy of the base model.

Kept channels are stored as indices into the *original* (dense) dimension, ascending, so level k's indices are
directly comparable with level k+1's (nesting) and with the dense weights (slicing). No pickles.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import CheckpointError, ElastoformerError
from ..run_folder import PLAN_FILE, write_json
from .config import PruningConfig

PLAN_FORMAT = "elastoformer-plan"
PLAN_VERSION = 1


@dataclass
class Dimension:
    """One prunable dimension: a torch-pruning group, identified by its root module and axis.

    Args:
        name (`str`): the readable name of the dimension (the adapter's ``dim_name``).
        root (`str`): the qualified name of the group's root module.
        axis (`str`): ``"out"`` or ``"in"``: which side of ``root`` the dimension is.
        size (`int`): the dense width.
        kind (`str`): ``"hidden"``, ``"attention"``, ``"mlp"`` or ``"channels"``.
        group_size (`int`): channels per head for attention dimensions (heads keep the same indices), else
            ``size``.
        attention (`str`, *optional*): the attention module whose width this is.
    """

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
    """One level of a plan: its costs, widths and the original channel indices it keeps.

    Args:
        level (`int`): the level, 1 (core) .. N+1 (dense).
        keep_fraction (`float`): the fraction of each dimension the schedule keeps at this level.
        params (`int`): the parameter count.
        macs (`int`): module multiply-accumulates (torch-pruning's convention).
        flops (`int`): 2 x (module MACs + attention-matmul MACs).
        dims (`dict[str, int]`): the width of every dimension.
        kept (`dict[str, list[int]]`): per dimension, the original (dense) indices kept, ascending.
        heads (`dict[str, int]`, *optional*, defaults to `{}`): attention module -> number of heads.
        structure (`dict`, *optional*, defaults to `{}`): the architecture summary (hidden size, head dim,
            ...).
    """

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
        """The level without its index lists (what ``plan --json`` prints).

        Returns:
            `dict`: every field but ``kept``.
        """
        data = asdict(self)
        del data["kept"]
        return data


@dataclass
class ElasticPlan:
    """The elastic plan: every level's kept channels, replayable on a fresh copy of the base model.

    Saved as ``elastic_plan.json`` (JSON, no pickles).

    Args:
        model_name (`str`): the name of the base model.
        architecture (`str`): the adapter name.
        image_size (`int`): the resolution the costs were counted at.
        config (`PruningConfig`): the pruning settings the plan was made with.
        dims (`dict[str, Dimension]`): every prunable dimension, by name.
        levels (`list[LevelRecord]`): ascending: ``levels[0]`` is the core, ``levels[-1]`` the dense model.
        versions (`dict[str, str]`, *optional*, defaults to `{}`): package versions the plan was made with.
    """

    model_name: str
    architecture: str  # adapter name
    image_size: int  # resolution the costs were counted at
    config: PruningConfig
    dims: dict[str, Dimension]
    levels: list[LevelRecord]  # ascending: levels[0] is the core, levels[-1] the dense model
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def num_levels(self) -> int:
        """`int`: the number of levels (the core through the dense model)."""
        return len(self.levels)

    def level(self, k: int) -> LevelRecord:
        """The record of level ``k``.

        Args:
            k (`int`): the level, ``1`` (core) .. :attr:`num_levels` (dense).

        Returns:
            `LevelRecord`: ``levels[k - 1]``.

        Raises:
            ElastoformerError: ``k`` is outside ``1..num_levels``.
        """
        if not 1 <= k <= len(self.levels):
            raise ElastoformerError(f"level must be in 1..{len(self.levels)}, got {k}")
        return self.levels[k - 1]

    def check(self, source: str = "the plan", level: int | None = None) -> None:
        """Check the index lists against the plan's own records, so that a level is never built narrower (or
        other) than its record says: every level lists, for every dimension, as many indices as its width,
        ascending, without repeats and inside the dense dimension; each level is a subset of the next; the dense
        level keeps everything.

        Args:
            source (`str`, *optional*, defaults to `"the plan"`): how the error names the plan (its file).
            level (`int`, *optional*): check only this level's lists (what :func:`~.replay.apply_level` builds);
                None: every level and their nesting.

        Raises:
            CheckpointError: a level's numbering, a dimension missing from a level, or an index list that is
                shortened, unsorted, repeated, out of range or not nested, named with its level and layer.
        """
        numbers = [lv.level for lv in self.levels]
        if numbers != list(range(1, self.config.num_levels + 1)):
            raise CheckpointError(f"{source}: the levels are numbered {numbers}, not 1..{self.config.num_levels} "
                                  f"({self.config.pruning_steps} pruning steps); {_CORRUPT}")
        records = self.levels if level is None else [self.level(level)]
        for lv in records:
            for name, dim in self.dims.items():
                _raise_if(source, lv, name, dim, _index_problem(lv, name, dim))
        if level is not None:
            return
        for narrow, wide in zip(self.levels, self.levels[1:]):
            for name, dim in self.dims.items():
                if not set(narrow.kept[name]) <= set(wide.kept[name]):
                    _raise_if(source, narrow, name, dim, f"keeps indices that DN{wide.level} does not (the levels "
                                                         "must nest)")
        dense = self.levels[-1]
        for name, dim in self.dims.items():
            if dense.kept[name] != list(range(dim.size)):
                _raise_if(source, dense, name, dim, f"is the dense level's but does not keep all {dim.size} channels")

    def to_dict(self, include_kept: bool = True) -> dict:
        """The plan as JSON-ready data, with its format name and version.

        Args:
            include_kept (`bool`, *optional*, defaults to `True`): keep every level's index lists; without
                them each level is its :meth:`LevelRecord.summary`.

        Returns:
            `dict`: the data :meth:`from_dict` reads back.
        """
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
        """The plan in ``data`` (as :meth:`to_dict` writes it).

        Args:
            data (`dict`): the plan's JSON data.

        Returns:
            `ElasticPlan`: the plan.

        Raises:
            ElastoformerError: ``data`` is not an elastoformer plan (no ``'format': 'elastoformer-plan'``), or
                its format version is newer than this elastoformer-hf understands.
            KeyError, TypeError: a field is missing or unexpected (:meth:`load` turns these into an
                ``ElastoformerError``).
        """
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
        """Write the plan as compact JSON.

        Write atomically (temporary file, then rename): an interrupted write never leaves half a plan.

        Args:
            path (`str` or `os.PathLike`): the file to write, or a folder to write ``elastic_plan.json`` in
                (missing parent folders are created).

        Returns:
            `Path`: the file written.
        """
        path = Path(path)
        if path.is_dir():
            path = path / PLAN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_json(path, self.to_dict(), compact=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ElasticPlan:
        """Read a plan written by :meth:`save`.

        Args:
            path (`str` or `os.PathLike`): the plan file, or a folder holding ``elastic_plan.json``.

        Returns:
            `ElasticPlan`: the plan.

        Raises:
            ElastoformerError: there is no plan at ``path``, the file is not valid JSON or not a complete
                elastic plan, or its format is not (or a newer version of) the elastoformer plan format.
            CheckpointError: its index lists disagree with its records (:meth:`check`).
        """
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
            plan = cls.from_dict(data)
        except (KeyError, TypeError, AttributeError) as err:
            raise ElastoformerError(f"{path} is not a complete elastic plan ({err})") from None
        plan.check(str(path))
        return plan


_CORRUPT = "the plan was edited or is corrupt: restore it, or make it again"


def _raise_if(source: str, record: LevelRecord, name: str, dim: Dimension, problem: str | None) -> None:
    if problem is not None:
        layer = name if name == dim.root else f"{name} ({dim.root})"
        raise CheckpointError(f"{source}: level {record.level}, layer {layer}: the kept-index list {problem}; "
                              f"{_CORRUPT}")


def _index_problem(record: LevelRecord, name: str, dim: Dimension) -> str | None:
    """What is wrong with ``record``'s index list of dimension ``name`` (None: nothing)."""
    kept = record.kept.get(name) if isinstance(record.kept, dict) else None
    if not isinstance(kept, list):
        return "is missing"
    width = record.dims.get(name) if isinstance(record.dims, dict) else None
    if len(kept) != width:
        return f"holds {len(kept)} indices but the level's width is {width}"
    if any(isinstance(i, bool) or not isinstance(i, int) for i in kept):
        return "holds values that are not integers"
    bad = next((i for i in kept if not 0 <= i < dim.size), None)
    if bad is not None:
        return f"holds index {bad}, outside the dimension's 0..{dim.size - 1}"
    if any(a >= b for a, b in zip(kept, kept[1:])):
        return "repeats indices" if len(set(kept)) != len(kept) else "is not in ascending order"
    return None
