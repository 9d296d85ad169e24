"""transformers BEiT (``BeitForImageClassification``): a ViT with layer scale (``lambda_1``/``lambda_2``, one
factor per hidden channel), relative position bias tables (per layer or shared, one column per head) and, in the
ImageNet checkpoints, mean pooling with a pooler LayerNorm."""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .base import register_adapter
from .hf_vit import HFViTAdapter


@register_adapter
class HFBeitAdapter(HFViTAdapter):
    name = "transformers-beit"
    description = "transformers BeitForImageClassification"
    _attention_root = re.compile(r"beit\.layers\.(\d+)\.attention\.o_proj")
    _mlp_root = re.compile(r"beit\.layers\.(\d+)\.mlp\.fc1")

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        from transformers import BeitForImageClassification

        return isinstance(model, BeitForImageClassification)

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

    def select_heads(self, model, kept_heads):
        # The tables are indexed by head (one column each), which torch-pruning's graph cannot follow: their
        # columns are selected here, by the heads the attention kept. ``elastic_heads`` on the table's module
        # records which original heads its columns hold (planning prunes step by step).
        shared = self._backbone(model).shared_position_bias
        for (name, _), layer in zip(self._attentions(model), self._layers(model)):
            owner = layer.relative_position_bias or shared
            if owner is None or name not in kept_heads:
                continue
            table = owner.relative_position_bias_table
            held = list(getattr(owner, "elastic_heads", range(table.shape[1])))
            keep = list(kept_heads[name])
            if keep == held:
                continue
            if owner is shared:
                raise UnsupportedModelError(
                    "whole-head pruning (prune_heads) cannot prune BEiT's relative position bias table shared by all "
                    "layers (use_shared_relative_position_bias): each layer keeps other heads; plan without "
                    "prune_heads (head dims are pruned instead)")
            columns = torch.tensor([held.index(h) for h in keep], device=table.device)
            table.data = table.data.index_select(1, columns).clone()
            owner.elastic_heads = keep
