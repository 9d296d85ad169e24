"""``dn{k}/latency.json``: every latency measured (or estimated) for one descendant network.

The file is a JSON list of records (:mod:`.entries`), one per (device name, runtime, precision, batch size,
method). Recording only writes these files; the views of them (the level cards, the family artifact's level
metadata) are refreshed from them by :func:`elastoformer_hf.refresh.refresh_run`, which ``elastoformer bench``
and ``elastoformer estimate`` call when they have recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ElastoformerError
from ..run_folder import LATENCY_FILE, read_json, write_json
from .entries import merge_entries, merge_latency, to_card_entry, validate_entry

__all__ = ["LATENCY_FILE", "card_entries", "merge_records", "read_latency", "record_entries", "record_run",
           "write_records"]


def read_latency(dn_dir: str | os.PathLike) -> list[dict]:
    """The records of ``dn_dir/latency.json`` (empty when there is none), validated.

    Raises:
        ElastoformerError: the file is corrupt or holds an invalid record.
    """
    path = Path(dn_dir) / LATENCY_FILE
    if not path.is_file():
        return []
    data = read_json(path, what="it should be a list of latency entries (fix or delete it, nothing was changed)")
    if not isinstance(data, list):
        raise ElastoformerError(f"{path} should hold a JSON list of latency entries, got {type(data).__name__}")
    try:
        return [validate_entry(e) for e in data]
    except ElastoformerError as err:
        raise ElastoformerError(f"{path}: {err}") from None


def card_entries(dn_dir: str | os.PathLike) -> list[dict]:
    """``dn_dir/latency.json`` in the card form (what a freshly rendered card shows)."""
    return merge_latency([], [to_card_entry(e) for e in read_latency(dn_dir)])


def record_entries(dn_dir: str | os.PathLike, entries: list[dict]) -> list[dict]:
    """Merge latency records into ``dn_dir/latency.json`` (a newer record replaces an older one with the same
    (device name, runtime, precision, batch size, method)); returns the merged list. Every record and the existing
    file are checked before anything is written."""
    return record_run({dn_dir: entries})[Path(dn_dir)]


def record_run(entries_by_dn: dict, *, written: list | None = None) -> dict[Path, list[dict]]:
    """:func:`record_entries` for several ``dn{k}/`` folders at once (``{dn_dir: records}``), all checked before
    any file is written. Returns ``{dn_dir: merged list}``; ``written`` (a list) receives the paths written."""
    merged = merge_records(entries_by_dn)
    paths = write_records(merged)
    if written is not None:
        written += paths
    return merged


def merge_records(entries_by_dn: dict) -> dict[Path, list[dict]]:
    """``{dn_dir: the folder's latency.json with the entries merged in}``, checked; nothing is written."""
    merged: dict[Path, list[dict]] = {}
    for dn_dir, entries in entries_by_dn.items():
        folder = Path(dn_dir)
        if not folder.is_dir():
            raise ElastoformerError(f"{folder} is not a folder")
        if not isinstance(entries, list):
            raise ElastoformerError(f"latency entries must be a list, got {type(entries).__name__}")
        merged[folder] = merge_entries(read_latency(folder), [validate_entry(e) for e in entries])
    return merged


def write_records(merged: dict[Path, list[dict]]) -> list[Path]:
    """Write :func:`merge_records`' result; returns the files written."""
    return [write_json(folder / LATENCY_FILE, records, indent=1, sort_keys=False) for folder, records in merged.items()]
