"""Architecture adapters: what the engine needs to know about one architecture, in a registry keyed by name.

Importing this package registers the built-in adapters (one module per architecture); add your own with
:func:`register_adapter`.
"""

# registration side effect (hf_swin: a refusal, with its reason)
from . import cnn, generic, hf_beit, hf_dinov2, hf_swin, hf_vit, timm_swin, timm_vit  # noqa: F401
from .base import (
           KINDS,
           ArchitectureAdapter,
           adapter_class,
           get_adapter,
           refuse_architecture,
           register_adapter,
           registered_adapters,
)

__all__ = ["KINDS", "ArchitectureAdapter", "adapter_class", "get_adapter", "refuse_architecture", "register_adapter",
           "registered_adapters"]
