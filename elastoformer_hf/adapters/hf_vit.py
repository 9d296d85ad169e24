"""transformers ViT / DeiT (``*ForImageClassification``, including the distilled DeiT with two heads)."""

from __future__ import annotations

import re
import sys

import torch
from torch import nn

from .base import register_adapter, select_along
from .vit_common import ViTAdapterBase

#: The attention implementation ONNX export traces: the model's own eager (matmul-softmax-matmul) attention, and no
#: attention bias when the model is called without a padding mask. Registered with transformers' public
#: ``AttentionInterface`` / ``AttentionMaskInterface`` (the documented way to add an implementation) on first use.
EXPORT_ATTENTION = "elastoformer_export"


def _export_attention(module: nn.Module, *args, **kwargs):
    # transformers keeps one eager_attention_forward per model file (ViT's and DeiT's are the same code): call
    # the one of the file that defines this attention module, so the traced maths is exactly "eager".
    return sys.modules[type(module).__module__].eager_attention_forward(module, *args, **kwargs)


def _export_mask(*args, attention_mask: torch.Tensor | None = None, **kwargs):
    """``eager_mask``, except that no padding mask means no bias. While torch.export traces, transformers cannot
    skip the bias (it cannot tell that the mask stays None at run time) and materialises an all-zero
    (batch, 1, tokens, tokens) tensor that every layer adds to its scores. The graph has no mask input, so that
    work only costs time (``benchmarks/onnx_variants.py``: eager@20 against explicit@20)."""
    from transformers.masking_utils import eager_mask

    if attention_mask is None:
        return None
    return eager_mask(*args, attention_mask=attention_mask, **kwargs)


def _register_export_attention() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register(EXPORT_ATTENTION, _export_attention)  # idempotent
    AttentionMaskInterface.register(EXPORT_ATTENTION, _export_mask)


@register_adapter
class HFViTAdapter(ViTAdapterBase):
    name = "transformers-vit"
    description = (
        "transformers ViTForImageClassification / DeiTForImageClassification / "
        "DeiTForImageClassificationWithTeacher"
    )
    source = "transformers"
    _attention_root = re.compile(r"(?:vit|deit)\.layers\.(\d+)\.attention\.o_proj")
    _mlp_root = re.compile(r"(?:vit|deit)\.layers\.(\d+)\.mlp\.fc1")

    model_classes = (("transformers", "ViTForImageClassification"), ("transformers", "DeiTForImageClassification"),
                     ("transformers", "DeiTForImageClassificationWithTeacher"))

    def image_size(self, model):
        size = model.config.image_size
        return size if isinstance(size, int) else size[0]

    def in_channels(self, model):
        return model.config.num_channels

    def classifier_layers(self, model):
        names = ("classifier", "cls_classifier", "distillation_classifier")
        return [getattr(model, n) for n in names if isinstance(getattr(model, n, None), nn.Linear)]

    # -- where things are (subclasses of other transformers encoders override these) ---------------------------
    def _backbone_name(self, model) -> str:
        return "vit" if hasattr(model, "vit") else "deit"

    def _backbone(self, model) -> nn.Module:
        return getattr(model, self._backbone_name(model))

    def _layers_name(self, model) -> str:
        """The encoder layers' module list, relative to the model."""
        return f"{self._backbone_name(model)}.layers"

    def _layers(self, model) -> nn.ModuleList:
        return model.get_submodule(self._layers_name(model))

    def _attentions(self, model):
        prefix = self._layers_name(model)
        for i, layer in enumerate(self._layers(model)):
            yield f"{prefix}.{i}.attention", layer.attention

    def _mlp_width(self, layer) -> int:
        return layer.mlp.fc1.out_features

    def num_heads(self, model):
        heads = {}
        for _, attn in self._attentions(model):
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
                heads[proj] = attn.num_attention_heads
        return heads

    def unwrapped_parameters(self, model):
        emb = self._backbone(model).embeddings
        params = [emb.cls_token, emb.position_embeddings, getattr(emb, "distillation_token", None)]
        # mask_token exists only when the model is built for masked image modelling; it is the width of the
        # residual stream too.
        params.append(getattr(emb, "mask_token", None))
        return [(p, p.dim() - 1) for p in params if isinstance(p, nn.Parameter)]

    def select_untraced(self, model, kept, kept_heads):
        # the mask token (masked image modelling only) never takes part in a classification forward: it is not
        # traced, and follows the residual stream's width here
        embeddings = self._backbone(model).embeddings
        if isinstance(getattr(embeddings, "mask_token", None), nn.Parameter) and "hidden" in kept:
            select_along(embeddings, "mask_token", embeddings.mask_token.dim() - 1, kept["hidden"])

    def attention_modules(self, model):
        return {name: (attn.num_attention_heads, attn.head_dim) for name, attn in self._attentions(model)}

    def num_tokens(self, model):
        return self._backbone(model).embeddings.position_embeddings.shape[1]

    def _set_explicit_attention(self, model, explicit):
        previous = model.config._attn_implementation
        if explicit is True:
            _register_export_attention()
            model.set_attn_implementation(EXPORT_ATTENTION)
        elif explicit != previous:
            model.set_attn_implementation(explicit)
        return previous

    def finalize(self, model, heads: dict[str, int] | None = None) -> None:
        heads = heads or {}
        for name, attn in self._attentions(model):
            num_heads = heads.get(name, attn.num_attention_heads)
            width = attn.q_proj.out_features
            if width % num_heads:
                raise ValueError(f"{name}: width {width} is not a multiple of {num_heads} heads")
            attn.num_attention_heads = num_heads
            attn.head_dim = width // num_heads
            attn.scaling = attn.head_dim**-0.5
        structure = self.structure(model)
        if structure.get("uniform"):
            config = model.config
            config.hidden_size = structure["hidden_size"]
            config.num_attention_heads = structure["num_attention_heads"]
            config.head_dim = structure["head_dim"]
            config.intermediate_size = structure["intermediate_size"]
            if hasattr(config, "pooler_output_size"):
                config.pooler_output_size = structure["hidden_size"]

    def structure(self, model):
        hidden = self._backbone(model).embeddings.patch_embeddings.projection.out_channels
        layers = [
            (layer.attention.num_attention_heads, layer.attention.head_dim, self._mlp_width(layer))
            for layer in self._layers(model)
        ]
        uniform = len(set(layers)) == 1
        summary = {"hidden_size": hidden, "uniform": uniform}
        if uniform:
            heads, head_dim, mlp = layers[0]
            summary.update(num_attention_heads=heads, head_dim=head_dim, intermediate_size=mlp)
        else:
            summary["layers"] = [{"heads": h, "head_dim": d, "mlp": m} for h, d, m in layers]
        return summary

    def label_names(self, model):
        id2label = getattr(model.config, "id2label", None) or {}
        return [id2label[i] for i in sorted(id2label)] if id2label else None

    def forward_logits(self, model, pixel_values: torch.Tensor) -> torch.Tensor:
        return model(pixel_values=pixel_values).logits

    def residual_branches(self, model):
        # ViTLayer/DeiTLayer: h = h + dropout(attention(ln(h))[0]); h = h + dropout(mlp(ln(h))). The attention
        # module returns (output, weights): the hook scales output[0]. Dropout is elementwise, so drop path
        # before it equals drop path after it (the layer's one dropout module is shared by both branches).
        return [[layer.attention, layer.mlp] for layer in self._layers(model)]
