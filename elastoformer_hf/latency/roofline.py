"""Latency estimates without the device: a per-kernel roofline over a model's eager forward pass.

Cost extraction runs one forward pass on the CPU (random input, ``torch.no_grad``) under a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` that sees every ATen op eager PyTorch would launch as a
GPU kernel, and forward hooks on every module to name the layer each op runs in (the innermost module: a Linear,
a LayerNorm, the attention module for its fused attention op, a ViT block for its residual adds). Per op it
records FLOPs (torch's own formulas, :data:`torch.utils.flop_counter.flop_registry`, for matmuls and
convolutions; one per element for elementwise, normalisation and pooling ops) and the elements it reads and writes
(inputs, weights included, and outputs). Views allocate nothing and launch nothing, so they are skipped.
Attention ops (``scaled_dot_product_attention``) are recorded by shape and costed per the profile: one fused
kernel, or the math path (two batched matmuls, a scale, a softmax, a head-merging copy) that transformers'
eager attention and PyTorch < 2.0 run.

Why not a module-level counter (torch-pruning's, fvcore): they count MACs of modules, not the ops between them
(residual adds, the attention matmuls inside the attention module, copies) nor the number of kernels, and
the eager per-kernel overhead is what dominates small models at batch 1. The dispatch mode counts both.

The estimate, for a profile with peak FLOP/s ``P``, bandwidth ``W``, efficiencies ``e_c``/``e_m`` and per-kernel
overhead ``o``, is ``t = sum_k max(flops_k / (P e_c), bytes_k / (W e_m)) + n_kernels * o`` with bytes =
elements x the precision's element size. :func:`calibrate` fits ``e_c``, ``e_m`` and ``o`` to latencies measured
on the device.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from ..adapters import get_adapter
from ..descendant import bare_model, load_descendant
from ..errors import ElastoformerError
from ..run_folder import plan_image_size, read_level_info
from .entries import now_iso
from .profiles import DTYPE_BYTES, DeviceProfile, check_precision, load_profile

RUNTIME = "PyTorch eager (roofline estimate)"
#: ops that allocate or alias without launching a kernel (besides views, which ``OpOverload.is_view`` flags)
_NO_KERNEL = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "detach", "alias",
                        "lift_fresh", "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel", "size", "stride",
                        "_unsafe_view", "set_", "resize_"})
_ATTENTION_OPS = frozenset({"scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
                            "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                            "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_fused_attention_overrideable",
                            "_flash_attention_forward", "_efficient_attention_forward"})
#: FLOPs per score element of a softmax (max, subtract, exp, sum, divide)
_SOFTMAX_FLOPS = 5


@dataclass
class OpCost:
    """One kernel (or, for ``attention``, one attention call whose kernels depend on the profile).

    Args:
        layer (`str`): the innermost module the op runs in (``""``: the model itself).
        op (`str`): the ATen op's name.
        flops (`float`): its FLOPs (0 for attention ops, costed per profile).
        elements (`float`): the elements it reads and writes (0 for attention ops).
        attention (`tuple`, *optional*): (batch x heads, query tokens, key tokens, q/k head dim, v head dim)
            for attention ops.
    """

    layer: str
    op: str
    flops: float
    elements: float
    #: (batch x heads, query tokens, key tokens, q/k head dim, v head dim) for attention ops
    attention: tuple | None = None

    def to_dict(self) -> dict:
        """The op as JSON-friendly data.

        Returns:
            `dict`: ``layer``, ``op``, ``flops``, ``elements`` and, for attention ops, ``attention`` (a list).
        """
        d = {"layer": self.layer, "op": self.op, "flops": self.flops, "elements": self.elements}
        if self.attention is not None:
            d["attention"] = list(self.attention)
        return d


@dataclass
class ModelCosts:
    """The ops of one forward pass at ``batch_size`` x ``image_size``; ``label`` names the model in reports.

    Args:
        ops (`list[OpCost]`): the ops, in the order they ran.
        batch_size (`int`): the batch size of the pass.
        image_size (`int`): the input resolution of the pass.
        label (`str`, *optional*, defaults to `"model"`): names the model in reports.
        layer_types (`dict`, *optional*, defaults to `{}`): module name -> its class name.
    """

    ops: list[OpCost]
    batch_size: int
    image_size: int
    label: str = "model"
    layer_types: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The costs as JSON-friendly data.

        Returns:
            `dict`: ``label``, ``batch_size``, ``image_size`` and ``ops`` (each :meth:`OpCost.to_dict`).
        """
        return {"label": self.label, "batch_size": self.batch_size, "image_size": self.image_size,
                "ops": [o.to_dict() for o in self.ops]}


