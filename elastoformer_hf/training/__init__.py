"""Training an elastic family: arguments, the trainer, and the nesting of level weights."""

from .arguments import ElasticTrainingArguments
from .trainer import ElasticTrainer

__all__ = ["ElasticTrainer", "ElasticTrainingArguments"]
