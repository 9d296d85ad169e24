"""Where a latency was measured: the device record stored with every ``latency.json`` entry.

A latency means little without the machine it came from, so each entry carries a record such as::

    {"name": "cpu: AMD EPYC 7B13 (2 threads)", "type": "cpu", "platform": "Linux-6.8...-x86_64-with-glibc2.39",
     "machine": "x86_64", "cpu": "AMD EPYC 7B13", "cpu_count": 2, "threads": 2,
     "versions": {"python": "3.11.9", "torch": "2.14.1", "onnxruntime": "1.32.0", ...}}

plus ``gpu``/``gpu_memory_gib``/``gpu_capability`` on a CUDA device and ``jetson`` (``model`` from
``/proc/device-tree/model``, ``power_mode`` from ``nvpmodel -q``, ``l4t`` from ``/etc/nv_tegra_release``,
``jetpack`` from the ``nvidia-jetpack`` package) on an NVIDIA Jetson. ``name`` is the short human string the
model cards show as the entry's ``device`` and that latency entries are keyed on: ``"cpu: <CPU model> (<n>
threads)"``, ``"cuda: <GPU name>"``, or on a Jetson's GPU ``"<Jetson model> (<power mode>)"``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import torch

from ..version import __version__

CPUINFO = Path("/proc/cpuinfo")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")
#: distributions whose versions go into the record (the runtimes first); missing ones are left out
PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "transformers", "timm", "torch-pruning")


def cpu_model() -> str:
    """The CPU's marketing name (``model name`` in /proc/cpuinfo; ARM boards: ``Hardware``/``Model``).

    Returns:
        `str`: the name, whitespace collapsed; else ``platform.processor()``, the machine type or
        ``"unknown CPU"``.
    """
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Model", "Processor", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if m and m.group(1).strip():
            return re.sub(r"\s+", " ", m.group(1)).strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def jetson_info() -> dict | None:
    """Model, power mode, L4T and JetPack version of an NVIDIA Jetson; None on any other machine.

    Returns:
        `dict` or `None`: ``model`` and, when they can be read, ``power_mode``, ``power_mode_id``, ``l4t`` and
        ``jetpack``; None on any other machine.
    """
    try:
        model = DEVICE_TREE_MODEL.read_bytes().decode(errors="replace").strip("\x00 \n")
    except OSError:
        model = ""
    if "jetson" not in model.lower() and not TEGRA_RELEASE.is_file():
        return None
    info: dict = {"model": model or "NVIDIA Jetson"}
    nvp = _run(["nvpmodel", "-q"])
    if nvp:  # "NV Power Mode: 15W\n0"
        m = re.search(r"Power Mode:\s*(\S.*)", nvp)
        if m:
            info["power_mode"] = m.group(1).strip()
        ids = [line.strip() for line in nvp.splitlines() if line.strip().isdigit()]
        if ids:
            info["power_mode_id"] = int(ids[0])
    try:  # "# R36 (release), REVISION: 3.0, GCID: ..., BOARD: generic, EABI: aarch64, DATE: ..."
        release = TEGRA_RELEASE.read_text(errors="replace")
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
        if m:
            info["l4t"] = f"R{m.group(1)}.{m.group(2)}"
    except OSError:
        pass
    jetpack = _run(["dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack"])
    if jetpack and jetpack.strip():
        info["jetpack"] = jetpack.strip()
    return info


def software_versions(*, cuda: bool = False) -> dict:
    """Python, elastoformer-hf and the installed runtimes/libraries.

    They come from package metadata, without importing them; TensorRT from a JetPack install has no pip
    metadata, so it is imported for its version. Packages that are not installed are left out.

    Args:
        cuda (`bool`, *optional*, defaults to `False`): also the CUDA and cuDNN versions torch was built with.

    Returns:
        `dict`: version strings by name (``python``, ``elastoformer_hf``, the :data:`PACKAGES` installed, and
        with ``cuda`` ``cuda`` and ``cudnn``).
    """
    versions = {"python": platform.python_version(), "elastoformer_hf": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    if "tensorrt" not in versions and importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt

            versions["tensorrt"] = str(tensorrt.__version__)
        except Exception:  # a broken TensorRT install: the record just lacks its version
            pass
    if cuda and torch.version.cuda:
        versions["cuda"] = torch.version.cuda
        if torch.backends.cudnn.is_available():
            versions["cudnn"] = str(torch.backends.cudnn.version())
    return versions


def device_record(device: str | torch.device = "cpu", *, threads: int | None = None) -> dict:
    """The record of ``device`` on this machine. See the module docstring for the fields.

    Args:
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`): the device measured on.
        threads (`int`, *optional*): the torch/ONNX Runtime thread count used; default torch's current one.

    Returns:
        `dict`: the record, its short ``name`` first.
    """
    dev = torch.device(device)
    threads = int(threads or torch.get_num_threads())
    record: dict = {"type": dev.type, "platform": platform.platform(), "machine": platform.machine(),
                    "cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": threads}
    jetson = jetson_info()
    if jetson:
        record["jetson"] = jetson
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        record.update(index=index, gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                      gpu_capability=f"{props.major}.{props.minor}")
    record["versions"] = software_versions(cuda=dev.type == "cuda")
    return {"name": device_name_of(record), **record}


def device_name_of(record: dict) -> str:
    """The short name of a record (see the module docstring).

    Args:
        record (`dict`): a device record (:func:`device_record`).

    Returns:
        `str`: ``"cpu: <CPU model> (<n> threads)"``, ``"cuda: <GPU name>"``, or on a Jetson's GPU
        ``"<Jetson model> (<power mode>)"``.
    """
    jetson = record.get("jetson")
    if record["type"] == "cuda" and jetson:
        mode = f" ({jetson['power_mode']})" if jetson.get("power_mode") else ""
        return f"{jetson['model']}{mode}"
    if record["type"] == "cuda":
        return f"cuda: {record.get('gpu') or 'unknown GPU'}"
    cpu = record.get("cpu") or "unknown CPU"
    if jetson and cpu.lower() in ("", "unknown cpu", record.get("machine", "").lower()):
        cpu = f"{jetson['model']} CPU"  # ARM cpuinfo often names no model: the board says more
    threads = record.get("threads")
    count = f" ({threads} thread{'s' if threads != 1 else ''})" if threads else ""
    return f"{record['type']}: {cpu}{count}"
