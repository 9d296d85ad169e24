"""transformers Swin (``SwinForImageClassification``): refused, with the reason and what to use instead."""

from __future__ import annotations

from .base import refuse_architecture

refuse_architecture(
    "SwinForImageClassification",
    "torch-pruning's dependency graph maps its channels wrongly through the window-partition reshapes (one pruned "
    "channel becomes two, and its levels fail with a LayerNorm size mismatch); prune timm's Swin instead "
    "(swin_* names, e.g. swin_tiny_patch4_window7_224: adapter timm-swin)",
)
