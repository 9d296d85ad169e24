"""Parameters, MACs (torch-pruning's convention: modules only) and FLOPs (attention matmuls included)."""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from ..adapters import ArchitectureAdapter


@torch.no_grad()
def count_costs(model: nn.Module, adapter: ArchitectureAdapter, example_inputs: torch.Tensor) -> dict[str, int]:
    """Count the costs of ``model`` on ``example_inputs``.

    The model is counted in eval mode and put back in its previous mode.

    Args:
        model (`nn.Module`): the model to count.
        adapter (`ArchitectureAdapter`): the adapter of ``model``'s architecture (it counts the attention
            matmuls).
        example_inputs (`torch.Tensor`): the input batch the costs are counted on.

    Returns:
        `dict[str, int]`: ``params``, ``macs`` (module multiply-accumulates, as published pruning tables count
        them: dense DeiT-B = 16.86 G) and ``flops`` = 2 x (module MACs + attention-matmul MACs).
    """
    was_training = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, example_inputs)
    model.train(was_training)
    attention = adapter.attention_macs(model)
    return {"params": int(params), "macs": int(macs), "flops": int(2 * (macs + attention))}
