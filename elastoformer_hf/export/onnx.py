"""ONNX export of one descendant network: ``dn{k}/onnx/model.onnx`` plus ``export.json``, checked in onnxruntime.

The graph has one input, ``pixel_values`` (batch x C x H x W, the batch axis dynamic, H and W the level's
resolution: static, so TensorRT can specialise its kernels) and one output, ``logits`` (whatever the model
returns, a ModelOutput or DeiT's averaged heads, is reduced to the logits tensor by the architecture adapter).

Exporter: torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, torch.export + onnxscript) is the
default: it exports every supported architecture, but slowly; the TorchScript exporter (``dynamo=False``,
``dynamic_axes``) is fast but fails on some graphs (VGG's ``adaptive_avg_pool2d`` at sizes that are not a multiple
of 7) and is deprecated (benchmarks/README.md has the measurements). ``exporter="auto"`` therefore tries dynamo and falls back to TorchScript only when dynamo fails (the record says
which ran and why); ``"dynamo"`` / ``"torchscript"`` force one.

The files are written into a hidden sibling folder and renamed to ``onnx/`` only after the check passed, so a
crash or a failed check never leaves a half-written or unchecked ``model.onnx`` (nor replaces a good one).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from ..adapters import get_adapter
from ..descendant import bare_model, load_descendant
from ..errors import ElastoformerError
from ..run_folder import PLAN_FILE, read_json, read_level_info, staged_folder, write_json
from .compat import DEFAULT_OPSET
from .record import EXPORT_FILE, ONNX_DIR, ONNX_FILE
from .tensorrt import trtexec_command

EXPORTERS = ("auto", "dynamo", "torchscript")
#: batch sizes the onnxruntime check runs (two different ones prove the batch axis is really dynamic)
CHECK_BATCHES = (1, 3)
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"


class LogitsOnly(nn.Module):
    """``model`` with ``pixel_values`` in and the logits tensor out (the graph's one output).

    Args:
        model (`nn.Module`): the model to wrap.
        adapter (`ArchitectureAdapter`): the adapter of ``model``'s architecture (it reduces the model's
            output to the logits).
    """

    def __init__(self, model: nn.Module, adapter):
        super().__init__()
        self.model = model
        self.adapter = adapter

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The logits of ``pixel_values``.

        Args:
            pixel_values (`torch.Tensor`): images, batch x C x H x W.

        Returns:
            `torch.Tensor`: the logits, batch x classes.
        """
        return self.adapter.forward_logits(self.model, pixel_values)


def _require_runtime(exporter: str) -> dict:
    """Versions of the optional export dependencies; a clear error naming the extra when one is missing."""
    versions = {}
    needed = ["onnx", "onnxruntime"] + (["onnxscript"] if exporter != "torchscript" else [])
    for name in needed:
        try:
            module = __import__(name)
        except ImportError:
            raise ElastoformerError(
                f"ONNX export needs {', '.join(needed)}: pip install 'elastoformer-hf[export]'") from None
        versions[name] = module.__version__
    return versions


def load_level(dn_dir: Path) -> tuple[nn.Module, object, dict]:
    """Load a dn folder for export.

    Args:
        dn_dir (`Path`): a ``dn{k}/`` folder.

    Returns:
        `tuple[nn.Module, ArchitectureAdapter, dict]`: ``(model, adapter, level_info)``: the bare architecture
        in eval mode (the Elastoformer wrapper is unwrapped, so the graph is the timm/torchvision/transformers
        model itself), its adapter and the level record.

    Raises:
        CheckpointError: the folder has no level record, its record is corrupt, or the model cannot be loaded
            strictly.
        UnsupportedModelError: no adapter supports the model's architecture.
    """
    info = read_level_info(dn_dir)
    model = bare_model(load_descendant(dn_dir))
    return model.eval(), get_adapter(model), info


