"""``dn{k}/latency.json``: every latency measured (or estimated) for one descendant network, and where it goes.

The file is a JSON list of entries, one per (device name, runtime, precision, batch size, method)::

    [{"batch_size": 1, "median_ms": 4.21, "min_ms": 4.05, "p90_ms": 4.6, "repeats": 50,
      "runtime": "tensorrt", "precision": "fp16", "method": "measured", "date": "2026-11-30T09:12:03+00:00",
      "device": {"name": "Jetson Orin Nano 8GB (15W)", "type": "cuda", ...}, "notes": "..."}]

Fields:

* ``batch_size`` (int >= 1); ``median_ms`` (number > 0): the latency of one forward pass of a batch;
* ``min_ms``, ``p90_ms`` (numbers, ``min_ms <= median_ms <= p90_ms``) and ``repeats`` (int >= 1, the number of
  timed runs): required for ``measured`` entries; ``null`` (or absent) allowed for ``estimated`` ones;
* ``runtime`` (``torch``, ``onnxruntime``, ``tensorrt``, or an estimator's name) and ``precision`` (``fp32``,
  ``fp16``, ``bf16``, ...): non-empty strings;
* ``method``: ``measured`` (timed on the device) or ``estimated`` (a roofline, a predictor);
* ``date``: ISO 8601 date or date-time (filled with the current UTC time when missing);
* ``device``: the device record (:mod:`.device`), a mapping with at least a non-empty ``name``;
* ``notes`` (optional string) and ``details`` (optional mapping: method-specific extras, e.g. an estimator's
  assumptions).

:func:`record_entries` merges entries into the file (a newer entry replaces an older one with the same key) and
then into the places that show latencies: the descendant's model card (``dn{k}/README.md``, the cards' entry
format of :mod:`elastoformer_hf.cards.latency`, where ``ms`` is the median) and, inside a run folder with a
family artifact, the family's level metadata (``family/family_config.json``), which
``ElasticFamily.select(max_latency_ms=...)`` reads.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import math
import os
import re
import uuid
from pathlib import Path

from ..cards.latency import METHODS, merge_latency, normalize_entry
from ..errors import ElastoformerError

logger = logging.getLogger(__name__)

LATENCY_FILE = "latency.json"
FIELDS = ("batch_size", "median_ms", "min_ms", "p90_ms", "repeats", "runtime", "precision", "method", "date",
          "device", "notes", "details")
_REQUIRED = ("batch_size", "median_ms", "runtime", "precision", "method", "device")
_SPREAD = ("min_ms", "p90_ms", "repeats")
_LEVEL_DIR = re.compile(r"^dn(\d+)$")
FAMILY_DIR = "family"
FAMILY_CONFIG = "family_config.json"
CARD = "README.md"


# ------------------------------------------------------------------------------------------------ entries
def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _number(entry: dict, key: str) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ElastoformerError(f"latency entry {_short(entry)}: {key} must be a positive number, got {value!r}")
    return float(value)


def _short(entry: dict) -> str:
    text = json.dumps(entry, default=str)
    return text if len(text) <= 200 else text[:200] + "...}"


def validate_entry(entry: dict) -> dict:
    """A checked copy of one ``latency.json`` entry (fields in :data:`FIELDS` order; ``date`` filled in when
    missing). Raises :class:`ElastoformerError` naming what is wrong."""
    if not isinstance(entry, dict):
        raise ElastoformerError(f"a latency entry must be a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise ElastoformerError(f"latency entry {_short(entry)} has unknown fields {unknown} (allowed: {list(FIELDS)})")
    missing = [k for k in _REQUIRED if entry.get(k) in (None, "")]
    if entry.get("method") == "measured":
        missing += [k for k in _SPREAD if entry.get(k) is None]
    if missing:
        raise ElastoformerError(f"latency entry {_short(entry)} lacks {', '.join(missing)}")
    if entry["method"] not in METHODS:
        raise ElastoformerError(f"latency entry {_short(entry)}: method must be one of {METHODS}")
    out: dict = {}
    batch = entry["batch_size"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ElastoformerError(f"latency entry {_short(entry)}: batch_size must be an integer >= 1")
    out["batch_size"] = batch
    out["median_ms"] = _number(entry, "median_ms")
    for key in ("min_ms", "p90_ms"):
        out[key] = _number(entry, key) if entry.get(key) is not None else None
    if not (out["min_ms"] or out["median_ms"]) <= out["median_ms"] <= (out["p90_ms"] or out["median_ms"]):
        raise ElastoformerError(f"latency entry {_short(entry)}: needs min_ms <= median_ms <= p90_ms")
    repeats = entry.get("repeats")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1):
        raise ElastoformerError(f"latency entry {_short(entry)}: repeats must be an integer >= 1")
    out["repeats"] = repeats
    for key in ("runtime", "precision"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise ElastoformerError(f"latency entry {_short(entry)}: {key} must be a non-empty string")
        out[key] = entry[key].strip()
    out["method"] = entry["method"]
    date = entry.get("date") or now_iso()
    try:
        datetime.datetime.fromisoformat(str(date))
    except ValueError:
        raise ElastoformerError(f"latency entry {_short(entry)}: date must be ISO 8601, got {date!r}") from None
    out["date"] = str(date)
    device = entry["device"]
    if not isinstance(device, dict) or not isinstance(device.get("name"), str) or not device["name"].strip():
        raise ElastoformerError(f"latency entry {_short(entry)}: device must be a device record (a mapping) with a "
                                "non-empty 'name' (see elastoformer_hf.latency.device_record)")
    out["device"] = copy.deepcopy(device)
    if entry.get("notes") not in (None, ""):
        out["notes"] = str(entry["notes"])
    if entry.get("details") is not None:
        if not isinstance(entry["details"], dict):
            raise ElastoformerError(f"latency entry {_short(entry)}: details must be a mapping")
        out["details"] = copy.deepcopy(entry["details"])
    return out


def entry_key(entry: dict) -> tuple:
    """(device name, runtime, precision, batch size, method): an entry with the same key replaces the older."""
    return (entry["device"]["name"], entry["runtime"], entry["precision"], entry["batch_size"], entry["method"])


def merge_entries(existing: list[dict], incoming: list[dict]) -> list[dict]:
    """``existing`` with ``incoming`` merged in, one entry per :func:`entry_key`: the newer (by ``date``) wins, an
    incoming entry replacing an equally dated one; order of first appearance, so re-merging changes nothing."""
    merged: dict[tuple, dict] = {}
    for entry in [*existing, *incoming]:
        e = validate_entry(entry)
        old = merged.get(entry_key(e))
        if old is None or _when(e) >= _when(old):
            merged[entry_key(e)] = e
    return list(merged.values())


def _when(entry: dict) -> datetime.datetime:
    when = datetime.datetime.fromisoformat(entry["date"])
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def to_card_entry(entry: dict, level: int | None = None) -> dict:
    """``entry`` in the model cards' format (:mod:`elastoformer_hf.cards.latency`): ``device`` = the record's
    name, ``ms`` = the median, the date's day; ``level`` (if given) picks the card's family row."""
    card = {"device": entry["device"]["name"], "runtime": entry["runtime"], "precision": entry["precision"],
            "batch_size": entry["batch_size"], "ms": entry["median_ms"], "method": entry["method"],
            "date": str(entry["date"])[:10], "notes": entry.get("notes"),
            **{k: entry[k] for k in ("min_ms", "p90_ms", "repeats") if entry.get(k) is not None}}
    if entry["device"].get("type"):
        card["device_type"] = entry["device"]["type"]
    card = normalize_entry(card)
    if level is not None:
        card["level"] = level
    return card


# ------------------------------------------------------------------------------------------------ files
def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ElastoformerError(f"{path} is corrupt ({err}); {what} (fix or delete it, nothing was changed)") from None


def _write_json(path: Path, data, **kwargs) -> None:
    """Write aside, then rename: an interrupted write never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(data, **kwargs) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_latency(dn_dir: str | os.PathLike) -> list[dict]:
    """The entries of ``dn_dir/latency.json`` (empty when there is none), validated."""
    path = Path(dn_dir) / LATENCY_FILE
    if not path.is_file():
        return []
    data = _read_json(path, "it should be a list of latency entries")
    if not isinstance(data, list):
        raise ElastoformerError(f"{path} should hold a JSON list of latency entries, got {type(data).__name__}")
    try:
        return [validate_entry(e) for e in data]
    except ElastoformerError as err:
        raise ElastoformerError(f"{path}: {err}") from None


