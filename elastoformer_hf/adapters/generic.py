"""Any attention-free image classifier of timm, torchvision or transformers (MobileNet, EfficientNet, ConvNeXt,
RegNet, ...): torch-pruning's dependency graph finds the coupled channels by itself, so the adapter only needs the
classifier (never pruned). Depthwise and grouped convolutions, squeeze-excite blocks and layer scales are handled
by torch-pruning; the group counts it changes are recorded with every saved level.

These are fallbacks: an architecture with a registered adapter of its own (ViTs, ResNet, VGG, or yours, see
:func:`~elastoformer_hf.adapters.register_adapter`) is matched by that one first. Models with attention layers are
not matched here: pruning attention needs the head structure, which only a dedicated adapter knows.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from .base import register_adapter
from .cnn import CNNAdapter


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` holds an attention layer (``nn.MultiheadAttention``, or a module whose class is named
    ``*Attention*`` or ``*Attn*``, as timm's, torchvision's and transformers' attention classes are: timm's CoaT has
    ``FactorAttnConvRelPosEnc``). Conservative: timm's CBAM gates (``ChannelAttn``) count too, so such a model is
    refused rather than pruned without its structure known."""
    return any(isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__ or "Attn" in type(m).__name__
               for m in model.modules())


def _last_linear(module: nn.Module) -> nn.Linear | None:
    found = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return found[-1] if found else None


class GenericCNNAdapter(CNNAdapter):
    """A library's attention-free classifiers: those of ``library_module`` whose classifier :meth:`classifier` finds."""

    round_to_group = "cnn"
    fallback = True
    #: where the library's model classes live (``timm.``, ``torchvision.models``, ``transformers.``)
    library_module: ClassVar[str]

    @staticmethod
    def classifier(model: nn.Module) -> nn.Module | None:
        """The layer whose output is the class logits, or None."""
        raise NotImplementedError

    @classmethod
    def matches(cls, model):
        return (type(model).__module__.startswith(cls.library_module) and cls.classifier(model) is not None
                and not has_attention(model))

    def classifier_layers(self, model):
        return [self.classifier(model)]


@register_adapter
class TimmCNNAdapter(GenericCNNAdapter):
    name = "timm-cnn"
    description = "any attention-free timm classifier (mobilenetv2/v3, efficientnet, convnext, regnet, ...)"
    source = "timm"
    library_module = "timm."

    @staticmethod
    def classifier(model):
        head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
        return head if isinstance(head, (nn.Linear, nn.Conv2d)) else None

    def stock_model_args(self, model):
        """No constructor argument: only the level of the base architecture's own widths (the full level) is a
        stock timm model (the caller checks the shapes)."""
        return {}


@register_adapter
class TorchvisionCNNAdapter(GenericCNNAdapter):
    name = "torchvision-cnn"
    description = "any attention-free torchvision classifier (mobilenet_v2/v3, efficientnet, convnext, regnet, ...)"
    source = "torchvision"
    library_module = "torchvision.models"

    @staticmethod
    def classifier(model):
        return _last_linear(model)


@register_adapter
class TransformersCNNAdapter(GenericCNNAdapter):
    name = "transformers-cnn"
    description = "any attention-free transformers *ForImageClassification (ConvNext, RegNet, MobileNetV2, ...)"
    source = "transformers"
    library_module = "transformers."

    @staticmethod
    def classifier(model):
        head = getattr(model, "classifier", None) if type(model).__name__.endswith("ForImageClassification") else None
        return _last_linear(head) if isinstance(head, (nn.Linear, nn.Sequential)) else None

    def image_size(self, model):
        size = getattr(model.config, "image_size", 224)
        return int(size if isinstance(size, int) else size[-1])

    def in_channels(self, model):
        return int(getattr(model.config, "num_channels", 3))

    def forward_logits(self, model, pixel_values):
        return model(pixel_values=pixel_values).logits
