"""The "Deploy" section of a level's card: the ONNX file, an onnxruntime snippet and the ``trtexec`` command.

Rendered from ``dn{k}/onnx/export.json`` when the level was exported (the file's real input shape, opset and
check), and from the level's image size otherwise (then the section says how to export first).
"""

from __future__ import annotations

from pathlib import Path

from ..export.compat import DEFAULT_OPSET, compatibility_note
from ..export.record import ONNX_REL, read_export
from ..export.tensorrt import JETSON_TRTEXEC, fp16_onnx_path, trtexec_command

SECTION = "deploy"


def deploy_section(dn_dir: str | Path | None, image_size: int | None = None, channels: int = 3,
                   level: int | None = None) -> str:
    """Markdown body of the Deploy section of the card in ``dn_dir`` (``image_size``: the level's resolution,
    used when there is no export record; default 224)."""
    record = read_export(dn_dir) if dn_dir is not None else None
    if record and record.get("level") is not None:
        level = record["level"]
    levels = f" --levels {level}" if level is not None else ""
    if record:
        parsers = compatibility_note(int(record["opset"]), record.get("op_types"),
                                     command=f"elastoformer export RUN_DIR --format onnx{levels} --overwrite")
        _, channels, size, _ = record["input_shape"]
        diffs = record.get("max_abs_diff") or {}
        checked = (f"checked in onnxruntime against PyTorch: max abs logit difference "
                   f"{max(diffs.values()):.2g} at batch sizes {', '.join(sorted(diffs, key=int))}" if diffs
                   else "not checked against PyTorch")
        intro = (f"`{ONNX_REL}` is this level exported to ONNX (opset {record['opset']}, input `pixel_values` of "
                 f"shape batch x {channels} x {size} x {size} with a dynamic batch axis, output `logits`; "
                 f"{checked}). It runs wherever onnxruntime does:")
    else:
        size = int(image_size or 224)
        where = f"dn{level}" if level is not None else "dn{k}"
        intro = (f"This level has no ONNX export yet: `elastoformer export RUN_DIR --format onnx --levels "
                 f"{level if level is not None else 'K'}` writes `{where}/{ONNX_REL}` (input `pixel_values`, "
                 "dynamic batch axis, output `logits`), checked in onnxruntime against PyTorch. Then:")
        parsers = compatibility_note(DEFAULT_OPSET, command=f"elastoformer export RUN_DIR --format onnx{levels}")
    snippet = ("import numpy as np\nimport onnxruntime as ort\n\n"
               f'session = ort.InferenceSession("{ONNX_REL}", providers=["CPUExecutionProvider"])\n'
               f"pixel_values = np.random.randn(1, {channels}, {size}, {size}).astype(np.float32)  "
               "# preprocess like the base model\n"
               'logits = session.run(["logits"], {"pixel_values": pixel_values})[0]')
    command = trtexec_command(ONNX_REL, precision="fp16", batch_size=1, image_size=int(size),
                              channels=int(channels))
    fp16_rel = fp16_onnx_path(ONNX_REL).as_posix()
    return "\n".join([
        intro, "", "```python", snippet, "```", "",
        "TensorRT (fp16) engine build and timing at batch 1, e.g. on a Jetson (JetPack installs trtexec as "
        f"`{JETSON_TRTEXEC}`); run it in this model's folder:", "", "```bash", command, "```", "",
        "`--useCudaGraph --noDataTransfers` time the engine alone (no host/device copies), the figure a latency "
        "table reports; trtexec prints it as \"GPU Compute Time\". TensorRT 11 has no `--fp16` flag (networks are "
        "strongly typed): write a float16 graph first with `python -c \"from elastoformer_hf.export import "
        f"fp16_onnx; fp16_onnx('{ONNX_REL}')\"` and run the command with `--onnx={fp16_rel}` and without "
        "`--fp16`. " + parsers,
    ])
