"""Training an elastic family: ElasticTrainingArguments (Trainer's arguments plus the elastic knobs) and ElasticTrainer."""

from .arguments import ElasticTrainingArguments
from .trainer import ElasticTrainer

__all__ = ["ElasticTrainer", "ElasticTrainingArguments"]
