"""Rebuild any level of a plan from a fresh copy of the base model (or any model of the dense shape, such
as a trained parent): its weights become slices of that model's weights."""

from __future__ import annotations

import copy

import torch_pruning as tp
from torch import nn

from ..adapters import get_adapter
from ..errors import ElastoformerError
from .custom import custom_layers
from .planner import kept_heads
from .record import ElasticPlan


def _check_same_architecture(model: nn.Module, plan: ElasticPlan, adapter) -> None:
    """The plan's dims could exist with the right sizes in another model (more layers, other head counts):
    the dense level's parameter count and structure pin the architecture down."""
    if adapter.fixed_resolution and adapter.image_size(model) != plan.image_size:
        raise ElastoformerError(
            f"the model runs at {adapter.image_size(model)}px but the plan was made at {plan.image_size}px"
        )
    dense = plan.levels[-1]
    params = sum(p.numel() for p in model.parameters())
    structure = adapter.structure(model)
    if params != dense.params or (dense.structure and structure != dense.structure):
        raise ElastoformerError(
            f"the model ({params} parameters, {structure}) is not the dense model this plan was made from "
            f"({dense.params} parameters, {dense.structure})"
        )


def _check_matches(model: nn.Module, plan: ElasticPlan, DG: tp.DependencyGraph) -> None:
    for dim in plan.dims.values():
        try:
            module = model.get_submodule(dim.root)
        except AttributeError:
            raise ElastoformerError(f"the model has no module {dim.root!r}: it is not the plan's base model") from None
        size = DG.get_out_channels(module) if dim.axis == "out" else DG.get_in_channels(module)
        if size != dim.size:
            raise ElastoformerError(
                f"{dim.root} has {size} {dim.axis}-channels but the plan expects {dim.size}: the model is not the "
                "dense model this plan was made from"
            )


def apply_level(model: nn.Module, plan: ElasticPlan, level: int) -> nn.Module:
    """Prune ``model`` (dense, in place) to ``level`` of ``plan`` and return it.

    Every dimension keeps the original channel indices the plan records for ``level``; the model's weights
    become slices of its dense weights.

    Args:
        model (`nn.Module`): a model of the plan's dense shape (a fresh copy of the base model, or a trained
            parent); pruned in place.
        plan (`ElasticPlan`): the plan ``model``'s architecture was planned with.
        level (`int`): the level to prune to, in ``1..plan.num_levels``.

    Returns:
        `nn.Module`: ``model`` itself, pruned.

    Raises:
        ElastoformerError: ``level`` is out of range, or ``model`` is not the dense model the plan was made
            from (another architecture, resolution, parameter count, structure or dimension size, or a
            missing module).
        CheckpointError: the level's index lists disagree with its record (:meth:`ElasticPlan.check`).
        UnsupportedModelError: no adapter supports ``model``'s architecture.
    """
    record = plan.level(level)
    plan.check(level=level)  # an index out of range or repeated would build a level narrower than its record
    adapter = get_adapter(model)
    if adapter.name != plan.architecture:
        raise ElastoformerError(f"the plan is for {plan.architecture} models, got a {adapter.name} model")
    _check_same_architecture(model, plan, adapter)
    # layers with a pruner of ours take its class while torch-pruning builds the graph and prunes
    with adapter.tracing(model), custom_layers(adapter, model) as custom:  # the graph is traced through autograd
        DG = tp.DependencyGraph().build_dependency(
            model,
            example_inputs=adapter.example_inputs(model, plan.image_size),
            output_transform=adapter.output_transform,
            unwrapped_parameters=adapter.unwrapped_parameters(model),
            customized_pruners=custom,
            verbose=False,
        )
        _check_matches(model, plan, DG)
        base_heads = adapter.attention_modules(model)
        for name, dim in plan.dims.items():
            kept = set(record.kept[name])
            removed = [i for i in range(dim.size) if i not in kept]
            if not removed:
                continue
            module = model.get_submodule(dim.root)
            pruner = DG.get_pruner_of_module(module)
            fn = pruner.prune_out_channels if dim.axis == "out" else pruner.prune_in_channels
            DG.get_pruning_group(module, fn, removed).prune(record_history=False)
    adapter.select_untraced(model, record.kept, kept_heads(plan.dims, record.kept, base_heads))
    adapter.finalize(model, record.heads)
    return model


def extract_level(parent: nn.Module, plan: ElasticPlan, level: int) -> nn.Module:
    """A standalone copy of ``level``: the parent's architecture with sliced weights.

    The parent is untouched.

    Args:
        parent (`nn.Module`): a model of the plan's dense shape; it is deep-copied, never modified.
        plan (`ElasticPlan`): the plan ``parent``'s architecture was planned with.
        level (`int`): the level to extract, in ``1..plan.num_levels``.

    Returns:
        `nn.Module`: the pruned copy, in eval mode.

    Raises:
        ElastoformerError: as :func:`apply_level` (level out of range, or not the plan's dense model).
        UnsupportedModelError: no adapter supports ``parent``'s architecture.
    """
    return apply_level(copy.deepcopy(parent), plan, level).eval()
