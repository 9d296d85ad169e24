"""Latency of the descendant networks: measured (``elastoformer bench``) or estimated, kept per level.

* :mod:`.device`: the record of where a number comes from (CPU/GPU/Jetson model, threads, software versions);
* :mod:`.bench`: the timing loop (warm-up, levels interleaved, fixed threads) and the runtimes (torch,
  onnxruntime, tensorrt);
* :mod:`.suite`: a run folder's (or one level's) benchmark, as the command line runs it;
* :mod:`.store`: ``dn{k}/latency.json`` (its entry schema) and :func:`record_entries`, which also merges the
  entries into the level's model card and the family artifact's metadata.

    from elastoformer_hf.latency import benchmark, record_benchmark
    result = benchmark("runs/deit-elastic", batch_sizes=(1, 8), repeats=30)
    record_benchmark(result)      # dn{k}/latency.json, dn{k}/README.md, family/family_config.json
"""

from .device import device_record
from .store import LATENCY_FILE, read_latency, record_entries, record_run, validate_entry

__all__ = ["LATENCY_FILE", "benchmark", "device_record", "read_latency", "record_benchmark", "record_entries",
           "record_run", "validate_entry"]


def __getattr__(name: str):
    # the benchmark pulls in the model loaders (transformers, timm): imported when first used
    if name in ("benchmark", "record_benchmark"):
        from . import suite as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