class _CostMode(TorchDispatchMode):
    def __init__(self, stack: list[str]):
        super().__init__()
        self.stack = stack
        self.ops: list[OpCost] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if func.is_view or name in _NO_KERNEL:
            return out
        layer = self.stack[-1] if self.stack else ""
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if name in _ATTENTION_OPS:
            q, k, v = tensors[:3]
            bh = math.prod(q.shape[:-2])
            shape = (bh, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1])
            self.ops.append(OpCost(layer, name, 0.0, 0.0, attention=shape))
            return out
        elements = float(sum(t.numel() for t in tensors) + sum(t.numel() for t in outputs))
        if func.overloadpacket in flop_registry:
            flops = float(flop_registry[func.overloadpacket](*args, **kwargs, out_val=out))
        else:  # elementwise, normalisation, pooling, reductions: about one FLOP per element touched
            flops = float(max([t.numel() for t in tensors + outputs] or [0]))
        self.ops.append(OpCost(layer, name, flops, elements))
        return out


def _input_shape(model: nn.Module, image_size: int | None, batch_size: int) -> tuple[int, ...]:
    inner = bare_model(model)
    adapter = get_adapter(inner)
    size = image_size or adapter.image_size(inner)
    if adapter.fixed_resolution and image_size and image_size != adapter.image_size(inner):
        raise ElastoformerError(f"{type(inner).__name__} runs only at {adapter.image_size(inner)} px "
                                f"(position embeddings); got image_size {image_size}")
    return (batch_size, adapter.in_channels(inner), size, size)


def load_model(model_or_dir: nn.Module | str | os.PathLike) -> tuple[nn.Module, str, int | None]:
    """The model to cost, for a module or a ``dn{k}/`` folder.

    Args:
        model_or_dir (`nn.Module` or `str` or `os.PathLike`): a module, or a ``dn{k}/`` folder.

    Returns:
        `tuple[nn.Module, str, int | None]`: ``(model, label, image_size recorded with it or None)``; the
        label is the module's class name or the folder's name, the size the level's (else its run's plan's).

    Raises:
        ElastoformerError: ``model_or_dir`` is neither a module nor a folder.
        CheckpointError: the folder has no level record, its record is corrupt, or its model cannot be loaded.
    """
    if isinstance(model_or_dir, nn.Module):
        return model_or_dir, type(model_or_dir).__name__, None
    path = Path(model_or_dir)
    if not path.is_dir():
        raise ElastoformerError(f"{path} is not a folder: pass a dn{{k}}/ folder or a model")
    info = read_level_info(path)
    # a dn{k}/ of a run: the resolution its costs were planned at
    size = info.get("image_size") or plan_image_size(path.parent)
    return load_descendant(path), path.name, size