def card_entries(dn_dir: str | os.PathLike) -> list[dict]:
    """``dn_dir/latency.json`` in the cards' entry format (what a freshly rendered card shows)."""
    return merge_latency([], [to_card_entry(e) for e in read_latency(dn_dir)])


def level_of(dn_dir: Path) -> int | None:
    """The level a ``dn{k}/`` folder holds: its ``elastic_level.json`` ``level``, else the ``k`` of its name."""
    from ..checkpoints import LEVEL_FILE

    if (dn_dir / LEVEL_FILE).is_file():
        info = _read_json(dn_dir / LEVEL_FILE, "it is the level's record")
        if isinstance(info, dict) and isinstance(info.get("level"), int):
            return info["level"]
    m = _LEVEL_DIR.match(dn_dir.name)
    return int(m.group(1)) if m else None


def _elastoformer_card(folder: Path):
    """The ModelCard at ``folder/README.md`` if it is an elastoformer card with a family table, else None."""
    from huggingface_hub import ModelCard

    from ..cards.render import META_KEY

    readme = folder / CARD
    if not readme.is_file():
        return None
    try:
        meta = ModelCard.load(readme, ignore_metadata_errors=True).data.to_dict().get(META_KEY)
    except Exception as err:  # unreadable YAML header: leave the user's card alone
        logger.warning("%s: cannot read the card (%s); its latency is not updated", readme, err)
        return None
    if not isinstance(meta, dict) or not meta.get("family"):
        logger.warning("%s is not an elastoformer card; its latency is not updated", readme)
        return None
    return meta


