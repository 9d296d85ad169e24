"""Latency entries: one measured (or estimated) time per (device, runtime, precision, batch size).

An entry is a plain dict, stored as-is in a card's metadata::

    {"device": "Jetson Orin Nano 8GB", "runtime": "TensorRT 10.3", "precision": "fp16", "batch_size": 1,
     "ms": 4.2, "method": "measured", "date": "2026-11-30"}

``method`` is ``measured`` (run on the device) or ``estimated`` (a roofline, a predictor: anything not timed on
the device). ``date`` (ISO ``YYYY-MM-DD``), ``notes`` and ``level`` are optional; ``level`` only says which
descendant network an entry belongs to when it is handed to :func:`~elastoformer_hf.cards.update_card` and is not
stored.

Optional fields written by ``elastoformer bench`` (:mod:`elastoformer_hf.latency`), where ``ms`` is the median:
``min_ms`` and ``p90_ms`` (the spread over the timed runs), ``repeats`` (how many timed runs) and
``device_type`` (``cpu``, ``cuda``, ...: what kind of torch device the ``device`` name is, so that
``ElasticFamily.select(device="cuda")`` finds "Jetson Orin Nano 8GB (15W)"). Cards without them stay valid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..errors import ElastoformerError

METHODS = ("measured", "estimated")
KEY_FIELDS = ("device", "runtime", "precision", "batch_size")
#: optional spread and device kind (``elastoformer bench``)
EXTRA_FIELDS = ("min_ms", "p90_ms", "repeats", "device_type")
_FIELDS = (*KEY_FIELDS, "ms", "method", "date", "notes", *EXTRA_FIELDS)


def latency_key(entry: dict) -> tuple:
    """What makes two entries the same measurement setting (the newer one replaces the older)."""
    return tuple(entry[k] for k in KEY_FIELDS)


def _positive_ms(entry: dict, key: str) -> float:
    try:
        value = float(entry[key])
    except (TypeError, ValueError):
        raise ElastoformerError(f"latency entry {entry!r}: {key} must be a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ElastoformerError(f"latency entry {entry!r}: {key} must be a positive number")
    return round(value, 4)


def normalize_entry(entry: dict) -> dict:
    """A validated copy of ``entry`` with the fields in a fixed order (``level`` dropped)."""
    if not isinstance(entry, dict):
        raise ElastoformerError(f"a latency entry must be a mapping, got {type(entry).__name__}")
    missing = [k for k in (*KEY_FIELDS, "ms", "method") if entry.get(k) in (None, "")]
    if missing:
        raise ElastoformerError(f"latency entry {entry!r} lacks {', '.join(missing)}")
    unknown = sorted(set(entry) - set(_FIELDS) - {"level"})
    if unknown:
        raise ElastoformerError(f"latency entry {entry!r} has unknown fields {unknown} (allowed: {list(_FIELDS)})")
    out = {k: str(entry[k]).strip() for k in ("device", "runtime", "precision")}
    try:
        out["batch_size"] = int(entry["batch_size"])
        out["ms"] = float(entry["ms"])
    except (TypeError, ValueError):
        raise ElastoformerError(f"latency entry {entry!r}: batch_size must be an integer and ms a number") from None
    if out["batch_size"] < 1 or not math.isfinite(out["ms"]) or out["ms"] <= 0:
        raise ElastoformerError(f"latency entry {entry!r}: batch_size must be >= 1 and ms a positive number")
    out["ms"] = round(out["ms"], 4)
    if entry["method"] not in METHODS:
        raise ElastoformerError(f"latency entry {entry!r}: method must be one of {METHODS}")
    out["method"] = entry["method"]
    for k in ("date", "notes"):
        if entry.get(k) not in (None, ""):
            out[k] = str(entry[k])
    for k in ("min_ms", "p90_ms"):
        if entry.get(k) is not None:
            out[k] = _positive_ms(entry, k)
    if not out.get("min_ms", out["ms"]) <= out["ms"] <= out.get("p90_ms", out["ms"]):
        raise ElastoformerError(f"latency entry {entry!r}: needs min_ms <= ms <= p90_ms")
    if entry.get("repeats") is not None:
        repeats = entry["repeats"]
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ElastoformerError(f"latency entry {entry!r}: repeats must be an integer >= 1")
        out["repeats"] = repeats
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
    """``existing`` updated with ``incoming``, one entry per setting (:func:`latency_key`).

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
