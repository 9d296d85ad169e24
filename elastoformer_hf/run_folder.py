"""The run folder: what a run writes where, which sub-folders are its levels, and how its files are written.

Every module reads these names from here; none spells a file name of the run folder itself::

    runs/deit-elastic/
        elastic_run.json        settings the run started with (a resumed run must match them)
        elastic_plan.json       the plan: every level's kept channels and costs (pruning.record)
        elastic_summary.json    the family table, written when the last level is done
        base_model.json         how to rebuild the dense model (``elastoformer plan --output_dir``)
        dn1/ .. dn{N+1}/        one descendant network per level (descendant.save_descendant)
            elastic_level.json    the level's record: costs, metrics, settings, checkpoint form
            latency.json          measured and estimated latencies (latency.store)
            onnx/                 the ONNX export and its record (export)
            README.md             the level's model card (cards)
        family/                 the switchable artifact: family_config.json + family.safetensors (family.storage)
        checkpoints/dn{k}/      Trainer checkpoints of the level in training (removed once dn{k}/ is written)
        family.png              accuracy (and latency) against MACs, every level (refresh.write_run_cards)
        parent/                 the offline demo's parent model and parent_info.json (recipe.parent)

A *level folder* is a sub-folder named ``dn{k}`` (k >= 1) that holds ``elastic_level.json``; its level is ``k``,
and the record inside must agree (:func:`level_folders`). Files are written aside and renamed into place
(:func:`write_json`, :func:`staged_folder`), so an interrupted write never leaves half a file or folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CheckpointError, ElastoformerError, SettingError

RUN_FILE = "elastic_run.json"
PLAN_FILE = "elastic_plan.json"
SUMMARY_FILE = "elastic_summary.json"
BASE_MODEL_FILE = "base_model.json"
LEVEL_FILE = "elastic_level.json"
LATENCY_FILE = "latency.json"
CARD_FILE = "README.md"
FAMILY_DIR = "family"
CHECKPOINTS_DIR = "checkpoints"
PARENT_DIR = "parent"
#: written last into ``parent/``: the demo parent's settings and accuracy (the folder is complete when it exists)
PARENT_INFO_FILE = "parent_info.json"
#: every level's accuracy (and recorded latency) against its MACs, written with the cards (refresh)
FAMILY_PLOT = "family.png"

_LEVEL_NAME = re.compile(r"^dn([1-9]\d*)$")


# ------------------------------------------------------------------------------------------------ writing
def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2, sort_keys: bool = True,
               compact: bool = False) -> Path:
    """Write ``data`` as JSON (with a final newline) beside ``path``, then rename it into place.

    Args:
        path: the file to (re)place.
        data: anything ``json.dumps`` takes.
        indent, sort_keys: as in ``json.dumps``.
        compact: no whitespace at all (for large files such as the plan's index lists).

    Returns:
        ``path``.
    """
    path = Path(path)
    text = json.dumps(data, separators=(",", ":")) if compact else json.dumps(data, indent=indent, sort_keys=sort_keys)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_json(path: str | os.PathLike, *, what: str = "", error: type[ElastoformerError] = ElastoformerError) -> Any:
    """The JSON in ``path``; a corrupt file raises ``error`` naming it (``what`` adds a hint to the message)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path} is corrupt ({err}){f'; {what}' if what else ''}") from None


def replace_folder(tmp: Path, path: Path) -> None:
    """Move the finished folder ``tmp`` to ``path``. An existing ``path`` is renamed aside first and removed only
    once the new folder is in place, so ``path`` never holds a half-written folder (``os.replace`` cannot swap two
    non-empty folders in one step)."""
    if path.exists():
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``path`` to write into; when the block ends without an error it replaces
    ``path`` (:func:`replace_folder`), and on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        replace_folder(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: the files whose sha256 a level or family records and checks: every weight file
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weight_digests(folder: str | os.PathLike) -> dict[str, str]:
    """``{file name: sha256}`` of the weight files directly in ``folder``."""
    folder = Path(folder)
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in WEIGHT_SUFFIXES}


def check_digests(folder: str | os.PathLike, recorded: dict[str, str]) -> None:
    """Check the weight files of ``folder`` against the digests recorded when it was written.

    Raises:
        CheckpointError: a file is missing, or its bytes are not the ones written (one line naming it).
    """
    folder = Path(folder)
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (the folder recorded it when it was written)")
        if sha256_file(path) != digest:
            raise CheckpointError(f"{path} is not the file that was written (its sha256 differs from the one "
                                  "recorded): it is corrupt or was replaced; restore it or write the level again")


def check_output_dir(path: str | os.PathLike, name: str = "--output_dir") -> Path:
    """``path`` as a run folder to write: refused when it, or a folder above it, is an existing file (it could never
    become a folder; checked before anything is written or recorded).

    Raises:
        SettingError: ``path`` or one of its parents is a file.
    """
    path = Path(path).expanduser()
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is a file" if part == path else f"is inside {part}, a file"
                raise SettingError(f"{name} {str(path)!r} {what}; give a folder (new or existing)")
            break
    return path


# ------------------------------------------------------------------------------------------------ levels
def level_dir(root: str | os.PathLike, level: int) -> Path:
    """``root/dn{level}``."""
    return Path(root) / f"dn{level}"


def level_of_name(folder: str | os.PathLike) -> int | None:
    """``k`` for a folder named ``dn{k}``, else None."""
    match = _LEVEL_NAME.match(Path(folder).name)
    return int(match.group(1)) if match else None


