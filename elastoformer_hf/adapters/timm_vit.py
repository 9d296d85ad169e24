"""timm VisionTransformer (ViT, DeiT, distilled DeiT with its ``head_dist``)."""

from __future__ import annotations

import re

from torch import nn

from ..errors import UnsupportedModelError
from .base import register_adapter
from .vit_common import TimmViTAdapterBase


@register_adapter
class TimmViTAdapter(TimmViTAdapterBase):
    name = "timm-vit"
    description = "timm VisionTransformer (vit_*, deit_*)"
    _attention_root = re.compile(r"blocks\.(\d+)\.attn\.proj")
    _mlp_root = re.compile(r"blocks\.(\d+)\.mlp\.fc1")

    model_classes = (("timm.models.vision_transformer", "VisionTransformer"),)

    def classifier_layers(self, model):
        return [m for m in (model.head, getattr(model, "head_dist", None)) if isinstance(m, nn.Linear)]

    def _attentions(self, model):
        for i, block in enumerate(model.blocks):
            yield f"blocks.{i}.attn", block.attn

    def unwrapped_parameters(self, model):
        params = [getattr(model, n, None) for n in ("cls_token", "dist_token", "reg_token", "pos_embed")]
        return [(p, p.dim() - 1) for p in params if isinstance(p, nn.Parameter)]

    def attention_modules(self, model):
        return {name: (attn.num_heads, attn.head_dim) for name, attn in self._attentions(model)}

    def num_tokens(self, model):
        return model.patch_embed.num_patches + model.num_prefix_tokens

    def _set_explicit_attention(self, model, explicit):
        # timm's Attention picks F.scaled_dot_product_attention when fused_attn is set (attention classes without
        # the switch are left as they are)
        attentions = [attn for _, attn in self._attentions(model) if hasattr(attn, "fused_attn")]
        previous = [attn.fused_attn for attn in attentions]
        for attn, fused in zip(attentions, [False] * len(attentions) if explicit is True else explicit):
            attn.fused_attn = fused
        return previous

    def finalize(self, model, heads: dict[str, int] | None = None) -> None:
        heads = heads or {}
        for name, attn in self._attentions(model):
            num_heads = heads.get(name, attn.num_heads)
            width = attn.qkv.out_features // 3
            attn.num_heads = num_heads
            attn.head_dim = width // num_heads
            attn.attn_dim = width
            attn.scale = attn.head_dim**-0.5
        model.embed_dim = model.num_features = model.head_hidden_size = model.patch_embed.proj.out_channels

    def structure(self, model):
        layers = [(b.attn.num_heads, b.attn.head_dim, b.mlp.fc1.out_features) for b in model.blocks]
        summary = {"hidden_size": model.patch_embed.proj.out_channels, "uniform": len(set(layers)) == 1}
        if summary["uniform"]:
            heads, head_dim, mlp = layers[0]
            summary.update(num_attention_heads=heads, head_dim=head_dim, intermediate_size=mlp)
        else:
            summary["layers"] = [{"heads": h, "head_dim": d, "mlp": m} for h, d, m in layers]
        return summary

    def residual_branches(self, model):
        # Every timm ViT block ends each residual branch with its own drop path module (nn.Identity when built
        # with drop_path_rate=0): Block/ResPostBlock drop_path1/drop_path2, ParallelScalingBlock drop_path,
        # ParallelThingsBlock attns.i.drop_path/ffns.i.drop_path. Their output is the branch before the add.
        branches = []
        for i, block in enumerate(model.blocks):
            found = [m for n, m in block.named_modules() if re.fullmatch(r"(?:.*\.)?drop_path\d*", n)]
            if not found:
                raise UnsupportedModelError(f"blocks.{i} ({type(block).__name__}) has no drop_path module")
            branches.append(found)
        return branches
