"""Where level k's channels sit inside level k+1's tensors, and the frozen blocks that keep them there.

The plan records kept channels per *dimension*; a tensor's axes map to dimensions through torch-pruning's
dependency graph, which a plan does not store. Rather than re-deriving that graph per tensor, we replay the level
on "probe" copies of the dense model whose tensors hold their own index along one axis: after pruning, every
surviving entry still holds its original index, for every tensor and axis at once (torch-pruning only selects).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..adapters import get_adapter
from ..errors import ElastoformerError
from ..pruning.record import ElasticPlan
from ..pruning.replay import apply_level

#: per tensor name, per axis: original index of every position, or None where the axis is never pruned
OriginalIndices = dict[str, list[torch.Tensor | None]]
#: per tensor name, per axis: positions of the smaller level's entries in the larger one (None: all, in order)
Positions = dict[str, list[torch.Tensor | None]]


def named_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Floating-point parameters and buffers with at least one axis (what pruning slices).

    Args:
        model (`nn.Module`): the model.

    Returns:
        `Iterator[tuple[str, torch.Tensor]]`: ``(name, tensor)`` in state-dict order; parameters as the
        parameters themselves (``keep_vars``).
    """
    for name, tensor in model.state_dict(keep_vars=True).items():
        if tensor.is_floating_point() and tensor.ndim > 0:
            yield name, tensor


def original_indices(dense: nn.Module, plan: ElasticPlan, level: int, template: nn.Module | None = None
                     ) -> OriginalIndices:
    """The original (dense) index of every position of every tensor of ``level``, axis by axis.

    Only axes whose size differs from the dense model's in some tensor are probed (``dense`` is copied, never
    modified).

    Args:
        dense (`nn.Module`): the dense model the plan was made from.
        plan (`ElasticPlan`): the plan.
        level (`int`): the level.
        template (`nn.Module`, *optional*): level ``level`` as :func:`apply_level` builds it (built here when
            not given).

    Returns:
        `OriginalIndices`: per tensor name, per axis, the original index of every position, or None where the
        axis is not pruned at this level.

    Raises:
        ElastoformerError: the level's tensors are not the dense model's tensors, or (from
            :func:`apply_level`) ``level`` is out of range or ``dense`` is not the plan's dense model.
    """
    if template is None:
        template = apply_level(copy.deepcopy(dense), plan, level)
    dense_shapes = {n: t.shape for n, t in named_tensors(dense)}
    level_shapes = {n: t.shape for n, t in named_tensors(template)}
    if set(dense_shapes) != set(level_shapes):
        raise ElastoformerError("the level's tensors are not the dense model's tensors: cannot nest them")
    pruned_axes = sorted({a for n, s in level_shapes.items() for a in range(len(s)) if s[a] != dense_shapes[n][a]})
    result: OriginalIndices = {n: [None] * len(s) for n, s in level_shapes.items()}
    for axis in pruned_axes:
        probe = copy.deepcopy(dense).float()
        with torch.no_grad():
            for _, tensor in named_tensors(probe):
                if tensor.ndim > axis:
                    shape = [1] * tensor.ndim
                    shape[axis] = tensor.shape[axis]
                    tensor.copy_(torch.arange(tensor.shape[axis], dtype=torch.float32).view(shape).expand_as(tensor))
        apply_level(probe, plan, level)  # builds a dependency graph: needs autograd
        for name, tensor in named_tensors(probe):
            if tensor.ndim > axis and tensor.shape[axis] != dense_shapes[name][axis]:
                result[name][axis] = tensor.movedim(axis, 0).reshape(tensor.shape[axis], -1)[:, 0].round().long()
        del probe
    return result


def nested_positions(small: OriginalIndices, big: OriginalIndices) -> Positions:
    """Positions of the smaller level's entries inside the bigger level's tensors.

    An error if they do not nest.

    Args:
        small (`OriginalIndices`): the smaller level's :func:`original_indices`.
        big (`OriginalIndices`): the bigger level's :func:`original_indices`.

    Returns:
        `Positions`: per tensor name, per axis, the positions in the bigger level's tensor (None: all, in
        order).

    Raises:
        ElastoformerError: an axis of the smaller level is wider than the bigger one's, or holds channels the
            bigger level does not: the levels do not nest.
    """
    positions: Positions = {}
    for name, axes in small.items():
        positions[name] = []
        for axis, (s, b) in enumerate(zip(axes, big[name])):
            if s is None and b is None:
                positions[name].append(None)
                continue
            if s is None or b is None:  # pruned in one level only: the other keeps all channels in order
                if b is None:
                    positions[name].append(s)
                    continue
                raise ElastoformerError(f"{name} axis {axis}: the smaller level is wider than the bigger one")
            pos = torch.searchsorted(b, s)
            if pos.numel() and (pos.max() >= b.numel() or not torch.equal(b[pos], s)):
                raise ElastoformerError(f"{name} axis {axis}: the smaller level's channels are not inside the bigger "
                                        "level's; the levels do not nest")
            positions[name].append(None if pos.numel() == b.numel() else pos)
    return positions


