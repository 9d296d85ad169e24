"""Architecture adapters, one module per family; importing this package registers them all."""

from . import cnn, hf_vit, timm_vit  # noqa: F401  (registration side effect)
from .base import ArchitectureAdapter, get_adapter, register_adapter, registered_adapters

__all__ = ["ArchitectureAdapter", "get_adapter", "register_adapter", "registered_adapters"]
