"""The default ``round_to``: widths that the target hardware's kernels like, per architecture and device profile.

A pruned width that is not a multiple of the kernel's vector/tile width runs at a lower rate per MAC, so a level
can be slower than its MACs promise (issue #6). ``PruningConfig(round_to=None)`` ("auto") asks for the multiple in
:data:`PREFERRED_ROUND_TO`; :func:`resolve_round_to` lowers it, in powers of two, until every dimension keeps at
least one multiple at the core level (a tiny test model with 16-wide heads cannot take 64), so auto never fails
where an explicit value would be rejected. Explicit values are used exactly as given.

How the table was chosen (AMD EPYC, AVX2, torch 2.14 CPU, batch 1, one torch thread, the thread's CPU time so that
the shared machine's load stays out; ``benchmarks/latency_vs_flops.py --threads 1 --clock cpu``; efficiency =
measured speedup / (1 / MACs ratio), DN1 .. DN5):

- DeiT-B shape, CR 0.6, 5 steps: round_to 1 (head dims 25, 33, ...) 0.72 0.72 0.80 0.86 0.89; round_to 8
  0.76 0.85 0.91 0.96 1.00; round_to 16 (the core's heads cut to 16 dims) 0.77 0.85 0.89 0.94 0.98. 8 is as good
  as 16 at every level and keeps the core's 24 dims per head (16 keeps 16); 32 does not fit (25 dims per head).
- ResNet-50, CR 0.5, 5 steps: round_to 1 0.79 0.82 0.87 0.92 0.95; 8 0.80 0.85 0.88 0.92 0.96; 16 0.81 0.83 0.88
  0.94 0.96 (an earlier run under twice the load, with 32 too: all four within 0.03 of each other at every
  level). oneDNN takes most channel counts at about the same rate; 8 keeps the most channels of the aligned
  choices. VGG is not measured: it runs the same oneDNN convolutions, so it takes ResNet's value.
- Op micro-benchmarks, same machine: ``nn.Linear`` (MKL sgemm, 197 tokens) runs 10-17% slower per MAC at widths
  that are not multiples of 8 (197x307->307: 38.8 GMAC/s, 304->304: 43.6; 1228->307: 33.9, 1224->304: 41.0) and
  gains nothing from 16, 32 or 64 (320: 43.7, 256: 43.0 GMAC/s); ``scaled_dot_product_attention`` (12 heads x
  197 tokens) costs 15% more at odd head dims than at the multiple of 8 below (d 25: 1.31 ms, d 24: 1.14; d 33:
  1.46, d 32: 1.29), and d 8 is slower than d 16 (1.18 vs 0.88 ms).

torch-pruning rounds the per-head width too (each head keeps a multiple of ``round_to`` dims), which is what the
attention kernel wants; it also means a ViT's ``round_to`` can never exceed its core head dim.

What rounding cannot fix, and why the narrowest levels stay below 0.85 of ideal at batch 1 on a CPU: MACs shrink
with the square of the kept fraction but LayerNorm, GELU, BatchNorm, ReLU, residual adds, copies and the stem
(3 input channels) shrink linearly, and the attention softmax (heads x tokens^2) not at all while the heads are
kept (DeiT-B: scaled_dot_product_attention is 6% of the dense forward and 16% of the round_to 8 core's;
whole-head pruning, ``prune_heads``, brings it to 12% and DN1..DN5 to 0.79 0.89 0.93 0.94 1.00). On ResNet-50 at one thread PyTorch also sends 1x1 convolutions and small batch-1 inputs
(<= 20480 elements) to its im2col path instead of oneDNN, and more convolutions fall under that bound as widths
shrink (33 -> 35 of 53).

GPU profiles are not measured here (no GPU in the session that wrote this); they follow NVIDIA's documented
Tensor Core alignment (FP16/BF16 GEMM and cuDNN convolution dimensions in multiples of 8, TF32 multiples of 4;
"Deep Learning Performance Guide", matrix multiplication background). ``benchmarks/latency_vs_flops.py --device
cuda`` measures them on a GPU machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ElastoformerError

if TYPE_CHECKING:  # pragma: no cover
    from .config import PruningConfig
    from .record import Dimension

DEVICE_PROFILES = ("cpu", "cuda", "jetson")

#: architecture family -> device profile -> preferred multiple (see the module docstring for the measurements)
PREFERRED_ROUND_TO: dict[str, dict[str, int]] = {
    "vit": {"cpu": 8, "cuda": 8, "jetson": 8},
    "resnet": {"cpu": 8, "cuda": 8, "jetson": 8},
    "vgg": {"cpu": 8, "cuda": 8, "jetson": 8},
}
#: for an adapter outside the table: the rounding every release before auto used
FALLBACK_ROUND_TO = 8


def architecture_family(adapter_name: str) -> str:
    """``transformers-vit`` / ``timm-vit`` -> ``vit``, ``timm-resnet`` / ``torchvision-resnet`` -> ``resnet`` ..."""
    return adapter_name.rsplit("-", 1)[-1]


def preferred_round_to(adapter_name: str, profile: str = "cpu") -> int:
    """The multiple auto aims at for this architecture and device profile (before fitting the model)."""
    if profile not in DEVICE_PROFILES:
        raise ElastoformerError(f"unknown round_to_profile {profile!r}; accepted: {', '.join(DEVICE_PROFILES)}")
    return PREFERRED_ROUND_TO.get(architecture_family(adapter_name), {}).get(profile, FALLBACK_ROUND_TO)


def core_widths(config: PruningConfig, dims: dict[str, Dimension]) -> dict[str, int]:
    """Channels each rounded dimension keeps at the core level before rounding (per head for head dims)."""
    keep = config.keep_fraction(1)
    return {
        name: int(dim.group_size * keep)
        for name, dim in dims.items()
        if not (dim.kind == "attention" and config.prune_heads)  # whole heads go; the head width is not rounded
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