def is_level_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a level record (``elastic_level.json``)."""
    return (Path(folder) / LEVEL_FILE).is_file()


def read_level_info(folder: str | os.PathLike) -> dict:
    """The record of a level folder (``elastic_level.json``).

    Raises:
        CheckpointError: the folder has no record, or the record is corrupt.
    """
    level_file = Path(folder) / LEVEL_FILE
    if not level_file.is_file():
        raise CheckpointError(f"{folder} is not a descendant-network folder (no {LEVEL_FILE})")
    info = read_json(level_file, error=CheckpointError)
    if not isinstance(info, dict):
        raise CheckpointError(f"{level_file} is corrupt (not a JSON object)")
    return info


def level_folders(root: str | os.PathLike) -> dict[int, Path]:
    """``{k: root/dn{k}}`` for every level folder of the run in ``root``, ascending (the one rule: named
    ``dn{k}`` and holding ``elastic_level.json``; the record's ``level`` must be ``k``).

    Raises:
        CheckpointError: a level record names another level than its folder.
    """
    root = Path(root)
    found = {}
    for child in root.iterdir() if root.is_dir() else ():
        k = level_of_name(child)
        if k is not None and child.is_dir() and is_level_folder(child):
            recorded = read_level_info(child).get("level", k)
            if recorded != k:
                raise CheckpointError(f"{child / LEVEL_FILE} records level {recorded!r}, but the folder is dn{k}")
            found[k] = child
    return dict(sorted(found.items()))


def select_levels(path: str | os.PathLike, levels: list[int] | None = None, *,
                  model_folder: bool = False) -> list[tuple[int | None, Path]]:
    """``[(level, folder)]`` that ``path`` stands for: a run folder's level folders (all, or ``levels``), or
    ``path`` itself when it is one level folder (``model_folder``: or any saved model folder, level None).

    Raises:
        ElastoformerError: ``path`` is missing or not a folder, holds no level, or lacks a level asked for.
    """
    root = Path(path)
    if not root.is_dir():
        why = "exists but " if root.exists() else "does not exist: it "
        raise ElastoformerError(f"{root} {why}is not a folder; pass a run folder (with dn1/ .. dn{{N+1}}/) or one "
                                "dn{k}/ folder")
    if is_level_folder(root) or (model_folder and (root / "config.json").is_file()):
        level = read_level_info(root).get("level") if is_level_folder(root) else None
        if levels and level not in levels:
            raise ElastoformerError(f"{root} is one level (dn{level}); --levels selects levels of a run folder")
        return [(level, root)]
    found = level_folders(root)
    if not found:
        raise ElastoformerError(f"{root} is neither a run folder (it holds no dn{{k}}/ folders with {LEVEL_FILE}) "
                                "nor one level folder: pass a run folder written by ElasticTrainer or "
                                "`elastoformer plan --output_dir`, or one dn{k}/ folder")
    missing = sorted(set(levels or ()) - set(found))
    if missing:
        raise ElastoformerError(f"{root} has no level(s) {missing}; it has {sorted(found)}")
    return [(k, found[k]) for k in sorted(levels or found)]


def portable_path(name: str, root: str | os.PathLike) -> str:
    """``name`` as a run records it: a local path inside ``root`` relative to it (``parent``), any other local
    path as its last part (never a machine's absolute path), anything else (a Hub id, a timm name) unchanged."""
    path = Path(name)
    if not name or not path.exists():
        return name
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path.resolve().name


def run_of(folder: str | os.PathLike) -> Path | None:
    """The run folder a ``dn{k}/`` folder belongs to (its parent, when that holds the plan), else None."""
    folder = Path(folder)
    return folder.parent if level_of_name(folder) is not None and (folder.parent / PLAN_FILE).is_file() else None


def plan_image_size(root: str | os.PathLike) -> int | None:
    """The resolution the run's costs were counted at (``image_size`` of ``elastic_plan.json``), if recorded."""
    path = Path(root) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        size = json.loads(path.read_text()).get("image_size")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return int(size) if isinstance(size, int) else None


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class RunRecord:
    """A run as its records describe it: one ``elastic_level.json`` per level, the settings, the plan's
    resolution. Latencies recorded in a level's ``latency.json`` are read by :mod:`elastoformer_hf.cards`."""

    root: Path
    levels: dict[int, dict]  # level -> elastic_level.json
    run: dict = field(default_factory=dict)  # elastic_run.json (empty when absent)
    image_size: int | None = None  # resolution the costs were counted at (elastic_plan.json)

    @property
    def num_levels(self) -> int:
        return max(int(info.get("num_levels") or 0) for info in self.levels.values()) or max(self.levels)

    def folder(self, level: int) -> Path:
        return level_dir(self.root, level)

    @property
    def family_dir(self) -> Path | None:
        path = self.root / FAMILY_DIR
        return path if path.is_dir() else None

    def base_spec(self) -> dict:
        return next(iter(self.levels.values())).get("base_model") or {}

    def model_name(self) -> str:
        info = next(iter(self.levels.values()))
        return str(info.get("model_name") or self.run.get("model", {}).get("model_name") or self.base_spec().get("name"))


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """The run in ``run_dir``: every level record, and the settings and plan resolution when present.

    Raises:
        ElastoformerError: ``run_dir`` is not a folder, holds no level, or a record is corrupt.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise ElastoformerError(f"{root} is not a folder")
    levels = {k: read_level_info(folder) for k, folder in level_folders(root).items()}
    if not levels:
        raise ElastoformerError(f"{root} holds no dn{{k}}/ folders with {LEVEL_FILE}: not an elastoformer run")
    run = read_json(root / RUN_FILE) if (root / RUN_FILE).is_file() else {}
    return RunRecord(root=root, levels=levels, run=run, image_size=plan_image_size(root))
