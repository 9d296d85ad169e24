"""Importance criteria, by name, as torch-pruning importance objects (a registry: one entry per criterion).

``taylor`` and ``hessian`` need gradients: :func:`accumulate_gradients` runs ``taylor_batches`` batches of a
loader through the model before each pruning step, as the reference does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from ..errors import ElastoformerError

_IMPORTANCES: dict[str, Callable[[], tp.importance.Importance]] = {}


def register_importance(name: str):
    """A decorator that registers ``factory`` as the importance criterion ``name``.

    Args:
        name (`str`): the criterion's name (a ``pruning_type``); a name already registered is replaced.

    Returns:
        `Callable`: a decorator that registers a zero-argument factory of ``tp.importance.Importance``
        objects and returns it unchanged.
    """

    def decorator(factory):
        _IMPORTANCES[name] = factory
        return factory

    return decorator


class _HessianImportance(tp.importance.GroupHessianImportance):
    """torch-pruning 1.6.1's ``accumulate_grad`` keys its dicts by parameter but tests membership by name, so
    every sample overwrites the previous one instead of adding to it; this keys both by parameter."""

    def accumulate_grad(self, model):
        for param in model.parameters():
            if param.grad is not None:
                grad = param.grad.detach().pow(2)
                if param in self._accu_grad:
                    self._accu_grad[param] += grad
                    self._counter[param] += 1
                else:
                    self._accu_grad[param] = grad.clone()
                    self._counter[param] = 1


register_importance("l1")(lambda: tp.importance.GroupMagnitudeImportance(p=1))
register_importance("l2")(lambda: tp.importance.GroupMagnitudeImportance(p=2))
register_importance("taylor")(lambda: tp.importance.GroupTaylorImportance())
register_importance("hessian")(_HessianImportance)
register_importance("random")(lambda: tp.importance.RandomImportance())


def build_importance(name: str) -> tp.importance.Importance:
    """A new importance object of the registered criterion ``name``.

    Args:
        name (`str`): ``l1``, ``l2``, ``taylor``, ``hessian``, ``random`` or any name given to
            :func:`register_importance`.

    Returns:
        `tp.importance.Importance`: a fresh importance object.

    Raises:
        ElastoformerError: ``name`` is not a registered criterion.
    """
    try:
        return _IMPORTANCES[name]()
    except KeyError:
        raise ElastoformerError(f"unknown pruning_type {name!r}; accepted: {', '.join(_IMPORTANCES)}") from None


def accumulate_gradients(
    model: nn.Module,
    importance: tp.importance.Importance,
    batches: Iterable,
    num_batches: int,
    forward_logits: Callable[[nn.Module, torch.Tensor], torch.Tensor],
) -> int:
    """Fill ``.grad`` (taylor) or the per-sample squared-gradient buffers (hessian) from ``num_batches``.

    The loss is the cross-entropy; the model runs in eval mode (deterministic gradients: dropout and drop-path
    off, BatchNorm statistics untouched) and is put back in its previous mode afterwards.

    Args:
        model (`nn.Module`): the model whose gradients are filled (previous gradients are cleared).
        importance (`tp.importance.Importance`): the criterion; a ``GroupHessianImportance`` gets per-sample
            squared gradients, any other gets ``.grad``.
        batches (`Iterable`): yields ``(pixel_values, labels)`` pairs or dicts with those keys.
        num_batches (`int`): how many batches to use at most.
        forward_logits (`Callable[[nn.Module, torch.Tensor], torch.Tensor]`): runs the model on pixel values
            and returns its logits.

    Returns:
        `int`: the number of batches used.

    Raises:
        ElastoformerError: ``batches`` yielded no batch.
    """
    hessian = isinstance(importance, tp.importance.GroupHessianImportance)
    if hessian:
        importance.zero_grad()
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()  # deterministic gradients: dropout / drop-path off, BatchNorm statistics untouched
    used = 0
    with torch.enable_grad():
        for batch in itertools.islice(batches, num_batches):
            pixel_values, labels = (batch["pixel_values"], batch["labels"]) if isinstance(batch, dict) else batch
            device = next(model.parameters()).device
            pixel_values, labels = pixel_values.to(device), labels.to(device)
            logits = forward_logits(model, pixel_values)
            if hessian:
                losses = F.cross_entropy(logits, labels, reduction="none")
                for i, loss in enumerate(losses):
                    model.zero_grad(set_to_none=True)
                    loss.backward(retain_graph=i < len(losses) - 1)
                    importance.accumulate_grad(model)
            else:
                F.cross_entropy(logits, labels).backward()
            used += 1
    model.train(was_training)
    if used == 0:
        raise ElastoformerError("the calibration data loader yielded no batches")
    return used


def repeat_batches(loader: Iterable) -> Iterator:
    """Batches from ``loader`` without end.

    A re-iterable loader (DataLoader) starts a new epoch when it runs out, so every pruning step gets its
    ``taylor_batches`` even from a small calibration set.

    Args:
        loader (`Iterable`): a re-iterable loader or a one-shot iterator.

    Returns:
        `Iterator`: the batches; it ends only when ``loader`` is empty, or is a one-shot iterator that ran
        out.
    """
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty or iter(loader) is loader:  # nothing, or a one-shot iterator that is now exhausted
            return


def synthetic_batches(example: torch.Tensor, num_classes: int, batch_size: int = 8, seed: int = 0):
    """Random images with random labels, without end.

    They give gradients for a *structure-only* plan (costs, shapes), never for a plan whose choice of channels
    matters. Use real data for that.

    Args:
        example (`torch.Tensor`): an example input batch; the images take its shape after the batch dimension.
        num_classes (`int`): labels are drawn from ``0..num_classes - 1``.
        batch_size (`int`, *optional*, defaults to `8`): images per batch.
        seed (`int`, *optional*, defaults to `0`): the seed of the generator (the same seed, the same
            batches).

    Returns:
        `Iterator[tuple[torch.Tensor, torch.Tensor]]`: endless ``(images, labels)`` batches.
    """
    generator = torch.Generator().manual_seed(seed)
    while True:
        images = torch.randn((batch_size, *example.shape[1:]), generator=generator)
        labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
        yield images, labels
