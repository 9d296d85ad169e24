"""``elastoformer export`` / :func:`export_onnx`: ONNX files that onnxruntime runs like PyTorch at two batch sizes,
their record, the card's Deploy section, the trtexec command, and every bad input (clear error, nothing lost)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from elastoformer_hf.cli import main  # noqa: E402
from elastoformer_hf.errors import ElastoformerError  # noqa: E402
from elastoformer_hf.export import export_onnx, trtexec_command  # noqa: E402
from elastoformer_hf.export import onnx as onnx_export  # noqa: E402
from elastoformer_hf.export.onnx import load_level  # noqa: E402
from elastoformer_hf.refresh import refresh_run


def _plan(tmp_path_factory, name, *extra):
    out = tmp_path_factory.mktemp("runs") / name
    code = main(["plan", "--model_name", extra[0], "--random_init", "--pruning_ratio", "0.5", "--pruning_steps", "1",
                 "--output_dir", str(out), *extra[1:]])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    from transformers import ViTConfig

    cfg = tmp_path_factory.mktemp("vit-config")
    ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
              patch_size=8, num_labels=5).save_pretrained(cfg)
    return _plan(tmp_path_factory, "vit", str(cfg), "--round_to", "4")


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    return _plan(tmp_path_factory, "resnet", "resnet18", "--num_labels", "5", "--image_size", "48")


@pytest.fixture(scope="module")
def tv_resnet_run(tmp_path_factory):
    return _plan(tmp_path_factory, "tv_resnet", "torchvision:resnet18", "--num_labels", "5", "--image_size", "40")


def copy_run(run, tmp_path):
    """A private copy (tests that write into a run never share its state)."""
    return shutil.copytree(run, tmp_path / run.name)


def assert_matches_torch(dn_dir, batches=(1, 3), atol=1e-4):
    """Run the exported file in onnxruntime on fresh inputs and compare with the level's PyTorch logits."""
    import onnxruntime as ort

    record = json.loads((dn_dir / "onnx" / "export.json").read_text())
    _, channels, size, _ = record["input_shape"]
    model, adapter, _ = load_level(dn_dir)
    session = ort.InferenceSession(str(dn_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixel_values"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # symbolic: the batch axis is dynamic
    for batch in batches:
        x = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(100 + batch))
        with torch.no_grad():
            expected = adapter.forward_logits(model, x).numpy()
        (got,) = session.run(["logits"], {"pixel_values": x.numpy()})
        assert got.shape == expected.shape == (batch, 5)
        assert np.abs(got - expected).max() <= atol
    return record


def no_temp_files(folder):
    return not [p for p in folder.rglob(".*")]


# ------------------------------------------------------------------------------------------------ exports
def test_cli_exports_vit_level_with_table_and_trtexec(vit_run, tmp_path, capsys):
    run = copy_run(vit_run, tmp_path)
    code = main(["export", str(run), "--format", "onnx", "--levels", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    dn1 = run / "dn1"
    record = assert_matches_torch(dn1)
    assert not (run / "dn2" / "onnx").exists()  # --levels 1 only
    assert record["exporter"] == "dynamo" and record["opset"] == 20 and record["checked"] is True
    assert record["input_shape"] == ["batch", 3, 32, 32] and record["level"] == 1
    assert set(record["max_abs_diff"]) == {"1", "3"} and max(record["max_abs_diff"].values()) <= 1e-4
    assert set(record["versions"]) >= {"torch", "onnx", "onnxruntime", "onnxscript"}
    onnx_file = dn1 / "onnx" / "model.onnx"
    import hashlib

    assert record["sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    assert record["files"] == ["model.onnx"] and record["bytes"] == onnx_file.stat().st_size
    assert no_temp_files(run)
    # the table names the level and the file; the trtexec command points at this file with its shapes
    assert "DN1" in out and str(onnx_file) in out and "dynamo" in out
    assert f"--onnx={onnx_file}" in out and "--minShapes=pixel_values:1x3x32x32" in out
    # the op types the record keeps are the file's; from them, which TensorRT parses it and how to export for older
    assert record["op_types"] == sorted(_op_types(onnx_file)) and "LayerNormalization" in record["op_types"]
    assert "TensorRT parses this opset-20 graph from TensorRT 10 (JetPack 6.1+) on." in out
    assert "--opset 16 for TensorRT 8.5 (JetPack 5.1)" in out
    # exporting again without --overwrite refuses and leaves the file alone
    before = onnx_file.read_bytes()
    code = main(["export", str(dn1)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert onnx_file.read_bytes() == before


def _op_types(path):
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_vit_graphs_use_explicit_attention_and_the_model_keeps_sdpa(vit_run, tmp_path):
    """ViTs are traced with matmul-softmax-matmul attention: torch's ONNX decomposition of SDPA adds NaN guards
    (IsNaN/Where, which old TensorRT parsers reject) and slices that slow a DeiT-B core in onnxruntime
    (benchmarks/onnx_variants.py). The model itself goes back to the attention it had."""
    import timm

    from elastoformer_hf.adapters import get_adapter
    from elastoformer_hf.adapters.hf_vit import EXPORT_ATTENTION
    from elastoformer_hf.export.onnx import export_graph

    dn1 = copy_run(vit_run, tmp_path) / "dn1"
    export_onnx(dn1)
    ops = _op_types(dn1 / "onnx" / "model.onnx")
    # No NaN guards, and no all-zero attention bias: transformers materialises one (Where + Expand + one Add per
    # layer) while torch.export traces, unless the export attention drops it.
    assert "Softmax" in ops and "IsNaN" not in ops and "Where" not in ops
    assert_matches_torch(dn1)

    model, adapter, _ = load_level(dn1)
    assert model.config._attn_implementation == "sdpa"
    with adapter.export_mode(model):
        assert model.config._attn_implementation == EXPORT_ATTENTION
    assert model.config._attn_implementation == "sdpa"

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                            num_classes=5).eval()
    adapter = get_adapter(vit)
    assert all(block.attn.fused_attn for block in vit.blocks)
    with adapter.export_mode(vit):
        assert not any(block.attn.fused_attn for block in vit.blocks)
    assert all(block.attn.fused_attn for block in vit.blocks)
    x = torch.randn(2, 3, 32, 32)
    export_graph(vit, adapter, x, tmp_path / "timm.onnx", exporter="dynamo")
    assert "Softmax" in _op_types(tmp_path / "timm.onnx")
    assert all(block.attn.fused_attn for block in vit.blocks)
    diffs = onnx_export.check_onnx(tmp_path / "timm.onnx", vit, adapter, (3, 32, 32), atol=1e-4)
    assert max(diffs.values()) <= 1e-4


def test_deit_with_teacher_traces_its_own_eager_attention_without_the_zero_bias(tmp_path):
    """The export attention calls the eager function of the file that defines the attention module (DeiT's, not
    ViT's): two heads' logits, the same as in torch, and no mask nodes."""
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    from elastoformer_hf.adapters import get_adapter
    from elastoformer_hf.export.onnx import export_graph

    model = DeiTForImageClassificationWithTeacher(DeiTConfig(
        image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
        intermediate_size=96, num_labels=5)).eval()
    adapter = get_adapter(model)
    export_graph(model, adapter, torch.randn(2, 3, 32, 32), tmp_path / "deit.onnx", exporter="dynamo")
    ops = _op_types(tmp_path / "deit.onnx")
    assert "Softmax" in ops and "Where" not in ops and "IsNaN" not in ops
    diffs = onnx_export.check_onnx(tmp_path / "deit.onnx", model, adapter, (3, 32, 32), atol=1e-4)
    assert max(diffs.values()) <= 1e-4
    assert model.config._attn_implementation == "sdpa"


def test_export_attention_keeps_a_padding_mask_and_drops_only_the_all_zero_bias():
    """The export attention changes one thing against transformers' eager attention: no padding mask, no bias.
    Given a padding mask it returns eager's bias, so a model that takes one still masks it."""
    from transformers.masking_utils import bidirectional_mask_function, eager_mask

    from elastoformer_hf.adapters.hf_vit import _export_mask

    kwargs = dict(batch_size=2, q_length=5, kv_length=5, mask_function=bidirectional_mask_function,
                  dtype=torch.float32, allow_is_bidirectional_skip=False, device="cpu")
    assert _export_mask(attention_mask=None, **kwargs) is None
    padding = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    bias = _export_mask(attention_mask=padding, **kwargs)
    torch.testing.assert_close(bias, eager_mask(attention_mask=padding, **kwargs))
    assert bias.shape == (2, 1, 5, 5) and (bias[0, 0, :, 3:] < -1e30).all() and (bias[1] == 0).all()


def test_timm_resnet_export_matches_torch_at_two_batch_sizes(resnet_run, tmp_path):
    dn1 = copy_run(resnet_run, tmp_path) / "dn1"
    record = export_onnx(dn1, atol=1e-4)
    assert record["exporter"] == "dynamo"
    assert record["input_shape"] == ["batch", 3, 48, 48]  # the run's resolution (elastic_plan.json)
    assert_matches_torch(dn1)
    assert json.loads((dn1 / "onnx" / "export.json").read_text()) == record
    assert no_temp_files(dn1.parent)


def test_torchvision_resnet_export_with_torchscript_exporter(tv_resnet_run, tmp_path):
    run = copy_run(tv_resnet_run, tmp_path)
    record = export_onnx(run / "dn1", exporter="torchscript", image_size=56)
    assert record["exporter"] == "torchscript" and record["input_shape"] == ["batch", 3, 56, 56]
    assert_matches_torch(run / "dn1")
    # --overwrite replaces the export (here at another resolution) in place
    record = export_onnx(run / "dn1", exporter="torchscript", overwrite=True)
    assert record["input_shape"] == ["batch", 3, 40, 40]
    assert_matches_torch(run / "dn1")
    assert no_temp_files(run)


def test_auto_falls_back_to_torchscript_and_records_why(tv_resnet_run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("dynamo cannot trace this")

    monkeypatch.setattr(onnx_export, "_export_dynamo", broken)
    dn2 = copy_run(tv_resnet_run, tmp_path) / "dn2"
    record = export_onnx(dn2, exporter="auto")
    assert record["exporter"] == "torchscript" and "dynamo cannot trace this" in record["dynamo_error"]
    assert_matches_torch(dn2)


def test_requested_opset_is_the_files_or_the_export_fails(resnet_run, tmp_path):
    """torch 2.14's dynamo exporter cannot convert a ResNet to opset 17 and silently writes 18: ``auto`` then uses
    TorchScript (which writes 17) and says why; ``dynamo`` alone fails and keeps nothing."""
    run = copy_run(resnet_run, tmp_path)
    record = export_onnx(run / "dn1", opset=17)
    assert record["opset"] == 17 and record["exporter"] == "torchscript"
    assert "wrote opset 18, not the requested 17" in record["dynamo_error"]
    assert onnx_export._graph_opset(run / "dn1" / "onnx" / "model.onnx") == 17
    assert_matches_torch(run / "dn1")
    with pytest.raises(ElastoformerError, match="wrote opset 18, not the requested 17"):
        export_onnx(run / "dn2", opset=17, exporter="dynamo")
    assert not (run / "dn2" / "onnx").exists() and no_temp_files(run)


def test_vit_for_tensorrt_8_5_at_opset_16_writes_layer_norm_as_primitive_ops(vit_run, tmp_path):
    """TensorRT 8.5 (JetPack 5.1) has no LayerNormalization importer: at opset 16 (before that op existed) ``auto``
    exports through TorchScript, layer norm as ReduceMean/Sub/Pow/Sqrt/Div, and the card says 8.5 parses it."""
    from elastoformer_hf.cards import write_level_card

    run = copy_run(vit_run, tmp_path)
    write_level_card(run, 1)
    record = export_onnx(run / "dn1", opset=16)
    refresh_run(run)  # the card is a view of the export record
    assert record["opset"] == 16 and record["exporter"] == "torchscript"
    assert "not the requested 16" in record["dynamo_error"]
    ops = _op_types(run / "dn1" / "onnx" / "model.onnx")
    assert record["op_types"] == sorted(ops)
    assert "LayerNormalization" not in ops and {"ReduceMean", "Sqrt"} <= ops
    assert_matches_torch(run / "dn1")
    text = (run / "dn1" / "README.md").read_text()
    assert "TensorRT parses this opset-16 graph from TensorRT 8.5 (JetPack 5.1) on." in text
    assert "`elastoformer export RUN_DIR --format onnx --levels 1 --overwrite` and `--opset 13`" in text


def test_failed_check_keeps_nothing_and_leaves_old_export(tv_resnet_run, tmp_path, monkeypatch):
    dn1 = copy_run(tv_resnet_run, tmp_path) / "dn1"
    export_onnx(dn1, exporter="torchscript")
    good = (dn1 / "onnx" / "model.onnx").read_bytes()
    # a graph whose logits are off by 1.0 (traced from a perturbed forward) must fail the check
    original = onnx_export.LogitsOnly.forward
    monkeypatch.setattr(onnx_export.LogitsOnly, "forward", lambda self, x: original(self, x) + 1.0)
    with pytest.raises(ElastoformerError, match=r"differ from PyTorch's by 1 .*tolerance 0.0001"):
        export_onnx(dn1, exporter="torchscript", overwrite=True)
    assert (dn1 / "onnx" / "model.onnx").read_bytes() == good
    assert no_temp_files(dn1)


# ------------------------------------------------------------------------------------------------ bad input
def test_missing_and_non_level_folders_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ElastoformerError, match="is not a folder"):
        export_onnx(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ElastoformerError, match="not a descendant-network folder"):
        export_onnx(tmp_path / "empty")
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "neither a run folder" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "onnx").exists() and no_temp_files(tmp_path)


def test_corrupt_checkpoint_is_a_clear_error(tv_resnet_run, tmp_path):
    dn1 = copy_run(tv_resnet_run, tmp_path) / "dn1"
    weights = dn1 / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ElastoformerError, match="model.safetensors is not the file that was written"):
        export_onnx(dn1, exporter="torchscript")
    record = json.loads((dn1 / "elastic_level.json").read_text())
    del record["sha256"]  # a level written before digests were recorded: the load itself names the damage
    (dn1 / "elastic_level.json").write_text(json.dumps(record))
    with pytest.raises(ElastoformerError, match="cannot load"):
        export_onnx(dn1, exporter="torchscript")
    assert not (dn1 / "onnx").exists() and no_temp_files(dn1)


def test_bad_arguments(vit_run, tmp_path, capsys):
    run = copy_run(vit_run, tmp_path)
    with pytest.raises(ElastoformerError, match="runs only at its own resolution"):
        export_onnx(run / "dn1", image_size=64)
    with pytest.raises(ElastoformerError, match="batch_size must be >= 2"):
        export_onnx(run / "dn1", batch_size=1)
    with pytest.raises(ElastoformerError, match="unknown exporter"):
        export_onnx(run / "dn1", exporter="tflite")
    assert main(["export", str(run), "--levels", "7"]) == 2
    assert "no level(s) [7]" in capsys.readouterr().err
    assert main(["export", str(run), "--levels", "one"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
    for opset in (0, -3, 6, 99):  # 0 is not "the default"; nothing outside what torch and onnx can write
        assert main(["export", str(run), "--opset", str(opset)]) == 2
        err = capsys.readouterr().err
        assert "opset must be an integer from 7 to" in err and f"got {opset};" in err
    assert not any((run / f"dn{k}" / "onnx").exists() for k in (1, 2)) and no_temp_files(run)


def test_image_size_zero_is_refused_not_the_default(resnet_run, tmp_path, capsys):
    """Finding 9i: ``image_size=0`` exported at the run's resolution as if it were unset."""
    run = copy_run(resnet_run, tmp_path)
    for size in (0, -4):
        with pytest.raises(ElastoformerError, match=f"image size must be a positive integer, got {size}"):
            export_onnx(run / "dn1", image_size=size)
    with pytest.raises(SystemExit) as info:
        main(["export", str(run), "--image_size", "0"])
    assert info.value.code == 2 and "argument --image_size: must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not any((run / f"dn{k}" / "onnx").exists() for k in (1, 2)) and no_temp_files(run)


def test_tensorrt_flag_without_tensorrt_is_a_clear_error_before_exporting(vit_run, tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401

        if torch.cuda.is_available():
            pytest.skip("TensorRT and a GPU are present: the error path does not apply")
    except ImportError:
        pass
    run = copy_run(vit_run, tmp_path)
    assert main(["export", str(run), "--tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT" in err and ("Jetson" in err or "CUDA" in err)
    assert not (run / "dn1" / "onnx").exists()  # refused before any export


# ------------------------------------------------------------------------------------------------ trtexec, card
def test_trtexec_command_has_the_shapes_and_precision():
    cmd = trtexec_command("dn2/onnx/model.onnx", precision="fp16", batch_size=4, image_size=224, channels=3)
    assert cmd.startswith("trtexec --onnx=dn2/onnx/model.onnx --saveEngine=dn2/onnx/model_fp16.plan --fp16 ")
    assert "--minShapes=pixel_values:1x3x224x224" in cmd
    assert "--optShapes=pixel_values:4x3x224x224" in cmd and "--maxShapes=pixel_values:4x3x224x224" in cmd
    assert "--useCudaGraph" in cmd and "--noDataTransfers" in cmd
    fp32 = trtexec_command("m.onnx", precision="fp32", image_size=160, channels=1, timing=False)
    assert "--fp16" not in fp32 and "model_fp32" not in fp32 and "m_fp32.plan" in fp32
    assert "--minShapes=pixel_values:1x1x160x160" in fp32 and "--useCudaGraph" not in fp32
    with pytest.raises(ElastoformerError, match="supported: fp32, fp16"):
        trtexec_command("m.onnx", precision="int4", image_size=224)


def test_fp16_graph_for_tensorrt_11_keeps_float32_io_and_close_logits(tv_resnet_run, tmp_path):
    import onnxruntime as ort

    from elastoformer_hf.export import fp16_onnx

    dn1 = copy_run(tv_resnet_run, tmp_path) / "dn1"
    export_onnx(dn1, exporter="torchscript")
    path = fp16_onnx(dn1 / "onnx" / "model.onnx")
    assert path == dn1 / "onnx" / "model_fp16.onnx" and no_temp_files(dn1)
    fp16 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fp32 = ort.InferenceSession(str(dn1 / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.type for i in fp16.get_inputs()] == [o.type for o in fp16.get_outputs()] == ["tensor(float)"]
    assert path.stat().st_size < 0.6 * (dn1 / "onnx" / "model.onnx").stat().st_size  # fp16 weights
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32)
    (a,), (b,) = fp16.run(["logits"], {"pixel_values": x}), fp32.run(["logits"], {"pixel_values": x})
    assert a.dtype == np.float32 and np.abs(a - b).max() <= 1e-2 * max(1.0, np.abs(b).max())
    cmd = trtexec_command("onnx/model.onnx", image_size=40, tensorrt_major=11)
    assert "--onnx=onnx/model_fp16.onnx" in cmd and "--fp16" not in cmd.replace("_fp16", "")


class Built(Exception):
    """What the stand-in TensorRT raises when a build starts."""


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """No TensorRT here: a stand-in module (TensorRT 10.3 on an Orin) whose builder fails loudly, so a build shows
    as :class:`Built` and a reuse or a refusal as its absence."""
    import types

    from elastoformer_hf.export import tensorrt as trt_mod

    class Logger:  # the builder's first step
        WARNING = 0

        def __init__(self, *_args):
            raise Built

    fake_trt = types.SimpleNamespace(__version__="10.3.0", Logger=Logger)
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(current_device=lambda: 0,
                                                                  get_device_name=lambda i: "Orin"))
    monkeypatch.setattr(trt_mod, "require_tensorrt", lambda: (fake_trt, fake_torch))
    return fake_trt, fake_torch


def test_tensorrt_engine_is_reused_only_when_everything_it_depends_on_matches(tmp_path, monkeypatch, fake_tensorrt):
    """A "build" shows as the stand-in's failure, a reuse as the engine path coming back untouched."""
    from elastoformer_hf.export import tensorrt as trt_mod

    fake_trt, fake_torch = fake_tensorrt
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"graph v1")
    engine = trt_mod.engine_path_for(onnx_path, "fp16")
    with pytest.raises(Built):  # nothing there yet: it builds
        trt_mod.build_engine(onnx_path, "fp16", batch_size=4)
    engine.write_bytes(b"an engine")
    key = trt_mod.engine_key(onnx_path, "fp16", 4, None, fake_trt, fake_torch)
    engine.with_name(engine.name + ".json").write_text(json.dumps(key))
    assert trt_mod.build_engine(onnx_path, "fp16", batch_size=4) == engine  # reused, not rebuilt
    assert engine.read_bytes() == b"an engine"
    changes = [lambda: trt_mod.build_engine(onnx_path, "fp16", batch_size=8),  # another batch range
               lambda: trt_mod.build_engine(onnx_path, "fp16", batch_size=4, reuse=False)]
    for change in changes:
        with pytest.raises(Built):
            change()
    onnx_path.write_bytes(b"graph v2")  # re-exported
    with pytest.raises(Built):
        trt_mod.build_engine(onnx_path, "fp16", batch_size=4)
    onnx_path.write_bytes(b"graph v1")
    monkeypatch.setattr(fake_trt, "__version__", "10.4.0")  # another TensorRT
    with pytest.raises(Built):
        trt_mod.build_engine(onnx_path, "fp16", batch_size=4)


def test_engine_build_refuses_a_graph_the_installed_tensorrt_cannot_parse(tmp_path, monkeypatch, fake_tensorrt):
    """Before building (minutes on a Jetson), the export record says whether this TensorRT parses the graph; a
    graph without a record goes to the parser (here a stand-in builder that fails loudly)."""
    from elastoformer_hf.export import tensorrt as trt_mod

    fake_trt, _ = fake_tensorrt
    monkeypatch.setattr(fake_trt, "__version__", "8.5.2.2")  # JetPack 5.1
    onnx_path = tmp_path / "onnx" / "model.onnx"
    onnx_path.parent.mkdir()
    onnx_path.write_bytes(b"graph")
    with pytest.raises(Built):  # no record: the parser decides
        trt_mod.build_engine(onnx_path, "fp16")
    record = onnx_path.parent / "export.json"
    record.write_text(json.dumps({"opset": 20, "op_types": ["Gelu", "LayerNormalization", "MatMul"]}))
    with pytest.raises(ElastoformerError, match=r"TensorRT 8\.5\.2\.2 \(JetPack 5\.1\) cannot parse .*--opset 16"):
        trt_mod.build_engine(onnx_path, "fp16")
    assert not trt_mod.engine_path_for(onnx_path, "fp16").exists()
    monkeypatch.setattr(fake_trt, "__version__", "10.3.0")  # JetPack 6.1: parses opset 20
    with pytest.raises(Built):
        trt_mod.build_engine(onnx_path, "fp16")
    record.write_text(json.dumps({"opset": 16, "op_types": ["MatMul", "ReduceMean"]}))  # re-exported for 8.5
    monkeypatch.setattr(fake_trt, "__version__", "8.5.2.2")
    with pytest.raises(Built):
        trt_mod.build_engine(onnx_path, "fp16")


def test_card_deploy_section_before_and_after_export(resnet_run, tmp_path):
    from elastoformer_hf.cards import write_level_card

    run = copy_run(resnet_run, tmp_path)
    write_level_card(run, 1)
    readme = run / "dn1" / "README.md"
    text = readme.read_text()
    assert "## Deploy" in text and "no ONNX export yet" in text
    assert "--minShapes=pixel_values:1x3x48x48" in text  # the level's resolution
    assert "TensorRT parses this opset-20 graph from TensorRT 10 (JetPack 6.1+) on." in text
    assert "export with `elastoformer export RUN_DIR --format onnx --levels 1` and `--opset 17`" in text
    export_onnx(run / "dn1", exporter="torchscript")
    assert readme.read_text() == text  # exporting writes the export and its record, not the card
    refresh_run(run)
    text = readme.read_text()
    assert "no ONNX export yet" not in text and text.count("## Deploy") == 1
    assert "`onnx/model.onnx` is this level exported to ONNX (opset 20" in text
    assert "max abs logit difference" in text and "ort.InferenceSession(\"onnx/model.onnx\"" in text
    assert "trtexec --onnx=onnx/model.onnx --saveEngine=onnx/model_fp16.plan --fp16" in text
    assert "## Training recipe" in text and no_temp_files(run / "dn1")