@torch.no_grad()
def extract_costs(model_or_dir: nn.Module | str | os.PathLike, *, batch_size: int = 1,
                  image_size: int | None = None, label: str | None = None,
                  input_shape: tuple[int, ...] | None = None) -> ModelCosts:
    """Every kernel of one eager forward pass of ``model_or_dir``, with its layer, FLOPs and elements moved.

    The pass runs on random input in eval mode (the model's mode is restored afterwards).

    Args:
        model_or_dir (`nn.Module` or `str` or `os.PathLike`): a module or a ``dn{k}/`` folder.
        batch_size (`int`, *optional*, defaults to `1`): the batch size of the pass.
        image_size (`int`, *optional*): the input resolution (default: the resolution recorded with a folder,
            else the model's).
        label (`str`, *optional*): names the model in reports (default: :func:`load_model`'s).
        input_shape (`tuple[int, ...]`, *optional*): the input shape (batch first); replaces ``batch_size``
            and ``image_size``, for a module no adapter knows.

    Returns:
        `ModelCosts`: the ops of the pass.

    Raises:
        ElastoformerError: ``batch_size`` is not an integer >= 1, ``model_or_dir`` is neither a module nor a
            folder, or ``image_size`` differs from a fixed-resolution model's.
        CheckpointError: a folder that is not a loadable level.
        UnsupportedModelError: without ``input_shape``, no adapter supports the model.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ElastoformerError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    model, default_label, recorded_size = load_model(model_or_dir)
    if input_shape is not None:
        shape = tuple(int(n) for n in input_shape)
        batch_size = shape[0]
    else:
        shape = _input_shape(model, image_size or recorded_size, batch_size)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.randn(shape, dtype=dtype, device=param.device if param is not None else None)
    stack: list[str] = []
    types: dict[str, str] = {}
    handles = []

    def leave(_module, _args, _output) -> None:  # returns None: a hook's return value replaces the output
        stack.pop()

    for name, module in model.named_modules():
        types[name] = type(module).__name__
        handles.append(module.register_forward_pre_hook(lambda _m, _a, n=name: stack.append(n) and None))
        handles.append(module.register_forward_hook(leave, always_call=True))
    was_training = model.training
    model.eval()
    try:
        with _CostMode(stack) as mode:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return ModelCosts(mode.ops, batch_size, shape[-1], label or default_label, types)


# ------------------------------------------------------------------------------------------------ the roofline
def _kernels(costs: ModelCosts, fused_attention: bool) -> list[tuple[str, str, float, float]]:
    """``(layer, op, flops, elements)`` per kernel, attention expanded for the profile's software stack."""
    out = []
    for op in costs.ops:
        if op.attention is None:
            out.append((op.layer, op.op, op.flops, op.elements))
            continue
        bh, t, s, d, dv = op.attention
        q, k, v, o, scores = bh * t * d, bh * s * d, bh * s * dv, bh * t * dv, bh * t * s
        if fused_attention:
            out.append((op.layer, "attention (fused)", 2.0 * scores * (d + dv) + _SOFTMAX_FLOPS * scores,
                        float(q + k + v + o)))
        else:
            out += [(op.layer, "attention: q @ k^T", 2.0 * scores * d, float(q + k + scores)),
                    (op.layer, "attention: scale", float(scores), 2.0 * scores),
                    (op.layer, "attention: softmax", float(_SOFTMAX_FLOPS * scores), 2.0 * scores),
                    (op.layer, "attention: p @ v", 2.0 * scores * dv, float(scores + v + o)),
                    (op.layer, "attention: merge heads", float(o), 2.0 * o)]
    return out


def _terms(costs: ModelCosts, profile: DeviceProfile, precision: str):
    """Per kernel: seconds at 100 % compute and 100 % bandwidth efficiency; and the kernels themselves."""
    kernels = _kernels(costs, profile.fused_attention)
    flops = np.array([k[2] for k in kernels], dtype=float)
    nbytes = np.array([k[3] for k in kernels], dtype=float) * DTYPE_BYTES[precision]
    return flops / profile.peak(precision), nbytes / profile.memory_bandwidth, kernels


def _predict(c: np.ndarray, m: np.ndarray, n: int, eff_compute: float, eff_memory: float, overhead: float) -> float:
    return float(np.maximum(c / eff_compute, m / eff_memory).sum() + n * overhead)


def _as_costs(item, batch_size: int, image_size: int | None) -> ModelCosts:
    if isinstance(item, ModelCosts):
        if item.batch_size != batch_size:
            raise ElastoformerError(f"costs of {item.label} were extracted at batch {item.batch_size}, "
                                    f"not {batch_size}")
        return item
    return extract_costs(item, batch_size=batch_size, image_size=image_size)