# ------------------------------------------------------------------------------------------------ recording
def record_entries(dn_dir, entries: list[dict]) -> list[dict]:
    """Merge latency entries into dn_dir/latency.json (one entry per (device name, runtime, precision,
    batch_size, method) - newer replaces older), then into dn_dir/README.md's card metadata if a card exists
    (cards.update_card), then into the run's family artifact metadata (RUN/family/family_config.json level
    entry 'latency') if dn_dir is inside a run with a family/ folder. Returns the merged latency.json list.

    The other levels' cards of the run (``dn{j}/README.md``) and the family card (``family/README.md``) get the
    entries in this level's row of their family table too. Everything is read and checked before anything is
    written, so bad entries or a corrupt file change nothing.
    """
    return record_run({dn_dir: entries})[Path(dn_dir)]


def record_run(entries_by_dn: dict, *, written: list | None = None) -> dict[Path, list[dict]]:
    """:func:`record_entries` for several ``dn{k}/`` folders at once (``{dn_dir: entries}``): every card and
    the family metadata are rewritten once, not once per level. Returns ``{dn_dir: merged latency.json list}``;
    ``written`` (a list) receives the paths of the files written."""
    written = written if written is not None else []
    plans: dict[Path, list[dict]] = {}
    levels: dict[Path, int | None] = {}
    for dn_dir, entries in entries_by_dn.items():
        folder = Path(dn_dir)
        if not folder.is_dir():
            raise ElastoformerError(f"{folder} is not a folder")
        if not isinstance(entries, list):
            raise ElastoformerError(f"latency entries must be a list, got {type(entries).__name__}")
        plans[folder] = merge_entries(read_latency(folder), [validate_entry(e) for e in entries])
        levels[folder] = level_of(folder)

    # where the numbers are shown: every elastoformer card of the run(s), and the family artifact
    card_updates: dict[Path, list[dict]] = {}
    family_updates: dict[Path, dict[int, list[dict]]] = {}
    for folder, merged in plans.items():
        level = levels[folder]
        if level is None:  # a folder that is not a level: its own card only
            card_updates.setdefault(folder, []).extend(to_card_entry(e) for e in merged)
            continue
        tagged = [to_card_entry(e, level) for e in merged]
        root = folder.parent
        for card_dir in _card_folders(root, folder):
            card_updates.setdefault(card_dir, []).extend(tagged)
        config = root / FAMILY_DIR / FAMILY_CONFIG
        if config.is_file():
            family_updates.setdefault(config, {})[level] = [to_card_entry(e) for e in merged]

    cards = {d: e for d, e in card_updates.items() if _card_accepts(d, e)}
    families = {}
    for path, by_level in family_updates.items():
        run_levels = {f: levels[f] for f in plans if f.parent == path.parent.parent}
        families[path] = _family_with_latency(path, by_level, run_levels)

    # checked: now write
    for folder, merged in plans.items():
        _write_json(folder / LATENCY_FILE, merged, indent=1)
        written.append(folder / LATENCY_FILE)
    if cards:
        from ..cards.render import update_card

        for card_dir, entries in cards.items():
            update_card(card_dir, entries)
            written.append(card_dir / CARD)
    for path, config in families.items():
        _write_json(path, config, indent=1, sort_keys=True)  # as storage.write_family writes it
        written.append(path)
    return plans


