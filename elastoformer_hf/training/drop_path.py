"""Stochastic depth (drop path) for any supported residual model, stock or pruned, without new modules.

transformers' ViT/DeiT have no drop path, and timm/torchvision models only get one when built with
``drop_path_rate``. Here the adapter names, per residual block, the modules whose output is a residual branch
just before the skip add (:meth:`ArchitectureAdapter.residual_branches`), and a forward hook on each applies
``timm.layers.drop_path`` to that output. No module is added or replaced, so ``state_dict()`` keys, saving,
loading and pruning are unaffected, and eval mode is untouched (drop path is the identity there).

Block ``i`` of ``L`` drops with probability ``rate * i / (L - 1)`` (timm's linear decay rule: the first block
never, the last with ``rate``); every branch of a block (attention and MLP) uses the block's rate.

Hooks belong to the model they were registered on: a ``copy.deepcopy`` of the model (a level extracted with
``extract_level``, an EMA copy, a teacher) carries them as inert no-ops, so only :meth:`StochasticDepth.remove`
-able hooks ever drop anything; apply stochastic depth to each model you train.
"""

from __future__ import annotations

import math
from typing import Any

from timm.layers import drop_path
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..adapters import get_adapter
from ..errors import ElastoformerError


def linear_rates(rate: float, num_blocks: int) -> list[float]:
    """The drop rate of every block, linear in depth.

    Args:
        rate (`float`): the last block's rate.
        num_blocks (`int`): the number of residual blocks.

    Returns:
        `list[float]`: ``rate * i / (num_blocks - 1)`` for block ``i``, as
        ``torch.linspace(0, rate, num_blocks)`` (exact ends); ``[0.0]`` for a single block.
    """
    if num_blocks == 1:
        return [0.0]
    return [rate * (i / (num_blocks - 1)) for i in range(num_blocks)]


class _DropPathHook:
    """Forward hook: drop path on the module's output (or on its first element when it returns a tuple)."""

    def __init__(self, drop_prob: float):
        self.drop_prob = drop_prob
        self.active = True

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        if not self.active or not module.training:
            return None  # None: keep the output as it is
        if isinstance(output, tuple):
            return (drop_path(output[0], self.drop_prob, True), *output[1:])
        return drop_path(output, self.drop_prob, True)

    def __deepcopy__(self, memo: dict) -> _DropPathHook:
        copy = _DropPathHook(self.drop_prob)
        copy.active = False  # nobody holds a handle to the copy's hooks: it must not drop anything
        return copy

    def __repr__(self) -> str:
        return f"DropPathHook(drop_prob={self.drop_prob}, active={self.active})"


class StochasticDepth:
    """The drop path hooks registered on one model: ``rates`` (one per residual block), ``remove()``, and a
    context manager that removes them on exit.

    Made by :func:`apply_stochastic_depth`.

    Args:
        rates (`list[float]`): the drop rate of every residual block.
        handles (`list[RemovableHandle]`): the hooks' handles.
        hooks (`list`): the hooks.
    """

    def __init__(self, rates: list[float], handles: list[RemovableHandle], hooks: list[_DropPathHook]):
        self.rates = rates
        self._handles = handles
        self._hooks = hooks

    @property
    def num_hooks(self) -> int:
        """`int`: how many branch modules are hooked now (blocks with rate 0 are not hooked)."""
        return len(self._handles)

    def remove(self) -> None:
        """Remove every hook (idempotent): the model is back to its deterministic self."""
        for hook in self._hooks:
            hook.active = False
        for handle in self._handles:
            handle.remove()
        self._handles, self._hooks = [], []

    def __enter__(self) -> StochasticDepth:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        rates = ", ".join(f"{r:.3g}" for r in self.rates)
        return f"StochasticDepth(rates=[{rates}], hooks={self.num_hooks})"


def apply_stochastic_depth(model: nn.Module, rate: float) -> StochasticDepth:
    """Make every residual branch of ``model`` drop per sample in train mode, linearly in depth up to ``rate``.

    Block ``i`` of ``L`` drops with probability ``rate * i / (L - 1)``; every branch of a block uses the
    block's rate.

    Args:
        model (`nn.Module`): the model; hooks are registered on its residual branches (nothing else changes).
        rate (`float`): must be in [0, 1); 0 registers nothing (and works for any model, VGG included).

    Returns:
        `StochasticDepth`: the hooks, to remove when training ends.

    Raises:
        ElastoformerError: ``rate`` is not a number in [0, 1), or (``rate`` > 0) the model has no residual
            blocks (VGG) or was already built with its own drop path (timm ``drop_path_rate`` > 0).
        UnsupportedModelError: (``rate`` > 0) no adapter supports ``model``'s architecture.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
        raise ElastoformerError(f"stochastic depth rate must be a number in [0, 1), got {rate!r}")
    if not 0 <= rate < 1:
        raise ElastoformerError(f"stochastic depth rate must be in [0, 1), got {rate}")
    if rate == 0:
        return StochasticDepth([], [], [])
    branches = get_adapter(model).residual_branches(model)
    if not branches:
        raise ElastoformerError(f"{type(model).__name__} has no residual blocks for stochastic depth")
    _check_no_builtin_drop_path(model)
    rates = linear_rates(float(rate), len(branches))
    handles, hooks = [], []
    for block_rate, modules in zip(rates, branches):
        if block_rate == 0:
            continue
        for module in modules:
            hook = _DropPathHook(block_rate)
            handles.append(module.register_forward_hook(hook))
            hooks.append(hook)
    return StochasticDepth(rates, handles, hooks)


def _check_no_builtin_drop_path(model: nn.Module) -> None:
    """Refuse a model that already drops paths: the hooks would compound with it."""
    from timm.layers import DropPath

    for name, module in model.named_modules():
        prob = getattr(module, "drop_prob", 0.0) if isinstance(module, DropPath) else 0.0
        if prob > 0:
            raise ElastoformerError(
                f"the model already has stochastic depth ({name}: drop_prob={prob}); build it with "
                "drop_path_rate=0 to use --stochastic_depth, or leave --stochastic_depth at 0"
            )
