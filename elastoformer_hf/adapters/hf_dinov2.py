"""transformers DINOv2 (``Dinov2ForImageClassification``): a ViT with layer scale (``Dinov2LayerScale.lambda1``) and
a classifier that reads ``concat(CLS token, mean of the patch tokens)``, two copies of the hidden width."""

from __future__ import annotations

import re

from torch import nn

from .base import register_adapter
from .hf_vit import HFViTAdapter


@register_adapter
class HFDinov2Adapter(HFViTAdapter):
    name = "transformers-dinov2"
    description = "transformers Dinov2ForImageClassification"
    _attention_root = re.compile(r"dinov2\.encoder\.layer\.(\d+)\.attention\.o_proj")
    _mlp_root = re.compile(r"dinov2\.encoder\.layer\.(\d+)\.mlp\.(?:fc1|gate_proj|up_proj)")

    model_classes = (("transformers", "Dinov2ForImageClassification"),)

    def _backbone_name(self, model) -> str:
        return "dinov2"

    def _layers_name(self, model) -> str:
        return "dinov2.encoder.layer"

    def _mlp_width(self, layer) -> int:
        mlp = layer.mlp
        return mlp.fc1.out_features if hasattr(mlp, "fc1") else mlp.gate_proj.out_features

    def classifier_layers(self, model):
        return [model.classifier] if isinstance(model.classifier, nn.Linear) else []

    def concat_inputs(self, model):
        return {model.classifier: 2} if isinstance(model.classifier, nn.Linear) else {}

    def unwrapped_parameters(self, model):
        layer_scales = [(layer.layer_scale1.lambda1, 0) for layer in self._layers(model)]
        layer_scales += [(layer.layer_scale2.lambda1, 0) for layer in self._layers(model)]
        return super().unwrapped_parameters(model) + layer_scales

    def _mlp_ratio(self, model, hidden: int, mlp: int) -> int | None:
        """The ``mlp_ratio`` (an integer) for which Dinov2Config builds an MLP of ``mlp`` channels (its config has
        no intermediate size), or None: such a level is saved in the elastoformer form (so is a SwiGLU MLP, whose
        width Dinov2Config rounds)."""
        if getattr(model.config, "use_swiglu_ffn", False) or mlp % hidden:
            return None
        return mlp // hidden

    def structure(self, model):
        summary = super().structure(model)
        if summary.get("uniform") and self._mlp_ratio(model, summary["hidden_size"],
                                                      summary["intermediate_size"]) is None:
            summary["uniform"] = False  # no stock config has these widths (the dense level still saves as stock)
        return summary

    def finalize(self, model, heads=None):
        super().finalize(model, heads)
        summary = self.structure(model)
        if summary.get("uniform"):
            model.config.mlp_ratio = self._mlp_ratio(model, summary["hidden_size"], summary["intermediate_size"])
            if hasattr(model.config, "intermediate_size"):  # ViT's finalize wrote it; Dinov2Config has none
                del model.config.intermediate_size
