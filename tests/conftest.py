"""Shared fixtures: tiny model config folders, planned families (session-scoped, built once) and saved levels.

Everything is random-init, CPU and offline. A "family" is a loaded base model plus its elastic plan; families are
session fixtures so that the planner, replay and checkpoint tests share one plan per model.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

NUM_LABELS = 5
TINY_VIT = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    image_size=32,
    patch_size=8,
    num_labels=NUM_LABELS,
)
#: 12 heads of head_dim 8, one layer: the head-pruning checks
VIT12 = dict(TINY_VIT, hidden_size=96, num_attention_heads=12, num_hidden_layers=1)
TIMM_VIT_ARGS = dict(img_size=32, patch_size=8, depth=2)
VGG_ARGS = {"mlp_ratio": 0.015625}  # 64-wide pre-logits instead of 4096


@dataclass
class Family:
    """A base model and its plan. ``input_size`` is what forward passes in tests use."""

    key: str
    lm: object  # elastoformer_hf.base_model.LoadedModel
    plan: object  # ElasticPlan
    input_size: int
    #: the base model's state dict before planning (to check plan_levels leaves it untouched)
    before: dict = field(default_factory=dict, repr=False)

    @property
    def model(self):
        return self.lm.model

    @property
    def is_vit(self) -> bool:
        return self.plan.architecture in ("transformers-vit", "timm-vit")


def load_tiny(name: str, seed: int = 0, **kwargs):
    from elastoformer_hf.base_model import load_base_model

    torch.manual_seed(seed)
    return load_base_model(name, random_init=True, num_labels=NUM_LABELS, **kwargs)


def make_family(key, name, config_kwargs, *, model_args=None, image_size=None, input_size=32, seed=0):
    from elastoformer_hf.pruning.config import PruningConfig
    from elastoformer_hf.pruning.planner import plan_levels

    lm = load_tiny(name, seed=seed, model_args=model_args)
    before = {k: v.detach().clone() for k, v in lm.model.state_dict().items()}
    plan = plan_levels(lm.model, PruningConfig(**config_kwargs), model_name=name, image_size=image_size)
    return Family(key, lm, plan, input_size, before)


def _save_config(cls_name: str, folder: Path, **kwargs) -> Path:
    import transformers

    getattr(transformers, cls_name)(**kwargs).save_pretrained(folder)
    return folder


# -- config folders ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hf_vit_dir(tmp_path_factory) -> Path:
    return _save_config("ViTConfig", tmp_path_factory.mktemp("hf_vit"), architectures=["ViTForImageClassification"],
                        **TINY_VIT)


@pytest.fixture(scope="session")
def hf_vit12_dir(tmp_path_factory) -> Path:
    return _save_config("ViTConfig", tmp_path_factory.mktemp("hf_vit12"),
                        architectures=["ViTForImageClassification"], **VIT12)


@pytest.fixture(scope="session")
def hf_deit_dir(tmp_path_factory) -> Path:
    return _save_config("DeiTConfig", tmp_path_factory.mktemp("hf_deit"),
                        architectures=["DeiTForImageClassificationWithTeacher"], **TINY_VIT)


# -- planned families ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def vit_family(hf_vit_dir) -> Family:
    """transformers ViT, l1, CR 0.5, 3 levels, round_to 8 (per-head widths 16 -> multiples of 8), head dims."""
    return make_family("vit", str(hf_vit_dir), dict(pruning_type="l1", pruning_ratio=0.5, pruning_steps=2, round_to=8,
                                                    head_pruning="head_dims"))


@pytest.fixture(scope="session")
def vit12_heads_family(hf_vit12_dir) -> Family:
    return make_family("vit12_heads", str(hf_vit12_dir),
                       dict(pruning_ratio=0.5, pruning_steps=5, round_to=1, prune_heads=True))


@pytest.fixture(scope="session")
def vit12_dims_family(hf_vit12_dir) -> Family:
    return make_family("vit12_dims", str(hf_vit12_dir),
                       dict(pruning_ratio=0.5, pruning_steps=5, round_to=1, head_pruning="head_dims"))


@pytest.fixture(scope="session")
def deit_family(hf_deit_dir) -> Family:
    """The default head_pruning (auto): 4 heads at CR 0.5 in 2 steps keep 2, 3, 4, so whole heads."""
    return make_family("deit", str(hf_deit_dir), dict(pruning_ratio=0.5, pruning_steps=2, round_to=4))


@pytest.fixture(scope="session")
def vit_global_family(hf_vit_dir) -> Family:
    return make_family("vit_global", str(hf_vit_dir),
                       dict(pruning_ratio=0.5, pruning_steps=2, round_to=1, global_pruning=True))


@pytest.fixture(scope="session")
def timm_vit_family() -> Family:
    return make_family("timm_vit", "vit_tiny_patch16_224",
                       dict(pruning_ratio=0.5, pruning_steps=2, round_to=8, head_pruning="head_dims"),
                       model_args=TIMM_VIT_ARGS)


@pytest.fixture(scope="session")
def resnet_family() -> Family:
    """timm resnet18 at 64 px, round_to 1 (widths are exactly int(size * keep))."""
    return make_family("resnet", "resnet18", dict(pruning_ratio=0.5, pruning_steps=2, round_to=1),
                       image_size=64, input_size=64)


@pytest.fixture(scope="session")
def tv_resnet_family() -> Family:
    return make_family("tv_resnet", "torchvision:resnet18", dict(pruning_ratio=0.5, pruning_steps=2, round_to=8),
                       image_size=32, input_size=32)


@pytest.fixture(scope="session")
def vgg_family() -> Family:
    return make_family("vgg", "vgg11", dict(pruning_ratio=0.5, pruning_steps=1, round_to=8),
                       model_args=VGG_ARGS, image_size=32, input_size=32)


ALL_FAMILIES = [
    "vit_family",
    "vit12_heads_family",
    "vit12_dims_family",
    "deit_family",
    "vit_global_family",
    "timm_vit_family",
    "resnet_family",
    "tv_resnet_family",
    "vgg_family",
]


# -- extracted and saved levels -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def extracted():
    """``extracted(family, level)``: the level as a standalone module (memoised: extract once per session)."""
    from elastoformer_hf.pruning.replay import extract_level

    cache = {}

    def get(family: Family, level: int):
        key = (family.key, level)
        if key not in cache:
            cache[key] = extract_level(family.model, family.plan, level)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def saved_level(tmp_path_factory, extracted):
    """``saved_level(family, level)``: a ``dn{level}`` folder written by save_descendant (memoised, read-only:
    tests that damage a folder copy it first)."""
    from elastoformer_hf.descendant import save_descendant

    root = tmp_path_factory.mktemp("saved")
    cache = {}

    def get(family: Family, level: int) -> Path:
        key = (family.key, level)
        if key not in cache:
            lm = family.lm
            cache[key] = save_descendant(
                extracted(family, level),
                root / family.key / f"dn{level}",
                spec=lm.spec,
                level_info={"level": level, "num_levels": family.plan.num_levels},
                label_names=lm.label_names,
                data_config=lm.data_config,
                image_processor=lm.image_processor,
            )
        return cache[key]

    return get


def logits_of(model, x: torch.Tensor) -> torch.Tensor:
    """Logits of any model the tests meet (HF ModelOutput, timm/torchvision tensor, Elastoformer wrapper)."""
    with torch.no_grad():
        out = model(x)
    if isinstance(out, torch.Tensor):
        return out
    if getattr(out, "logits", None) is not None:
        return out.logits
    return out[0]


@pytest.fixture(scope="session")
def logits():
    return logits_of