def resolve_image_size(dn_dir: Path, model: nn.Module, adapter, requested: int | None) -> int:
    """The resolution to export at: a ViT's own (it runs at no other); for CNNs ``requested``, else the run's
    (``elastic_plan.json``: the size its costs were counted at), else the model's pretrained size.

    Args:
        dn_dir (`Path`): the ``dn{k}/`` folder (the run's plan is read from its parent).
        model (`nn.Module`): the level's model.
        adapter (`ArchitectureAdapter`): the adapter of ``model``'s architecture.
        requested (`int`, *optional*): the resolution asked for.

    Returns:
        `int`: the resolution, in pixels.

    Raises:
        ElastoformerError: ``requested`` differs from a fixed-resolution model's own, or is not positive.
    """
    # a 0 is a mistake, not "the default": only None means unset
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 1):
        raise ElastoformerError(f"image size must be a positive integer, got {requested!r}")
    own = int(adapter.image_size(model))
    if adapter.fixed_resolution:
        if requested is not None and int(requested) != own:
            raise ElastoformerError(f"{type(model).__name__} runs only at its own resolution ({own}px), "
                                    f"not {requested}px; leave the image size unset")
        return own
    if requested is not None:
        return int(requested)
    plan = dn_dir.parent / PLAN_FILE
    if plan.is_file():
        size = read_json(plan).get("image_size")
        if size:
            return int(size)
    return own


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def _export_dynamo(module: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(module, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                dynamic_shapes={INPUT_NAME: {0: batch}}, opset_version=opset, dynamo=True,
                                optimize=True, verbose=False)
    # a single file unless the weights pass protobuf's 2 GB limit (then onnx writes model.onnx.data beside it)
    program.save(str(path), external_data=False)


def _export_torchscript(module: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(module, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
                      dynamo=False, do_constant_folding=True)


@contextlib.contextmanager
def _quiet_fds():
    """Send file descriptors 1 and 2 to a scratch file for the block. Needed because the TorchScript exporter
    dumps the whole TorchScript graph from C++ straight to stderr when it fails (torch 2.14 enables its ONNX
    log unconditionally: ``setup_onnx_logging`` tests the function ``_jit_is_onnx_log_enabled``, not its
    result), which Python-level redirection cannot catch."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _run_exporter(name: str, module, example, path: Path, opset: int) -> None:
    """One exporter, its console chatter and warnings captured (the error says what failed)."""
    log = io.StringIO()
    quiet = _quiet_fds() if name == "torchscript" else contextlib.nullcontext()
    try:
        with warnings.catch_warnings(), quiet, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            warnings.simplefilter("ignore")
            (_export_dynamo if name == "dynamo" else _export_torchscript)(module, example, path, opset)
    except Exception as err:
        raise ElastoformerError(f"the {name} ONNX exporter failed: {_first_line(err)}") from err
    written = _graph_opset(path)
    if written != opset:
        # the dynamo exporter translates at opset 18 and converts; when onnx's version converter cannot (ResNets to
        # 17 in torch 2.14) it keeps 18 silently. The record must not claim an opset the file does not have.
        raise ElastoformerError(f"the {name} ONNX exporter wrote opset {written}, not the requested {opset}")


def _op_types(path: Path) -> list[str]:
    """The graph's op types (what decides which TensorRT parser takes it, :mod:`.compat`)."""
    import onnx

    return sorted({node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node})


def _graph_opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _export(exporter: str, module, example, path: Path, opset: int) -> tuple[str, str | None]:
    """Export with ``exporter``; returns (the exporter that ran, why dynamo was not used under "auto")."""
    if exporter != "auto":
        _run_exporter(exporter, module, example, path, opset)
        return exporter, None
    before = set(path.parent.iterdir())
    try:
        _run_exporter("dynamo", module, example, path, opset)
        return "dynamo", None
    except ElastoformerError as err:
        for stale in set(path.parent.iterdir()) - before:  # what dynamo wrote (model.onnx, external data)
            stale.unlink()
        try:
            _run_exporter("torchscript", module, example, path, opset)
        except ElastoformerError as second:
            raise ElastoformerError(f"{err}; then {second}") from second
        return "torchscript", str(err)


def resolve_opset(opset: int | None) -> int:
    """``opset`` checked: from torch's oldest ONNX opset, 7, to the newest the installed onnx knows.

    Args:
        opset (`int`, *optional*): the ONNX opset; None gives :data:`DEFAULT_OPSET`. 0 is an error, not the
            default.

    Returns:
        `int`: the opset.

    Raises:
        ElastoformerError: ``opset`` is not an integer from 7 to the newest opset of the installed onnx.
    """
    if opset is None:
        return DEFAULT_OPSET
    import onnx.defs

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= newest:
        raise ElastoformerError(f"opset must be an integer from 7 to {newest} (the newest this onnx knows), got "
                                f"{opset!r}; the default is {DEFAULT_OPSET}, and the TensorRT table in the README "
                                "gives the opset for older TensorRT releases")
    return opset


def export_graph(model: nn.Module, adapter, example: torch.Tensor, path: Path, *, exporter: str = "auto",
                 opset: int | None = None) -> tuple[str, str | None]:
    """Write ``model`` (logits only, traced in the adapter's export mode) as ONNX to ``path``.

    ``elastoformer export`` and the latency benchmarks share it, so what is timed is the graph that ships.

    Args:
        model (`nn.Module`): the model to export.
        adapter (`ArchitectureAdapter`): the adapter of ``model``'s architecture.
        example (`torch.Tensor`): the example batch traced.
        path (`Path`): the ``.onnx`` file to write.
        exporter (`str`, *optional*, defaults to `"auto"`): ``auto`` (dynamo, TorchScript if dynamo fails),
            ``dynamo`` or ``torchscript``.
        opset (`int`, *optional*): the ONNX opset (None: :data:`DEFAULT_OPSET`).

    Returns:
        `tuple[str, str | None]`: the exporter that ran and, under ``auto``, why dynamo was not used (else
        None).

    Raises:
        ElastoformerError: an unknown ``exporter`` or an invalid ``opset``; the exporter (under ``auto``:
            both) failed, or wrote another opset than the requested one.
    """
    if exporter not in EXPORTERS:
        raise ElastoformerError(f"unknown exporter {exporter!r}; supported: {', '.join(EXPORTERS)}")
    with adapter.export_mode(model):
        return _export(exporter, LogitsOnly(model, adapter).eval(), example, path, resolve_opset(opset))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@torch.no_grad()
def check_onnx(path: Path, model: nn.Module, adapter, shape: tuple[int, int, int], *, atol: float,
               batches=CHECK_BATCHES, seed: int = 0) -> dict[str, float]:
    """Max abs difference between onnxruntime's (CPU) and torch's logits at each batch size.

    Args:
        path (`Path`): the ONNX file.
        model (`nn.Module`): the model it was exported from.
        adapter (`ArchitectureAdapter`): the adapter of ``model``'s architecture.
        shape (`tuple[int, int, int]`): one input image's shape, C x H x W.
        atol (`float`): the largest difference accepted.
        batches (`Iterable[int]`, *optional*, defaults to `(1, 3)`): the batch sizes run (random inputs).
        seed (`int`, *optional*, defaults to `0`): the seed of the random inputs.

    Returns:
        `dict[str, float]`: the difference per batch size (the key is the batch size as text).

    Raises:
        ElastoformerError: when one exceeds ``atol`` (or is not finite) or the output shape is wrong.
    """
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    diffs = {}
    for batch in batches:
        x = torch.randn(batch, *shape, generator=generator)
        expected = adapter.forward_logits(model, x).float().numpy()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        if got.shape != expected.shape:
            raise ElastoformerError(f"{path}: onnxruntime returned logits of shape {got.shape} for a batch of "
                                    f"{batch}, PyTorch {expected.shape}")
        diff = float(np.abs(got - expected).max())
        if not np.isfinite(diff) or diff > atol:
            raise ElastoformerError(f"{path}: onnxruntime's logits differ from PyTorch's by {diff:.3g} at batch "
                                    f"{batch} (tolerance {atol:g}); the export is not kept")
        diffs[str(batch)] = diff
    return diffs


def export_onnx(dn_dir: str | os.PathLike, *, opset: int | None = None, check: bool = True, atol: float = 1e-4,
                batch_size: int = 2, overwrite: bool = False, image_size: int | None = None,
                exporter: str = "auto") -> dict:
    """Export ``dn_dir`` (a ``dn{k}/`` folder) to ``dn_dir/onnx/model.onnx`` and return the export record
    (also written as ``dn_dir/onnx/export.json``).

    The graph is checked with ``onnx.checker`` and written aside: on any error an existing ``onnx/`` is left
    as it was.

    Args:
        dn_dir (`str` or `os.PathLike`): the ``dn{k}/`` folder.
        opset (`int`, *optional*): the ONNX opset (None: :data:`DEFAULT_OPSET`).
        check (`bool`, *optional*, defaults to `True`): run the graph in onnxruntime at batch 1 and 3 and
            require ``max |onnx - torch| <= atol``.
        atol (`float`, *optional*, defaults to `1e-4`): the tolerance of the check (positive).
        batch_size (`int`, *optional*, defaults to `2`): the example batch traced (>= 2: torch.export
            specialises a batch of 1); the batch axis of the graph is dynamic either way.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing ``onnx/``.
        image_size (`int`, *optional*): CNNs only (default: the run's plan, else the model's own).
        exporter (`str`, *optional*, defaults to `"auto"`): ``auto`` (dynamo, TorchScript if dynamo fails),
            ``dynamo`` or ``torchscript``.

    Returns:
        `dict`: the export record (level, files, bytes, sha256, opset, op types, exporter, input and output
        names and shapes, the check's differences, versions, a ``trtexec`` command, creation time).

    Raises:
        ElastoformerError: an unknown ``exporter`` or an invalid ``opset``, ``batch_size`` or ``atol``,
            ``dn_dir`` is not a folder, ``onnx/`` exists without ``overwrite``, an export dependency is
            missing, an unusable ``image_size``, a failed export, a graph that is not valid ONNX, or a failed
            check.
        CheckpointError: ``dn_dir`` is not a descendant network, or its checkpoint is corrupt.
        UnsupportedModelError: no adapter supports the model's architecture.
    """
    dn_dir = Path(dn_dir)
    if exporter not in EXPORTERS:
        raise ElastoformerError(f"unknown exporter {exporter!r}; supported: {', '.join(EXPORTERS)}")
    if not dn_dir.is_dir():
        raise ElastoformerError(f"{dn_dir} is not a folder")
    if int(batch_size) < 2:
        raise ElastoformerError(f"batch_size must be >= 2 (torch.export specialises a batch of 1), got {batch_size}")
    if not atol > 0:
        raise ElastoformerError(f"atol must be positive, got {atol}")
    out = dn_dir / ONNX_DIR
    if out.exists() and not overwrite:
        raise ElastoformerError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    versions = _require_runtime(exporter)
    opset = resolve_opset(opset)

    model, adapter, info = load_level(dn_dir)
    size = resolve_image_size(dn_dir, model, adapter, image_size)
    channels = int(adapter.in_channels(model))
    example = torch.randn(int(batch_size), channels, size, size, generator=torch.Generator().manual_seed(0))

    with staged_folder(out) as tmp:
        path = tmp / ONNX_FILE
        used, fallback = export_graph(model, adapter, example, path, exporter=exporter, opset=opset)
        import onnx

        try:
            onnx.checker.check_model(str(path))  # by path: works past 2 GB (external data)
        except onnx.checker.ValidationError as err:
            raise ElastoformerError(f"the exported graph is not valid ONNX: {_first_line(err)}") from None
        diffs = check_onnx(path, model, adapter, (channels, size, size), atol=atol) if check else None
        files = sorted(p.name for p in tmp.iterdir())
        record = {
            "format": "elastoformer-onnx-export",
            "format_version": 1,
            "level": info.get("level"),
            "file": ONNX_FILE,
            "files": files,
            "bytes": sum((tmp / f).stat().st_size for f in files),
            "sha256": _sha256(path),
            "opset": opset,
            "op_types": _op_types(path),
            "exporter": used,
            "input_name": INPUT_NAME,
            "output_name": OUTPUT_NAME,
            "input_shape": ["batch", channels, size, size],
            "dynamic_axes": {INPUT_NAME: [0], OUTPUT_NAME: [0]},
            "checked": bool(check),
            "atol": atol if check else None,
            "max_abs_diff": diffs,
            "versions": {"torch": torch.__version__, **versions},
            "trtexec": trtexec_command(f"{ONNX_DIR}/{ONNX_FILE}", image_size=size, channels=channels),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if fallback:
            record["dynamo_error"] = fallback
        write_json(tmp / EXPORT_FILE, record, sort_keys=False)
    return record
