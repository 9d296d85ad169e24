"""torch-pruning pruners for the layers an adapter says its dependency graph gets wrong."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch_pruning as tp
from torch import nn

from ..adapters import ArchitectureAdapter
from ..errors import UnsupportedModelError


class RepeatedInputLinear(nn.Linear):
    """An ``nn.Linear`` under another class while torch-pruning holds the model: its pruners are keyed by type
    (torch-pruning 1.6 cannot key one by instance), and this type marks the layers whose input is repeated."""


class RepeatedInputLinearPruner(tp.pruner.function.LinearPruner):
    """Linear layers whose input is ``copies`` concatenated copies of one width (DINOv2's classifier reads
    ``concat(CLS, mean of patches)``). torch-pruning's graph reaches such a ``torch.cat`` through one input only
    and prunes the columns of that copy alone (the layer then no longer fits its input); here every copy loses the
    same channels, whichever copy the indices came through."""

    def __init__(self, copies: dict[nn.Module, int]):
        super().__init__()
        self.copies = copies

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        copies = self.copies[layer]
        width = layer.in_features // copies
        channels = sorted({int(i) % width for i in idxs})
        return super().prune_in_channels(layer, [c * width + i for c in range(copies) for i in channels])


class PatchMergingPruner(tp.BasePruningFunc):
    """Swin's ``PatchMerging``: its input (``width`` channels) reaches ``norm`` and ``reduction`` as four
    neighbours concatenated (``4 x width``), a reshape torch-pruning's graph cannot follow; an input channel is
    pruned in each of the four copies (as torch-pruning's own Swin example does)."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        tp.prune_linear_out_channels(layer.reduction, idxs)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        width = layer.reduction.in_features // 4
        channels = sorted({int(i) % width for i in idxs})
        repeated = [c * width + i for c in range(4) for i in channels]
        tp.prune_linear_in_channels(layer.reduction, repeated)
        tp.prune_layernorm_out_channels(layer.norm, repeated)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.reduction.out_features

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.reduction.in_features // 4


@contextlib.contextmanager
def custom_layers(adapter: ArchitectureAdapter, model: nn.Module) -> Iterator[dict | None]:
    """While torch-pruning builds its graph of ``model`` and prunes it: the ``customized_pruners`` (for
    ``MetaPruner`` / ``DependencyGraph.build_dependency``) of the layers :meth:`ArchitectureAdapter.concat_inputs`
    names, which are :class:`RepeatedInputLinear` meanwhile (their own class again afterwards), and of the modules
    :meth:`ArchitectureAdapter.patch_merging` names (by their class)."""
    copies = adapter.concat_inputs(model)
    pruners = {type(module): PatchMergingPruner() for module in adapter.patch_merging(model)}
    for layer in copies:
        if type(layer) is not nn.Linear:
            raise UnsupportedModelError(f"{adapter.name}: a repeated input is supported on nn.Linear layers only, "
                                        f"not {type(layer).__name__}")
        layer.__class__ = RepeatedInputLinear
    try:
        if copies:
            pruners[RepeatedInputLinear] = RepeatedInputLinearPruner(copies)
        yield pruners or None
    finally:
        for layer in copies:
            layer.__class__ = nn.Linear
