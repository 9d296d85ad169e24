"""Latency entries: one schema, written in two forms.

A latency entry is one time per (device, runtime, precision, batch size), ``measured`` (timed on the device) or
``estimated`` (a roofline, a predictor: anything not timed on the device). It is kept in two forms:

* the **record** (``dn{k}/latency.json``, :func:`validate_entry`): everything known about the measurement::

    {"batch_size": 1, "median_ms": 4.21, "min_ms": 4.05, "p90_ms": 4.6, "repeats": 50, "runtime": "tensorrt",
     "precision": "fp16", "method": "measured", "date": "2026-11-30T09:12:03+00:00",
     "device": {"name": "Jetson Orin Nano 8GB (15W)", "type": "cuda", ...}, "notes": "...", "details": {...}}

  ``min_ms``, ``p90_ms`` and ``repeats`` are required for measured entries; ``device`` is the device record of
  :mod:`.device`; ``details`` holds method-specific extras (an estimator's assumptions). One record per
  (device name, runtime, precision, batch size, method): a measurement and an estimate of one setting both stay.

* the **card form** (model-card metadata and the family artifact's level metadata, :func:`normalize_entry`): the
  figure a table shows, and what people add by hand::

    {"device": "Jetson Orin Nano 8GB", "runtime": "TensorRT 10.3", "precision": "fp16", "batch_size": 1,
     "ms": 4.2, "method": "measured", "date": "2026-11-30"}

  ``ms`` is the record's median, ``device`` its device's name, ``device_type`` its device's type (so that
  ``ElasticFamily.select(device="cuda")`` finds "Jetson Orin Nano 8GB (15W)"); ``min_ms``, ``p90_ms``,
  ``repeats``, ``notes`` are optional. One entry per (device, runtime, precision, batch size): a measurement is
  never replaced by an estimate, otherwise the newer wins. ``level`` only says which level an entry belongs to
  when handed to :func:`elastoformer_hf.cards.update_card`, and is not stored.

:func:`to_card_entry` turns a record into its card form.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
from collections.abc import Iterable

from ..errors import ElastoformerError

METHODS = ("measured", "estimated")
#: what makes two card entries the same setting
KEY_FIELDS = ("device", "runtime", "precision", "batch_size")
#: the spread of a measurement (required in a measured record, optional in the card form)
SPREAD_FIELDS = ("min_ms", "p90_ms", "repeats")
#: the fields of a record, in the order they are written
RECORD_FIELDS = ("batch_size", "median_ms", *SPREAD_FIELDS, "runtime", "precision", "method", "date", "device",
                 "notes", "details")
#: the fields of the card form, in the order they are written
CARD_FIELDS = (*KEY_FIELDS, "ms", "method", "date", "notes", *SPREAD_FIELDS, "device_type")
_RECORD_REQUIRED = ("batch_size", "median_ms", "runtime", "precision", "method", "device")


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


# ------------------------------------------------------------------------------------------------ shared checks
def _short(entry: dict) -> str:
    text = json.dumps(entry, default=str)
    return text if len(text) <= 200 else text[:200] + "...}"


def _fail(entry: dict, problem: str) -> ElastoformerError:
    return ElastoformerError(f"latency entry {_short(entry)}{problem}")


def _check_fields(entry, allowed: tuple, required: Iterable[str]) -> None:
    if not isinstance(entry, dict):
        raise ElastoformerError(f"a latency entry must be a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise _fail(entry, f" has unknown fields {unknown} (allowed: {list(allowed)})")
    missing = [k for k in required if entry.get(k) in (None, "")]
    if missing:
        raise _fail(entry, f" lacks {', '.join(missing)}")


def _positive(entry: dict, key: str, value=None) -> float:
    value = entry[key] if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _fail(entry, f": {key} must be a positive number, got {value!r}")
    return float(value)


def _batch_size(entry: dict) -> int:
    batch = entry["batch_size"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise _fail(entry, ": batch_size must be an integer >= 1")
    return batch


def _spread(entry: dict, out: dict, median_key: str, *, text_numbers: bool) -> None:
    """Checked ``min_ms``/``p90_ms``/``repeats`` of ``entry`` into ``out`` (absent ones left out), in order;
    ``text_numbers``: numbers may be given as text (hand-written card entries)."""
    for key in ("min_ms", "p90_ms"):
        if entry.get(key) is not None:
            value = _positive(entry, key, _number(entry, key) if text_numbers else None)
            out[key] = round(value, 4) if text_numbers else value
    median = out[median_key]
    if not out.get("min_ms", median) <= median <= out.get("p90_ms", median):
        raise _fail(entry, f": needs min_ms <= {median_key} <= p90_ms")
    repeats = entry.get("repeats")
    if repeats is not None:
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise _fail(entry, ": repeats must be an integer >= 1")
        out["repeats"] = repeats


def _number(entry: dict, key: str):
    """A number given as a number or as its text."""
    value = entry[key]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _fail(entry, f": {key} must be a number") from None
    return value


def _method(entry: dict) -> str:
    if entry["method"] not in METHODS:
        raise _fail(entry, f": method must be one of {METHODS}")
    return entry["method"]


# ------------------------------------------------------------------------------------------------ records
def validate_entry(entry: dict) -> dict:
    """A checked copy of one record (``latency.json``), fields in :data:`RECORD_FIELDS` order, ``date`` filled
    with the current UTC time when missing.

    Raises:
        ElastoformerError: naming what is wrong with the entry.
    """
    measured = isinstance(entry, dict) and entry.get("method") == "measured"
    _check_fields(entry, RECORD_FIELDS, (*_RECORD_REQUIRED, *(SPREAD_FIELDS if measured else ())))
    method = _method(entry)
    out: dict = {"batch_size": _batch_size(entry), "median_ms": _positive(entry, "median_ms")}
    spread: dict = {"median_ms": out["median_ms"]}
    _spread(entry, spread, "median_ms", text_numbers=False)
    out.update({k: spread.get(k) for k in SPREAD_FIELDS})
    for key in ("runtime", "precision"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise _fail(entry, f": {key} must be a non-empty string")
        out[key] = entry[key].strip()
    out["method"] = method
    date = entry.get("date") or now_iso()
    try:
        datetime.datetime.fromisoformat(str(date))
    except ValueError:
        raise _fail(entry, f": date must be ISO 8601, got {date!r}") from None
    out["date"] = str(date)
    device = entry["device"]
    if not isinstance(device, dict) or not isinstance(device.get("name"), str) or not device["name"].strip():
        raise _fail(entry, ": device must be a device record (a mapping) with a non-empty 'name' (see "
                           "elastoformer_hf.latency.device_record)")
    out["device"] = copy.deepcopy(device)
    if entry.get("notes") not in (None, ""):
        out["notes"] = str(entry["notes"])
    if entry.get("details") is not None:
        if not isinstance(entry["details"], dict):
            raise _fail(entry, ": details must be a mapping")
        out["details"] = copy.deepcopy(entry["details"])
    return out


def entry_key(entry: dict) -> tuple:
    """(device name, runtime, precision, batch size, method): a record with the same key replaces the older."""
    return (entry["device"]["name"], entry["runtime"], entry["precision"], entry["batch_size"], entry["method"])


def merge_entries(existing: list[dict], incoming: list[dict]) -> list[dict]:
    """``existing`` records with ``incoming`` merged in, one per :func:`entry_key`: the newer (by ``date``) wins,
    an incoming record replacing an equally dated one; order of first appearance, so re-merging changes nothing."""
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
    """A record in the card form: ``device`` = the record's name, ``ms`` = the median, the date's day;
    ``level`` (if given) picks the card's family row."""
    card = {"device": entry["device"]["name"], "runtime": entry["runtime"], "precision": entry["precision"],
            "batch_size": entry["batch_size"], "ms": entry["median_ms"], "method": entry["method"],
            "date": str(entry["date"])[:10], "notes": entry.get("notes"),
            **{k: entry[k] for k in SPREAD_FIELDS if entry.get(k) is not None}}
    if entry["device"].get("type"):
        card["device_type"] = entry["device"]["type"]
    card = normalize_entry(card)
    if level is not None:
        card["level"] = level
    return card


