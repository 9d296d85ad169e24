"""TensorRT for an exported level: the exact ``trtexec`` command (for a Jetson or any TensorRT host), and, where
the ``tensorrt`` Python package and a CUDA GPU are present, an engine built and run through its Python API
(TensorRT 8.6 / 10 with the fp16 builder flag; TensorRT 11, which has no precision flags, from a float16 copy
of the graph, :func:`fp16_onnx`).

``trtexec`` is what NVIDIA ships on every Jetson (JetPack: ``/usr/src/tensorrt/bin/trtexec``), so the command is
the reproducible reference a card carries; :func:`build_engine` and :class:`TensorRTRunner` do the same build in
process, for the benchmark. The engine is built for the ONNX file's static image size and a batch range of
``1..batch_size`` (the ONNX batch axis is dynamic; a TensorRT optimization profile fixes its range).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

from ..errors import ElastoformerError
from ..run_folder import write_json
from .compat import check_parseable
from .record import EXPORT_FILE

#: precisions the command and the builder support (TensorRT builder flag per precision; fp32 needs none)
PRECISIONS = ("fp32", "fp16")
#: where JetPack installs trtexec (it is not on PATH there)
JETSON_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
#: timing flags: CUDA graphs and no host<->device copies time the engine itself (what a latency table means);
#: spin-wait gives stable timings on Jetson; 500 ms of warm-up, then at least 10 s / 200 runs of timing.
TIMING_FLAGS = ("--useCudaGraph", "--noDataTransfers", "--useSpinWait", "--warmUp=500", "--duration=10",
                "--iterations=200")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ElastoformerError(f"unsupported TensorRT precision {precision!r}; supported: {', '.join(PRECISIONS)}")


def engine_path_for(onnx_path: str | Path, precision: str = "fp16") -> Path:
    """``onnx/model.onnx`` -> ``onnx/model_fp16.plan`` (the engine next to the ONNX file).

    Args:
        onnx_path (`str` or `Path`): the ONNX file.
        precision (`str`, *optional*, defaults to `"fp16"`): the engine's precision (``fp32`` or ``fp16``).

    Returns:
        `Path`: ``{stem}_{precision}.plan`` beside ``onnx_path``.
    """
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}_{precision}.plan")


def _shape(input_name: str, batch: int, channels: int, image_size: int) -> str:
    return f"{input_name}:{batch}x{channels}x{image_size}x{image_size}"


def fp16_onnx_path(onnx_path: str | Path) -> Path:
    """``onnx/model.onnx`` -> ``onnx/model_fp16.onnx`` (the float16 graph TensorRT 11 needs, see
    :func:`fp16_onnx`).

    Args:
        onnx_path (`str` or `Path`): the ONNX file.

    Returns:
        `Path`: ``{stem}_fp16.onnx`` beside ``onnx_path``.
    """
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}_fp16.onnx")


def trtexec_command(onnx_path: str | Path, *, precision: str = "fp16", batch_size: int = 1, image_size: int,
                    channels: int = 3, input_name: str = "pixel_values", trtexec: str = "trtexec",
                    timing: bool = True, tensorrt_major: int = 10) -> str:
    """The ``trtexec`` command that builds a ``precision`` engine of ``onnx_path`` (saved next to it as
    ``{stem}_{precision}.plan``) and times it at ``batch_size``.

    The optimization profile spans batch 1 (``--minShapes``) to ``batch_size`` (``--optShapes`` and
    ``--maxShapes``, the shape that is timed).

    Args:
        onnx_path (`str` or `Path`): the ONNX file, as the command should name it.
        precision (`str`, *optional*, defaults to `"fp16"`): ``fp32`` or ``fp16``.
        batch_size (`int`, *optional*, defaults to `1`): the largest batch of the profile, and the one timed.
        image_size (`int`): the graph's static image size.
        channels (`int`, *optional*, defaults to `3`): the input channels.
        input_name (`str`, *optional*, defaults to `"pixel_values"`): the graph's input.
        trtexec (`str`, *optional*, defaults to `"trtexec"`): the binary (on a Jetson:
            :data:`JETSON_TRTEXEC`).
        timing (`bool`, *optional*, defaults to `True`): ``False`` leaves out the timing flags (a build-only
            command).
        tensorrt_major (`int`, *optional*, defaults to `10`): 10 (JetPack 6, the default: fp16 through
            ``--fp16``) or 11+ (no precision flags: fp16 means building the float16 graph that
            :func:`fp16_onnx` writes, ``{stem}_fp16.onnx``).

    Returns:
        `str`: the command line, shell-quoted.

    Raises:
        ElastoformerError: an unsupported ``precision``, or ``batch_size``, ``image_size`` or ``channels`` not
            positive.
    """
    _check_precision(precision)
    if int(batch_size) < 1 or int(image_size) < 1 or int(channels) < 1:
        raise ElastoformerError("batch_size, image_size and channels must be positive integers")
    onnx_path = Path(onnx_path)
    strongly_typed = int(tensorrt_major) >= 11
    source = fp16_onnx_path(onnx_path) if strongly_typed and precision == "fp16" else onnx_path
    args = [trtexec, f"--onnx={source.as_posix()}",
            f"--saveEngine={engine_path_for(onnx_path, precision).as_posix()}"]
    if precision == "fp16" and not strongly_typed:
        args.append("--fp16")
    args += [f"--minShapes={_shape(input_name, 1, channels, image_size)}",
             f"--optShapes={_shape(input_name, batch_size, channels, image_size)}",
             f"--maxShapes={_shape(input_name, batch_size, channels, image_size)}"]
    if timing:
        args += list(TIMING_FLAGS)
    return " ".join(shlex.quote(a) for a in args)


def fp16_onnx(onnx_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Write a float16 copy of an exported graph (weights and compute in fp16, ``pixel_values`` and ``logits``
    kept float32) to ``out_path`` (default ``{stem}_fp16.onnx`` beside it) and return its path.

    TensorRT 11 removed the ``--fp16`` / ``BuilderFlag.FP16`` precision hints (every network is strongly
    typed), so an fp16 engine needs an fp16 graph. onnxruntime ships the converter
    (``onnxruntime.transformers.float16``); it appends the input casts at the end of the node list, so the
    graph is re-sorted topologically with onnx_ir (a dependency of onnxscript) before it is saved. The copy is
    checked with ``onnx.checker`` and written aside, then renamed into place.

    Args:
        onnx_path (`str` or `Path`): the exported graph.
        out_path (`str` or `Path`, *optional*): where to write the copy (default ``{stem}_fp16.onnx`` beside
            ``onnx_path``).

    Returns:
        `Path`: the copy's path.
    """
    import onnx
    import onnx_ir
    from onnx_ir.passes.common import TopologicalSortPass
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx_path = Path(onnx_path)
    target = Path(out_path) if out_path is not None else fp16_onnx_path(onnx_path)
    converted = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    model = onnx_ir.from_proto(converted)
    TopologicalSortPass()(model)
    tmp = target.with_name(f".{target.name}.tmp")
    onnx_ir.save(model, tmp)
    onnx.checker.check_model(str(tmp))
    tmp.replace(target)
    return target