def _index(positions: list[torch.Tensor | None], shape: torch.Size) -> tuple:
    """An advanced-indexing tuple selecting the block ``positions`` (broadcast across axes)."""
    index = []
    for axis, pos in enumerate(positions):
        idx = torch.arange(shape[axis]) if pos is None else pos
        view = [1] * len(shape)
        view[axis] = -1
        index.append(idx.view(view))
    return tuple(index)


def kept_mask(positions: list[torch.Tensor | None], shape: torch.Size) -> torch.Tensor:
    """The entries of the bigger level's tensor that hold the smaller level's block.

    Args:
        positions (`list[torch.Tensor | None]`): one tensor's :func:`nested_positions`, per axis.
        shape (`torch.Size`): the bigger level's tensor shape.

    Returns:
        `torch.Tensor`: a boolean mask of ``shape``, True on the block (kept on every axis).
    """
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[_index(positions, shape)] = True
    return mask


def new_mask(positions: list[torch.Tensor | None], shape: torch.Size) -> torch.Tensor:
    """Entries new on every axis that grew (the block that only the bigger level has).

    Args:
        positions (`list[torch.Tensor | None]`): one tensor's :func:`nested_positions`, per axis.
        shape (`torch.Size`): the bigger level's tensor shape.

    Returns:
        `torch.Tensor`: a boolean mask of ``shape``.
    """
    mask = torch.ones(shape, dtype=torch.bool)
    for axis, pos in enumerate(positions):
        if pos is None:
            continue
        old = torch.zeros(shape[axis], dtype=torch.bool)
        old[pos] = True
        view = [1] * len(shape)
        view[axis] = -1
        mask &= ~old.view(view)
    return mask


def classifier_weight_names(model: nn.Module) -> set[str]:
    """The weights of the classifier layers (``head.weight``, DeiT's two heads, ...).

    They are nested like any other layer (their input columns are the embedding/feature channels; classes are
    never pruned).

    Args:
        model (`nn.Module`): the model.

    Returns:
        `set[str]`: the weights' state-dict names.

    Raises:
        UnsupportedModelError: no adapter supports ``model``'s architecture.
    """
    module_names = {m: n for n, m in model.named_modules()}
    names = set()
    for module in get_adapter(model).classifier_layers(model):
        prefix = module_names[module]
        names.add(f"{prefix}.weight" if prefix else "weight")
    return names


