"""A finished run folder (plan + ``dn{k}/``) turned into one :class:`~elastoformer_hf.family.ElasticFamily`.

    from elastoformer_hf.nesting import build_family
    family = build_family("runs/deit-elastic")        # checks every level's logits against its dn{k}/ model
    family.save_pretrained("deit-family")

Building needs the plan replayed on the dense architecture (torch-pruning's dependency graph maps the plan's
dimensions onto tensor axes); loading the saved family does not.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..adapters import get_adapter
from ..base_model import build_from_spec, build_skeleton, stored_spec
from ..descendant import bare_model, load_descendant
from ..errors import CheckpointError, ElastoformerError, UnsupportedModelError
from ..family import ElasticFamily
from ..family.layout import Layout
from ..family.modules import build_level
from ..family.parts import FamilyParts
from ..latency.store import card_entries
from ..modeling.modeling_elastoformer import conv_groups
from ..pruning.record import ElasticPlan
from ..run_folder import (
    LEVEL_FILE,
    PLAN_FILE,
    RUN_FILE,
    level_dir,
    read_json,
    read_level_info,
    stable_metrics,
)
from .levels import level_specific_names, original_indices


def head_axes(dense: nn.Module, plan: ElasticPlan) -> dict[str, dict[int, tuple[int, int, int]]]:
    """``{tensor: {axis: (groups, heads, head_dim)}}`` for the axes whose widths are per head: the outputs of
    the q/k/v (or fused qkv) linears and the attention width's root (the output projection's input); and the
    inputs that are copies of one width (:meth:`~elastoformer_hf.adapters.ArchitectureAdapter.repeated_axes`)."""
    adapter = get_adapter(dense)
    attention = adapter.attention_modules(dense)
    names = {m: n for n, m in dense.named_modules()}
    found: dict[str, dict[int, tuple[int, int, int]]] = {}

    def add(module_name: str, attn: str, axis: int) -> None:
        heads, head_dim = attention[attn]
        module = dense.get_submodule(module_name)
        groups, rest = divmod(module.weight.shape[axis], heads * head_dim)
        if rest or groups < 1:
            raise ElastoformerError(f"{module_name}: {module.weight.shape[axis]} channels are not whole heads "
                                    f"({heads} x {head_dim})")
        found.setdefault(f"{module_name}.weight", {})[axis] = (groups, heads, head_dim)
        if axis == 0 and getattr(module, "bias", None) is not None:
            found.setdefault(f"{module_name}.bias", {})[0] = (groups, heads, head_dim)

    for module in adapter.num_heads(dense):
        name = names[module]
        owners = [a for a in attention if name.startswith(a + ".")]
        if owners:
            add(name, max(owners, key=len), 0)
    for dim in plan.dims.values():
        if dim.attention in attention:
            add(dim.root, dim.attention, 1 if dim.axis == "in" else 0)
    # an input that is copies of one width (DINOv2's classifier reads concat(CLS, mean of patches)) is stored as
    # copies x width x 1, like the heads of a fused qkv: each copy keeps the same channels, in the width's order
    for tensor, axes in adapter.repeated_axes(dense).items():
        for axis, copies in axes.items():
            found.setdefault(tensor, {})[axis] = (copies, dense.get_parameter(tensor).shape[axis] // copies, 1)
    return found


def own_names(model: nn.Module, *, share_classifier: bool = False) -> set[str]:
    """Tensors each level stores for itself: :func:`level_specific_names` (``share_classifier``: without the
    classifier weight) plus non-float or 0-d state."""
    state = model.state_dict()
    own = level_specific_names(model, share_classifier=share_classifier)
    return own | {n for n, t in state.items() if not t.is_floating_point() or t.ndim == 0}


def shares_classifier(run: Path, infos: list[dict]) -> bool:
    """Whether the run's levels share the classifier weight: ``training.share_classifier`` in the run's settings
    (``elastic_run.json``), else ``share_classifier`` in the levels' ``elastic_level.json``; runs that record
    neither (written before the option existed) keep a classifier per level."""
    recorded = {info["share_classifier"] for info in infos if "share_classifier" in info}
    path = run / RUN_FILE
    if path.is_file():
        settings = read_json(path, error=CheckpointError)
        training = (settings.get("training") if isinstance(settings, dict) else None) or {}
        if "share_classifier" in training:
            recorded.add(training["share_classifier"])
    if len(recorded) > 1:
        raise CheckpointError(f"{run}: the run's settings and its levels disagree on share_classifier; "
                              "the levels were not trained as one family")
    return bool(recorded.pop()) if recorded else False


def _channel_sets(size: int, per_level: list[torch.Tensor | None]) -> tuple:
    return size, tuple(None if ix is None else tuple(ix.sort().values.tolist()) for ix in per_level)


def conv_group_axes(dense: nn.Module, indices: list[dict]) -> dict[tuple, int]:
    """The channels that grouped convolutions (not depthwise) split into groups, by their kept channels at every
    level (what every axis coupled with them holds too: :func:`_channel_sets`) -> the group count.

    torch-pruning keeps a grouped convolution's group count and the same offsets in every group; the offsets its
    weight's input axis keeps are those of every input group.
    """
    found: dict[tuple, int] = {}
    for name, module in dense.named_modules():
        groups = getattr(module, "groups", 1) if isinstance(module, nn.modules.conv._ConvNd) else 1
        if groups == 1 or module.in_channels == module.out_channels == groups:  # depthwise: per channel
            continue
        weight, per_group = f"{name}.weight", module.in_channels // groups
        outputs = [ix[weight][0] for ix in indices]
        inputs = [None if ix[weight][1] is None else
                  (torch.arange(groups).view(-1, 1) * per_group + ix[weight][1].view(1, -1)).flatten() for ix in indices]
        for key in (_channel_sets(module.out_channels, outputs), _channel_sets(module.in_channels, inputs)):
            if found.setdefault(key, groups) != groups:
                raise UnsupportedModelError(f"{name}: the same channels feed convolutions of {groups} and "
                                            f"{found[key]} groups; the family stores one group count per channel set")
    return found


def make_layout(dense: nn.Module, plan: ElasticPlan, *, share_classifier: bool = False
                ) -> tuple[Layout, list[dict]]:
    """The family layout of ``plan`` and every level's original indices (:func:`original_indices`)."""
    indices = [original_indices(dense, plan, k) for k in range(1, plan.num_levels + 1)]
    state = dense.state_dict()
    mine, per_head = own_names(dense, share_classifier=share_classifier), head_axes(dense, plan)
    # a vector over copies x width (Swin's patch-merging LayerNorm) has no strided view per level, and only linear
    # layers take a split one: each level stores its own (4 x its width numbers)
    mine |= {name for name in get_adapter(dense).repeated_axes(dense) if state[name].ndim == 1}
    grouped = conv_group_axes(dense, indices)
    layout = Layout(plan.num_levels, [], {n: tuple(t.shape) for n, t in state.items()}, {}, {})
    for name, tensor in state.items():
        specs = []
        for axis, size in enumerate(tensor.shape):
            per_level = [ix[name][axis] if name in ix else None for ix in indices]
            heads, unit = per_head.get(name, {}).get(axis), "heads"
            groups = grouped.get(_channel_sets(size, per_level)) if heads is None and grouped else None
            if groups is not None:
                heads, unit = (1, groups, size // groups), "conv_groups"
            specs.append(layout.add_axis(per_level, size, heads, f"{name} axis {axis}", unit))
        (layout.own if name in mine else layout.shared)[name] = specs
    return layout, indices


def load_level(folder: Path) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The ``dn{k}/`` model as saved (for its logits) and its state dict in the base architecture's names."""
    model = load_descendant(folder)
    return model, {n: t.detach() for n, t in bare_model(model).state_dict().items()}


def _label_names(model: nn.Module) -> list[str] | None:
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if id2label:
        return [id2label[i] for i in sorted(id2label)]
    names = (getattr(model, "pretrained_cfg", None) or {}).get("label_names")
    return list(names) if names else None


def _example(dense: nn.Module, plan: ElasticPlan) -> torch.Tensor:
    adapter = get_adapter(dense)
    size = plan.image_size
    return torch.randn(2, adapter.in_channels(dense), size, size, generator=torch.Generator().manual_seed(0))


def _level_metadata(info: dict, groups: dict[str, int], folder: Path) -> dict:
    """A level's entry in ``family_config.json``: drawn from its records only, so that the same run always gives the
    same bytes (no evaluation timings; the latencies recorded in ``latency.json``, as a refresh merges them)."""
    metrics = stable_metrics(info.get("metrics"))
    accuracy = metrics.get("eval_accuracy", metrics.get("accuracy"))
    keys = ("level", "keep_fraction", "params", "macs", "flops", "heads", "structure", "checkpoint_format")
    return {**{k: info.get(k) for k in keys}, "conv_groups": groups, "accuracy": accuracy, "metrics": metrics,
            "latency": card_entries(folder)}


def build_family(run_dir: str | Path, *, verify: bool = True) -> ElasticFamily:
    """The family of a finished run folder (``elastic_plan.json`` and ``dn1/`` .. ``dn{N+1}/``).

    Args:
        run_dir: a run folder as :class:`~elastoformer_hf.training.ElasticTrainer` writes it.
        verify: run every level as the family will and compare its logits with its ``dn{k}/`` model.

    Returns:
        The :class:`~elastoformer_hf.family.ElasticFamily`, at its full level.

    Raises:
        CheckpointError: a level folder is missing, corrupt or not the plan's level.
        ElastoformerError: the levels do not nest, or a level does not reproduce its ``dn{k}/`` logits.
    """
    return ElasticFamily(convert_run(run_dir, verify=verify))


def convert_run(run_dir: str | Path, *, verify: bool = True) -> FamilyParts:
    """Read ``run_dir`` (as :class:`~elastoformer_hf.training.ElasticTrainer` writes it) into family storage.

    Shared tensors come from the last (full) level, reordered; every smaller level's shared tensors must be
    exactly the prefix views of them (else the levels do not nest: an error). Which tensors are per level
    follows the run's ``share_classifier`` setting (:func:`shares_classifier`). ``verify`` also runs every level
    as the family will and compares its logits with the ``dn{k}/`` model's.
    """
    run = Path(run_dir)
    plan = ElasticPlan.load(run)
    infos = [read_level_info(level_dir(run, k)) for k in range(1, plan.num_levels + 1)]
    if "base_model" not in infos[-1]:
        raise CheckpointError(f"{level_dir(run, plan.num_levels)} does not record its base model (base_model)")
    spec = stored_spec(infos[-1]["base_model"], level_dir(run, plan.num_levels) / LEVEL_FILE)
    dense = build_from_spec(spec).eval()
    share = shares_classifier(run, infos)
    layout, indices = make_layout(dense, plan, share_classifier=share)  # replays the plan: needs autograd
    with torch.no_grad():
        parts = _convert(run, plan, infos, spec, dense, layout, indices, verify)
    parts.info["share_classifier"] = share
    return parts


def _convert(run, plan, infos, spec, dense, layout, indices, verify) -> FamilyParts:
    adapter = get_adapter(dense)
    skeleton = build_skeleton(spec).eval()
    x = _example(dense, plan) if verify else None
    shared: dict[str, torch.Tensor] = {}
    own: list[dict[str, torch.Tensor]] = [{} for _ in range(plan.num_levels)]
    dense_groups = conv_groups(skeleton)
    levels: list[dict] = [{} for _ in range(plan.num_levels)]
    label_names = None
    for k in reversed(range(1, plan.num_levels + 1)):
        folder = level_dir(run, k)
        reference, state = load_level(folder)
        expected = {n: layout.level_shape(n, k) for n in layout.shapes}
        if {n: tuple(t.shape) for n, t in state.items()} != expected:
            wrong = sorted(n for n in set(state) | set(expected)
                           if n not in state or n not in expected or tuple(state[n].shape) != expected[n])
            raise CheckpointError(f"{folder} does not hold level {k} of {run / PLAN_FILE} "
                                  f"(tensors {wrong[:3]} differ)")
        ordered = {n: layout.to_family_order(n, t, indices[k - 1].get(n, [None] * t.ndim), k)
                   for n, t in state.items()}
        if k == plan.num_levels:
            shared = {n: ordered[n] for n in layout.shared}
            label_names = _label_names(reference)
        for name in layout.shared:
            view = layout.view(shared[name], name, k)[0].reshape(expected[name])
            if not torch.equal(view, ordered[name]):
                diff = (view.float() - ordered[name].float()).abs().max().item()
                raise ElastoformerError(f"dn{k}'s {name} is not the prefix of dn{plan.num_levels}'s (max |diff| "
                                        f"{diff:.3g}): the levels of {run} do not nest")
        own[k - 1] = {n: ordered[n] for n in layout.own}
        # grouped convolutions whose group count pruning changed (depthwise ones follow their channels)
        groups = {n: g for n, g in conv_groups(bare_model(reference)).items() if dense_groups.get(n) != g}
        levels[k - 1] = _level_metadata(infos[k - 1], groups, folder)
        if verify:
            model = build_level(skeleton, layout, k, shared, own[k - 1], levels[k - 1])
            got, want = adapter.forward_logits(model, x), adapter.output_transform(reference(x))
            if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
                raise ElastoformerError(f"the family's level {k} does not reproduce {folder}'s logits (max |diff| "
                                        f"{(got - want).abs().max().item():.3g})")
        del reference, state
    info = {"model_name": plan.model_name, "architecture": plan.architecture, "image_size": plan.image_size,
            "plan": plan.to_dict(include_kept=False), "label_names": label_names}
    return FamilyParts(spec, layout, shared, own, levels, info)

