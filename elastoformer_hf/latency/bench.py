"""The runtimes a level is timed on (:func:`load_runner`) and which settings each runs (:func:`check_setting`);
the timing loop itself is :mod:`.timing`.

Runtimes (:func:`load_runner`): ``torch`` (eager; fp32/bf16 on CPU, fp32/fp16/bf16 on CUDA), ``onnxruntime`` (the
``dn{k}/onnx/model.onnx`` of ``elastoformer export``; fp32; CPU, or CUDA with onnxruntime-gpu) and ``tensorrt``
(an engine built from that ONNX file; CUDA with TensorRT installed; fp16 by default, or fp32). The ONNX file
must exist: benchmarking measures, it never exports (``elastoformer export`` writes the file).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from ..adapters import get_adapter
from ..descendant import bare_model, load_descendant
from ..errors import ElastoformerError
from ..export.record import onnx_path
from ..export.tensorrt import build_engine
from .timing import DTYPES, PRECISIONS

RUNTIMES = ("torch", "onnxruntime", "tensorrt")
#: how eager torch lays out a level's 4-D tensors: ``auto`` is ``channels_last`` for CNNs, ``contiguous`` else
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
#: (runtime, device type) -> precisions it runs
SUPPORTED = {
    ("torch", "cpu"): ("fp32", "bf16"),
    ("torch", "cuda"): ("fp32", "fp16", "bf16"),
    ("onnxruntime", "cpu"): ("fp32",),
    ("onnxruntime", "cuda"): ("fp32",),
    ("tensorrt", "cuda"): ("fp16", "fp32"),  # what export.tensorrt.build_engine builds
}


# ------------------------------------------------------------------------------------------------ checks
def check_setting(runtime: str, precision: str | None, device: str) -> tuple[str, str]:
    """``(precision, device)`` after checking the combination runs here; :class:`ElastoformerError` naming what
    is supported otherwise. ``precision`` None: the runtime's default (fp16 for TensorRT, else fp32)."""
    if runtime not in RUNTIMES:
        raise ElastoformerError(f"unknown runtime {runtime!r}; supported: {', '.join(RUNTIMES)}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ElastoformerError(f"unknown device {device!r}; supported: cpu, cuda, cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ElastoformerError(f"device {device!r} is not supported; supported: cpu, cuda, cuda:N")
    here = available_runtimes()
    if runtime == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        raise ElastoformerError(f"TensorRT is not installed here (no 'tensorrt' Python module); runtimes available "
                                f"here: {', '.join(here)}")
    if runtime == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        raise ElastoformerError(f"onnxruntime is not installed (pip install onnxruntime); runtimes available here: "
                                f"{', '.join(here)}")
    if runtime == "tensorrt" and dev.type != "cuda":
        raise ElastoformerError("TensorRT runs on CUDA devices only: use --device cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ElastoformerError(f"CUDA is not available here (torch {torch.__version__}, no usable GPU); use "
                                    "--device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ElastoformerError(f"there is no {dev}: {torch.cuda.device_count()} CUDA device(s) here")
    allowed = SUPPORTED[(runtime, dev.type)]
    precision = precision or allowed[0]
    if precision not in PRECISIONS:
        raise ElastoformerError(f"unknown precision {precision!r}; supported: {', '.join(PRECISIONS)}")
    if precision not in allowed:
        others = "; ".join(f"{rt} on {dt}: {', '.join(ps)}" for (rt, dt), ps in SUPPORTED.items())
        raise ElastoformerError(f"{runtime} on {dev.type} does not run {precision}; it runs {', '.join(allowed)} "
                                f"(supported: {others})")
    return precision, str(dev)


def available_runtimes() -> list[str]:
    """The runtimes that can run on this machine (``tensorrt`` needs CUDA as well as the module)."""
    found = ["torch"]
    if importlib.util.find_spec("onnxruntime") is not None:
        found.append("onnxruntime")
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        found.append("tensorrt")
    return found


# ------------------------------------------------------------------------------------------------ inputs
def _config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def config_input_shape(folder: Path) -> tuple[int | None, int | None]:
    """(channels, image size) a saved level declares in its config.json: transformers' ``num_channels`` and
    ``image_size``, timm's ``pretrained_cfg.input_size``, an Elastoformer config's base config or data config."""
    config = _config(folder)
    for source in (config, config.get("base_config") or {}):
        if source.get("image_size"):
            size = source["image_size"]
            return source.get("num_channels"), int(size[-1] if isinstance(size, (list, tuple)) else size)
    for source in (config.get("pretrained_cfg") or {}, config.get("data_config") or {}):
        if source.get("input_size"):
            channels, _, width = source["input_size"]
            return int(channels), int(width)
    return None, None


# ------------------------------------------------------------------------------------------------ runners
class Runner:
    """One level on one runtime: :meth:`prepare` makes an input batch, :meth:`step` runs one forward pass."""

    runtime = ""

    def prepare(self, batch_size: int) -> None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the runner holds (models, sessions, engines)."""


def check_memory_format(memory_format: str, runtime: str) -> str:
    """``memory_format`` after checking it is one of :data:`MEMORY_FORMATS` and the runtime is torch (ONNX
    Runtime and TensorRT choose their own layouts)."""
    if memory_format not in MEMORY_FORMATS:
        raise ElastoformerError(f"unknown memory format {memory_format!r}; supported: {', '.join(MEMORY_FORMATS)}")
    if runtime != "torch" and memory_format != "auto":
        raise ElastoformerError(f"--memory_format {memory_format} applies to the torch runtime only ({runtime} "
                                "lays out its tensors itself): leave it at auto")
    return memory_format


def resolve_memory_format(adapter, memory_format: str = "auto") -> str:
    """``channels_last`` or ``contiguous``: ``auto`` takes channels_last for a CNN (``adapter.kind == "cnn"``).

    Why channels_last for CNNs: eager torch on the CPU runs NCHW convolutions through oneDNN with a layout
    reorder of activations and weights around each call, and batch norm as separate passes; that fixed, per-element
    work shrinks only linearly with width while the FLOPs shrink quadratically, so narrow levels fall behind their
    cost. Measured (1 thread, AMD EPYC, timm ResNet-50 against a half-width copy, ideal 3.63x): NCHW 0.81 of the
    ideal, channels_last 0.88 (PyTorch's CPU performance guide recommends channels_last for CNNs; ONNX Runtime
    picks its own layout). A ViT's one 4-D op is its patch embedding, so ViTs stay contiguous."""
    if memory_format == "auto":
        return "channels_last" if getattr(adapter, "kind", None) == "cnn" else "contiguous"
    return memory_format


TORCH_MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


class TorchRunner(Runner):
    """Eager PyTorch: the saved level loaded with :func:`~elastoformer_hf.descendant.load_descendant` (unwrapped
    by :func:`~elastoformer_hf.descendant.bare_model`), its parameters and the input in ``memory_format`` (see
    :func:`resolve_memory_format`)."""

    runtime = "torch"

    def __init__(self, folder: Path, device: str, precision: str, image_size: int | None,
                 memory_format: str = "auto"):
        self.device, self.dtype = torch.device(device), DTYPES[precision]
        # the architecture inside an elastoformer-form level: what the adapters know (and what runs)
        self.model = bare_model(load_descendant(folder)).to(device=self.device, dtype=self.dtype).eval()
        self.adapter = get_adapter(self.model)
        self.memory_format = resolve_memory_format(self.adapter, memory_format)
        self.model.to(memory_format=TORCH_MEMORY_FORMATS[self.memory_format])
        self.channels = self.adapter.in_channels(self.model)
        self.image_size = int(image_size or self.adapter.image_size(self.model))
        self.x = None

    def prepare(self, batch_size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, self.channels, self.image_size, self.image_size, generator=generator)
        self.x = x.to(device=self.device, dtype=self.dtype).contiguous(
            memory_format=TORCH_MEMORY_FORMATS[self.memory_format])

    def step(self) -> None:
        self.adapter.forward_logits(self.model, self.x)

    def close(self) -> None:
        self.model = self.x = None


def onnx_file(folder: Path) -> Path:
    """``folder/onnx/model.onnx``; a benchmark only measures, so a missing export is an error saying how to make
    it."""
    path = onnx_path(folder)
    if not path.is_file():
        raise ElastoformerError(f"{path} does not exist: export the level first (elastoformer export "
                                f"{folder.parent} --format onnx)")
    return path


def _onnx_input(path: Path, folder: Path, image_size: int | None) -> tuple[str, int, int, bool]:
    """(input name, channels, image size, batch axis dynamic) of an ONNX model."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ElastoformerError(f"{path} has {len(inputs)} inputs; bench runs image classifiers with one "
                                "(pixel_values)")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ElastoformerError(f"{path}: its input has {len(dims)} dimensions, not 4 (batch, channels, h, w)")
    static = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    cfg_channels, cfg_size = config_input_shape(folder)
    channels = static[1] or cfg_channels or 3
    size = image_size or static[3] or cfg_size
    if size is None:
        raise ElastoformerError(f"cannot tell the image size of {folder} (nothing in its ONNX input or "
                                "config.json): pass --image_size")
    if static[3] and image_size and image_size != static[3]:
        raise ElastoformerError(f"{path} takes {static[3]}px images, not --image_size {image_size}")
    return inputs[0].name, int(channels), int(size), static[0] is None


def ort_session_options(threads: int):
    """ONNX Runtime session options for timing: ``threads`` intra-op threads, sequential execution, every graph
    optimisation, and no spin-waiting: by default a session's threads spin for a while after each run, which on a
    small machine steals the cores from the next level's run when levels are interleaved.

    Spinning during a run with ``session.force_spinning_stop`` after it changed nothing beyond the noise
    (``benchmarks/onnx_variants.py --spin stop``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on the exported ``onnx/model.onnx``; inputs and outputs bound on the device (IOBinding), so
    the timing is the model's, not host-device copies."""

    runtime = "onnxruntime"

    def __init__(self, folder: Path, device: str, precision: str, image_size: int | None, threads: int):
        import onnxruntime as ort

        path = onnx_file(folder)
        self.name, self.channels, self.image_size, self.dynamic_batch = _onnx_input(path, folder, image_size)
        dev = torch.device(device)
        if dev.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ElastoformerError(f"this onnxruntime has no CUDAExecutionProvider (providers: "
                                        f"{', '.join(ort.get_available_providers())}): install onnxruntime-gpu or "
                                        "use --device cpu")
            providers = [("CUDAExecutionProvider", {"device_id": dev.index or 0})]
            self.ort_device, self.device_id = "cuda", dev.index or 0
        else:
            providers = ["CPUExecutionProvider"]
            self.ort_device, self.device_id = "cpu", 0
        try:
            self.session = ort.InferenceSession(str(path), ort_session_options(threads), providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise ElastoformerError(f"onnxruntime cannot open {path}: {str(err).splitlines()[0][:300]}") from None
        self.ort, self.path, self.binding = ort, path, None

    def prepare(self, batch_size: int) -> None:
        if batch_size != 1 and not self.dynamic_batch:
            raise ElastoformerError(f"{self.path} was exported for batch size 1 only; export it with a dynamic "
                                    "batch axis to bench larger batches")
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, self.channels, self.image_size, self.image_size, generator=generator).numpy()
        self.x = self.ort.OrtValue.ortvalue_from_numpy(x, self.ort_device, self.device_id)
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input(self.name, self.x)
        for out in self.session.get_outputs():
            self.binding.bind_output(out.name, self.ort_device, self.device_id)

    def step(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def close(self) -> None:
        self.session = self.binding = self.x = None


class TensorRTRunner(Runner):
    """A TensorRT engine of the exported ONNX file, built by :func:`elastoformer_hf.export.tensorrt.build_engine`
    (one optimisation profile covering batch 1 .. the largest batch benchmarked; written next to the ONNX file)
    and run through the TensorRT >= 8.5 tensor API with torch CUDA tensors as the I/O buffers, allocated once:
    the timing is the engine's, not host-device copies."""

    runtime = "tensorrt"

    def __init__(self, folder: Path, device: str, precision: str, image_size: int | None, max_batch: int):
        import tensorrt as trt

        path = onnx_file(folder)
        self.name, self.channels, self.image_size, dynamic = _onnx_input(path, folder, image_size)
        self.device = torch.device(device)
        if self.device.index is not None:
            torch.cuda.set_device(self.device)
        self.max_batch = max_batch if dynamic else 1
        engine_path = build_engine(path, precision, batch_size=self.max_batch)
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise ElastoformerError(f"TensorRT cannot load the engine it built ({engine_path})")
        self.context = self.engine.create_execution_context()
        self.dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32}
        if hasattr(trt, "bfloat16"):
            self.dtypes[trt.bfloat16] = torch.bfloat16
        self.trt, self.path = trt, path
        self.stream = torch.cuda.Stream(self.device)
        self.buffers: dict[str, torch.Tensor] = {}

    def prepare(self, batch_size: int) -> None:
        if batch_size > self.max_batch:
            raise ElastoformerError(f"{self.path} was exported for batch size 1 only; export it with a dynamic "
                                    "batch axis to bench larger batches")
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, self.channels, self.image_size, self.image_size, generator=generator)
        in_dtype = self.dtypes[self.engine.get_tensor_dtype(self.name)]
        self.buffers = {self.name: x.to(device=self.device, dtype=in_dtype).contiguous()}
        if not self.context.set_input_shape(self.name, tuple(x.shape)):
            raise ElastoformerError(f"batch {batch_size} is outside the TensorRT engine's profile of {self.path}")
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = self.dtypes[self.engine.get_tensor_dtype(name)]
                self.buffers[name] = torch.empty(shape, dtype=dtype, device=self.device)
        for name, tensor in self.buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        torch.cuda.synchronize(self.device)  # the input copy ran on the default stream, not the engine's

    def step(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed (see its log above)")
        self.stream.synchronize()

    def close(self) -> None:
        self.context = self.engine = None
        self.buffers = {}


def load_runner(folder: Path, *, runtime: str, precision: str, device: str, image_size: int | None,
                threads: int, max_batch: int, memory_format: str = "auto") -> Runner:
    """A :class:`Runner` for the level saved in ``folder`` (the setting checked by :func:`check_setting`;
    ``memory_format`` by :func:`check_memory_format`)."""
    if runtime == "torch":
        return TorchRunner(folder, device, precision, image_size, memory_format)
    if runtime == "onnxruntime":
        return OnnxRuntimeRunner(folder, device, precision, image_size, threads)
    return TensorRTRunner(folder, device, precision, image_size, max_batch)
