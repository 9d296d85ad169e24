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
(:func:`write_json`, :func:`staged_folder`), so an interrupted write never leaves half a file or folder; what a
killed process leaves aside (hidden ``.{name}.tmp-{8 hex}`` / ``.{name}.old-{8 hex}`` names, checkpoints of levels
already written) is cleared by :func:`clean_leftovers` when the folder is next opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
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
#: TensorBoard event files, one subfolder per level (outside ``checkpoints/``, which goes when a level is done)
LOGS_DIR = "logs"
PARENT_DIR = "parent"
#: written last into ``parent/``: the demo parent's settings and accuracy (the folder is complete when it exists)
PARENT_INFO_FILE = "parent_info.json"
#: every level's accuracy (and recorded latency) against its MACs, written with the cards (refresh)
FAMILY_PLOT = "family.png"

_LEVEL_NAME = re.compile(r"^dn([1-9]\d*)$")
#: the one name of what a write sets aside (:func:`_aside`): ``.{target}.tmp-{8 hex}`` (being written) or
#: ``.{target}.old-{8 hex}`` (being replaced); :func:`clean_leftovers` removes these names and no other
_ASIDE_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<kind>tmp|old)-[0-9a-f]{8}$")

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ writing
def _aside(path: Path, kind: str) -> Path:
    """A hidden, unique name beside ``path`` for its new version (``kind`` ``tmp``) or its previous one (``old``)."""
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:8]}"


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
    tmp = _aside(path, "tmp")
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
        old = _aside(path, "old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _usual_modes(folder: Path) -> None:
    """Give every file in ``folder`` the mode a new file gets (``0o666`` less the umask, 0644 under the usual 022).

    safetensors (timm's and transformers' saves go through it) creates its files 0600 whatever the umask, while the
    JSON beside them is 0644: a level folder shared with a team, or served, would show its configs but not the
    weights they describe.
    """
    umask = os.umask(0)  # the only way to read it; set back at once
    os.umask(umask)
    for file in folder.rglob("*"):
        if file.is_file() and not file.is_symlink():
            file.chmod(0o666 & ~umask)


@contextmanager
def staged_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``path`` to write into; when the block ends without an error it replaces
    ``path`` (:func:`replace_folder`), and on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _aside(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        _usual_modes(tmp)
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


# ------------------------------------------------------------------------------------------------ records
#: metrics that time the evaluation loop (``Trainer.evaluate``'s ``eval_runtime``, ``eval_samples_per_second``,
#: ...): they measure the machine and its load at that moment, not the level, and differ on every run
VOLATILE_METRIC_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second", "_model_preparation_time",
                            "_jit_compilation_time")


def stable_metrics(metrics: dict | None) -> dict:
    """``metrics`` without the timings of the evaluation loop (:data:`VOLATILE_METRIC_SUFFIXES`).

    Level records and the family artifact are published, and the push compares file hashes with the Hub's: a
    timing in them would make the same level's files differ on every write, and re-upload them. A level's speed
    is recorded where it means something: ``latency.json`` (device, runtime, precision, batch size).
    """
    return {k: v for k, v in (metrics or {}).items() if not str(k).endswith(VOLATILE_METRIC_SUFFIXES)}


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


# ------------------------------------------------------------------------------------------------ leftovers
#: the sub-folders of a run folder this package writes, searched for leftovers (any other folder is the user's)
_OWN_FOLDERS = (FAMILY_DIR, PARENT_DIR, CHECKPOINTS_DIR)


def clean_leftovers(run_dir: str | os.PathLike, *, inside: bool = True, checkpoints: bool = True,
                    log: Callable[[str], None] | None = None) -> list[Path]:
    """Clear what killed processes left in the run folder ``run_dir`` (and beside it), before it is written again.

    A write interrupted by ``kill -9`` (or a power cut) leaves its hidden names (:func:`write_json`,
    :func:`staged_folder`, :func:`replace_folder`): ``.{name}.tmp-{8 hex}`` (a file or folder being written) is
    removed; ``.{name}.old-{8 hex}`` (a folder being replaced) is removed once ``{name}`` is in place, and put back as
    ``{name}`` when the kill came between the two renames (it is then the last complete version). Those names are
    looked for in ``run_dir``, in the sub-folders this package writes (``dn{k}/``, ``family/``, ``parent/``,
    ``checkpoints/``, at any depth) and, for ``run_dir`` itself, beside it (``elastoformer plan --output_dir``);
    any other name, and the folders of the user, are never touched. With ``checkpoints``, ``checkpoints/dn{k}/``
    of every level already written (``dn{k}/`` holds its ``elastic_level.json``: training never reads them again)
    goes too; the checkpoints of a level not yet written stay.

    Call it from one process only (the main one; the others wait), and not while another command writes into
    ``run_dir``: its temporaries would look like leftovers.

    Args:
        run_dir: the run folder (it may not exist yet).
        inside (`bool`, *optional*, defaults to `True`): look inside ``run_dir`` too (False: only beside it, where
            ``elastoformer plan`` stages and replaces the whole folder).
        checkpoints (`bool`, *optional*, defaults to `True`): with ``inside``, remove the checkpoints of finished
            levels.
        log (*optional*): receives one line per kind of removal (what, how many, how much space was freed) and per
            folder put back (default: this module's logger, at INFO).

    Returns:
        `list[Path]`: what was removed.
    """
    root = Path(run_dir)
    log = log or logger.info
    named = Path(os.path.abspath(root))  # "." has a name too (a link is not followed: its staging is beside it)
    aside = [p for p in _entries(named.parent) if (m := _ASIDE_NAME.match(p.name)) and m["target"] == named.name]
    aside += _aside_within(root) if inside else []
    stale = []
    # newest first: when several versions of a missing folder were set aside, the newest one is put back
    for path in sorted(aside, key=_changed, reverse=True):
        match = _ASIDE_NAME.match(path.name)
        target = path.parent / match["target"]
        if match["kind"] == "tmp" or os.path.lexists(target):
            stale.append(path)
            continue
        try:
            os.replace(path, target)
            log(f"put back {target}: it was being replaced when a process was killed ({path.name})")
        except OSError as err:  # then it stays where it is: it may be the only copy
            log(f"could not put back {target} from {path.name} ({err}): do it by hand")
    removed = _remove(sorted(stale), "leftover(s) of interrupted writes", log)
    if inside and checkpoints and (root / CHECKPOINTS_DIR).is_dir():
        finished = [p for p in _entries(root / CHECKPOINTS_DIR)
                    if level_of_name(p) is not None and p.is_dir() and is_level_folder(root / p.name)]
        removed += _remove(finished, "checkpoint folder(s) of levels already written", log)
        with contextlib.suppress(OSError):
            (root / CHECKPOINTS_DIR).rmdir()  # once empty, as the trainer leaves it
    return removed


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:  # missing, or not a folder
        return []


def _aside_within(root: Path) -> list[Path]:
    """The set-aside names in ``root`` and, at any depth, in its own sub-folders (never under another name's)."""
    found, folders = [], [root]
    while folders:
        folder = folders.pop()
        for child in _entries(folder):
            if _ASIDE_NAME.match(child.name):
                found.append(child)
            elif child.is_dir() and not child.is_symlink() and (
                    folder != root or level_of_name(child) is not None or child.name in _OWN_FOLDERS):
                folders.append(child)
    return found


def _changed(path: Path) -> float:
    with contextlib.suppress(OSError):
        return path.lstat().st_ctime  # a rename sets it: when the folder was set aside
    return 0.0


def _remove(paths: list[Path], what: str, log: Callable[[str], None]) -> list[Path]:
    """Remove ``paths`` (files, folders, links: never followed) and log one line for them."""
    removed, freed = [], 0
    for path in paths:
        size = _disk_size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        if not os.path.lexists(path):
            removed.append(path)
            freed += size
    if removed:
        names = ", ".join(p.name for p in removed[:4]) + (", ..." if len(removed) > 4 else "")
        log(f"removed {len(removed)} {what} ({names}): {_format_size(freed)} freed")
    return removed


def _disk_size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _format_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def training_contents(root: str | os.PathLike) -> list[str]:
    """What in the folder ``root`` took training to make, in words (empty when nothing did, e.g. the untrained
    levels ``elastoformer plan --output_dir`` writes): trained levels (a level record without ``"trained":
    false``), the summary, the settings of a training run, its checkpoints, a parent model.

    Raises:
        CheckpointError: a level record is corrupt or names another level than its folder.
    """
    root = Path(root)
    held = []
    trained = [f"dn{k}" for k, folder in level_folders(root).items() if read_level_info(folder).get("trained", True)]
    if trained:
        held.append(f"trained level(s) {', '.join(trained)}")
    for name, what in ((SUMMARY_FILE, "the run's summary {}"), (RUN_FILE, "a training run's settings {}"),
                       (CHECKPOINTS_DIR, "Trainer checkpoints in {}/"), (PARENT_DIR, "a parent model in {}/")):
        if os.path.lexists(root / name):
            held.append(what.format(name))
    return held


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
