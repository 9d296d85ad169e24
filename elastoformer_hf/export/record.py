"""Where a level's export lives and what it records: ``dn{k}/onnx/model.onnx`` and ``dn{k}/onnx/export.json``.

Kept free of torch/onnx imports: the cards and the benchmark read it for every level.
"""

from __future__ import annotations

import json
from pathlib import Path

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
EXPORT_FILE = "export.json"
#: the ONNX path as it appears in a level's folder or repo
ONNX_REL = f"{ONNX_DIR}/{ONNX_FILE}"


def onnx_path(dn_dir: str | Path) -> Path:
    """``dn_dir/onnx/model.onnx`` (whether or not it exists)."""
    return Path(dn_dir) / ONNX_DIR / ONNX_FILE


def read_export(dn_dir: str | Path) -> dict | None:
    """``dn_dir/onnx/export.json`` when the level has a checked export (None when absent or unreadable)."""
    path = Path(dn_dir) / ONNX_DIR / EXPORT_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and onnx_path(dn_dir).is_file() else None
