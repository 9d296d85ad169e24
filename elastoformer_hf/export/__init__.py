"""Deployment exports of descendant networks: ONNX (checked in onnxruntime) and TensorRT.

    from elastoformer_hf.export import export_onnx, trtexec_command

    record = export_onnx("runs/deit-elastic/dn3")   # dn3/onnx/model.onnx + export.json, checked at batch 1 and 3
    print(record["max_abs_diff"], record["trtexec"])

Needs the ``export`` extra (``pip install 'elastoformer-hf[export]'``: onnx, onnxruntime, onnxscript);
:func:`build_engine` / :class:`TensorRTRunner` also need TensorRT and a CUDA GPU; those packages are imported only when used.
"""

from __future__ import annotations

from .compat import DEFAULT_OPSET, TENSORRT_RELEASES, check_parseable, compatibility_note
from .onnx import export_onnx
from .record import EXPORT_FILE, ONNX_DIR, ONNX_FILE, ONNX_REL, onnx_path, read_export
from .tensorrt import (
    JETSON_TRTEXEC,
    PRECISIONS,
    TensorRTRunner,
    build_engine,
    engine_path_for,
    fp16_onnx,
    fp16_onnx_path,
    require_tensorrt,
    trtexec_command,
)

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_FILE",
    "JETSON_TRTEXEC",
    "ONNX_DIR",
    "ONNX_FILE",
    "ONNX_REL",
    "PRECISIONS",
    "TENSORRT_RELEASES",
    "TensorRTRunner",
    "build_engine",
    "check_parseable",
    "compatibility_note",
    "engine_path_for",
    "fp16_onnx",
    "fp16_onnx_path",
    "onnx_path",
    "export_onnx",
    "read_export",
    "require_tensorrt",
    "trtexec_command",
]

