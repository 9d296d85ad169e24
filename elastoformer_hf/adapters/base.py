"""Architecture adapters: what the pruning engine needs to know about one model family.

torch-pruning discovers which channels are coupled (its dependency graph); an adapter adds what a graph
cannot see: which layers are classifiers (never pruned), which linears are multi-head attention, how to fix
the attributes that a module caches at construction (``head_dim``, ``scaling``...), how to name dimensions
for humans, how many MACs the attention matmuls cost, and how to save a level in the family's stock format.

The registry is keyed by adapter name. Supporting another architecture is one class, registered with
:func:`register_adapter` (in your own code too: the planner, the trainer, saving and the family then use it)::

    from elastoformer_hf.adapters import ArchitectureAdapter, register_adapter

    @register_adapter
    class MyNetAdapter(ArchitectureAdapter):
        name = "timm-mynet"
        description = "timm MyNet"
        kind = "cnn"
        source = "timm"

        @classmethod
        def matches(cls, model):
            return type(model).__name__ == "MyNet"

        def classifier_layers(self, model):
            return [model.head]
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ElastoformerError, UnsupportedModelError

KINDS = ("vit", "cnn")
_ADAPTERS: dict[str, type[ArchitectureAdapter]] = {}
_REFUSED: dict[str, str] = {}


def refuse_architecture(class_name: str, reason: str) -> None:
    """Name a model class no adapter supports and why: :func:`get_adapter` refuses it with ``reason`` (unless a
    registered adapter matches it)."""
    _REFUSED[class_name] = reason


def register_adapter(cls: type[ArchitectureAdapter]) -> type[ArchitectureAdapter]:
    """Class decorator adding an adapter to the registry under its ``name`` (a later registration of the same name
    replaces the earlier one).

    Raises:
        ValueError: the class has no ``name``, or its ``kind`` is not one of :data:`KINDS`.
    """
    if not cls.name or cls.name == ArchitectureAdapter.name:
        raise ValueError(f"{cls.__name__} needs a name of its own to be registered")
    if cls.kind not in KINDS:
        raise ValueError(f"{cls.__name__}.kind must be one of {KINDS}, got {cls.kind!r}")
    _ADAPTERS[cls.name] = cls
    return cls


def registered_adapters() -> dict[str, type[ArchitectureAdapter]]:
    """``{name: adapter class}`` of every registered adapter."""
    return dict(_ADAPTERS)


def adapter_class(name: str) -> type[ArchitectureAdapter] | None:
    """The adapter registered as ``name`` (as a plan records it), or None."""
    return _ADAPTERS.get(name)


def get_adapter(model: nn.Module) -> ArchitectureAdapter:
    """The adapter for ``model``; a clear error naming the supported architectures otherwise. Adapters of their
    own architecture are tried first, the generic fallbacks (any attention-free classifier of a library) last."""
    ordered = sorted(_ADAPTERS.values(), key=lambda cls: cls.fallback)  # stable: registration order otherwise
    for cls in ordered:
        if cls.matches(model):
            return cls()
    supported = "; ".join(cls.description for cls in _ADAPTERS.values())
    reason = _REFUSED.get(type(model).__name__)
    raise UnsupportedModelError(f"unsupported architecture {type(model).__name__}{f': {reason}' if reason else ''}; "
                                f"supported: {supported}; add another with "
                                "elastoformer_hf.adapters.register_adapter")


class ArchitectureAdapter:
    """Base class: sensible defaults for plain CNN-like models."""

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    #: "vit" or "cnn": which recipe trains it (``recipes/deit.py`` or ``recipes/cnn.py``)
    kind: ClassVar[str] = "cnn"
    #: the row of :data:`elastoformer_hf.pruning.alignment.PREFERRED_ROUND_TO` its widths are rounded by
    round_to_group: ClassVar[str] = ""
    #: "transformers", "timm" or "torchvision": which library builds the stock model.
    source: ClassVar[str] = ""
    #: True for a generic adapter, tried only when no adapter of the model's own architecture matches.
    fallback: ClassVar[bool] = False
    #: True when the model runs only at the resolution it was built for (ViTs: position embeddings).
    fixed_resolution: ClassVar[bool] = False

    #: ``(module, class name)`` of each model class the adapter takes, imported lazily by the default
    #: :meth:`matches` (an adapter with another test overrides :meth:`matches` instead)
    model_classes: ClassVar[tuple[tuple[str, str], ...]] = ()

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether ``model`` is one of :attr:`model_classes` (a class its library no longer has never matches)."""
        if not cls.model_classes:
            raise NotImplementedError(f"{cls.__name__} needs model_classes or a matches() of its own")
        classes = tuple(k for k in (getattr(importlib.import_module(m), n, None) for m, n in cls.model_classes) if k)
        return bool(classes) and isinstance(model, classes)

    # -- what torch-pruning needs ------------------------------------------------------------------------
    def example_inputs(self, model: nn.Module, image_size: int | None = None) -> torch.Tensor:
        size = image_size or self.image_size(model)
        param = next(model.parameters(), None)
        return torch.randn(1, self.in_channels(model), size, size, device=param.device if param is not None else None)

    def image_size(self, model: nn.Module) -> int:
        """The resolution costs are counted at: the model's own (pretrained config) or 224."""
        cfg = getattr(model, "pretrained_cfg", None) or {}
        return int(cfg.get("input_size", (3, 224, 224))[-1])

    def in_channels(self, model: nn.Module) -> int:
        return 3

    def classifier_layers(self, model: nn.Module) -> list[nn.Module]:
        """Layers whose output is the class logits: never pruned (their inputs follow the backbone)."""
        raise NotImplementedError

    def num_heads(self, model: nn.Module) -> dict[nn.Module, int]:
        """``{q/k/v (or fused qkv) linear: number of heads}`` for attention layers."""
        return {}

    def whole_heads_supported(self, model: nn.Module) -> bool:
        """Whether whole heads can be pruned from ``model`` (``head_pruning="auto"`` picks head dims where not)."""
        return True

    def unwrapped_parameters(self, model: nn.Module) -> list[tuple[nn.Parameter, int]] | None:
        """Parameters that are not inside a prunable module, with the dimension to prune."""
        return None

    def concat_inputs(self, model: nn.Module) -> dict[nn.Module, int]:
        """``{linear layer: copies}`` for layers whose input is ``copies`` concatenated copies of one width (DINOv2's
        classifier reads ``concat(CLS, mean of patches)``): every copy keeps the same channels."""
        return {}

    def patch_merging(self, model: nn.Module) -> list[nn.Module]:
        """Modules that merge 2x2 neighbouring tokens (Swin's ``PatchMerging``: ``norm`` and ``reduction`` over the
        four neighbours' channels concatenated, 4 x the input width): pruned by a pruner of their own, the same
        input channels in each of the four copies."""
        return []

    def repeated_axes(self, model: nn.Module) -> dict[str, dict[int, int]]:
        """``{tensor: {axis: copies}}``: the axes that hold ``copies`` copies of one pruned width
        (:meth:`concat_inputs`, :meth:`patch_merging`); the family stores them as copies x width."""
        names = {m: n for n, m in model.named_modules()}
        axes: dict[str, dict[int, int]] = {}
        for layer, copies in self.concat_inputs(model).items():
            axes[f"{names[layer]}.weight"] = {1: copies}
        for module in self.patch_merging(model):
            prefix = names[module]
            axes[f"{prefix}.reduction.weight"] = {1: 4}
            axes.update({f"{prefix}.norm.{n}": {0: 4} for n, p in module.norm.named_parameters()})
        return axes

    def untraced_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Parameters the dependency graph must not follow: their axes are not channels (relative position bias
        tables, one column per head, added to the attention scores). They are left out of the trace, and
        :meth:`finalize` keeps them in step with the heads."""
        return []

    @contextlib.contextmanager
    def tracing(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` set up for torch-pruning's trace (autograd): every parameter requires gradients except
        :meth:`untraced_parameters`, whose branch of the graph autograd then does not record."""
        untraced = self.untraced_parameters(model)
        model.requires_grad_(True)
        for param in untraced:
            param.requires_grad_(False)
        try:
            yield model
        finally:
            for param in untraced:
                param.requires_grad_(True)

    def forward_logits(self, model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits as one tensor, whatever the model returns (ModelOutput, tuple, tensor)."""
        return _logits(model(pixel_values))

    def output_transform(self, output: Any) -> torch.Tensor:
        return _logits(output)

    @contextlib.contextmanager
    def export_mode(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model set up as it should be traced for ONNX / TensorRT, restored afterwards (nothing to change
        for CNNs)."""
        yield model

    # -- after pruning -----------------------------------------------------------------------------------
    def finalize(self, model: nn.Module, heads: dict[str, int] | None = None) -> None:
        """Refresh attributes cached at construction that pruning made stale (in place); ``heads`` gives the
        number of heads of each attention module after pruning."""

    def select_untraced(self, model: nn.Module, kept: dict[str, list[int]], kept_heads: dict[str, list[int]]
                        ) -> None:
        """Keep, in the tensors the dependency graph does not see (:meth:`untraced_parameters`, a mask token no
        classification forward uses), the channels pruning kept (in place, before :meth:`finalize`): ``kept`` is
        ``{dimension name: original indices}``, ``kept_heads`` ``{attention module: original indices of its kept
        heads}``. :func:`select_along` does it for one tensor."""

    def dim_name(self, root: str, axis: str) -> str:
        """A readable name for the dimension whose torch-pruning root is ``root`` (axis "out" or "in")."""
        return root if axis == "out" else f"{root}:in"

    def dim_kind(self, root: str, axis: str) -> str:
        return "channels"

    def attention_modules(self, model: nn.Module) -> dict[str, tuple[int, int]]:
        """``{attention module name: (num_heads, head_dim)}`` as the module is now (none for CNNs)."""
        return {}

    def attention_module_of(self, root: str) -> str | None:
        """Name of the attention module whose width is the dimension rooted at ``root``, if any."""
        return None

    def stock_model_args(self, model: nn.Module) -> dict | None:
        """Arguments of the stock constructor that rebuild these widths, or None when it cannot express them."""
        return None

    def attention_macs(self, model: nn.Module) -> int:
        """MACs of the attention matmuls (QK^T and AV), which module counters leave out."""
        return 0

    def structure(self, model: nn.Module) -> dict:
        """A short summary of the widths, for tables and configs."""
        return {}

    # -- loading metadata --------------------------------------------------------------------------------
    def label_names(self, model: nn.Module) -> list[str] | None:
        return None

    # -- training ----------------------------------------------------------------------------------------
    def residual_branches(self, model: nn.Module) -> list[list[nn.Module]]:
        """Per residual block, in depth order, the modules whose forward output is a residual branch just
        before it is added to the skip connection (scaling that output per sample is drop path)."""
        supported = "; ".join(
            cls.description
            for cls in registered_adapters().values()
            if cls.residual_branches is not ArchitectureAdapter.residual_branches
        )
        raise ElastoformerError(
            f"stochastic depth needs residual blocks and {type(model).__name__} has none; "
            f"supported: {supported}"
        )


def select_along(module: nn.Module, attr: str, axis: int, keep: list[int]) -> None:
    """Keep the entries ``keep`` (original indices) of ``module.<attr>`` along ``axis``, in place. Planning prunes
    step by step: ``module.elastic_held[attr]`` records which original entries the tensor holds now."""
    tensor = getattr(module, attr)
    held = module.__dict__.setdefault("elastic_held", {}).get(attr, list(range(tensor.shape[axis])))
    if list(keep) == held:
        return
    position = {original: i for i, original in enumerate(held)}
    tensor.data = tensor.data.index_select(axis, torch.tensor([position[i] for i in keep], device=tensor.device))
    module.elastic_held[attr] = list(keep)


def _logits(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is not None:
        return logits
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"cannot find logits in a {type(output).__name__}")