def estimate_latency(model_or_dn_dir, profile: DeviceProfile | str, *, batch_size: int = 1,
                     precision: str = "fp32", image_size: int | None = None, top_layers: int = 10) -> dict:
    """The roofline estimate of one forward pass, in milliseconds, with its breakdown.

    Args:
        model_or_dn_dir (`nn.Module`, `str`, `os.PathLike` or `ModelCosts`): a module, a ``dn{k}/`` folder or
            :class:`ModelCosts` from :func:`extract_costs` (extracted at ``batch_size``).
        profile (`DeviceProfile` or `str`): a :class:`DeviceProfile`, a built-in key or a JSON file.
        batch_size (`int`, *optional*, defaults to `1`): the batch size.
        precision (`str`, *optional*, defaults to `"fp32"`): ``fp32`` or ``fp16``.
        image_size (`int`, *optional*): the input resolution (default: the model's; see
            :func:`extract_costs`).
        top_layers (`int`, *optional*, defaults to `10`): how many of the slowest layers to list.

    Returns:
        `dict`: ``ms`` and ``compute_ms`` (kernels limited by FLOPs), ``memory_ms`` (limited by bytes),
        ``overhead_ms`` (launches), ``kernels``, ``compute_bound_kernels``, ``flops``, ``bytes``, ``by_op``
        (ms per op kind), ``layers`` (the ``top_layers`` slowest layers), ``model``, ``batch_size``,
        ``image_size``, ``precision``, the profile (``profile``, ``device``) and whether it is calibrated, and
        ``notes`` for a latency entry.

    Raises:
        ElastoformerError: an unknown or invalid profile, an unsupported precision, :class:`ModelCosts`
            extracted at another batch size, or the errors of :func:`extract_costs`.
        CheckpointError: a folder that is not a loadable level.
        UnsupportedModelError: no adapter supports the model.
    """
    profile = load_profile(profile)
    check_precision(precision)
    costs = _as_costs(model_or_dn_dir, batch_size, image_size)
    c, m, kernels = _terms(costs, profile, precision)
    tc, tm = c / profile.eff_compute, m / profile.eff_memory
    per_kernel = np.maximum(tc, tm)
    compute_bound = tc >= tm
    overhead = len(kernels) * profile.kernel_overhead_s
    by_layer: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for (layer, op, _, _), t in zip(kernels, per_kernel):
        by_layer[layer] = by_layer.get(layer, 0.0) + float(t) + profile.kernel_overhead_s
        kind = op.split(":")[0] if op.startswith("attention") else op
        by_op[kind] = by_op.get(kind, 0.0) + float(t) + profile.kernel_overhead_s
    slowest = sorted(by_layer.items(), key=lambda kv: -kv[1])[:top_layers]
    total = float(per_kernel.sum() + overhead)
    return {
        "ms": 1e3 * total,
        "compute_ms": 1e3 * float(per_kernel[compute_bound].sum()),
        "memory_ms": 1e3 * float(per_kernel[~compute_bound].sum()),
        "overhead_ms": 1e3 * overhead,
        "kernels": len(kernels),
        "compute_bound_kernels": int(compute_bound.sum()),
        "flops": float(sum(k[2] for k in kernels)),
        "bytes": float(sum(k[3] for k in kernels) * DTYPE_BYTES[precision]),
        "by_op": {k: 1e3 * v for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "layers": [{"layer": name or "(model)", "type": costs.layer_types.get(name, ""), "ms": 1e3 * t}
                   for name, t in slowest],
        "model": costs.label,
        "batch_size": batch_size,
        "image_size": costs.image_size,
        "precision": precision,
        "profile": profile.key,
        "device": profile.name,
        "calibrated": profile.calibrated,
        "notes": estimate_notes(profile),
    }


def estimate_notes(profile: DeviceProfile) -> str:
    """The ``notes`` of an estimate made with ``profile``.

    Args:
        profile (`DeviceProfile`): the profile.

    Returns:
        `str`: how many measured points a calibrated profile was fitted on and what was fitted; for an
        uncalibrated one, that it is a roofline from published peak specs with assumed efficiency and kernel
        overhead.
    """
    if profile.calibrated:
        n = profile.calibration.get("points")
        return (f"estimate: roofline calibrated on {n} measured point{'s' if n != 1 else ''} "
                f"({', '.join(profile.calibration.get('fitted', []))} fitted)")
    return "estimate: roofline from published peak specs (efficiency and kernel overhead assumed, not measured)"


def estimate_entry(result: dict, date: str | None = None) -> dict:
    """A latency record (:mod:`elastoformer_hf.latency.entries`) for an :func:`estimate_latency` result:
    ``method: "estimated"``, one number (``median_ms``), no repeats.

    Args:
        result (`dict`): what :func:`estimate_latency` returned.
        date (`str`, *optional*): the record's date (default: now).

    Returns:
        `dict`: the record; its device is the profile's (type ``cuda``: every profile is a Jetson GPU).
    """
    return {"batch_size": result["batch_size"], "median_ms": round(result["ms"], 4), "min_ms": None, "p90_ms": None,
            "repeats": None, "runtime": RUNTIME, "precision": result["precision"], "method": "estimated",
            "date": date or now_iso(), "device": {"name": result["device"], "type": "cuda"},  # every profile is a Jetson GPU
            "notes": result["notes"]}


def estimate_level(folder: str | os.PathLike, profile: DeviceProfile | str, *, batch_size: int = 1,
                   precision: str = "fp32") -> tuple[dict, dict]:
    """``(result, entry)`` for one ``dn{k}/`` folder: :func:`estimate_latency` of its kernels on ``profile``, and
    the latency record to store (:func:`estimate_entry`, with the breakdown and the profile in ``details``)."""
    profile = load_profile(profile)
    result = estimate_latency(extract_costs(folder, batch_size=batch_size), profile, batch_size=batch_size,
                              precision=precision)
    entry = estimate_entry(result)
    entry["details"] = {k: result[k] for k in ("compute_ms", "memory_ms", "overhead_ms", "kernels", "flops", "bytes")}
    entry["details"]["profile"] = {k: v for k, v in profile.to_dict().items() if k != "sources"}
    return result, entry


# ------------------------------------------------------------------------------------------------ calibration
#: bounds of the fitted parameters: efficiencies in [1 %, 100 %], overhead in [0, 5 ms] per kernel
_EFF_MIN, _OVERHEAD_MAX = 0.01, 5e-3


def calibrate(profile: DeviceProfile | str, measured: Sequence[tuple], *, batch_size: int = 1,
              precision: str = "fp32", image_size: int | None = None) -> DeviceProfile:
    """``profile`` with its efficiencies and kernel overhead fitted to latencies measured on the device.

    ``measured``: ``(model_or_dn_dir_or_costs, ms)`` pairs, or ``(..., ms, batch_size)`` triples when the points
    were measured at different batch sizes. Needs >= 2 points. With 2 points two parameters are fitted (one scale
    on both efficiencies, and the overhead); with 3 or more all three (``eff_compute``, ``eff_memory``,
    ``kernel_overhead_s``). The fit is bounded least squares on relative errors (efficiencies in [0.01, 1],
    overhead in [0, 5 ms]) with a few starting points, since the per-kernel ``max`` makes the objective piecewise.
    The returned profile's ``calibration`` records how many points it was fitted on, the fitted parameters and the
    residual of each point (in %): a fit on all points says nothing about new models; check it leaving points out.

    Args:
        profile (`DeviceProfile` or `str`): a :class:`DeviceProfile`, a built-in key or a JSON file.
        measured (`Sequence[tuple]`): ``(model_or_dn_dir_or_costs, ms)`` pairs, or ``(..., ms, batch_size)``
            triples when the points were measured at different batch sizes. Needs >= 2 points.
        batch_size (`int`, *optional*, defaults to `1`): the batch size of the pairs.
        precision (`str`, *optional*, defaults to `"fp32"`): ``fp32`` or ``fp16``.
        image_size (`int`, *optional*): the input resolution (default: each model's).

    Returns:
        `DeviceProfile`: a copy of ``profile`` with the fitted parameters and its ``calibration``.

    Raises:
        ElastoformerError: an unknown or invalid profile, an unsupported precision, fewer than 2 points, a
            point that is not a pair or triple, a latency that is not a positive number of ms, or a model that
            cannot be costed (:func:`extract_costs`).
    """
    from scipy.optimize import least_squares

    profile = load_profile(profile)
    check_precision(precision)
    points = list(measured)
    if len(points) < 2:
        raise ElastoformerError(f"calibration needs at least 2 measured points, got {len(points)}")
    terms, targets, labels = [], [], []
    for point in points:
        if len(point) not in (2, 3):
            raise ElastoformerError(f"a calibration point is (model, ms) or (model, ms, batch_size), got {point!r}")
        item, ms = point[0], point[1]
        bs = int(point[2]) if len(point) == 3 else batch_size
        if not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
            raise ElastoformerError(f"a measured latency must be a positive number of ms, got {ms!r}")
        costs = _as_costs(item, bs, image_size)
        c, m, kernels = _terms(costs, profile, precision)
        terms.append((c, m, len(kernels)))
        targets.append(ms / 1e3)
        labels.append(costs.label)
    targets = np.array(targets)
    three = len(points) >= 3
    e_c0, e_m0 = profile.eff_compute, profile.eff_memory

    def unpack(x):
        if three:
            return x[0], x[1], x[2]
        return e_c0 / x[0], e_m0 / x[0], x[1]

    def residuals(x):
        ec, em, o = unpack(x)
        return np.array([_predict(c, m, n, ec, em, o) for c, m, n in terms]) / targets - 1.0

    if three:
        lower, upper = [_EFF_MIN, _EFF_MIN, 0.0], [1.0, 1.0, _OVERHEAD_MAX]
        starts = [[ec, em, o] for ec in (0.05, 0.3, 0.9) for em in (0.1, 0.7) for o in (0.0, 2e-5, 2e-4)]
    else:  # one scale s on both default efficiencies (eff = eff0 / s) and the overhead
        lower, upper = [max(e_c0, e_m0), 0.0], [min(e_c0, e_m0) / _EFF_MIN, _OVERHEAD_MAX]
        starts = [[s, o] for s in (lower[0], 2 * lower[0], 10 * lower[0]) for o in (0.0, 2e-5, 2e-4)]
    best = None
    for x0 in starts:
        x0 = np.clip(x0, lower, upper)
        fit = least_squares(residuals, x0, bounds=(lower, upper), x_scale=np.maximum(np.abs(x0), 1e-5))
        if best is None or fit.cost < best.cost:
            best = fit
    ec, em, o = unpack(best.x)
    fitted = ["eff_compute", "eff_memory", "kernel_overhead_s"] if three else \
        ["efficiency scale (eff_compute and eff_memory together)", "kernel_overhead_s"]
    calibration = {
        "points": len(points),
        "fitted": fitted,
        "precision": precision,
        "models": labels,
        "measured_ms": [round(1e3 * t, 4) for t in targets],
        "residuals_pct": [round(100 * r, 2) for r in residuals(best.x)],
        "from_profile": profile.key,
    }
    return profile.replace(eff_compute=float(min(1.0, ec)), eff_memory=float(min(1.0, em)),
                           kernel_overhead_s=float(o), calibration=calibration)


def leave_one_out(profile: DeviceProfile | str, measured: Sequence[tuple], **kwargs) -> list[dict]:
    """For each point: calibrate on the others and predict it (``None`` when fewer than 2 others remain).

    Args:
        profile (`DeviceProfile` or `str`): a :class:`DeviceProfile`, a built-in key or a JSON file.
        measured (`Sequence[tuple]`): the points, as :func:`calibrate` takes them.
        **kwargs: :func:`calibrate`'s keyword arguments (``batch_size``, ``precision``, ``image_size``), also
            used for the prediction.

    Returns:
        `list[dict]`: ``{"index", "measured_ms", "predicted_ms", "error_pct"}`` per point: the honest error of
        a calibrated profile on a model it has not seen.

    Raises:
        ElastoformerError: as :func:`calibrate` and :func:`estimate_latency`.
    """
    out = []
    points = list(measured)
    batch_size = kwargs.get("batch_size", 1)
    for i, point in enumerate(points):
        rest = points[:i] + points[i + 1:]
        row = {"index": i, "measured_ms": float(point[1]), "predicted_ms": None, "error_pct": None}
        if len(rest) >= 2:
            fitted = calibrate(profile, rest, **kwargs)
            pred = estimate_latency(point[0], fitted, batch_size=int(point[2]) if len(point) == 3 else batch_size,
                                    precision=kwargs.get("precision", "fp32"),
                                    image_size=kwargs.get("image_size"))["ms"]
            row.update(predicted_ms=pred, error_pct=100 * (pred - point[1]) / point[1])
        out.append(row)
    return out

