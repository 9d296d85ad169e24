"""Latency of the descendant networks: measured (``elastoformer bench``) or estimated, kept per level.

* :mod:`.entries`: the latency entry (one schema; the ``latency.json`` record and the card form);
* :mod:`.store`: ``dn{k}/latency.json``, one level's records;
* :mod:`.device`: where a number comes from (CPU/GPU/Jetson model, threads, software versions);
* :mod:`.timing`: the timing loop (warm-up, interleaved, fixed threads);
* :mod:`.bench`: the runtimes a level runs on (torch, onnxruntime, tensorrt);
* :mod:`.suite`: a run folder's (or one level's) benchmark, as ``elastoformer bench`` runs it;
* :mod:`.profiles` and :mod:`.roofline`: labelled estimates for Jetson devices (``elastoformer estimate``).

    from elastoformer_hf.latency.suite import benchmark, record_benchmark
    result = benchmark("runs/deit-elastic", batch_sizes=(1, 8), repeats=30)
    record_benchmark(result)      # dn{k}/latency.json
"""

from .device import device_record
from .entries import merge_latency, normalize_entry, validate_entry
from .store import LATENCY_FILE, read_latency, record_entries, record_run

__all__ = ["LATENCY_FILE", "device_record", "merge_latency", "normalize_entry", "read_latency", "record_entries",
           "record_run", "validate_entry"]
