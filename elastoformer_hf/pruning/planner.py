"""Plan an elastic family: iterative torch-pruning with every level's kept channels recorded.

torch-pruning prunes the model one linear-schedule step at a time (dense -> ... -> core); each step removes
channels from the previous step's survivors, so the index sets nest by construction. We watch the groups that
the pruner yields and translate each removal into original channel indices, which is what torch-pruning's own
history (indices relative to the then-current model) does not give.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
from collections.abc import Iterable, Iterator

import torch
import torch_pruning as tp
from torch import nn

from ..adapters import ArchitectureAdapter, get_adapter
from ..errors import ElastoformerError, SettingError, UnsupportedModelError
from ..messages import progress
from ..version import __version__
from .alignment import resolve_round_to
from .config import PruningConfig
from .costs import count_costs
from .custom import custom_layers
from .heads import heads_kept, resolve_head_pruning
from .importance import accumulate_gradients, build_importance, repeat_batches
from .record import Dimension, ElasticPlan, LevelRecord


class NestedPruner(tp.pruner.MetaPruner):
    """MetaPruner whose local head-count schedule reaches its target.

    torch-pruning 1.6.1 applies the *cumulative* head ratio of step s to the *current* head count, so 12 heads
    at ratio 0.5 in 5 steps become 12 -> 10 -> 8 -> 5 -> 3 -> 1. We return, per step, the ratio of the current
    count that lands on ``int(initial * (1 - ratio_s))`` heads (12 -> 10 -> 9 -> 8 -> 7 -> 6).

    It is built with the arguments of ``tp.pruner.MetaPruner`` (see :func:`build_pruner`).
    """

    def get_target_head_pruning_ratio(self, module) -> float:
        """The fraction of ``module``'s *current* heads to remove at this step.

        With global pruning, or for a module without a head count, this is torch-pruning's own schedule.
        Otherwise it is the ratio that, rounded up against the current count, leaves
        ``max(1, int(initial * (1 - scheduled)))`` heads.

        Args:
            module (`nn.Module`): an attention module the pruner was given a head count for.

        Returns:
            `float`: the ratio of the current head count to remove (``0.0`` when no head goes at this step).
        """
        scheduled = super().get_target_head_pruning_ratio(module)
        if self.global_pruning or module not in self.init_num_heads:
            return scheduled
        target = heads_kept(self.init_num_heads[module], scheduled)
        current = self.num_heads[module]
        remove = current - target
        # the caller takes ceil(ratio * current): (remove - 0.5) / current lands exactly on ``remove``
        return (remove - 0.5) / current if remove > 0 else 0.0


def _axis(DG: tp.DependencyGraph, handler) -> str:
    return "out" if DG.is_out_channel_pruning_fn(handler) else "in"


def build_pruner(
    model: nn.Module, adapter: ArchitectureAdapter, config: PruningConfig, example_inputs: torch.Tensor,
    customized_pruners: dict | None = None,
) -> NestedPruner:
    """The :class:`NestedPruner` that prunes ``model`` as ``config`` asks.

    Whole heads are pruned (at ``config.pruning_ratio``) when ``config.head_pruning`` is ``"heads"`` and the
    model has attention heads, head dimensions otherwise (an unresolved ``"auto"`` included: :func:`plan_levels`
    resolves it first); the adapter's classifier layers are never pruned. A
    ``config.round_to`` of 1 or less (or an auto rounding, still None) leaves the pruner unrounded:
    :func:`plan_levels` sets ``pruner.round_to`` once the dimensions are known.

    Args:
        model (`nn.Module`): the model to prune (in place, step by step).
        adapter (`ArchitectureAdapter`): the adapter of ``model``'s architecture.
        config (`PruningConfig`): criterion, ratio, steps, rounding and head settings.
        example_inputs (`torch.Tensor`): inputs the dependency graph is traced with.
        customized_pruners (`dict`, *optional*): torch-pruning pruners by layer type
            (:func:`~elastoformer_hf.pruning.custom.custom_layers`).

    Returns:
        `NestedPruner`: the pruner, with its dependency graph built.
    """
    num_heads = adapter.num_heads(model)
    head_ratio = config.pruning_ratio if config.whole_heads and num_heads else 0.0
    return NestedPruner(
        model,
        example_inputs,
        build_importance(config.pruning_type),
        global_pruning=config.global_pruning,
        pruning_ratio=config.pruning_ratio,
        iterative_steps=config.pruning_steps,
        ignored_layers=adapter.classifier_layers(model),
        # an auto rounding (None) is resolved once the dimensions are known: plan_levels sets pruner.round_to
        round_to=config.round_to if config.round_to and config.round_to > 1 else None,
        num_heads=num_heads,
        prune_num_heads=bool(head_ratio),
        prune_head_dims=not head_ratio,
        head_pruning_ratio=head_ratio,
        unwrapped_parameters=adapter.unwrapped_parameters(model),
        output_transform=adapter.output_transform,
        customized_pruners=customized_pruners,
    )


def discover_dimensions(pruner: NestedPruner, adapter: ArchitectureAdapter, model: nn.Module) -> dict[str, Dimension]:
    """Every group the pruner may prune, keyed by a readable name (same roots as ``MetaPruner._prune``).

    Args:
        pruner (`NestedPruner`): the pruner built for ``model`` (:func:`build_pruner`).
        adapter (`ArchitectureAdapter`): names each dimension and gives its kind and attention module.
        model (`nn.Module`): the model the pruner was built for.

    Returns:
        `dict[str, Dimension]`: every prunable dimension, keyed by its name.

    Raises:
        RuntimeError: two pruning groups map to the same dimension name.
    """
    DG = pruner.DG
    names = {m: n for n, m in model.named_modules()}
    dims: dict[str, Dimension] = {}
    for group in DG.get_all_groups(ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types):
        if pruner._is_atten_group(group)[0]:
            group = pruner._downstream_node_as_root_if_attention(group)
            if group is None:
                continue
        dep = group[0].dep
        module, axis = dep.target.module, _axis(DG, dep.handler)
        size = DG.get_out_channels(module) if axis == "out" else DG.get_in_channels(module)
        root = names[module]
        name = adapter.dim_name(root, axis)
        if name in dims:
            raise RuntimeError(f"two pruning groups map to the dimension name {name!r} ({dims[name].root}, {root})")
        dims[name] = Dimension(
            name=name,
            root=root,
            axis=axis,
            size=size,
            kind=adapter.dim_kind(root, axis),
            group_size=size // pruner._get_channel_groups(group),
            attention=adapter.attention_module_of(root),
        )
    return dims


def _check_round_to(config: PruningConfig, dims: dict[str, Dimension]) -> None:
    if config.round_to <= 1:
        return
    core_keep = config.keep_fraction(1)
    for dim in dims.values():
        if dim.kind == "attention" and config.whole_heads:
            continue  # whole heads go; the per-head width is not rounded
        kept = int(dim.group_size * core_keep)
        if kept < config.round_to:
            raise ElastoformerError(
                f"--round_to {config.round_to} is wider than {dim.name}"
                f"{'' if dim.name == dim.root else f' ({dim.root})'} at the core level: it keeps "
                f"{kept} of {dim.group_size} channels{' per head' if dim.kind == 'attention' else ''}; "
                f"use --round_to <= {max(kept, 1)} or a smaller --pruning_ratio"
            )


def _check_distinct(levels: list[LevelRecord], config: PruningConfig) -> None:
    """Refuse a schedule whose steps are finer than a channel (or a ``round_to`` multiple): two levels with the
    same widths are the same network, and a family holding one twice trains and stores it twice for nothing."""
    same = [(a.level, b.level) for a, b in zip(levels, levels[1:]) if a.kept == b.kept]
    if not same:
        return
    pairs = ", ".join(f"DN{a} = DN{b}" for a, b in same[:4]) + (f" and {len(same) - 4} more" if len(same) > 4 else "")
    first, second = same[0]
    unit = f"one --round_to multiple ({config.round_to} channels)" if config.round_to > 1 else "one channel"
    raise SettingError(
        f"--pruning_ratio {config.pruning_ratio} in {config.pruning_steps} --pruning_steps gives identical levels: "
        f"{pairs} keep the same channels (DN{first} and DN{second}: {levels[first - 1].macs} MACs each); every "
        f"step must remove at least {unit}: use fewer --pruning_steps or a smaller --pruning_ratio"
    )


def kept_heads(dims: dict[str, Dimension], alive: dict[str, list[int]], base_heads: dict[str, tuple[int, int]]
               ) -> dict[str, list[int]]:
    """``{attention module: original indices of the heads it keeps}``, from the kept channels of its width."""
    heads = {}
    for name, dim in dims.items():
        if dim.attention is not None and dim.attention in base_heads:
            head_dim = base_heads[dim.attention][1]
            heads[dim.attention] = sorted({i // head_dim for i in alive[name]})
    return heads


def _heads(dims: dict[str, Dimension], alive: dict[str, list[int]], base_heads: dict[str, tuple[int, int]]):
    return {name: len(kept) for name, kept in kept_heads(dims, alive, base_heads).items()}


@contextlib.contextmanager
def _graph_errors(model: nn.Module, adapter: ArchitectureAdapter, what: str) -> Iterator[None]:
    """torch-pruning failing to trace a model, or leaving one that no longer runs, as one clear line."""
    try:
        yield
    except ElastoformerError:
        raise
    except Exception as err:
        first = str(err).splitlines()[0][:200] if str(err) else ""
        raise UnsupportedModelError(
            f"torch-pruning's dependency graph cannot {what} {type(model).__name__} ({adapter.name}): "
            f"{type(err).__name__}: {first}; an architecture it does not handle needs an adapter of its own "
            "(elastoformer_hf.adapters.register_adapter)") from None


def plan_levels(
    model: nn.Module,
    config: PruningConfig,
    *,
    model_name: str = "",
    calibration: Iterable | None = None,
    image_size: int | None = None,
) -> ElasticPlan:
    """Plan the ``config.pruning_steps + 1`` nested levels of ``model`` (which is left untouched).

    A copy of ``model`` is pruned one step at a time; after every step the kept channels of each dimension
    (as indices into the dense dimension), the head counts and the costs are recorded.

    Args:
        model (`nn.Module`): the dense model; it is deep-copied, never modified.
        config (`PruningConfig`): the pruning settings; an auto ``head_pruning`` is resolved from the head
            counts (:func:`~.heads.resolve_head_pruning`), an auto ``round_to`` from the dimensions.
        model_name (`str`, *optional*, defaults to `""`): the name recorded in the plan.
        calibration (`Iterable`, *optional*): yields ``(pixel_values, labels)`` batches; it is required by the
            gradient criteria (``taylor``, ``hessian``), which use ``config.taylor_batches`` of them before
            every step.
        image_size (`int`, *optional*): the resolution of the example inputs (the costs are counted at it);
            None for the adapter's default.

    Returns:
        `ElasticPlan`: the levels in ascending order (``levels[0]`` the core, ``levels[-1]`` the dense model),
        with the resolved config and the versions of elastoformer_hf, torch-pruning and torch.

    Raises:
        ElastoformerError: a gradient criterion without ``calibration``, a calibration loader that yields no
            batches, a model without a prunable dimension, a ``round_to`` wider than a dimension keeps at the
            core level, or a schedule that gives two identical levels (steps finer than a channel).
        SettingError: ``image_size`` is not an integer >= 1.
        UnsupportedModelError: no adapter supports ``model``'s architecture.
        RuntimeError: two pruning groups map to the same dimension name.
    """
    if config.needs_gradients and calibration is None:
        raise ElastoformerError(
            f"pruning_type {config.pruning_type!r} needs gradients from data: give a calibration loader "
            "(--dataset_name/--data_path, or --calibration synthetic for a structure-only plan)"
        )
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        # 0 would silently mean "the model's own" (example_inputs reads a falsy size as unset)
        raise SettingError(f"image_size must be an integer >= 1 (or None: the model's own), got {image_size!r}")
    adapter = get_adapter(model)
    work = copy.deepcopy(model).eval()
    example = adapter.example_inputs(work, image_size)
    config = resolve_head_pruning(config, adapter.num_heads(work), adapter.whole_heads_supported(work))
    # the graph is traced through autograd; layers with a pruner of ours take their class while torch-pruning works
    with _graph_errors(model, adapter, "trace"), adapter.tracing(work), custom_layers(adapter, work) as custom:
        pruner = build_pruner(work, adapter, config, example, custom)
    dims = discover_dimensions(pruner, adapter, work)
    if not dims:
        raise ElastoformerError(f"{type(model).__name__} has no prunable dimension")
    config = resolve_round_to(config, adapter.name, dims)
    pruner.round_to = config.round_to if config.round_to > 1 else None  # MetaPruner reads it at every step
    _check_round_to(config, dims)
    base_heads = adapter.attention_modules(work)
    by_root = {(d.root, d.axis): d.name for d in dims.values()}
    names = {m: n for n, m in work.named_modules()}
    alive = {name: list(range(dim.size)) for name, dim in dims.items()}
    batches = repeat_batches(calibration) if calibration is not None else None

    def record(level: int) -> LevelRecord:
        return LevelRecord(
            level=level,
            keep_fraction=round(config.keep_fraction(level), 6),
            **count_costs(work, adapter, example),
            dims={name: len(idx) for name, idx in alive.items()},
            kept={name: list(idx) for name, idx in alive.items()},
            heads=_heads(dims, alive, base_heads),
            structure=adapter.structure(work),
        )

    levels = [record(config.num_levels)]
    for step in progress(range(1, config.pruning_steps + 1), "planning levels", unit="level"):
        if config.needs_gradients:
            accumulate_gradients(work, pruner.importance, batches, config.taylor_batches, adapter.forward_logits)
        with _graph_errors(model, adapter, "prune"):
            with custom_layers(adapter, work):
                for group in pruner.step(interactive=True):
                    dep = group[0].dep
                    name = by_root[(names[dep.target.module], _axis(pruner.DG, dep.handler))]
                    removed = {int(i) for i in group[0].idxs}
                    alive[name] = [orig for i, orig in enumerate(alive[name]) if i not in removed]
                    group.prune()
            work.zero_grad(set_to_none=True)
            adapter.select_untraced(work, alive, kept_heads(dims, alive, base_heads))
            adapter.finalize(work, _heads(dims, alive, base_heads))
            levels.append(record(config.num_levels - step))  # runs the pruned model: a broken one fails here
    levels.reverse()
    _check_distinct(levels, config)
    return ElasticPlan(
        model_name=model_name,
        architecture=adapter.name,
        image_size=example.shape[-1],
        config=config,
        dims=dims,
        levels=levels,
        versions={
            "elastoformer_hf": __version__,
            # torch-pruning 1.6.1 reports __version__ "1.6.0": the package metadata is authoritative
            "torch_pruning": importlib.metadata.version("torch-pruning"),
            "torch": torch.__version__,
        },
    )
