"""Where a run comes from, as its cards name it: the base model's Hub id and the dataset the run recorded."""

from __future__ import annotations

import re
from pathlib import Path

from ..run_folder import RunRecord

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_repo_id(value: str) -> bool:
    """Whether ``value`` looks like a Hub repo id (``org/name``)."""
    return bool(_HUB_ID.fullmatch(value or ""))  # fullmatch: `$` would let a trailing newline through


def run_dataset(record: RunRecord, info: dict | None = None) -> str | None:
    """The dataset a run recorded (``dataset``/``dataset_name`` in a level record, or ``data`` in the settings)."""
    for source in (info or {}, record.run, record.run.get("data") or {}):
        for key in ("dataset", "dataset_name"):
            if source.get(key):
                return str(source[key])
    return None


def base_model_id(spec: dict) -> str | None:
    """The Hub id of the pre-trained base model, when there is one (a random-init or local base has none)."""
    if not spec or spec.get("pretrained") is False:
        return None
    name = str(spec.get("name") or "")
    if name.startswith("hf-hub:"):
        name = name[len("hf-hub:"):]
    if spec.get("source") == "timm" and not is_repo_id(name):
        try:
            import timm

            cfg = timm.models.get_pretrained_cfg(name)
        except Exception:  # unknown name or an old timm: no id rather than a wrong one
            return None
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        return hub_id if hub_id and is_repo_id(hub_id) else None
    if spec.get("source") in ("transformers", "timm") and is_repo_id(name) and not Path(name).exists():
        return name
    return None
