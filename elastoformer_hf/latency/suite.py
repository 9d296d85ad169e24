"""A run's latency benchmark: every level of a run folder (or one ``dn{k}/``), timed together, then recorded.

:func:`benchmark` finds the levels, loads each on the chosen runtime, times them with
:func:`~.timing.time_interleaved` per batch size and returns plain rows and ``latency.json`` records;
:func:`record_benchmark` writes the records (:func:`~.store.record_run`). Nothing here writes cards or the
family artifact: :func:`elastoformer_hf.refresh.refresh_run` brings those up to date from the records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ElastoformerError
from ..run_folder import is_level_folder, plan_image_size, read_level_info, select_levels
from .bench import check_memory_format, check_setting, load_runner
from .device import device_record
from .entries import now_iso
from .store import record_run
from .timing import fixed_threads, summarize, time_interleaved


@dataclass
class Level:
    """One saved level to time.

    Args:
        folder (`Path`): its folder.
        level (`int`, *optional*): its number (None for a folder that is not a ``dn{k}/``).
        info (`dict`, *optional*, defaults to `{}`): its ``elastic_level.json`` (empty when it has none).
    """

    folder: Path
    level: int | None
    info: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`str`: ``dn{level}``, or the folder's name when the level is None."""
        return f"dn{self.level}" if self.level is not None else self.folder.name


def find_levels(path: str | os.PathLike, levels: list[int] | None = None) -> list[Level]:
    """The levels under ``path``: a run folder's ``dn{k}/`` (ascending), or ``path`` itself when it is one saved
    model folder.

    Args:
        path (`str` or `os.PathLike`): a run folder, a ``dn{k}/`` folder or any saved model folder.
        levels (`list[int]`, *optional*): keeps only those numbers (an error names the ones missing).

    Returns:
        `list[Level]`: the levels, with their records.

    Raises:
        ElastoformerError: ``path`` is missing or not a folder, holds no level, lacks a level asked for, or is
            one level folder while ``levels`` asks for another.
        CheckpointError: a level record is corrupt.
    """
    return [Level(folder, level, read_level_info(folder) if is_level_folder(folder) else {})
            for level, folder in select_levels(path, levels, model_folder=True)]


def _positive_ints(values, what: str) -> list[int]:
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ElastoformerError(f"{what} must be integers >= 1, got {values!r}")
    return values