# ------------------------------------------------------------------------------------------------ Python API
def require_tensorrt():
    """The modules an engine is built with, when an engine can be built here.

    Returns:
        `tuple`: ``(tensorrt, torch)``, the imported modules.

    Raises:
        ElastoformerError: a clear error naming where it works otherwise: the ``tensorrt`` package is not
            installed, or torch sees no CUDA GPU.
    """
    try:
        import tensorrt as trt
    except ImportError:
        raise ElastoformerError(
            "TensorRT is not installed here: building an engine needs the `tensorrt` Python package and an NVIDIA "
            "GPU (a Jetson with JetPack, or a CUDA host with `pip install tensorrt`). Elsewhere, run the trtexec "
            "command printed by `elastoformer export` on the target device."
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise ElastoformerError(
            f"TensorRT {trt.__version__} is installed but no CUDA GPU is available to torch: engines are built "
            "on the device that runs them (a Jetson, or a CUDA host)."
        )
    return trt, torch


def _input_dims(network) -> tuple[str, tuple[int, ...]]:
    if network.num_inputs != 1:
        raise ElastoformerError(f"expected one input (pixel_values), the ONNX graph has {network.num_inputs}")
    tensor = network.get_input(0)
    return tensor.name, tuple(tensor.shape)


def engine_key(onnx_path: Path, precision: str, batch_size: int, workspace_gib: float | None, trt, torch) -> dict:
    """What an engine depends on: the graph's bytes, the build settings, the TensorRT version and the GPU (an
    engine only runs on the TensorRT version and GPU model that built it).

    Args:
        onnx_path (`Path`): the ONNX file.
        precision (`str`): the engine's precision.
        batch_size (`int`): the largest batch of the profile.
        workspace_gib (`float`, *optional*): the workspace limit, in GiB.
        trt (`module`): the ``tensorrt`` module (:func:`require_tensorrt`).
        torch (`module`): the ``torch`` module (:func:`require_tensorrt`).

    Returns:
        `dict`: ``onnx_sha256``, ``precision``, ``batch_size``, ``workspace_gib``, ``tensorrt`` (version) and
        ``gpu`` (the current CUDA device's name).
    """
    digest = hashlib.sha256()
    with open(onnx_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"onnx_sha256": digest.hexdigest(), "precision": precision, "batch_size": int(batch_size),
            "workspace_gib": workspace_gib, "tensorrt": str(trt.__version__),
            "gpu": torch.cuda.get_device_name(torch.cuda.current_device())}


def _key_path(engine: Path) -> Path:
    return engine.with_name(f"{engine.name}.json")


def _check_export_record(onnx_path: Path, tensorrt_version: str) -> None:
    """When ``onnx_path`` is an ``elastoformer export`` (``export.json`` beside it), refuse a graph the installed
    TensorRT cannot parse before building (a parser error would come after minutes and name no remedy)."""
    try:
        record = json.loads((onnx_path.parent / EXPORT_FILE).read_text())
        opset, op_types = int(record["opset"]), record.get("op_types")
    except (OSError, ValueError, KeyError, TypeError):
        return  # not our export, or no readable record: the parser decides
    check_parseable(opset, op_types, tensorrt_version, str(onnx_path))


def build_engine(onnx_path: str | Path, precision: str = "fp16", *, batch_size: int = 1,
                 engine_path: str | Path | None = None, workspace_gib: float | None = None,
                 reuse: bool = True) -> Path:
    """Build a serialized TensorRT engine of ``onnx_path``.

    The same as :func:`trtexec_command` without timing. The engine is written aside and renamed, with
    ``{engine}.json`` beside it recording :func:`engine_key`. Needs the ``tensorrt`` package and a CUDA GPU.
    When ``onnx_path`` is an ``elastoformer export`` (``export.json`` beside it), a graph the installed
    TensorRT cannot parse is refused before the build.

    Args:
        onnx_path (`str` or `Path`): the ONNX file (only its batch axis may be dynamic).
        precision (`str`, *optional*, defaults to `"fp16"`): ``fp32`` or ``fp16`` (TensorRT 11: built from
            the float16 copy :func:`fp16_onnx` writes).
        batch_size (`int`, *optional*, defaults to `1`): the optimization profile spans batch 1 to it.
        engine_path (`str` or `Path`, *optional*): where to write the engine (default
            ``{stem}_{precision}.plan`` next to the ONNX file).
        workspace_gib (`float`, *optional*): the builder's workspace limit, in GiB (default: TensorRT's).
        reuse (`bool`, *optional*, defaults to `True`): an engine already there whose record matches (same
            ONNX bytes, precision, batch range, workspace, TensorRT version and GPU) is returned as is; a
            build takes minutes on a Jetson.

    Returns:
        `Path`: the engine file.

    Raises:
        ElastoformerError: a clear error when the ``tensorrt`` package or a CUDA GPU is missing; also for an
            unsupported ``precision``, a missing ONNX file, a graph the installed TensorRT cannot parse (per
            the export record, or the parser itself), a graph without exactly one input or with a dynamic axis
            other than the batch, or a failed build.
    """
    _check_precision(precision)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ElastoformerError(f"{onnx_path} does not exist: export the level first (elastoformer export)")
    trt, torch = require_tensorrt()
    _check_export_record(onnx_path, str(trt.__version__))
    target = Path(engine_path) if engine_path is not None else engine_path_for(onnx_path, precision)
    key = engine_key(onnx_path, precision, batch_size, workspace_gib, trt, torch)
    if reuse and target.is_file():
        try:
            if json.loads(_key_path(target).read_text()) == key:
                return target
        except (OSError, json.JSONDecodeError):
            pass  # no record or a damaged one: build again
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    # TensorRT 10+ networks are always explicit-batch (the flag is deprecated there); 8.x needs it
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    fp16_flag = getattr(trt.BuilderFlag, "FP16", None)  # gone in TensorRT 11 (strongly typed networks only)
    source = fp16_onnx(onnx_path) if precision == "fp16" and fp16_flag is None else onnx_path
    if not parser.parse_from_file(str(source)):  # from a path: external weight files are found next to it
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ElastoformerError(f"TensorRT cannot parse {source}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16" and fp16_flag is not None:
        config.set_flag(fp16_flag)
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    name, dims = _input_dims(network)
    static = tuple(int(d) for d in dims[1:])
    if any(d < 1 for d in static):
        raise ElastoformerError(f"{onnx_path}: only the batch axis may be dynamic, got input shape {dims}")
    profile = builder.create_optimization_profile()
    profile.set_shape(name, (1, *static), (batch_size, *static), (batch_size, *static))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ElastoformerError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    _key_path(target).unlink(missing_ok=True)  # the old record must never vouch for the new engine
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(target)
    write_json(_key_path(target), key, indent=1, sort_keys=False)
    return target


class TensorRTRunner:
    """Run a serialized engine (one input, one output) on numpy arrays: ``runner(pixel_values) -> logits``.

    TensorRT 10 API (named I/O tensors, ``execute_async_v3``); device buffers and the stream are torch's, so
    no extra CUDA binding is needed. Not exercised in this project's CI (no GPU there). Inputs and outputs
    must be float32 or float16; logits come back as float32.

    Args:
        engine_path (`str` or `Path`): the serialized engine (:func:`build_engine`).

    Raises:
        ElastoformerError: the ``tensorrt`` package or a CUDA GPU is missing, the file does not exist, is not
            a TensorRT engine for this TensorRT version / GPU, or the engine has not exactly one input and one
            output.
    """

    def __init__(self, engine_path: str | Path):
        trt, torch = require_tensorrt()
        self._trt, self._torch = trt, torch
        path = Path(engine_path)
        if not path.is_file():
            raise ElastoformerError(f"{path} does not exist: build the engine first (build_engine)")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ElastoformerError(f"{path} is not a TensorRT engine for this TensorRT version / GPU")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ElastoformerError(f"expected one input and one output, the engine has {inputs} -> {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.device = torch.device("cuda")
        self.stream = torch.cuda.Stream()

    def _torch_dtype(self, name: str):
        dtype = self.engine.get_tensor_dtype(name)
        known = {self._trt.float32: self._torch.float32, self._trt.float16: self._torch.float16}
        if dtype not in known:
            raise ElastoformerError(f"engine tensor {name} has type {dtype}; only float32/float16 I/O is supported")
        return known[dtype]

    def __call__(self, pixel_values):
        """``pixel_values`` (numpy, N x C x H x W) -> logits (numpy float32, N x classes)."""
        torch = self._torch
        x = torch.as_tensor(pixel_values).to(self.device, self._torch_dtype(self.input_name)).contiguous()
        if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
            raise ElastoformerError(f"input shape {tuple(x.shape)} is outside the engine's optimization profile")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out = torch.empty(out_shape, dtype=self._torch_dtype(self.output_name), device=self.device)
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ElastoformerError("TensorRT execution failed (see its log above)")
        self.stream.synchronize()
        return out.float().cpu().numpy()
