"""What transformers' and timm's ViTs have in common: dimension names and attention matmul MACs."""

from __future__ import annotations

import re

from torch import nn

from .base import ArchitectureAdapter


class ViTAdapterBase(ArchitectureAdapter):
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

    def attention_macs(self, model: nn.Module) -> int:
        tokens = self.num_tokens(model)
        # QK^T and (softmax) V: each tokens x tokens x (heads * head_dim) multiply-accumulates.
        return sum(2 * tokens * tokens * heads * dim for heads, dim in self.attention_modules(model).values())