def benchmark(path: str | os.PathLike, *, batch_sizes=(1,), runtime: str = "torch", precision: str | None = None,
              device: str = "cpu", repeats: int = 20, warmup: int = 3, threads: int | None = None,
              levels: list[int] | None = None, image_size: int | None = None, memory_format: str = "auto") -> dict:
    """Time every level under ``path`` (see :func:`find_levels`) and return::

        {"device": <device record>, "runtime": ..., "precision": ..., "memory_format": ..., "repeats": ...,
         "warmup": ...,
         "rows": [{"level", "folder", "params", "macs", "flops", "batch_size", "image_size", "median_ms",
                   "min_ms", "p90_ms", "repeats", "speedup", "macs_ratio", "flops_ratio", "efficiency",
                   "efficiency_macs"}, ...],
         "entries": {dn folder: [latency.json entries]}}

    ``speedup``, ``macs_ratio`` and ``flops_ratio`` compare a level with the largest level timed (its median over
    this one's; this one's MACs, FLOPs over its). ``efficiency`` is the speed-up over the ideal one, the
    inverse of the full-cost ratio (``flops``: module MACs plus the attention matmuls, what the plan records);
    ``efficiency_macs`` the same against module MACs only. Both are None without the records to compute them.
    Nothing is written: see :func:`record_benchmark`.

    Args:
        path (`str` or `os.PathLike`): a run folder, a ``dn{k}/`` folder or any saved model folder.
        batch_sizes (`Iterable[int]`, *optional*, defaults to `(1,)`): the batch sizes timed (each >= 1).
        runtime (`str`, *optional*, defaults to `"torch"`): ``torch``, ``onnxruntime`` or ``tensorrt``.
        precision (`str`, *optional*): the runtime's default when None (fp16 for TensorRT, else fp32).
        device (`str`, *optional*, defaults to `"cpu"`): ``cpu``, ``cuda`` or ``cuda:N``.
        repeats (`int`, *optional*, defaults to `20`): timed runs per level and batch size (>= 1).
        warmup (`int`, *optional*, defaults to `3`): untimed runs first (>= 0).
        threads (`int`, *optional*): the torch/ONNX Runtime thread count (default: torch's current one).
        levels (`list[int]`, *optional*): time only these levels of a run folder.
        image_size (`int`, *optional*): the input resolution (default: the run's plan's).
        memory_format (`str`, *optional*, defaults to `"auto"`): torch only: ``channels_last``,
            ``contiguous`` or ``auto`` (channels_last for CNNs, see
            :func:`~elastoformer_hf.latency.bench.resolve_memory_format`); recorded in each entry's notes and
            ``details``. None in the result for the other runtimes.

    Returns:
        `dict`: as above.

    Raises:
        ElastoformerError: an invalid setting (batch sizes, levels, image size, repeats, warmup, threads, or a
            runtime/precision/device combination that does not run here), ``path`` holds none of the levels
            asked for, or a level cannot be loaded or fails to run on the runtime.
    """
    batch_sizes = sorted(set(_positive_ints(batch_sizes, "batch sizes")))
    memory_format = check_memory_format(memory_format, runtime)
    precision, device = check_setting(runtime, precision, device)
    if levels is not None:
        levels = _positive_ints(levels, "levels")
    if image_size is not None:
        image_size = _positive_ints([image_size], "image_size")[0]
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ElastoformerError(f"repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ElastoformerError(f"warmup must be an integer >= 0, got {warmup!r}")
    targets = find_levels(path, levels)
    size = image_size or plan_image_size(targets[0].folder.parent)

    with fixed_threads(threads) as used:
        runners = {}
        try:
            for target in targets:
                try:
                    runners[target.label] = load_runner(target.folder, runtime=runtime, precision=precision,
                                                        device=device, image_size=size, threads=used,
                                                        max_batch=max(batch_sizes), memory_format=memory_format)
                except ElastoformerError:
                    raise
                except Exception as err:  # a model that does not convert or load on this runtime
                    raise ElastoformerError(f"cannot load {target.folder} on {runtime} ({precision}, {device}): "
                                            f"{type(err).__name__}: {str(err).splitlines()[0][:300]}") from None
            timings = {}
            for batch in batch_sizes:
                for runner in runners.values():
                    runner.prepare(batch)

                def failed(label, err, batch=batch):
                    r = runners[label]
                    return ElastoformerError(f"{label} failed on a {batch}x{r.channels}x{r.image_size}x"
                                             f"{r.image_size} input ({runtime}, {precision}, {device}): "
                                             f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")

                steps = {label: runner.step for label, runner in runners.items()}
                timings[batch] = time_interleaved(steps, repeats=repeats, warmup=warmup, device=device,
                                                  on_error=failed)
            sizes = {label: r.image_size for label, r in runners.items()}
            layouts = {label: getattr(r, "memory_format", None) for label, r in runners.items()}
        finally:
            for runner in runners.values():
                runner.close()
    record = device_record(device, threads=used)
    return _results(targets, timings, sizes, layouts, record, runtime, precision, repeats, warmup)


def _results(targets, timings, sizes, layouts, record, runtime, precision, repeats, warmup) -> dict:
    date = now_iso()
    largest = targets[-1]
    rows, entries = [], {t.folder: [] for t in targets}
    notes = (f"{len(targets)} level{'s' if len(targets) != 1 else ''} interleaved, {warmup} warm-up "
             f"run{'s' if warmup != 1 else ''} each" + (", torch eager, inference_mode" if runtime == "torch" else ""))
    for batch, by_label in timings.items():
        base = summarize(by_label[largest.label])["median_ms"]
        for target in targets:
            stats = summarize(by_label[target.label])
            speedup = base / stats["median_ms"]
            macs, flops = target.info.get("macs"), target.info.get("flops")
            macs_ratio = _ratio(macs, largest.info.get("macs"))
            flops_ratio = _ratio(flops, largest.info.get("flops"))
            rows.append({"level": target.level, "folder": str(target.folder), "params": target.info.get("params"),
                         "macs": macs, "flops": flops, "batch_size": batch, "image_size": sizes[target.label],
                         **stats, "speedup": round(speedup, 3),
                         "macs_ratio": None if macs_ratio is None else round(macs_ratio, 4),
                         "flops_ratio": None if flops_ratio is None else round(flops_ratio, 4),
                         # measured over ideal speed-up, the ideal being 1 / cost ratio
                         "efficiency": None if flops_ratio is None else round(speedup * flops_ratio, 3),
                         "efficiency_macs": None if macs_ratio is None else round(speedup * macs_ratio, 3)})
            layout = layouts[target.label]
            entry = {"batch_size": batch, **stats, "runtime": runtime, "precision": precision, "method": "measured",
                     "date": date, "device": record,
                     "notes": f"{notes}{', ' + layout if layout else ''}, {sizes[target.label]}px input"}
            if layout:
                entry["details"] = {"memory_format": layout}
            entries[target.folder].append(entry)
    rows.sort(key=lambda r: (r["batch_size"], r["level"] if r["level"] is not None else 0))
    formats = sorted({f for f in layouts.values() if f})
    return {"device": record, "runtime": runtime, "precision": precision,
            "memory_format": ", ".join(formats) if formats else None, "repeats": repeats, "warmup": warmup,
            "rows": rows, "entries": entries}


def _ratio(value, top) -> float | None:
    return value / top if value and top else None


def record_benchmark(result: dict) -> list[Path]:
    """Write a :func:`benchmark` result into every level's ``latency.json`` (:func:`~.store.record_run`).

    Every entry is checked before any file is written.

    Args:
        result (`dict`): what :func:`benchmark` returned.

    Returns:
        `list[Path]`: the files written.

    Raises:
        ElastoformerError: a level folder is gone, its ``latency.json`` is corrupt, or an entry is not valid.
    """
    written: list[Path] = []
    record_run({Path(folder): entries for folder, entries in result["entries"].items()}, written=written)
    return written