def _card_folders(root: Path, folder: Path) -> list[Path]:
    """``folder`` and, when it is a ``dn{k}/`` of a run, its sibling levels and the family artifact: every
    folder whose card may show this level's latency."""
    found = [folder]
    if _LEVEL_DIR.match(folder.name):
        found += sorted(p for p in root.iterdir() if p != folder and p.is_dir() and _LEVEL_DIR.match(p.name))
        if (root / FAMILY_DIR).is_dir():
            found.append(root / FAMILY_DIR)
    return [p for p in found if (p / CARD).is_file()]


def _card_accepts(card_dir: Path, entries: list[dict]) -> bool:
    """Whether ``card_dir/README.md`` is an elastoformer card whose family table has the entries' levels."""
    meta = _elastoformer_card(card_dir)
    if meta is None:
        return False
    rows = {r.get("level") for r in meta.get("family") or []}
    wanted = {e["level"] for e in entries if "level" in e}
    if not wanted <= rows:
        logger.warning("%s: its family table has no level %s; its latency is not updated", card_dir / CARD,
                       sorted(wanted - rows))
        return False
    return True


def _family_with_latency(path: Path, by_level: dict[int, list[dict]], dn_levels: dict[Path, int | None]) -> dict:
    """The family config at ``path`` with ``by_level``'s entries merged into its levels' ``latency`` lists,
    after checking the family is this run's (same level count and, per level, the same params and MACs)."""
    from ..checkpoints import LEVEL_FILE

    config = _read_json(path, "it is the family artifact's metadata")
    levels = config.get("levels") if isinstance(config, dict) else None
    if not isinstance(levels, list) or config.get("format") != "elastoformer-family":
        raise ElastoformerError(f"{path} is not an elastic family config (no 'format': 'elastoformer-family' "
                                "with a 'levels' list)")
    for folder, level in dn_levels.items():
        if level not in by_level:
            continue
        if not 1 <= level <= len(levels):
            raise ElastoformerError(f"{path.parent} has {len(levels)} levels, not level {level} ({folder}): it is "
                                    "not this run's family; rebuild it (ElasticFamily.from_run)")
        info = _read_json(folder / LEVEL_FILE, "it is the level's record") if (folder / LEVEL_FILE).is_file() else {}
        theirs = levels[level - 1]
        differ = [k for k in ("params", "macs") if k in info and k in theirs and int(info[k]) != int(theirs[k])]
        if differ:
            raise ElastoformerError(f"{path.parent}'s level {level} has other {' and '.join(differ)} than {folder}: "
                                    "it is not this run's family; rebuild it (ElasticFamily.from_run)")
        theirs["latency"] = merge_latency(theirs.get("latency") or [], by_level[level])
    return config
