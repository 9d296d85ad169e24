"""Reading a finished (or planned) run folder: the level records, the run settings, the costs' resolution."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints import LEVEL_FILE, read_level_info
from ..errors import ElastoformerError
from .latency import merge_latency

RUN_FILE = "elastic_run.json"
SUMMARY_FILE = "elastic_summary.json"
PLAN_FILE = "elastic_plan.json"
FAMILY_DIR = "family"
_LEVEL_DIR = re.compile(r"^dn(\d+)$")

#: dataset names of :data:`elastoformer_hf.data.DATASET_NAMES` -> (Hub dataset id or None, pretty name)
KNOWN_DATASETS = {
    "imagenet": ("ILSVRC/imagenet-1k", "ImageNet-1k"),
    "cifar10": ("uoft-cs/cifar10", "CIFAR-10"),
    "cifar100": ("uoft-cs/cifar100", "CIFAR-100"),
    "fashion_mnist": ("zalando-datasets/fashion_mnist", "Fashion-MNIST"),
    "digits": (None, "scikit-learn digits"),
    "dummy": (None, "synthetic images"),
    "imagefolder": (None, "a local image folder"),
}
_ALIASES = {"imagenet1k": "imagenet", "imagenet_1k": "imagenet", "ilsvrc/imagenet_1k": "imagenet",
            "fashionmnist": "fashion_mnist", "uoft_cs/cifar10": "cifar10", "uoft_cs/cifar100": "cifar100"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class RunRecord:
    """What the cards are made of: one ``elastic_level.json`` per ``dn{k}/`` plus the run's settings."""

    root: Path
    levels: dict[int, dict]  # level -> elastic_level.json
    run: dict = field(default_factory=dict)  # elastic_run.json (empty when absent)
    image_size: int | None = None  # resolution the costs were counted at (elastic_plan.json)

    @property
    def num_levels(self) -> int:
        return max(int(info.get("num_levels") or 0) for info in self.levels.values()) or max(self.levels)

    def folder(self, level: int) -> Path:
        return self.root / f"dn{level}"

    @property
    def family_dir(self) -> Path | None:
        path = self.root / FAMILY_DIR
        return path if path.is_dir() else None

    def base_spec(self) -> dict:
        return next(iter(self.levels.values())).get("base_model") or {}

    def model_name(self) -> str:
        info = next(iter(self.levels.values()))
        return str(info.get("model_name") or self.run.get("model", {}).get("model_name") or self.base_spec().get("name"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ElastoformerError(f"{path} is corrupt ({err})") from None


def load_run(run_dir: str | Path) -> RunRecord:
    """The run in ``run_dir`` (``dn{k}/elastic_level.json`` for every level; settings and plan when present)."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ElastoformerError(f"{root} is not a folder")
    levels = {}
    for child in sorted(root.iterdir()):
        m = _LEVEL_DIR.match(child.name)
        if m and child.is_dir() and (child / LEVEL_FILE).is_file():
            info = read_level_info(child)
            if (child / "latency.json").is_file():  # `elastoformer bench`/`estimate` results
                from ..latency.store import card_entries

                info["latency"] = merge_latency(info.get("latency") or [], card_entries(child))
            levels[int(info.get("level", m.group(1)))] = info
    if not levels:
        raise ElastoformerError(f"{root} holds no dn{{k}}/ folders with {LEVEL_FILE}: not an elastoformer run")
    run = _read_json(root / RUN_FILE) if (root / RUN_FILE).is_file() else {}
    image_size = None
    if (root / PLAN_FILE).is_file():
        image_size = _read_json(root / PLAN_FILE).get("image_size")
    return RunRecord(root=root, levels=dict(sorted(levels.items())), run=run, image_size=image_size)


def resolve_dataset(name: str | None) -> tuple[str | None, str | None, str | None]:
    """``(hub_id, dataset_type, pretty_name)`` for a dataset name (ours or a Hub id); all None when unknown."""
    if not name:
        return None, None, None
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in KNOWN_DATASETS:
        hub_id, pretty = KNOWN_DATASETS[key]
        return hub_id, hub_id or key, pretty
    if _HUB_ID.match(str(name)):
        return str(name), str(name), str(name)
    return None, str(name), str(name)


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
    if spec.get("source") == "timm" and not _HUB_ID.match(name):
        try:
            import timm

            cfg = timm.models.get_pretrained_cfg(name)
        except Exception:  # unknown name or an old timm: no id rather than a wrong one
            return None
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        return hub_id if hub_id and _HUB_ID.match(hub_id) else None
    if spec.get("source") in ("transformers", "timm") and _HUB_ID.match(name) and not Path(name).exists():
        return name
    return None


def is_repo_id(value: str) -> bool:
    return bool(_HUB_ID.match(value or ""))
