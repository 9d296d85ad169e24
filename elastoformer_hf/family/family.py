"""``ElasticFamily``: the whole family as one artifact that switches levels at run time.

    family = ElasticFamily.from_pretrained("runs/deit-elastic/family")   # or a Hub repo id
    family.set_level(family.select(max_macs=8e9))
    logits = family(pixel_values)

A finished training run writes ``family/``; :func:`elastoformer_hf.nesting.build_family` builds the family of
any run folder (it replays the plan, so it needs the engine; loading and running a family does not).
Saving: ``family.save_pretrained("deit-family")`` (``family_config.json`` + ``family.safetensors``).

Shared tensors are stored once at full width with every level's channels a prefix (:mod:`.layout`); every
level's module is built once, at load time, with parameters that are views of that storage, so ``set_level``
is a pointer switch and copies nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..adapters import get_adapter
from ..base_model import build_from_spec
from ..errors import ElastoformerError
from ..latency.device import device_record
from ..latency.entries import normalize_entry
from ..latency.timing import PRECISION_NAMES, fixed_threads, summarize, time_interleaved
from .modules import build_level, level_skeleton
from .parts import FamilyParts
from .selection import device_name, select_level
from .storage import read_family, resolve_folder, write_family


class ElasticFamily:
    """Every level of an elastic family over one shared storage; level 1 is the core, the last the full model."""

    def __init__(self, parts: FamilyParts):
        self._parts = parts
        self.spec = parts.spec
        self.levels = parts.levels  # per-level metadata: params, macs, flops, accuracy, latency, ...
        self.info = parts.info
        self._models = self._build_models()
        self._level = self.num_levels

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, *, verify: bool = True) -> ElasticFamily:
        """Moved: building a family from a run folder replays its plan (torch-pruning), which loading a family
        never imports. Use :func:`elastoformer_hf.nesting.build_family` (same arguments)."""
        raise ElastoformerError("ElasticFamily.from_run moved to elastoformer_hf.build_family(run_dir, verify=...) "
                                "(from elastoformer_hf.nesting): building replays the plan through torch-pruning, "
                                "which loading a family does not need")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, device: str | torch.device = "cpu",
                        **hub_kwargs) -> ElasticFamily:
        """Open a folder written by :meth:`save_pretrained`, or a Hub repo id (``snapshot_download``; offline, the
        local cache). ``hub_kwargs`` go to ``snapshot_download`` (``revision``, ``cache_dir``, ``token``, ...)."""
        return cls(read_family(resolve_folder(name_or_path, **hub_kwargs), device=device))

    def save_pretrained(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        return write_family(self._parts, path, overwrite=overwrite)

    def _build_models(self) -> list[nn.Module]:
        with torch.device("meta"):
            skeleton = build_from_spec(self.spec).eval()
        parts = self._parts
        return [build_level(skeleton, parts.layout, k, parts.shared, parts.own[k - 1], lv["heads"] or {})
                for k, lv in enumerate(self.levels, start=1)]

    # -- running ----------------------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def level(self) -> int:
        """The current level (1-based)."""
        return self._level

    def set_level(self, level: int) -> ElasticFamily:
        """Make ``level`` current: a pointer switch (every level's module exists, bound to the storage)."""
        self._level = self._check(level)
        return self

    @property
    def model(self) -> nn.Module:
        """The current level's module (the stock architecture; weights are views of the family's storage)."""
        return self._models[self._level - 1]

    def level_model(self, level: int) -> nn.Module:
        return self._models[self._check(level) - 1]

    def _check(self, level: int) -> int:
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= self.num_levels:
            raise ElastoformerError(f"level must be an integer in 1..{self.num_levels}, got {level!r}")
        return level

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits of the current level."""
        model = self.model
        return get_adapter(model).forward_logits(model, pixel_values)

    @property
    def device(self) -> torch.device:
        return next(iter(self._parts.shared.values())).device

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> ElasticFamily:
        """Move (or cast) the storage once and bind every level to it again. ``family.model.to(...)`` would copy
        one level's weights out of the shared storage instead."""
        parts = self._parts

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else None)

        parts.shared = {n: move(t) for n, t in parts.shared.items()}
        parts.own = [{n: move(t) for n, t in own.items()} for own in parts.own]
        self._models = self._build_models()
        return self

    # -- choosing a level -------------------------------------------------------------------------------
    def select(self, max_macs: float | None = None, max_params: float | None = None,
               max_latency_ms: float | None = None, device: str | torch.device | None = None,
               batch_size: int = 1, runtime: str | None = None, precision: str | None = None) -> int:
        """The most accurate level within the budget (ties: the cheaper); ``max_latency_ms`` reads the latency
        recorded for ``device`` (default: the family's; a torch device type such as ``"cuda"`` or a benchmark's
        device name, see :mod:`.selection`), optionally only ``runtime``/``precision`` entries. Raises
        :class:`ElastoformerError` when nothing fits."""
        return select_level(self.levels, max_macs=max_macs, max_params=max_params, max_latency_ms=max_latency_ms,
                            device=device_name(device if device is not None else self.device), batch_size=batch_size,
                            runtime=runtime, precision=precision)

    def add_latency(self, level: int, latency_ms: float, *, device: str | torch.device, batch_size: int = 1,
                    runtime: str = "torch", precision: str = "fp32", method: str = "measured",
                    notes: str | None = None, **spread) -> dict:
        """Record a latency of ``level`` (saved with the family; read by :meth:`select`), in the model cards'
        entry format (:mod:`elastoformer_hf.latency.entries`; ``spread``: its optional ``min_ms``, ``p90_ms``,
        ``repeats``, ``device_type``). ``device``: a torch device or a device name."""
        entry = normalize_entry({"device": device_name(device), "runtime": runtime, "precision": precision,
                                 "batch_size": batch_size, "ms": latency_ms, "method": method, "notes": notes,
                                 **spread})
        self._check(level)
        self.levels[level - 1]["latency"].append(entry)
        return entry

    def measure_latency(self, *, batch_size: int = 1, repeats: int = 10, warmup: int = 2,
                        image_size: int | None = None, threads: int | None = None) -> list[dict]:
        """Time every level's forward pass on the family's device and record it (median, min and p90 of
        ``repeats`` runs, levels interleaved, as ``elastoformer bench`` does: :mod:`elastoformer_hf.latency`),
        under the name of this machine's device (e.g. ``"cpu: AMD EPYC 7B13 (8 threads)"``)."""
        size = image_size or self.info.get("image_size") or 224
        adapter = get_adapter(self._models[0])  # one architecture for every level
        channels = adapter.in_channels(self._models[0])
        dtype = next(iter(self._parts.shared.values())).dtype
        x = torch.randn(batch_size, channels, size, size, device=self.device, dtype=dtype)
        with fixed_threads(threads) as used:
            steps = {k: (lambda m=self._models[k - 1]: adapter.forward_logits(m, x))
                     for k in range(1, self.num_levels + 1)}
            times = time_interleaved(steps, repeats=repeats, warmup=warmup, device=self.device)
        record = device_record(self.device, threads=used)
        precision = PRECISION_NAMES.get(dtype, str(dtype).removeprefix("torch."))
        entries = []
        for k, samples in times.items():
            stats = summarize(samples)
            entries.append(self.add_latency(
                k, stats["median_ms"], device=record["name"], batch_size=batch_size, runtime="torch",
                precision=precision, notes=f"family.measure_latency, torch {torch.__version__} eager",
                min_ms=stats["min_ms"], p90_ms=stats["p90_ms"], repeats=stats["repeats"], device_type=record["type"]))
        return entries

    # -- storage ----------------------------------------------------------------------------------------
    def storage(self) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """The shared full-width tensors and every level's own tensors (what the parameters are views of)."""
        return self._parts.shared, self._parts.own

    @property
    def layout(self):
        return self._parts.layout

    def export_level(self, level: int) -> nn.Module:
        """A standalone copy of ``level``: stock modules, contiguous weights (channels in family order), e.g. for
        :func:`~elastoformer_hf.save_descendant`."""
        source = self.level_model(level)
        with torch.device("meta"):
            skeleton = build_from_spec(self.spec).eval()
        model = level_skeleton(skeleton, self.layout, level, self.levels[level - 1]["heads"] or {})
        state = {n: t.reshape(self.layout.level_shape(n, level)).clone()
                 for n, t in source.state_dict(keep_vars=True).items()}
        model.load_state_dict(state, assign=True)
        return model.eval()

    def __repr__(self) -> str:
        return (f"ElasticFamily({self.info.get('model_name') or self.spec.name!r}, {self.num_levels} levels, "
                f"current dn{self._level}, {self.device})")