def level_specific_names(model: nn.Module, *, share_classifier: bool = False) -> set[str]:
    """Tensors every level keeps its own copy of (as the reference does): the classifier, the parameters outside
    modules (ViT class/distillation tokens, position embeddings) and BatchNorm layers (statistics and affine).

    Args:
        model (`nn.Module`): the model.
        share_classifier (`bool`, *optional*, defaults to `False`): the classifier *weight* is shared instead
            (nested and frozen like every other layer, stored once in the family); its bias stays per level -
            ``num_classes`` numbers, nothing next to the weight, and with it each level can still re-centre
            its logits, which a frozen shared bias (no pruned axis: fully frozen from level 2 on) could not.

    Returns:
        `set[str]`: the tensors' state-dict names.

    Raises:
        UnsupportedModelError: no adapter supports ``model``'s architecture.
    """
    adapter = get_adapter(model)
    module_names = {m: n for n, m in model.named_modules()}
    param_names = {p: n for n, p in model.named_parameters()}
    names: set[str] = set()
    modules = list(adapter.classifier_layers(model))
    modules += [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for module in modules:
        prefix = module_names[module]
        names |= {f"{prefix}.{n}" if prefix else n for n, _ in module.state_dict(keep_vars=True).items()}
    for param, _ in adapter.unwrapped_parameters(model) or []:
        names.add(param_names[param])
    if share_classifier:
        names -= classifier_weight_names(model)
    return names


@dataclass
class FrozenBlocks:
    """The entries of a level that belong to the previous level: zero gradient, and restored after every
    optimizer step (so weight decay, momentum or any optimizer can never move them).

    Both run as fused multi-tensor kernels (``torch._foreach_*``) over all partly frozen tensors at once: one
    launch per few dozen tensors instead of one ``masked_fill``/``masked_scatter_`` per tensor, which on a GPU
    costs more than the step's own work for a ViT (196 tensors in a DeiT-S level). That needs, per partly frozen
    tensor, a 0/1 ``keep`` tensor and a ``fill`` tensor (the frozen values, zeros elsewhere) in the parameter's
    dtype, built on first use on the parameters' device: about two extra copies of those parameters.

    Args:
        entries (`list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]]`, *optional*, defaults to `[]`): the
            partly frozen tensors: ``(parameter, frozen mask, frozen values)``.
        fully_frozen (`list[nn.Parameter]`, *optional*, defaults to `[]`): the tensors frozen entirely.
    """

    entries: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (p, mask, values)
    fully_frozen: list[nn.Parameter] = field(default_factory=list)
    _hooks: list = field(default_factory=list, repr=False)
    _fused: tuple | None = field(default=None, repr=False)  # (params, keep, fill) for the foreach kernels

    def add(self, param: nn.Parameter, mask: torch.Tensor) -> None:
        """Freeze the entries of ``param`` where ``mask`` is True, at their current values.

        A full mask makes ``param`` stop requiring gradients; an empty one adds nothing.

        Args:
            param (`nn.Parameter`): the parameter.
            mask (`torch.Tensor`): a boolean mask of ``param``'s shape.
        """
        mask = mask.to(param.device)
        if bool(mask.all()):
            param.requires_grad_(False)
            self.fully_frozen.append(param)
        elif bool(mask.any()):
            self.entries.append((param, mask, param.detach()[mask].clone()))
            self._fused = None

    def install(self, *, hooks: bool = True) -> FrozenBlocks:
        """Freeze: fully frozen tensors stop requiring gradients (done by :meth:`add`).

        Args:
            hooks (`bool`, *optional*, defaults to `True`): a gradient hook per partly frozen tensor zeroes
                its frozen entries during backward. Without hooks the training loop calls
                :meth:`mask_gradients` after each backward (and before clipping), as ``ElasticTrainer`` does.

        Returns:
            `FrozenBlocks`: these blocks.
        """
        if hooks:
            for param, mask, _ in self.entries:
                self._hooks.append(param.register_hook(lambda grad, m=mask: grad.masked_fill(m, 0)))
        return self

    def remove(self) -> None:
        """Unfreeze: remove the gradient hooks, and fully frozen tensors require gradients again."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        for param in self.fully_frozen:
            param.requires_grad_(True)

    def _buffers(self) -> tuple[list, list, list]:
        if self._fused is None:
            params = [p for p, _, _ in self.entries]
            keep = [(~m).to(p.dtype) for p, m, _ in self.entries]
            fill = [torch.zeros_like(p).masked_scatter_(m, v.to(p.dtype)) for p, m, v in self.entries]
            self._fused = (params, keep, fill)
        return self._fused

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of the frozen entries (partly frozen tensors that have a gradient). A multiply, so an
        inf/NaN gradient at a frozen entry stays non-finite: with fp16 the GradScaler then skips the step, as it
        would for the plain model."""
        params, keep, _ = self._buffers()
        pairs = [(p.grad, k) for p, k in zip(params, keep) if p.grad is not None]
        if pairs:
            grads, keeps = zip(*pairs)
            torch._foreach_mul_(list(grads), list(keeps))

    @torch.no_grad()
    def restore(self, *_args, **_kwargs) -> None:
        """Put the frozen values back: ``p * keep + fill``.

        Exact for finite values (a frozen entry becomes its value plus a signed zero, a trainable one is
        unchanged).

        Args:
            *_args: ignored (the signature fits ``Optimizer.register_step_post_hook``).
            **_kwargs: ignored.
        """
        params, keep, fill = self._buffers()
        if params:
            data = [p.data for p in params]
            torch._foreach_mul_(data, keep)
            torch._foreach_add_(data, fill)

    def to(self, device) -> FrozenBlocks:
        """Move the masks and frozen values to ``device`` (the parameters are not moved).

        Args:
            device (`str` or `torch.device`): the parameters' device.

        Returns:
            `FrozenBlocks`: these blocks.
        """
        self.entries = [(p, m.to(device), v.to(device)) for p, m, v in self.entries]
        self._fused = None
        return self

    @property
    def num_frozen(self) -> int:
        """`int`: the number of frozen entries, in partly and fully frozen tensors."""
        return sum(v.numel() for _, _, v in self.entries) + sum(p.numel() for p in self.fully_frozen)


@torch.no_grad()
def grow_level(small: nn.Module, big: nn.Module, positions: Positions, *, mixed_init: str = "pretrained",
               random_source: nn.Module | None = None, share_classifier: bool = False) -> FrozenBlocks:
    """Turn ``big`` (the next level, holding the pre-trained weights) into the rebuilt level in place.

    The kept block of every tensor takes ``small``'s trained values; shared tensors freeze it, level-specific ones
    (:func:`level_specific_names`) start from it and train. New entries keep the pre-trained weights; mixed entries
    (new on some axes, kept on others) keep them too, or take ``random_source``'s with ``mixed_init="random"``.
    Args:
        small (`nn.Module`): the trained smaller level.
        big (`nn.Module`): the next level, holding the pre-trained weights; modified in place.
        positions (`Positions`): :func:`nested_positions` of the smaller level in the bigger one.
        mixed_init (`str`, *optional*, defaults to `"pretrained"`): ``"pretrained"`` or ``"random"``: what
            mixed entries start from.
        random_source (`nn.Module`, *optional*): a model of ``big``'s shape whose weights mixed entries take
            with ``mixed_init="random"`` (:func:`random_like`).
        share_classifier (`bool`, *optional*, defaults to `False`): the classifier weight is a shared tensor
            (its kept columns frozen, the new columns start from the pre-trained weights).

    Returns:
        `FrozenBlocks`: the frozen blocks of ``big``'s shared parameters (not installed yet).

    Raises:
        UnsupportedModelError: no adapter supports ``big``'s architecture.
    """
    small_tensors = dict(named_tensors(small))
    random_tensors = dict(named_tensors(random_source)) if random_source is not None else {}
    per_level = level_specific_names(big, share_classifier=share_classifier)
    params = dict(big.named_parameters())
    frozen = FrozenBlocks()
    for name, tensor in named_tensors(big):
        pos = positions[name]
        index = _index(pos, tensor.shape)
        source = small_tensors[name]
        tensor[index] = source.to(tensor.dtype)
        if mixed_init == "random" and name in random_tensors:
            mixed = ~kept_mask(pos, tensor.shape) & ~new_mask(pos, tensor.shape)
            tensor[mixed] = random_tensors[name].to(tensor.dtype)[mixed]
        if name in params and name not in per_level:
            frozen.add(params[name], kept_mask(pos, tensor.shape))
    return frozen


@torch.no_grad()
def extract_nested(big: nn.Module, small: nn.Module, positions: Positions,
                   level_specific: dict[str, torch.Tensor] | nn.Module | None = None, *,
                   share_classifier: bool = False) -> nn.Module:
    """Fill ``small`` (a model of the smaller level's shape) with its block of ``big``'s weights, and its own
    level-specific tensors from ``level_specific``.

    Args:
        big (`nn.Module`): the bigger level.
        small (`nn.Module`): a model of the smaller level's shape; filled in place.
        positions (`Positions`): :func:`nested_positions` of the smaller level in the bigger one.
        level_specific (`dict[str, torch.Tensor]` or `nn.Module`, *optional*): a state dict (used as it is),
            or the trained smaller level, whose :func:`level_specific_names` (with ``share_classifier``) are
            taken.
        share_classifier (`bool`, *optional*, defaults to `False`): as in :func:`level_specific_names`.

    Returns:
        `nn.Module`: ``small``.
    """
    if isinstance(level_specific, nn.Module):
        names = level_specific_names(level_specific, share_classifier=share_classifier)
        level_specific = {n: t for n, t in level_specific.state_dict().items() if n in names}
    big_tensors = dict(named_tensors(big))
    level_specific = level_specific or {}
    for name, tensor in named_tensors(small):
        if name in level_specific:
            tensor.copy_(level_specific[name])
        else:
            tensor.copy_(big_tensors[name][_index(positions[name], big_tensors[name].shape)])
    return small


def random_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every module's default initialisation (``reset_parameters``), for
    ``mixed_init="random"``.

    The global random state is left as it was.

    Args:
        model (`nn.Module`): the model (not modified).
        seed (`int`, *optional*, defaults to `0`): the seed of the initialisation.

    Returns:
        `nn.Module`: the re-initialised copy.
    """
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters") and module is not fresh:
                module.reset_parameters()
    return fresh
