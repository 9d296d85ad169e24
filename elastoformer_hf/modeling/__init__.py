"""The Elastoformer config/model pair, registered with the transformers Auto classes on import."""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .configuration_elastoformer import ElastoformerConfig
from .modeling_elastoformer import ElastoformerForImageClassification

AutoConfig.register(ElastoformerConfig.model_type, ElastoformerConfig, exist_ok=True)
AutoModel.register(ElastoformerConfig, ElastoformerForImageClassification, exist_ok=True)
AutoModelForImageClassification.register(ElastoformerConfig, ElastoformerForImageClassification, exist_ok=True)
# save_pretrained then copies both files next to the weights and writes ``auto_map``, so the folder also opens
# with trust_remote_code=True where elastoformer-hf is not installed.
ElastoformerConfig.register_for_auto_class()
ElastoformerForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = ["ElastoformerConfig", "ElastoformerForImageClassification"]
