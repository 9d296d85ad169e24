"""``ElasticFamily``: the whole family as one artifact that switches levels at run time.

    family = ElasticFamily.from_pretrained("runs/deit-elastic/family")   # or a Hub repo id
    family.set_level(family.select(max_macs=8e9))
    logits = family(pixel_values)

A finished training run writes ``family/``; :func:`elastoformer_hf.nesting.build_family` builds the family of
any run folder (it replays the plan, so it needs the engine; loading and running a family does not).
Saving: ``family.save_pretrained("deit-family")`` (``family_config.json`` + ``family.safetensors``).

Shared tensors are stored once at full width with every level's channels a prefix (:mod:`.layout`); every
level's module is built once, at load time, with parameters that are views of that storage. A view that the
forward pass would copy on every call (a strided convolution weight, a per-head prefix) is copied once instead,
when its level becomes current, and freed when it stops being current: the current level runs at the speed of
its own ``dn{k}`` model, and ``set_level`` costs one copy of those tensors (none at the full level).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..adapters import get_adapter
from ..base_model import build_skeleton
from ..errors import ElastoformerError
from ..latency.device import device_record
from ..latency.entries import normalize_entry
from ..latency.timing import PRECISION_NAMES, fixed_threads, summarize, time_interleaved
from .modules import bind, build_level, copied_per_call, get_tensor, level_skeleton
from .parts import FamilyParts
from .selection import device_name, select_level
from .storage import read_family, resolve_folder, write_family


class ElasticFamily:
    """Every level of an elastic family over one shared storage; level 1 is the core, the last the full model.

    Every level's module is built once, here, with parameters that are views of the storage; the current level's
    views that a forward pass would copy are bound to contiguous copies instead (:meth:`set_level`). The family
    starts at its full (last) level. Open one with :meth:`from_pretrained`, or build one from a run folder with
    :func:`elastoformer_hf.nesting.build_family`.

    Args:
        parts (`FamilyParts`): the family's storage (shared and per-level tensors, layout) and metadata.

    Raises:
        UnsupportedModelError: the architecture of ``parts.spec`` cannot be bound to the stored tensors.
    """

    def __init__(self, parts: FamilyParts):
        self._parts = parts
        self.spec = parts.spec
        self.levels = parts.levels  # per-level metadata: params, macs, flops, accuracy, latency, ...
        self.info = parts.info
        self._level = self.num_levels
        self._memory_format = torch.contiguous_format
        self._build_models()

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, *, verify: bool = True) -> ElasticFamily:
        """Moved: use :func:`elastoformer_hf.nesting.build_family` (same arguments).

        Building a family from a run folder replays its plan (torch-pruning), which loading a family never
        imports.

        Args:
            run_dir (`str` or `os.PathLike`): a run folder (unused).
            verify (`bool`, *optional*, defaults to `True`): unused.

        Raises:
            ElastoformerError: always, naming :func:`elastoformer_hf.nesting.build_family`.
        """
        raise ElastoformerError("ElasticFamily.from_run moved to elastoformer_hf.build_family(run_dir, verify=...) "
                                "(from elastoformer_hf.nesting): building replays the plan through torch-pruning, "
                                "which loading a family does not need")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, device: str | torch.device = "cpu",
                        **hub_kwargs) -> ElasticFamily:
        """Open a folder written by :meth:`save_pretrained`, or a Hub repo id.

        A Hub repo id is fetched with ``snapshot_download`` (offline, the local cache). The folder is checked:
        every tensor its layout names, with its shape, and nothing else.

        Args:
            name_or_path (`str` or `os.PathLike`): a family folder, or a Hub repo id (``org/name``).
            device (`str` or `torch.device`, *optional*, defaults to `"cpu"`): where the tensors are loaded.
            **hub_kwargs: go to ``snapshot_download`` (``revision``, ``cache_dir``, ``token``, ...).

        Returns:
            `ElasticFamily`: the family, at its full level.

        Raises:
            CheckpointError: ``name_or_path`` is neither a family folder nor a Hub repo id that can be
                fetched, or the family's config or weights are missing, corrupt, incomplete, of a newer format
                version, or do not match each other.
            UnsupportedModelError: the base architecture cannot be bound to the stored tensors.
        """
        return cls(read_family(resolve_folder(name_or_path, **hub_kwargs), device=device))

    def save_pretrained(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the family as ``family_config.json`` + ``family.safetensors`` in the folder ``path``
        (:func:`~elastoformer_hf.family.storage.write_family`, which says how); latencies recorded with
        :meth:`add_latency` or :meth:`measure_latency` are saved with it."""
        return write_family(self._parts, path, overwrite=overwrite)

    def _build_models(self) -> None:
        skeleton = build_skeleton(self.spec).eval()
        parts = self._parts
        self._models = [build_level(skeleton, parts.layout, k, parts.shared, parts.own[k - 1], lv)
                        for k, lv in enumerate(self.levels, start=1)]
        self._copied = [copied_per_call(m, self._memory_format) for m in self._models]
        bind(self._copied[self._level - 1], contiguous=True)

    # -- running ----------------------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        """`int`: the number of levels (the core through the full model)."""
        return len(self.levels)

    @property
    def level(self) -> int:
        """`int`: the current level (1-based)."""
        return self._level

    def set_level(self, level: int) -> ElasticFamily:
        """Make ``level`` current.

        Every level's module exists, bound to the storage. The tensors of ``level`` that a forward pass would
        copy on every call (:attr:`copied_bytes`: strided convolution weights, per-head and per-group prefixes)
        are copied once, into contiguous tensors, and the previous level's copies are freed first: a switch
        costs one copy of those tensors, and holds at most one level's of them. The full level has none.

        Args:
            level (`int`): the level, in ``1..num_levels``.

        Returns:
            `ElasticFamily`: the family itself.

        Raises:
            ElastoformerError: ``level`` is not an integer in ``1..num_levels``.
        """
        level = self._check(level)
        if level != self._level:
            bind(self._copied[self._level - 1], contiguous=False)
            self._level = level
            bind(self._copied[level - 1], contiguous=True)
        return self

    @property
    def copied_bytes(self) -> int:
        """`int`: bytes of the contiguous copies the current level runs on (held besides the storage; 0 at the
        full level)."""
        return sum(entry.nbytes for entry in self._copied[self._level - 1])

    @property
    def model(self) -> nn.Module:
        """`nn.Module`: the current level's module (the stock architecture; weights are views of the family's
        storage)."""
        return self._models[self._level - 1]

    def level_model(self, level: int) -> nn.Module:
        """The module of ``level`` (the current level is not changed).

        Another level than the current one runs on views of the storage: correct, but copying its strided
        and per-head tensors on every call (:meth:`set_level` first to run it at full speed).

        Args:
            level (`int`): the level, in ``1..num_levels``.

        Returns:
            `nn.Module`: the level's module; its weights are views of the family's storage.

        Raises:
            ElastoformerError: ``level`` is not an integer in ``1..num_levels``.
        """
        return self._models[self._check(level) - 1]

    def _check(self, level: int) -> int:
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= self.num_levels:
            raise ElastoformerError(f"level must be an integer in 1..{self.num_levels}, got {level!r}")
        return level

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits of the current level (a 4-D input is laid out in :attr:`memory_format` first)."""
        model = self.model
        if pixel_values.dim() == 4 and self._memory_format != torch.contiguous_format:
            pixel_values = pixel_values.contiguous(memory_format=self._memory_format)
        return get_adapter(model).forward_logits(model, pixel_values)

    @property
    def memory_format(self) -> torch.memory_format:
        """`torch.memory_format`: the layout of the storage's 4-D tensors and the current level's copies
        (``torch.contiguous_format`` unless :meth:`to` was given another)."""
        return self._memory_format

    @property
    def device(self) -> torch.device:
        """`torch.device`: the device of the family's storage."""
        return next(iter(self._parts.shared.values())).device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
           memory_format: torch.memory_format | None = None) -> ElasticFamily:
        """Move (or cast, or lay out) the storage once and bind every level to it again.

        ``family.model.to(...)`` would copy one level's weights out of the shared storage instead.

        Args:
            device (`str` or `torch.device`, *optional*): where to move the storage; None keeps it where it
                is.
            dtype (`torch.dtype`, *optional*): the type floating-point tensors are cast to; None keeps theirs.
            memory_format (`torch.memory_format`, *optional*): ``torch.channels_last`` or
                ``torch.contiguous_format``, the layout of the 4-D tensors (convolution weights) and of the
                inputs :meth:`__call__` passes on; None keeps the current one. A CNN runs channels_last on the
                CPU as ``elastoformer bench`` times its levels (channels_last output channels are still
                prefixes, so the full level needs no copy and the others copy what they copy now). Saving
                writes the standard layout either way.

        Returns:
            `ElasticFamily`: the family itself.

        Raises:
            ElastoformerError: ``memory_format`` is another format.
        """
        parts = self._parts
        layouts = (torch.contiguous_format, torch.channels_last)
        if memory_format is not None and memory_format not in layouts:
            raise ElastoformerError(f"memory_format must be torch.channels_last or torch.contiguous_format, got "
                                    f"{memory_format!r}")
        if memory_format is not None:
            self._memory_format = memory_format

        def move(t: torch.Tensor) -> torch.Tensor:
            t = t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else None)
            return t.contiguous(memory_format=self._memory_format) if t.dim() == 4 else t

        parts.shared = {n: move(t) for n, t in parts.shared.items()}
        parts.own = [{n: move(t) for n, t in own.items()} for own in parts.own]
        self._build_models()
        return self

    # -- choosing a level -------------------------------------------------------------------------------
    def select(self, max_macs: float | None = None, max_params: float | None = None,
               max_latency_ms: float | None = None, device: str | torch.device | None = None,
               batch_size: int = 1, runtime: str | None = None, precision: str | None = None) -> int:
        """The most accurate level within the budget (ties: the cheaper).

        See :func:`~elastoformer_hf.family.selection.select_level`; the current level is not changed.

        Args:
            max_macs (`float`, *optional*): the most MACs a level may have.
            max_params (`float`, *optional*): the most parameters a level may have.
            max_latency_ms (`float`, *optional*): the longest latency (ms) a level may have; it reads the
                latency recorded for ``device``.
            device (`str` or `torch.device`, *optional*): whose latencies ``max_latency_ms`` reads (default:
                the family's; a torch device type such as ``"cuda"`` or a benchmark's device name, see
                :mod:`.selection`).
            batch_size (`int`, *optional*, defaults to `1`): the batch size of the latencies read.
            runtime (`str`, *optional*): read only this runtime's latency entries.
            precision (`str`, *optional*): read only this precision's latency entries.

        Returns:
            `int`: the level (1-based).

        Raises:
            ElastoformerError: when nothing fits, or with ``max_latency_ms`` when a level has no latency
                recorded for the device (and runtime/precision) at ``batch_size``.
        """
        return select_level(self.levels, max_macs=max_macs, max_params=max_params, max_latency_ms=max_latency_ms,
                            device=device_name(device if device is not None else self.device), batch_size=batch_size,
                            runtime=runtime, precision=precision)

    def add_latency(self, level: int, latency_ms: float, *, device: str | torch.device, batch_size: int = 1,
                    runtime: str = "torch", precision: str = "fp32", method: str = "measured",
                    notes: str | None = None, **spread) -> dict:
        """Record a latency of ``level`` (saved with the family; read by :meth:`select`).

        The entry is in the model cards' entry format (:mod:`elastoformer_hf.latency.entries`).

        Args:
            level (`int`): the level, in ``1..num_levels``.
            latency_ms (`float`): the latency in milliseconds (positive).
            device (`str` or `torch.device`): a torch device or a device name.
            batch_size (`int`, *optional*, defaults to `1`): the batch size measured.
            runtime (`str`, *optional*, defaults to `"torch"`): the runtime measured.
            precision (`str`, *optional*, defaults to `"fp32"`): the precision measured.
            method (`str`, *optional*, defaults to `"measured"`): how the latency was obtained.
            notes (`str`, *optional*): free text stored with the entry.
            **spread: the entry format's optional ``min_ms``, ``p90_ms``, ``repeats``, ``device_type``.

        Returns:
            `dict`: the entry as recorded.

        Raises:
            ElastoformerError: the entry is not valid (naming what is wrong), or ``level`` is not an integer
                in ``1..num_levels``.
        """
        entry = normalize_entry({"device": device_name(device), "runtime": runtime, "precision": precision,
                                 "batch_size": batch_size, "ms": latency_ms, "method": method, "notes": notes,
                                 **spread})
        self._check(level)
        self.levels[level - 1]["latency"].append(entry)
        return entry

    def measure_latency(self, *, batch_size: int = 1, repeats: int = 10, warmup: int = 2,
                        image_size: int | None = None, threads: int | None = None) -> list[dict]:
        """Time every level's forward pass on the family's device and record it.

        Each level gets the median, min and p90 of ``repeats`` runs, levels interleaved, as
        ``elastoformer bench`` does (:mod:`elastoformer_hf.latency`), recorded with :meth:`add_latency` under
        the name of this machine's device (e.g. ``"cpu: AMD EPYC 7B13 (8 threads)"``), runtime ``torch`` and
        the storage's precision. The inputs are random images of the storage's dtype. Every level is timed as it
        runs once current: for the measurement every level holds its copies (:attr:`copied_bytes`) at once.

        Args:
            batch_size (`int`, *optional*, defaults to `1`): images per forward pass.
            repeats (`int`, *optional*, defaults to `10`): timed runs per level.
            warmup (`int`, *optional*, defaults to `2`): untimed runs per level first.
            image_size (`int`, *optional*): the input resolution (default: the family's ``image_size``, else
                224).
            threads (`int`, *optional*): the number of torch intra-op threads to time with (default: the
                current count), restored afterwards.

        Returns:
            `list[dict]`: the recorded entries, one per level.

        Raises:
            ElastoformerError: ``threads`` or ``repeats`` is not an integer >= 1, or ``warmup`` not an integer
                >= 0.
        """
        size = image_size or self.info.get("image_size") or 224
        adapter = get_adapter(self._models[0])  # one architecture for every level
        channels = adapter.in_channels(self._models[0])
        dtype = next(iter(self._parts.shared.values())).dtype
        x = torch.randn(batch_size, channels, size, size, device=self.device, dtype=dtype)
        x = x.contiguous(memory_format=self._memory_format)
        layout = "channels_last" if self._memory_format == torch.channels_last else "contiguous"
        current = self._level
        # every level as it runs once current: its copies made for the measurement, all levels at once
        for copied in self._copied:
            bind(copied, contiguous=True)
        try:
            with fixed_threads(threads) as used:
                steps = {k: (lambda m=self._models[k - 1]: adapter.forward_logits(m, x))
                         for k in range(1, self.num_levels + 1)}
                times = time_interleaved(steps, repeats=repeats, warmup=warmup, device=self.device)
        finally:
            for k, copied in enumerate(self._copied, start=1):
                if k != current:
                    bind(copied, contiguous=False)
        record = device_record(self.device, threads=used)
        precision = PRECISION_NAMES.get(dtype, str(dtype).removeprefix("torch."))
        entries = []
        for k, samples in times.items():
            stats = summarize(samples)
            entries.append(self.add_latency(
                k, stats["median_ms"], device=record["name"], batch_size=batch_size, runtime="torch",
                precision=precision, notes=f"family.measure_latency, torch {torch.__version__} eager, {layout}",
                min_ms=stats["min_ms"], p90_ms=stats["p90_ms"], repeats=stats["repeats"], device_type=record["type"]))
        return entries

    # -- storage ----------------------------------------------------------------------------------------
    def storage(self) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """The shared full-width tensors and every level's own tensors (what the parameters are views of).

        Returns:
            `tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]`: the shared tensors by name, and
            per level (level 1 first) its own tensors by name.
        """
        return self._parts.shared, self._parts.own

    @property
    def layout(self):
        """`Layout`: the storage layout (channel orders, shapes and which tensors are shared or per level)."""
        return self._parts.layout

    def export_level(self, level: int) -> nn.Module:
        """A standalone copy of ``level``: stock modules, contiguous weights (channels in family order).

        E.g. for :func:`~elastoformer_hf.save_descendant`.

        Args:
            level (`int`): the level, in ``1..num_levels``.

        Returns:
            `nn.Module`: the copy, in eval mode; it shares no storage with the family.

        Raises:
            ElastoformerError: ``level`` is not an integer in ``1..num_levels``.
        """
        source = self.level_model(level)
        skeleton = build_skeleton(self.spec).eval()
        model = level_skeleton(skeleton, self.layout, level, self.levels[level - 1])
        state = {n: get_tensor(source, n).detach().reshape(self.layout.level_shape(n, level)).clone()
                 for n in self.layout.shapes}
        model.load_state_dict(state, assign=True)
        return model.eval()

    def __repr__(self) -> str:
        return (f"ElasticFamily({self.info.get('model_name') or self.spec.name!r}, {self.num_levels} levels, "
                f"current dn{self._level}, {self.device})")
