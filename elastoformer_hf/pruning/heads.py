"""The default way a ViT's attention shrinks: whole heads where the head count allows it, head dims otherwise.

Pruning whole heads keeps ``head_dim`` at the width attention kernels are tuned for (64 for DeiT-B: SDPA and flash
kernels, TensorRT's fused attention) and makes the softmax and ``QK^T`` shrink with the level; pruning head dims
(the reference's choice) keeps every head and narrows each. Measured: on a CPU the DeiT-B core reaches more of its
ideal speed-up with whole heads (docs/latency.md), on an H200 the head-dim levels reached only 0.28-0.78 of it, and
on Fashion-MNIST over 4 seeds whole heads cost no accuracy (docs/training.md).

Whole heads need enough heads: every level must keep a different number, or two levels would share their
attention width while the schedule says they differ (a 3-head ViT at 4 levels keeps 1, 2, 2, 3 heads). So
``head_pruning="auto"`` resolves to ``"heads"`` when the head schedule gives every level a distinct count, and to
``"head_dims"`` otherwise, or under global pruning (where the count per layer is ranked, not scheduled).
"""

from __future__ import annotations

from .config import PruningConfig


def heads_kept(initial: int, scheduled: float) -> int:
    """Heads a module keeps once torch-pruning's cumulative head ratio ``scheduled`` is applied locally:
    ``int(initial * (1 - scheduled))``, at least one (:class:`~.planner.NestedPruner` prunes to this)."""
    return max(1, int(initial * (1 - scheduled) + 1e-6))


def head_schedule(initial: int, config: PruningConfig) -> list[int]:
    """Heads kept at each level, core first, for a module of ``initial`` heads (torch-pruning's linear
    schedule, computed as ``torch_pruning.pruner.algorithms.scheduler.linear_scheduler`` does)."""
    steps = config.pruning_steps
    ratios = [(i / float(steps)) * config.pruning_ratio for i in range(steps + 1)]
    return [heads_kept(initial, r) for r in reversed(ratios)]


def resolve_head_pruning(config: PruningConfig, num_heads: dict, whole_heads: bool = True) -> PruningConfig:
    """``config`` with an auto ``head_pruning`` resolved for a model whose attention modules have ``num_heads``
    (module -> head count, the adapter's ``num_heads``): ``"heads"`` when every module's schedule keeps a
    distinct count at every level (and the pruning is local, and the architecture can drop whole heads:
    ``whole_heads``, the adapter's ``whole_heads_supported``), else ``"head_dims"``. Explicit choices, and auto on
    a model without heads, come back unchanged."""
    if config.head_pruning != "auto" or not num_heads:
        return config
    schedules = [head_schedule(int(n), config) for n in set(num_heads.values())]
    distinct = whole_heads and not config.global_pruning and all(len(set(s)) == len(s) for s in schedules)
    return config.with_head_pruning("heads" if distinct else "head_dims")
