"""The installed version of elastoformer-hf (recorded in plans, family configs and device records), and the oldest
transformers that opens its levels."""

__version__ = "0.1.0"

#: the oldest transformers that loads a pruned ViT/DeiT level (it reads the decoupled ``head_dim`` of the config;
#: 5.8 computes ``hidden_size / num_attention_heads`` and cannot load one). Equal to the floor of ``transformers``
#: in pyproject.toml (tests/test_floors.py checks it); level cards print it in their usage section.
TRANSFORMERS_MIN_VERSION = "5.9.0"
