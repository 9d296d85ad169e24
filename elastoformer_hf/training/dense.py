"""``DenseTrainer``: fine-tune one model as it is (no pruning), whatever library built it.

transformers models compute their own loss from ``labels``; timm and torchvision models take only pixels. This
subclass overrides one narrow hook, ``compute_loss``: cross-entropy (with label smoothing, or on soft Mixup/CutMix
targets) on the logits the architecture adapter reads from any model's output. The recipes use it to fine-tune a
pre-trained model into the dense parent a family is cut from (``--parent_finetune``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Trainer

from ..adapters import get_adapter


class DenseTrainer(Trainer):
    """A ``transformers.Trainer`` for any image classifier the adapters know.

    Args:
        label_smoothing (`float`, *optional*, defaults to 0.0): label smoothing of the training loss (hard labels).
        *args, **kwargs: ``transformers.Trainer``'s arguments.
    """

    def __init__(self, *args, label_smoothing: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.adapter = get_adapter(self.model)
        self.label_smoothing = label_smoothing
        self.model_accepts_loss_kwargs = False  # compute_loss returns a batch mean

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        logits = self.adapter.forward_logits(model, inputs["pixel_values"])
        if labels.is_floating_point():  # Mixup/CutMix soft targets
            loss = torch.sum(-labels * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        else:
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing if model.training else 0.0)
        return (loss, {"logits": logits}) if return_outputs else loss
