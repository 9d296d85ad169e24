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


#: the license a card states when neither the caller nor the base model's metadata gives one; the Hub accepts it,
#: and the card says in words what it means (never a silently absent key)
UNKNOWN_LICENSE = "unknown"


def base_license(spec: dict) -> str | None:
    """The license of the pre-trained base model where its metadata records one (timm's pretrained config does,
    torchvision's weights are BSD-3-Clause; transformers' config records none, so a transformers base gives None),
    lowercased as the Hub spells licenses."""
    if not spec or spec.get("pretrained") is False:
        return None
    if spec.get("source") == "torchvision":  # the license timm's configs give the same torchvision weights (tv_in1k)
        return "bsd-3-clause"
    if spec.get("source") != "timm":
        return None
    name = str(spec.get("name") or "")
    try:
        import timm

        cfg = timm.models.get_pretrained_cfg(name[len("hf-hub:"):] if name.startswith("hf-hub:") else name)
    except Exception:  # unknown name or an old timm: no license rather than a wrong one
        return None
    value = getattr(cfg, "license", None) if cfg is not None else None
    return str(value).lower() if value else None


def evaluation_set(record: RunRecord, info: dict | None = None) -> dict:
    """What a level's accuracy was measured on, as the run recorded it: ``split``, ``config`` and ``images``
    (the number of evaluated images); keys the run did not record are absent."""
    data = (info or {}).get("data") or record.run.get("data") or {}
    # a streamed evaluation set has no length up front: its count is the one the evaluation saw
    images = data.get("eval_rows") or ((info or {}).get("metrics") or {}).get("eval_samples")
    found = {"split": data.get("eval_split"), "config": data.get("dataset_config"), "images": images}
    return {k: v for k, v in found.items() if v is not None}
