"""Runnable levels whose weights are views of the family's storage, and the copies that run the current one at full
speed.

Every level is the stock architecture (built once on the meta device, resized to the level's shapes) whose
parameters and buffers are then bound to views: prefixes of the shared full-width tensors, plus the level's own
tensors. A per-head prefix of q/k/v rows or output-projection columns has no 2-D stride: those linears become
:class:`PrefixLinear`; any other module with such a tensor (the convolutions around a grouped convolution, whose
channels are per-group prefixes) gets a reshaping parametrization (``torch.nn.utils.parametrize``).

Every level runs correctly on views, but some views cost a copy per forward pass: ``F.conv2d`` makes a strided
4-D weight contiguous, and per-head (per-group) prefixes are flattened. ``F.linear`` takes a 2-D weight with a
row stride as it is (BLAS' leading dimension). :func:`copied_per_call` lists those tensors of a level, and
:func:`bind` points them at contiguous copies (the family does that for its current level only) or back at the
views.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..adapters import get_adapter
from ..errors import UnsupportedModelError
from ..modeling.modeling_elastoformer import init_non_persistent_buffers, resize_to_shapes, set_conv_groups
from .layout import Layout


class PrefixLinear(nn.Module):
    """A linear layer whose weight is a per-head prefix of a bigger one, kept as the split view
    ``(*out_axes, *in_axes)`` (e.g. ``heads x head_dim x in``); the output is the usual head-major layout.

    ``forward`` flattens the weight to ``(out_features, in_features)`` for ``F.linear``: that reshape copies a
    split view (a temporary of the level's weight size, freed after the call) and is free once :func:`bind` gave
    the layer a contiguous copy.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, out_features: int, in_features: int):
        super().__init__()
        self.out_features, self.in_features = out_features, in_features
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.reshape(self.out_features, self.in_features)
        bias = None if self.bias is None else self.bias.reshape(self.out_features)
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight_view={tuple(self.weight.shape)}, bias={self.bias is not None}")


class _Reshape(nn.Module):
    """The parametrization of a tensor bound to a split view: the level's shape."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.shape)


@dataclass
class Copied:
    """A tensor of a level that its forward pass would copy on every call: ``owner``'s parameter or buffer
    ``attr``, the view of the storage it is bound to, and the shape of its contiguous copy."""

    owner: nn.Module
    attr: str
    view: torch.Tensor
    shape: tuple[int, ...]
    memory_format: torch.memory_format = torch.contiguous_format

    @property
    def nbytes(self) -> int:
        return self.view.numel() * self.view.element_size()


def laid_out(tensor: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> bool:
    """Whether ``tensor`` is dense in ``memory_format`` (which applies to 4-D tensors; others are plainly
    contiguous)."""
    if tensor.dim() == 4 and memory_format != torch.contiguous_format:
        return tensor.is_contiguous(memory_format=memory_format)
    return tensor.is_contiguous()


def copied_per_call(model: nn.Module, memory_format: torch.memory_format = torch.contiguous_format) -> list[Copied]:
    """The tensors of ``model`` (bound to views by :func:`build_level`) that a forward pass copies: split views
    (:class:`PrefixLinear`, parametrized modules) and strided ones, except 2-D ``nn.Linear`` weights with a
    unit column stride (``F.linear`` takes those as they are). ``memory_format``: the layout the level's 4-D
    tensors run in (channels_last: a convolution given a channels_last input converts any other weight per call)."""
    found = []
    for module in model.modules():
        for attr, tensor in itertools.chain(module._parameters.items(), module._buffers.items()):
            if tensor is None or laid_out(tensor, memory_format):
                continue
            if isinstance(module, nn.Linear) and attr == "weight" and tensor.dim() == 2 and tensor.stride(-1) == 1:
                continue
            if isinstance(module, parametrize.ParametrizationList):
                shape = module[0].shape
            elif isinstance(module, PrefixLinear):
                shape = (module.out_features, module.in_features) if attr == "weight" else (module.out_features,)
            else:
                shape = tuple(tensor.shape)
            found.append(Copied(module, attr, tensor, shape, memory_format if len(shape) == 4
                                else torch.contiguous_format))
    return found


def bind(copied: list[Copied], *, contiguous: bool) -> None:
    """Point every tensor of ``copied`` at a dense copy of its view in its memory format (``contiguous=True``),
    or back at the view (the copies are then freed). Copies are plain tensors even under ``torch.inference_mode``."""
    with torch.inference_mode(False), torch.no_grad():
        for entry in copied:
            tensor = (entry.view.reshape(entry.shape).contiguous(memory_format=entry.memory_format) if contiguous
                      else entry.view)
            _assign(entry.owner, entry.attr, tensor)


def _assign(module: nn.Module, attr: str, tensor: torch.Tensor) -> None:
    if attr in module._parameters:
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
    elif attr in module._buffers:
        module._buffers[attr] = tensor
    else:
        raise UnsupportedModelError(f"{type(module).__name__}.{attr} is neither a parameter nor a buffer")


def _set_tensor(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    _assign(model.get_submodule(module_name) if module_name else model, attr, tensor)


def get_tensor(model: nn.Module, name: str) -> torch.Tensor:
    """The tensor ``name`` (a state-dict name of the stock architecture) of a level as its module computes it:
    parametrized ones reshaped, :class:`PrefixLinear` ones as stored (split views)."""
    module_name, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(module_name) if module_name else model, attr)


def level_skeleton(skeleton: nn.Module, layout: Layout, level: int, info: dict) -> nn.Module:
    """A copy of ``skeleton`` (the dense model on the meta device) resized to level ``level``; ``info`` is the
    level's metadata (its ``heads`` per attention module, its ``conv_groups`` per grouped convolution)."""
    model = copy.deepcopy(skeleton)
    shapes = {n: layout.level_shape(n, level) for n in layout.shapes}
    resize_to_shapes(model, {n: s for n, s in shapes.items() if s != layout.shapes[n]})
    set_conv_groups(model, info.get("conv_groups") or {})
    get_adapter(model).finalize(model, info.get("heads") or {})
    names = set(model.state_dict())
    if names != set(layout.shapes):
        different = sorted(names ^ set(layout.shapes))[:5]
        raise UnsupportedModelError(f"the architecture's tensors are not the family's ({different} ...)")
    return model


