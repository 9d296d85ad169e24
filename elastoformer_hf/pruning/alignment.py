"""The default ``round_to``: widths that the target hardware's kernels like, per architecture and device profile.

A pruned width that is not a multiple of the kernel's vector/tile width runs at a lower rate per MAC, so a level
can be slower than its MACs promise. ``PruningConfig(round_to=None)`` ("auto") asks for the multiple in
:data:`PREFERRED_ROUND_TO` (the row is the adapter's ``round_to_group``); :func:`resolve_round_to` lowers it, in
powers of two, until every dimension keeps at least one multiple at the core level (a tiny test model with
16-wide heads cannot take 64), so auto never fails where an explicit value would be rejected. Explicit values
are used exactly as given. torch-pruning rounds the per-head width too (each head keeps a multiple of
``round_to`` dims), so a ViT's ``round_to`` can never exceed its core head dim.

The measurements behind the table (CPU latency against MACs at round_to 1, 8, 16, 32 for DeiT-B and ResNet-50,
and the op micro-benchmarks) are in ``benchmarks/README.md`` ("How round_to was chosen"). GPU profiles follow
NVIDIA's documented Tensor Core alignment (FP16/BF16 GEMM and cuDNN convolution dimensions in multiples of 8).
"""

from __future__ import annotations

from ..adapters import adapter_class
from ..errors import ElastoformerError
from .config import DEVICE_PROFILES, PruningConfig
from .record import Dimension

#: adapter ``round_to_group`` -> device profile -> preferred multiple (benchmarks/README.md has the measurements)
PREFERRED_ROUND_TO: dict[str, dict[str, int]] = {
    "vit": {"cpu": 8, "cuda": 8, "jetson": 8},
    "resnet": {"cpu": 8, "cuda": 8, "jetson": 8},
    "vgg": {"cpu": 8, "cuda": 8, "jetson": 8},
}
#: for an adapter outside the table: the rounding every release before auto used
FALLBACK_ROUND_TO = 8


def round_to_group(adapter_name: str) -> str | None:
    """The table row of the adapter registered as ``adapter_name`` (``transformers-vit`` -> ``vit``,
    ``torchvision-resnet`` -> ``resnet``, ...); None for an unregistered name."""
    cls = adapter_class(adapter_name)
    return cls.round_to_group if cls is not None else None


def preferred_round_to(adapter_name: str, profile: str = "cpu") -> int:
    """The multiple auto aims at for this architecture and device profile (before fitting the model)."""
    if profile not in DEVICE_PROFILES:
        raise ElastoformerError(f"unknown round_to_profile {profile!r}; accepted: {', '.join(DEVICE_PROFILES)}")
    return PREFERRED_ROUND_TO.get(round_to_group(adapter_name) or "", {}).get(profile, FALLBACK_ROUND_TO)


def core_widths(config: PruningConfig, dims: dict[str, Dimension]) -> dict[str, int]:
    """Channels each rounded dimension keeps at the core level before rounding (per head for head dims)."""
    keep = config.keep_fraction(1)
    return {
        name: int(dim.group_size * keep)
        for name, dim in dims.items()
        if not (dim.kind == "attention" and config.whole_heads)  # whole heads go; the head width is not rounded
    }


def fit_round_to(preferred: int, widths: dict[str, int]) -> int:
    """The largest power of two <= ``preferred`` that every core width can hold at least once (1 at worst)."""
    limit = min([preferred, *widths.values()])
    value = 1
    while value * 2 <= limit:
        value *= 2
    return value


def resolve_round_to(config: PruningConfig, adapter_name: str, dims: dict[str, Dimension]) -> PruningConfig:
    """``config`` with an auto rounding replaced by the value it resolves to for this model (marked
    ``round_to_auto``); an explicit rounding comes back unchanged."""
    if not config.auto_round_to:
        return config
    preferred = preferred_round_to(adapter_name, config.round_to_profile)
    return config.with_round_to(fit_round_to(preferred, core_widths(config, dims)))
