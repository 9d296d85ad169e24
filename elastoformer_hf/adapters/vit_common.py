"""What transformers' and timm's ViTs have in common: dimension names, attention matmul MACs, export mode."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from torch import nn

from .base import ArchitectureAdapter


class ViTAdapterBase(ArchitectureAdapter):
    kind = "vit"
    round_to_group = "vit"
    fixed_resolution = True
    #: regexes on the torch-pruning root of a dimension -> ("attention" | "mlp", layer index group)
    _attention_root: re.Pattern
    _mlp_root: re.Pattern

    def dim_kind(self, root: str, axis: str) -> str:
        if self._attention_root.fullmatch(root):
            return "attention"
        if self._mlp_root.fullmatch(root):
            return "mlp"
        return "hidden"

    def dim_name(self, root: str, axis: str) -> str:
        for pattern, kind in ((self._attention_root, "attention"), (self._mlp_root, "mlp")):
            match = pattern.fullmatch(root)
            if match:
                return f"layers.{match.group(1)}.{kind}"
        return "hidden"

    def attention_module_of(self, root: str) -> str | None:
        match = self._attention_root.fullmatch(root)
        return root.rsplit(".", 1)[0] if match else None

    def num_tokens(self, model: nn.Module) -> int:
        raise NotImplementedError

    def _set_explicit_attention(self, model: nn.Module, explicit: bool):
        """Switch attention to the plain matmul-softmax-matmul path (``explicit=True``) or back; returns what
        to pass to restore the previous setting."""
        raise NotImplementedError

    @contextlib.contextmanager
    def export_mode(self, model: nn.Module) -> Iterator[nn.Module]:
        """Traced with explicit attention rather than ``scaled_dot_product_attention``. torch's ONNX
        decomposition of SDPA adds NaN guards and slicing (IsNaN, which TensorRT 7's parser lacks, Where, Slice,
        Concat) and runs slower in ONNX Runtime (``benchmarks/onnx_variants.py``). Same logits: the equality
        check after export covers it. How each architecture switches: ``_set_explicit_attention``."""
        previous = self._set_explicit_attention(model, True)
        try:
            yield model
        finally:
            self._set_explicit_attention(model, previous)

    def attention_macs(self, model: nn.Module) -> int:
        tokens = self.num_tokens(model)
        # QK^T and (softmax) V: each tokens x tokens x (heads * head_dim) multiply-accumulates.
        return sum(2 * tokens * tokens * heads * dim for heads, dim in self.attention_modules(model).values())


class TimmViTAdapterBase(ViTAdapterBase):
    """timm's ViT-like models (VisionTransformer, SwinTransformer): resolution and channels from ``patch_embed``."""

    source = "timm"

    def image_size(self, model):
        return model.patch_embed.img_size[0]

    def in_channels(self, model):
        return model.patch_embed.proj.in_channels

    def _attentions(self, model):
        """Yields ``(name, attention module)``; every timm attention has a fused ``qkv`` and ``num_heads``."""
        raise NotImplementedError

    def num_heads(self, model):
        return {attn.qkv: attn.num_heads for _, attn in self._attentions(model)}