def build_level(skeleton: nn.Module, layout: Layout, level: int, shared: dict[str, torch.Tensor],
                own: dict[str, torch.Tensor], info: dict) -> nn.Module:
    """Level ``level`` as a runnable module bound to views of ``shared`` and to ``own``; copies no weight
    (``info``: the level's metadata, as :func:`level_skeleton` reads it)."""
    model = level_skeleton(skeleton, layout, level, info)
    views = {n: layout.view(shared[n], n, level) for n in layout.shared}
    split = {n.rpartition(".")[0] for n, (_, spans) in views.items() if any(s > 1 for s in spans)}
    linears = {n for n in split if type(model.get_submodule(n)) is nn.Linear}
    for module_name in linears:
        _install_prefix_linear(model, module_name, views)
    for name, (view, spans) in views.items():
        if name.rpartition(".")[0] in linears:
            continue
        _set_tensor(model, name, view)
        if any(s > 1 for s in spans):
            module_name, _, attr = name.rpartition(".")
            module = model.get_submodule(module_name) if module_name else model
            parametrize.register_parametrization(module, attr, _Reshape(layout.level_shape(name, level)), unsafe=True)
    for name, tensor in own.items():
        _set_tensor(model, name, tensor)
    _init_non_persistent_buffers(model)
    leftover = [n for n, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if leftover:
        raise UnsupportedModelError(f"level {level}: {leftover[:3]} hold no stored data (state outside the state dict)")
    return model.eval()


@torch.no_grad()
def _init_non_persistent_buffers(model: nn.Module) -> None:
    """Buffers outside the state dict that the meta-device skeleton left empty (Swin's relative position index and
    shifted-window mask), computed again once the tensors they are derived from are bound."""
    device = next((t.device for t in model.parameters() if not t.is_meta), torch.device("cpu"))
    for module in model.modules():
        meta = [n for n, b in module._buffers.items() if b is not None and b.is_meta]
        if meta:
            for name in meta:
                module._buffers[name] = torch.empty_like(module._buffers[name], device=device)
            init_non_persistent_buffers(module)


def _install_prefix_linear(model: nn.Module, module_name: str, views: dict) -> None:
    module = model.get_submodule(module_name)
    weight, _ = views[f"{module_name}.weight"]
    bias = views.get(f"{module_name}.bias", (None, None))[0]
    if bias is None and module.bias is not None:  # a level's own bias (a shared classifier's), bound afterwards
        bias = module.bias
    parent_name, _, child = module_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, PrefixLinear(weight, bias, module.out_features, module.in_features))
