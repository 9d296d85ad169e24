"""The timing loop behind ``elastoformer bench`` and ``ElasticFamily.measure_latency``.

Shared machines are noisy (other jobs, turbo clocks, thermal throttling), so the loop

* fixes the thread count (``torch.set_num_threads``) for the whole run;
* warms every step up first (allocator, kernel selection, caches, lazy CUDA initialisation);
* interleaves the steps round-robin over the repeats (and rotates which goes first), so a slow spell hits every
  step alike instead of one step's whole series;
* times each call alone: ``torch.inference_mode``, ``torch.cuda.synchronize`` before and after on CUDA;
* reports the median (the number cards show), the minimum, the 90th percentile and the repeat count.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from ..errors import ElastoformerError
from ..messages import progress

PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_NAMES = {v: k for k, v in DTYPES.items()}


# ------------------------------------------------------------------------------------------------ statistics
def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(times_ms: list[float]) -> dict:
    """``median_ms``, ``min_ms``, ``p90_ms`` and ``repeats`` of a list of timings in milliseconds."""
    if not times_ms:
        raise ElastoformerError("no timings to summarize (repeats must be >= 1)")
    return {"median_ms": round(statistics.median(times_ms), 4), "min_ms": round(min(times_ms), 4),
            "p90_ms": round(percentile(times_ms, 90), 4), "repeats": len(times_ms)}


# ------------------------------------------------------------------------------------------------ the loop
@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` torch intra-op threads (default: the current count), restored afterwards; yields
    the count in use."""
    before = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ElastoformerError(f"threads must be an integer >= 1, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _synchronizer(device: str | torch.device | None) -> Callable[[], None]:
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def time_interleaved(steps: dict, *, repeats: int, warmup: int, device: str | torch.device | None = None,
                     on_error: Callable[[object, Exception], Exception] | None = None) -> dict[object, list[float]]:
    """Time ``steps`` (``{key: callable running one forward pass}``): ``warmup`` untimed runs of each, then
    ``repeats`` rounds in which every step runs once, the order rotated each round. Returns ``{key: [ms, ...]}``.
    ``on_error(key, err)`` turns a step's exception into the one raised (default: re-raised)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ElastoformerError(f"repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ElastoformerError(f"warmup must be an integer >= 0, got {warmup!r}")
    sync = _synchronizer(device)
    keys = list(steps)
    times: dict[object, list[float]] = {k: [] for k in keys}

    def call(key) -> None:
        try:
            steps[key]()
        except Exception as err:
            if on_error is None:
                raise
            raise on_error(key, err) from err

    with torch.inference_mode():
        for key in keys:
            for _ in range(warmup):
                call(key)
        sync()
        for i in progress(range(repeats), f"timing {len(keys)} model{'s' if len(keys) != 1 else ''}", unit="round"):
            shift = i % len(keys) if keys else 0
            for key in keys[shift:] + keys[:shift]:
                sync()
                start = time.perf_counter()
                call(key)
                sync()
                times[key].append((time.perf_counter() - start) * 1e3)
    return times
