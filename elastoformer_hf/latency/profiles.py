"""Device profiles for latency estimates: published peak compute and memory bandwidth of a Jetson GPU, plus the
efficiency factors and per-kernel overhead that turn a roofline into an eager-PyTorch estimate.

A profile is data (a :class:`DeviceProfile`, JSON-friendly through :meth:`DeviceProfile.to_dict`). The peaks and
bandwidths are NVIDIA's published figures (each with its source in ``sources``); the efficiency factors and the
kernel overhead are *assumptions* until a profile is calibrated on measured latencies
(:func:`elastoformer_hf.latency.roofline.calibrate`), which records how many points it was fitted on.

Built-in profiles: :data:`PROFILES` (``jetson-orin-nano-8gb``, ``jetson-agx-orin-64gb``, ``jetson-nano``). A user
profile is a JSON file with the same fields (see :meth:`DeviceProfile.from_dict`); :func:`load_profile` accepts
either a built-in key or a path.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ElastoformerError

PRECISIONS = ("fp32", "fp16")
#: bytes per element moved at each precision
DTYPE_BYTES = {"fp32": 4, "fp16": 2}

# Default efficiency factors, the same for every built-in profile. They are assumptions, not measurements: a
# cuBLAS/cuDNN FP32 kernel at batch-1 ViT/ResNet sizes reaching about half of the GPU's peak, and a streaming
# (elementwise/normalisation) kernel about 70 % of the DRAM bandwidth. Calibrate on the device to replace them.
DEFAULT_EFF_COMPUTE = 0.5
DEFAULT_EFF_MEMORY = 0.7
_ASSUMPTION = ("assumption (not a published figure): replace by calibrating on latencies measured on the device "
               "(elastoformer estimate --calibrate latency.json)")
# Per-kernel CPU cost of PyTorch eager (Python -> dispatcher -> cudaLaunchKernel). Published walkthroughs of the
# dispatch path put it at about 5-25 us per op on desktop CPUs
# (https://jiahuanglin.xyz/all_lessons/gpu_kernel_serving/18_pytorch_to_kernel.html); the Jetson CPUs are slower
# per core, so the defaults take the top of that range for the 2.2 GHz Cortex-A78AE of AGX Orin, scale it by clock
# for the 1.5 GHz A78AE of Orin Nano, and triple it for the 1.43 GHz Cortex-A57 of the Jetson Nano (about half the
# IPC of an A78 at two thirds of the clock). Still assumptions: see _ASSUMPTION.
_OVERHEAD_NOTE = "derived assumption: top of the 5-25 us per-op eager dispatch range, scaled for the Jetson CPU; "


@dataclass(frozen=True)
class DeviceProfile:
    """One device as the roofline sees it.

    Args:
        key (`str`): the profile's key (a built-in profile's name in :data:`PROFILES`).
        name (`str`): the device's name, as latency entries show it.
        peak_flops (`dict`): FLOP/s of the GPU per precision (``fp32``, ``fp16``).
        memory_bandwidth (`float`): bytes/s of its DRAM.
        kernel_overhead_s (`float`): seconds added per launched kernel (eager dispatch).
        eff_compute (`float`, *optional*, defaults to `0.5`): the fraction of the peak FLOP/s a kernel
            reaches.
        eff_memory (`float`, *optional*, defaults to `0.7`): the fraction of the bandwidth a kernel reaches.
        fused_attention (`bool`, *optional*, defaults to `True`): whether PyTorch runs attention as one fused
            kernel on this device's software stack (``F.scaled_dot_product_attention``) or as its math path
            (two batched matmuls, a scale and a softmax, like transformers' eager attention).
        sources (`dict`, *optional*, defaults to `{}`): where each figure comes from.
        calibration (`dict`, *optional*): None for published-spec profiles; after
            :func:`~elastoformer_hf.latency.roofline.calibrate`, how it was fitted.

    Raises:
        ElastoformerError: a peak FLOP/s (``fp32`` and ``fp16`` are both required) or the bandwidth is not a
            positive number, an efficiency is not in (0, 1], or the kernel overhead is not a number >= 0.
    """

    key: str
    name: str
    peak_flops: dict
    memory_bandwidth: float
    kernel_overhead_s: float
    eff_compute: float = DEFAULT_EFF_COMPUTE
    eff_memory: float = DEFAULT_EFF_MEMORY
    fused_attention: bool = True
    sources: dict = field(default_factory=dict)
    calibration: dict | None = None

    def __post_init__(self):
        for p in PRECISIONS:
            value = (self.peak_flops or {}).get(p)
            if not _positive(value):
                raise ElastoformerError(f"device profile {self.key!r}: peak_flops.{p} must be a positive number "
                                        f"(FLOP/s), got {value!r}")
        if not _positive(self.memory_bandwidth):
            raise ElastoformerError(f"device profile {self.key!r}: memory_bandwidth must be a positive number "
                                    f"(bytes/s), got {self.memory_bandwidth!r}")
        for name in ("eff_compute", "eff_memory"):
            value = getattr(self, name)
            if not _positive(value) or value > 1:
                raise ElastoformerError(f"device profile {self.key!r}: {name} must be in (0, 1], got {value!r}")
        if not isinstance(self.kernel_overhead_s, (int, float)) or not math.isfinite(self.kernel_overhead_s) \
                or self.kernel_overhead_s < 0:
            raise ElastoformerError(f"device profile {self.key!r}: kernel_overhead_s must be a number >= 0 "
                                    f"(seconds), got {self.kernel_overhead_s!r}")

    @property
    def calibrated(self) -> bool:
        """`bool`: whether the profile was calibrated (it has a ``calibration``)."""
        return self.calibration is not None

    def peak(self, precision: str) -> float:
        """The peak FLOP/s at ``precision``.

        Args:
            precision (`str`): ``fp32`` or ``fp16``.

        Returns:
            `float`: FLOP/s.

        Raises:
            ElastoformerError: an unsupported precision.
        """
        check_precision(precision)
        return float(self.peak_flops[precision])

    def replace(self, **changes) -> DeviceProfile:
        """A copy with ``changes`` (field values), checked like a new profile.

        Args:
            **changes: the fields to change.

        Returns:
            `DeviceProfile`: the copy.

        Raises:
            ElastoformerError: the changed profile is not valid.
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The profile as JSON-friendly data (:meth:`from_dict` reads it back).

        Returns:
            `dict`: every field.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, origin: str = "profile") -> DeviceProfile:
        """A profile from JSON data.

        Args:
            data (`dict`): ``name``, ``peak_flops`` (``{"fp32": FLOP/s, "fp16": FLOP/s}``),
                ``memory_bandwidth`` (bytes/s), ``kernel_overhead_s``; optional ``key`` (default: the name),
                ``eff_compute``, ``eff_memory``, ``fused_attention``, ``sources``, ``calibration``.
            origin (`str`, *optional*, defaults to `"profile"`): where the data comes from, for the messages.

        Returns:
            `DeviceProfile`: the profile.

        Raises:
            ElastoformerError: ``data`` is not a JSON object, has unknown fields or lacks a required one,
                ``peak_flops`` is not a mapping, or a value is not valid.
        """
        if not isinstance(data, dict):
            raise ElastoformerError(f"{origin}: a device profile must be a JSON object, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ElastoformerError(f"{origin}: unknown device profile fields {unknown} (allowed: {sorted(fields)})")
        missing = [k for k in ("name", "peak_flops", "memory_bandwidth", "kernel_overhead_s") if k not in data]
        if missing:
            raise ElastoformerError(f"{origin}: device profile lacks {', '.join(missing)}")
        if not isinstance(data["peak_flops"], dict):
            raise ElastoformerError(f"{origin}: peak_flops must map precision to FLOP/s, e.g. "
                                    '{"fp32": 1.28e12, "fp16": 1.024e13}')
        data = {"key": data.get("key") or str(data["name"]), **data}
        return cls(**data)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_precision(precision: str) -> str:
    """``precision`` checked.

    Args:
        precision (`str`): ``fp32`` or ``fp16``.

    Returns:
        `str`: ``precision``.

    Raises:
        ElastoformerError: any other precision.
    """
    if precision not in PRECISIONS:
        raise ElastoformerError(f"precision {precision!r} is not supported; supported: {', '.join(PRECISIONS)}")
    return precision


_TECH_BRIEF = "NVIDIA Jetson AGX Orin Series Technical Brief v1.2"
_ORIN_NANO_SHEET = "NVIDIA Jetson Orin Nano Series module data sheet (8GB: 1024-core Ampere GPU, 32 Tensor Cores, " \
                   "625 MHz, 128-bit LPDDR5 68 GB/s, 40 sparse INT8 TOPS)"

#: The built-in profiles. Peak FLOP/s = CUDA cores x 2 (FMA) x GPU clock for FP32; for the Ampere GPUs, FP16 is the
#: dense Tensor Core rate (half the published sparse INT8 TOPS, halved again for FP16), which is what cuBLAS uses
#: for FP16 matmuls. The Jetson Nano's 472 GFLOPS is NVIDIA's FP16 figure (Maxwell runs FP16 at twice FP32).
PROFILES: dict[str, DeviceProfile] = {
    p.key: p
    for p in (
        DeviceProfile(
            key="jetson-orin-nano-8gb",
            name="Jetson Orin Nano 8GB",
            peak_flops={"fp32": 1024 * 2 * 625e6, "fp16": 40e12 / 2 / 2},
            memory_bandwidth=68e9,
            kernel_overhead_s=37e-6,
            fused_attention=True,
            sources={
                "peak_flops.fp32": f"{_ORIN_NANO_SHEET}: 1024 cores x 2 x 625 MHz = 1.28 TFLOPS",
                "peak_flops.fp16": f"{_ORIN_NANO_SHEET}: 40 sparse INT8 TOPS / 2 (dense) / 2 (FP16) = 10 TFLOPS",
                "memory_bandwidth": f"{_ORIN_NANO_SHEET}: 68 GB/s (JetPack 6.1+ 'Super' mode raises it to 102 GB/s "
                                    "and the GPU clock to 1020 MHz: use a JSON profile for that mode)",
                "kernel_overhead_s": _OVERHEAD_NOTE + "25 us x 2.2 GHz / 1.5 GHz (6-core Cortex-A78AE at 1.5 GHz)",
                "eff_compute": _ASSUMPTION,
                "eff_memory": _ASSUMPTION,
                "fused_attention": "JetPack 5/6 ship PyTorch 2.x, whose scaled_dot_product_attention runs a fused "
                                   "kernel on sm_87",
            },
        ),
        DeviceProfile(
            key="jetson-agx-orin-64gb",
            name="Jetson AGX Orin 64GB",
            peak_flops={"fp32": 2048 * 2 * 1.3e9, "fp16": 170e12 / 2 / 2},
            memory_bandwidth=204.8e9,
            kernel_overhead_s=25e-6,
            fused_attention=True,
            sources={
                "peak_flops.fp32": f"{_TECH_BRIEF}: 2048 CUDA cores (16 SMs) at 1.3 GHz, 5.3 FP32 TFLOPS",
                "peak_flops.fp16": f"{_TECH_BRIEF}: 64 Tensor Cores, 170 sparse INT8 TOPS / 2 (dense) / 2 (FP16) "
                                   "= 42.5 TFLOPS",
                "memory_bandwidth": f"{_TECH_BRIEF}: 256-bit LPDDR5, 204.8 GB/s",
                "kernel_overhead_s": _OVERHEAD_NOTE + "25 us (12-core Cortex-A78AE at 2.2 GHz)",
                "eff_compute": _ASSUMPTION,
                "eff_memory": _ASSUMPTION,
                "fused_attention": "JetPack 5/6 ship PyTorch 2.x, whose scaled_dot_product_attention runs a fused "
                                   "kernel on sm_87",
            },
        ),
        DeviceProfile(
            key="jetson-nano",
            name="Jetson Nano",
            peak_flops={"fp32": 128 * 2 * 921.6e6, "fp16": 472e9},
            memory_bandwidth=25.6e9,
            kernel_overhead_s=75e-6,
            fused_attention=False,
            sources={
                "peak_flops.fp32": "NVIDIA Jetson Nano module data sheet: 128-core Maxwell GPU at 921.6 MHz, "
                                   "128 x 2 x 921.6 MHz = 236 GFLOPS (half the FP16 rate)",
                "peak_flops.fp16": "NVIDIA Jetson Nano module data sheet / developer kit page: 472 GFLOPS (FP16)",
                "memory_bandwidth": "NVIDIA Jetson Nano module data sheet: 64-bit LPDDR4 at 1600 MHz, 25.6 GB/s",
                "kernel_overhead_s": _OVERHEAD_NOTE + "25 us x 3 (4-core Cortex-A57 at 1.43 GHz)",
                "eff_compute": _ASSUMPTION,
                "eff_memory": _ASSUMPTION,
                "fused_attention": "JetPack 4.6 (the last for the Nano) ships PyTorch up to 1.10, which has no "
                                   "fused attention: matmul, scale, softmax, matmul",
            },
        ),
    )
}


def load_profile(name_or_path: str | Path | DeviceProfile) -> DeviceProfile:
    """A built-in profile by key, or a user profile from a JSON file (``*.json``, or any existing file).

    Args:
        name_or_path (`str`, `Path` or `DeviceProfile`): a key of :data:`PROFILES`, a JSON file, or a profile
            (returned as it is).

    Returns:
        `DeviceProfile`: the profile.

    Raises:
        ElastoformerError: an unknown key, a missing file, a file that is not valid JSON, or a profile that is
            not valid (:meth:`DeviceProfile.from_dict`).
    """
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    if text in PROFILES:
        return PROFILES[text]
    path = Path(text)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ElastoformerError(f"device profile file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ElastoformerError(f"device profile file {path} is not valid JSON ({err})") from None
        return DeviceProfile.from_dict(data, origin=str(path))
    raise ElastoformerError(f"unknown device profile {text!r}; built-in profiles: {', '.join(PROFILES)} "
                            "(or pass a JSON file with name, peak_flops, memory_bandwidth, kernel_overhead_s)")
