"""A run folder whose levels nest exactly but were never trained: for tests, benchmarks and trying the runtime.

Level 1 is the plan's core with every weight perturbed; level k+1 is grown from level k with
:func:`~elastoformer_hf.nesting.grow_level` (the kept blocks of shared tensors frozen at level k's
values) and every other entry perturbed, as training would move it. The folder looks like
:class:`~elastoformer_hf.training.ElasticTrainer`'s: ``elastic_plan.json`` and ``dn{k}/`` with ``elastic_level.json``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..base_model import LoadedModel
from ..descendant import save_descendant
from ..pruning.record import ElasticPlan
from ..pruning.replay import apply_level
from ..run_folder import level_dir
from .levels import grow_level, nested_positions, original_indices


@torch.no_grad()
def _perturb(model: nn.Module, generator: torch.Generator, scale: float) -> None:
    for param in model.parameters():
        if param.requires_grad:
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None:
            module.running_mean.add_(torch.randn(module.running_mean.shape, generator=generator) * scale)
            module.running_var.mul_(1 + torch.rand(module.running_var.shape, generator=generator) * 0.5)


def nested_levels(dense: nn.Module, plan: ElasticPlan, *, seed: int = 0, scale: float = 0.02,
                  share_classifier: bool = False) -> Iterator[nn.Module]:
    """Levels 1 .. N+1, each grown from the previous one and perturbed (only one level is held at a time);
    ``share_classifier`` as in :func:`~elastoformer_hf.nesting.grow_level`."""
    generator = torch.Generator().manual_seed(seed)
    previous, previous_indices = None, None
    for k in range(1, plan.num_levels + 1):
        model = apply_level(copy.deepcopy(dense), plan, k).eval()
        indices = original_indices(dense, plan, k, model)
        frozen = None
        if previous is not None:
            frozen = grow_level(previous, model, nested_positions(previous_indices, indices),
                                share_classifier=share_classifier)
        _perturb(model, generator, scale)
        if frozen is not None:
            frozen.restore()
            frozen.remove()
        yield model
        previous, previous_indices = model, indices


def write_synthetic_run(loaded: LoadedModel, plan: ElasticPlan, out: str | os.PathLike, *,
                        accuracies: list[float] | None = None, seed: int = 0, verify: bool = True,
                        share_classifier: bool = False) -> Path:
    """Write ``plan`` and its untrained nested levels as a run folder; ``accuracies`` (one per level) become
    every level's ``eval_accuracy``. ``share_classifier``: the levels share the classifier weight (recorded in
    every ``elastic_level.json``, where the family converter reads it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan.save(out)
    levels = nested_levels(loaded.model, plan, seed=seed, share_classifier=share_classifier)
    for k, model in enumerate(levels, start=1):
        metrics = {"eval_accuracy": accuracies[k - 1]} if accuracies else {}
        save_descendant(model, level_dir(out, k), spec=loaded.spec, overwrite=True, verify=verify,
                        level_info={**plan.level(k).summary(), "num_levels": plan.num_levels, "trained": False,
                                    "model_name": plan.model_name, "metrics": metrics,
                                    "share_classifier": share_classifier},
                        label_names=loaded.label_names, data_config=loaded.data_config,
                        image_processor=loaded.image_processor)
    return out