# ------------------------------------------------------------------------------------------------ card form
def latency_key(entry: dict) -> tuple:
    """What makes two card entries the same measurement setting (the newer one replaces the older)."""
    return tuple(entry[k] for k in KEY_FIELDS)


def normalize_entry(entry: dict) -> dict:
    """A checked copy of a card entry with the fields in :data:`CARD_FIELDS` order (``level`` dropped).

    Raises:
        ElastoformerError: naming what is wrong with the entry.
    """
    _check_fields(entry, (*CARD_FIELDS, "level"), (*KEY_FIELDS, "ms", "method"))
    out = {k: str(entry[k]).strip() for k in ("device", "runtime", "precision")}
    try:
        out["batch_size"] = int(entry["batch_size"])
        out["ms"] = float(entry["ms"])
    except (TypeError, ValueError):
        raise _fail(entry, ": batch_size must be an integer and ms a number") from None
    if out["batch_size"] < 1 or not math.isfinite(out["ms"]) or out["ms"] <= 0:
        raise _fail(entry, ": batch_size must be >= 1 and ms a positive number")
    out["ms"] = round(out["ms"], 4)
    out["method"] = _method(entry)
    for k in ("date", "notes"):
        if entry.get(k) not in (None, ""):
            out[k] = str(entry[k])
    _spread(entry, out, "ms", text_numbers=True)
    if entry.get("device_type") not in (None, ""):
        out["device_type"] = str(entry["device_type"]).strip()
    return out


def _replaces(new: dict, old: dict) -> bool:
    """Whether ``new`` takes the place of ``old`` (same setting): a measurement is never replaced by an
    estimate; otherwise the newer wins (an undated entry counts as new)."""
    if old["method"] == "measured" and new["method"] == "estimated":
        return False
    if new["method"] == "measured" and old["method"] == "estimated":
        return True
    return not (old.get("date") and new.get("date") and old["date"] > new["date"])


def merge_latency(existing: Iterable[dict], incoming: Iterable[dict]) -> list[dict]:
    """``existing`` card entries updated with ``incoming``, one entry per setting (:func:`latency_key`).

    The newer entry wins: an incoming entry replaces an existing one with the same key, unless both are dated
    and the existing one is strictly later, or the existing one is measured and the incoming one only
    estimated (a card shows one number per setting: the measurement). Order: first appearance of each key
    (existing first), so merging is stable and re-merging the same entries changes nothing.
    """
    merged: dict[tuple, dict] = {}
    for entry in existing or ():
        e = normalize_entry(entry)
        merged[latency_key(e)] = e
    for entry in incoming or ():
        e = normalize_entry(entry)
        old = merged.get(latency_key(e))
        if old is None or _replaces(e, old):
            merged[latency_key(e)] = e
    return list(merged.values())


def setting_label(key: tuple) -> str:
    device, runtime, precision, batch_size = key
    return f"{device}, {runtime}, {precision}, batch {batch_size}"
