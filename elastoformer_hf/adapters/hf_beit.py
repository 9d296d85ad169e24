"""transformers BEiT (``BeitForImageClassification``): a ViT with layer scale (``lambda_1``/``lambda_2``, one
factor per hidden channel), relative position bias tables (per layer or shared, one column per head) and, in the
ImageNet checkpoints, mean pooling with a pooler LayerNorm."""

from __future__ import annotations

import re

from torch import nn

from ..errors import UnsupportedModelError
from .base import register_adapter, select_along
from .hf_vit import HFViTAdapter


@register_adapter
class HFBeitAdapter(HFViTAdapter):
    name = "transformers-beit"
    description = "transformers BeitForImageClassification"
    _attention_root = re.compile(r"beit\.layers\.(\d+)\.attention\.o_proj")
    _mlp_root = re.compile(r"beit\.layers\.(\d+)\.mlp\.fc1")

    model_classes = (("transformers", "BeitForImageClassification"),)

    def _backbone_name(self, model) -> str:
        return "beit"

    def classifier_layers(self, model):
        return [model.classifier] if isinstance(model.classifier, nn.Linear) else []

    def relative_position_tables(self, model) -> dict[str, nn.Parameter]:
        """``{attention module: its relative position bias table (distances x heads)}``; a shared table is every
        layer's."""
        backbone = self._backbone(model)
        shared = backbone.shared_position_bias
        tables = {}
        for (name, _), layer in zip(self._attentions(model), self._layers(model)):
            owner = layer.relative_position_bias or shared
            if owner is not None:
                tables[name] = owner.relative_position_bias_table
        return tables

    def unwrapped_parameters(self, model):
        params = super().unwrapped_parameters(model)
        # layer scale: one factor per hidden channel (a float 1.0, not a parameter, when layer_scale_init_value=0)
        for layer in self._layers(model):
            params += [(p, 0) for p in (layer.lambda_1, layer.lambda_2) if isinstance(p, nn.Parameter)]
        # named so that torch-pruning does not guess a dimension for them; untraced, they join no group
        return params + [(t, 1) for t in self.untraced_parameters(model)]

    def num_tokens(self, model):
        return self._backbone(model).embeddings.patch_embeddings.num_patches + 1

    def untraced_parameters(self, model):
        return list({id(t): t for t in self.relative_position_tables(model).values()}.values())

    def whole_heads_supported(self, model):
        # one table shared by all layers cannot keep other heads in every layer
        return self._backbone(model).shared_position_bias is None

    def select_untraced(self, model, kept, kept_heads):
        super().select_untraced(model, kept, kept_heads)
        # The tables are indexed by head (one column each), which torch-pruning's graph cannot follow: their
        # columns follow the heads the attention kept.
        shared = self._backbone(model).shared_position_bias
        for (name, _), layer in zip(self._attentions(model), self._layers(model)):
            owner = layer.relative_position_bias or shared
            if owner is None or name not in kept_heads:
                continue
            if owner is shared and len(kept_heads[name]) != owner.relative_position_bias_table.shape[1]:
                raise UnsupportedModelError(
                    "whole-head pruning (head_pruning heads) cannot prune BEiT's relative position bias table shared "
                    "by all layers (use_shared_relative_position_bias): each layer keeps other heads; plan with "
                    "head_pruning head_dims or auto (head dims are pruned instead)")
            if owner is not shared:
                select_along(owner, "relative_position_bias_table", 1, kept_heads[name])
