"""How a family stores its tensors: every pruned axis reordered so that each level's channels are a prefix.

An axis' *order* gives, for every stored position, the original (dense) index of the channel stored there: the
core's channels first, then the ones level 2 adds, then level 3's, ... (ascending original order inside each
chunk). Level k keeps the first ``widths[k - 1]`` positions. Attention axes, whose widths are per head (q/k/v
output rows, the output projection's input columns), are ordered twice - heads, and offsets inside a head - and
level k keeps the first h_k heads and the first d_k offsets of each: ``view(groups, heads, head_dim)[:, :h_k,
:d_k]`` (groups = 3 for a fused qkv). The channels of a grouped convolution that is not depthwise (ResNeXt,
RegNet) are stored the same way, one "head" per convolution group (``unit="conv_groups"``): torch-pruning keeps
the same offsets in every group, and level k keeps the first d_k of each. An order depends only on the kept
index sets, so every axis of a coupled dimension (the residual stream, a conv's output and the next conv's
input) gets the same order and the reordered network computes the same function.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from ..errors import ElastoformerError


@dataclass(frozen=True)
class Prefix:
    """A plain axis: level k keeps the first ``widths[k - 1]`` positions of ``order``."""

    order: int


@dataclass(frozen=True)
class Heads:
    """A per-head axis of ``groups x heads x head_dim`` entries (head-major), heads and offsets ordered apart.
    ``unit="conv_groups"``: the "heads" are the groups of a grouped convolution (format version 2)."""

    groups: int
    heads: int  # order of the heads
    offsets: int  # order of the offsets inside a head
    unit: str = "heads"


UNITS = ("heads", "conv_groups")


#: how one axis of a tensor is stored; None: never pruned (full width, original order)
AxisSpec = Prefix | Heads | None


@dataclass
class Order:
    perm: torch.Tensor  # long, a permutation of range(size): original index at every stored position
    widths: list[int]  # per level, ascending levels

    @property
    def size(self) -> int:
        return self.perm.numel()


@dataclass
class Layout:
    """Where every tensor of every level lives. ``shared`` tensors are stored once at full width (level k: a view);
    ``own`` tensors (classifier, tokens, BatchNorm, ...) once per level, at that level's width, in family order."""

    num_levels: int
    orders: list[Order]
    shapes: dict[str, tuple[int, ...]]  # full (dense) shape of every tensor
    shared: dict[str, list[AxisSpec]]
    own: dict[str, list[AxisSpec]]
    _keys: dict = field(default_factory=dict, repr=False)

    # -- building ---------------------------------------------------------------------------------------
    def add_order(self, per_level: list[torch.Tensor | None], size: int, what: str) -> int | None:
        """The order of one axis from the original indices every level keeps (None: all); None when no level
        prunes it. Equal index sets give the same order (coupled axes share one)."""
        if all(ix is None for ix in per_level):
            return None
        if per_level[-1] is not None:
            raise ElastoformerError(f"{what}: the last level is pruned; a family's last level is the full model")
        first = torch.full((size,), self.num_levels, dtype=torch.long)
        for k in reversed(range(self.num_levels - 1)):
            if per_level[k] is not None:
                first[per_level[k]] = k
            else:
                first[:] = k
        perm = torch.argsort(first, stable=True)
        widths = [size if ix is None else ix.numel() for ix in per_level]
        for k, ix in enumerate(per_level):
            if ix is not None and not torch.equal(perm[: widths[k]].sort().values, ix.sort().values):
                raise ElastoformerError(f"{what}: level {k + 1}'s channels are not inside level {k + 2}'s; the "
                                        "levels do not nest")
        key = (perm.numpy().tobytes(), tuple(widths))
        if key not in self._keys:
            self._keys[key] = len(self.orders)
            self.orders.append(Order(perm, widths))
        return self._keys[key]

    def add_axis(self, per_level: list[torch.Tensor | None], size: int, heads: tuple[int, int, int] | None,
                 what: str, unit: str = "heads") -> AxisSpec:
        if heads is None:
            order = self.add_order(per_level, size, what)
            return None if order is None else Prefix(order)
        groups, num_heads, head_dim = heads
        if groups * num_heads * head_dim != size:
            raise ElastoformerError(f"{what}: {size} entries are not {groups} x {num_heads} heads x {head_dim}")
        kept_heads, kept_offsets = [], []
        for k, ix in enumerate(per_level):
            if ix is None:
                kept_heads.append(None)
                kept_offsets.append(None)
                continue
            h, o = (ix // head_dim) % num_heads, ix % head_dim
            h, o = torch.unique(h), torch.unique(o)
            product = (torch.arange(groups).view(-1, 1, 1) * num_heads * head_dim + h.view(1, -1, 1) * head_dim
                       + o.view(1, 1, -1)).flatten()
            if not torch.equal(ix.sort().values, product):
                kind = "convolution groups" if unit == "conv_groups" else "heads"
                raise ElastoformerError(f"{what}: level {k + 1} keeps different offsets in different {kind}; a family "
                                        f"stores per-head (per-group) widths as the same offsets in every one")
            kept_heads.append(None if h.numel() == num_heads else h)
            kept_offsets.append(None if o.numel() == head_dim else o)
        head_order = self.add_order(kept_heads, num_heads, f"{what} (heads)")
        offset_order = self.add_order(kept_offsets, head_dim, f"{what} (head offsets)")
        if head_order is None and offset_order is None:
            return None
        # an axis pruned only in heads (or only in offsets) still needs both orders: make the other the identity
        if head_order is None:
            head_order = self.add_order([torch.arange(num_heads)] * (self.num_levels - 1) + [None], num_heads, what)
        if offset_order is None:
            offset_order = self.add_order([torch.arange(head_dim)] * (self.num_levels - 1) + [None], head_dim, what)
        return Heads(groups, head_order, offset_order, unit)

    # -- reading ----------------------------------------------------------------------------------------
    def specs(self, name: str) -> list[AxisSpec]:
        return self.shared[name] if name in self.shared else self.own[name]

    def axis_width(self, spec: AxisSpec, size: int, level: int) -> int:
        if spec is None:
            return size
        if isinstance(spec, Prefix):
            return self.orders[spec.order].widths[level - 1]
        return spec.groups * self.orders[spec.heads].widths[level - 1] * self.orders[spec.offsets].widths[level - 1]

    def level_shape(self, name: str, level: int) -> tuple[int, ...]:
        return tuple(self.axis_width(s, n, level) for s, n in zip(self.specs(name), self.shapes[name]))

    def family_indices(self, spec: AxisSpec, size: int, level: int) -> torch.Tensor:
        """Original indices of a level's positions along one axis, in the family's (stored) order."""
        if spec is None:
            return torch.arange(size)
        if isinstance(spec, Prefix):
            order = self.orders[spec.order]
            return order.perm[: order.widths[level - 1]]
        heads, offsets = self.orders[spec.heads], self.orders[spec.offsets]
        h = heads.perm[: heads.widths[level - 1]]
        o = offsets.perm[: offsets.widths[level - 1]]
        return (torch.arange(spec.groups).view(-1, 1, 1) * heads.size * offsets.size + h.view(1, -1, 1) * offsets.size
                + o.view(1, 1, -1)).flatten()

    def to_family_order(self, name: str, tensor: torch.Tensor, indices: list[torch.Tensor | None],
                        level: int) -> torch.Tensor:
        """A level's tensor (positions holding the original indices ``indices``, per axis; None: all, in order)
        reordered as the family stores it (a contiguous copy that owns its memory)."""
        source = tensor
        for axis, (spec, size) in enumerate(zip(self.specs(name), self.shapes[name])):
            if spec is None:
                continue
            wanted = self.family_indices(spec, size, level)
            kept = indices[axis] if indices[axis] is not None else torch.arange(size)
            lookup = torch.full((size,), -1, dtype=torch.long)
            lookup[kept] = torch.arange(kept.numel())
            gather = lookup[wanted]
            if gather.numel() != tensor.shape[axis] or bool((gather < 0).any()):
                raise ElastoformerError(f"{name} axis {axis}: level {level} does not hold the channels its plan says")
            tensor = tensor.index_select(axis, gather)
        return tensor.clone(memory_format=torch.contiguous_format) if tensor is source else tensor.contiguous()

    def view(self, storage: torch.Tensor, name: str, level: int) -> tuple[torch.Tensor, list[int]]:
        """Level ``level``'s ``name`` as a view of the stored full tensor, and how many view axes every tensor
        axis spans. Per-head axes that no single stride describes stay split (``groups, heads, head_dim``)."""
        full_shape, index, native, spans = [], [], [], []
        for spec, size in zip(self.shared[name], storage.shape):
            if isinstance(spec, Heads):
                heads, offsets = self.orders[spec.heads], self.orders[spec.offsets]
                h, d = heads.widths[level - 1], offsets.widths[level - 1]
                full_shape += [spec.groups, heads.size, offsets.size]
                index += [slice(None), slice(0, h), slice(0, d)]
                native.append(spec.groups * h * d)
                spans.append(3)
            else:
                width = self.axis_width(spec, size, level)
                full_shape.append(size)
                index.append(slice(0, width))
                native.append(width)
                spans.append(1)
        view = storage.view(full_shape)[tuple(index)]
        try:
            return view.view(native), [1] * len(native)
        except RuntimeError:  # a per-head prefix: (..., groups, h, d, ...) has no 2-D stride
            return view, spans

    def format_version(self) -> int:
        """The family format version this layout needs: 2 when it stores convolution groups, else 1 (what
        every earlier family is)."""
        specs = itertools.chain(*self.shared.values(), *self.own.values())
        return 2 if any(isinstance(s, Heads) and s.unit == "conv_groups" for s in specs) else 1

    # -- JSON -------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "num_levels": self.num_levels,
            "orders": [{"tensor": f"order.{i}", "size": o.size, "widths": o.widths} for i, o in enumerate(self.orders)],
            "shared": {n: {"shape": list(self.shapes[n]), "axes": [_spec_json(s) for s in specs]}
                       for n, specs in self.shared.items()},
            "own": {n: {"shape": list(self.shapes[n]), "axes": [_spec_json(s) for s in specs]}
                    for n, specs in self.own.items()},
        }

    @classmethod
    def from_json(cls, data: dict, perms: dict[str, torch.Tensor]) -> Layout:
        """Raises KeyError/TypeError/ValueError on malformed input (the loader turns them into one message)."""
        num_levels = int(data["num_levels"])
        orders = []
        for entry in data["orders"]:
            perm = perms[entry["tensor"]].long()
            widths = [int(w) for w in entry["widths"]]
            size = int(entry["size"])
            if (perm.shape != (size,) or not torch.equal(perm.sort().values, torch.arange(size))
                    or len(widths) != num_levels or widths != sorted(widths) or widths[-1] != size or widths[0] < 1):
                raise ValueError(f"{entry['tensor']} is not a valid channel order")
            orders.append(Order(perm, widths))
        layout = cls(num_levels, orders, {}, {}, {})
        for part in ("shared", "own"):
            for name, entry in data[part].items():
                specs = [_spec_from_json(s, len(orders)) for s in entry["axes"]]
                shape = tuple(int(n) for n in entry["shape"])
                if len(specs) != len(shape):
                    raise ValueError(f"{name}: {len(specs)} axis specs for a {len(shape)}-d tensor")
                for spec, size in zip(specs, shape):
                    if isinstance(spec, Prefix) and orders[spec.order].size != size:
                        raise ValueError(f"{name}: order {spec.order} does not fit an axis of {size}")
                    heads, offsets = (orders[spec.heads], orders[spec.offsets]) if isinstance(spec, Heads) else (0, 0)
                    if isinstance(spec, Heads) and spec.groups * heads.size * offsets.size != size:
                        raise ValueError(f"{name}: heads x head_dim do not fit an axis of {size}")
                layout.shapes[name] = shape
                getattr(layout, part)[name] = specs
        return layout


def _spec_json(spec: AxisSpec):
    if spec is None:
        return None
    if isinstance(spec, Prefix):
        return {"order": spec.order}
    data = {"groups": spec.groups, "heads": spec.heads, "offsets": spec.offsets}
    return data if spec.unit == "heads" else {**data, "unit": spec.unit}  # version 1 files have no unit


def _spec_from_json(data, num_orders: int) -> AxisSpec:
    if data is None:
        return None
    if "order" in data:
        spec = Prefix(int(data["order"]))
        ids = [spec.order]
    else:
        spec = Heads(int(data["groups"]), int(data["heads"]), int(data["offsets"]), data.get("unit", "heads"))
        if spec.unit not in UNITS:
            raise ValueError(f"axis spec {data}: unit must be one of {UNITS}")
        ids = [spec.heads, spec.offsets]
    if any(not 0 <= i < num_orders for i in ids):
        raise ValueError(f"axis spec {data} names an order that does not exist")
    return spec
