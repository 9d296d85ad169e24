"""timm SwinTransformer (``swin_*``): window attention with a relative position bias table per block (one column
per head), and stages joined by ``PatchMerging`` (2x2 neighbours concatenated, then reduced)."""

from __future__ import annotations

import re

from torch import nn

from .base import register_adapter, select_along
from .vit_common import TimmViTAdapterBase


@register_adapter
class TimmSwinAdapter(TimmViTAdapterBase):
    name = "timm-swin"
    description = "timm SwinTransformer (swin_*)"
    _attention_root = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.attn\.proj")
    _mlp_root = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1")

    model_classes = (("timm.models.swin_transformer", "SwinTransformer"),)

    def classifier_layers(self, model):
        return [model.head.fc] if isinstance(model.head.fc, nn.Linear) else []

    def _blocks(self, model):
        for s, stage in enumerate(model.layers):
            for b, block in enumerate(stage.blocks):
                yield f"layers.{s}.blocks.{b}", stage, block

    def _attentions(self, model):
        for name, _, block in self._blocks(model):
            yield f"{name}.attn", block.attn

    def dim_name(self, root: str, axis: str) -> str:
        for pattern, kind in ((self._attention_root, "attention"), (self._mlp_root, "mlp")):
            match = pattern.fullmatch(root)
            if match:
                return f"layers.{match.group(1)}.blocks.{match.group(2)}.{kind}"
        # one residual width per stage (the patch embedding's, then each patch merging's)
        stage = re.match(r"layers\.(\d+)\.", root)
        return f"layers.{stage.group(1) if stage else 0}.hidden"

    def patch_merging(self, model):
        from timm.models.swin_transformer import PatchMerging

        return [m for m in model.modules() if isinstance(m, PatchMerging)]

    def untraced_parameters(self, model):
        return [attn.relative_position_bias_table for _, attn in self._attentions(model)]

    def unwrapped_parameters(self, model):
        params = [(p, p.dim() - 1) for p in (getattr(model, "absolute_pos_embed", None),)
                  if isinstance(p, nn.Parameter)]
        # named so that torch-pruning does not guess a dimension for them; untraced, they join no group
        return params + [(t, 1) for t in self.untraced_parameters(model)]

    def select_untraced(self, model, kept, kept_heads):
        # the tables are indexed by head (one column each), which torch-pruning's graph cannot follow
        for name, attn in self._attentions(model):
            if name in kept_heads:
                select_along(attn, "relative_position_bias_table", 1, kept_heads[name])

    def attention_modules(self, model):
        return {name: (attn.num_heads, attn.qkv.out_features // 3 // attn.num_heads)
                for name, attn in self._attentions(model)}

    def attention_macs(self, model):
        # QK^T and AV inside every window: tokens x window area x (heads * head_dim), twice
        macs = 0
        for _, stage, block in self._blocks(model):
            tokens = stage.output_resolution[0] * stage.output_resolution[1]
            macs += 2 * tokens * block.attn.window_area * (block.attn.qkv.out_features // 3)
        return macs

    def _set_explicit_attention(self, model, explicit):
        attentions = [attn for _, attn in self._attentions(model)]
        previous = [attn.fused_attn for attn in attentions]
        for attn, fused in zip(attentions, [False] * len(attentions) if explicit is True else explicit):
            attn.fused_attn = fused
        return previous

    def finalize(self, model, heads: dict[str, int] | None = None) -> None:
        heads = heads or {}
        for name, attn in self._attentions(model):
            attn.num_heads = heads.get(name, attn.num_heads)
            attn.scale = (attn.qkv.out_features // 3 // attn.num_heads) ** -0.5
        for module in self.patch_merging(model):
            module.dim, module.out_dim = module.reduction.in_features // 4, module.reduction.out_features
        model.num_features = model.head_hidden_size = model.head.fc.in_features

    def structure(self, model):
        blocks = [(b.attn.num_heads, b.attn.qkv.out_features // 3 // b.attn.num_heads, b.mlp.fc1.out_features)
                  for _, _, b in self._blocks(model)]
        widths = [model.patch_embed.proj.out_channels] + [m.reduction.out_features for m in self.patch_merging(model)]
        return {"hidden_size": widths, "uniform": False,
                "layers": [{"heads": h, "head_dim": d, "mlp": m} for h, d, m in blocks]}

    def stock_model_args(self, model):
        return {}  # timm's arguments express the base widths only: the dense level (the caller compares shapes)

    def residual_branches(self, model):
        # SwinTransformerBlock: x = x + drop_path1(attn(...)); x = x + drop_path2(mlp(...))
        return [[block.drop_path1, block.drop_path2] for _, _, block in self._blocks(model)]
