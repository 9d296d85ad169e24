"""Which TensorRT release parses which exported graph (:mod:`elastoformer_hf.export.compat`): the table's reading
of version strings, the oldest parser of a graph, the advice it prints, and the refusal before a doomed build."""

from __future__ import annotations

import pytest

from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.export.compat import (
    DEFAULT_OPSET,
    check_parseable,
    compatibility_note,
    oldest_parser,
    release_for,
)

VIT_OPS = ["Add", "Conv", "Gelu", "LayerNormalization", "MatMul", "Reshape", "Softmax", "Transpose"]
#: a ViT exported at opset 16 (TorchScript): layer norm and GELU as primitive ops
VIT16_OPS = ["Add", "Conv", "Div", "Erf", "MatMul", "Pow", "ReduceMean", "Reshape", "Softmax", "Sqrt", "Sub"]
CNN_OPS = ["Add", "Conv", "Flatten", "Gemm", "GlobalAveragePool", "MaxPool", "Relu"]


@pytest.mark.parametrize(("version", "expected"), [
    ("10.3.0", (10, 0)), ("10.0.1.6", (10, 0)), ("11.1.0", (10, 0)),  # a newer release than the table knows
    ("8.6.2.3", (8, 6)), ("8.5.2.2", (8, 5)), ("8.4.1", (8, 2)), ("8.2.1.8", (8, 2)),
])
def test_installed_version_maps_to_the_newest_release_not_newer_than_it(version, expected):
    assert release_for(version).version == expected


@pytest.mark.parametrize("version", ["7.1.3", "8.0.1", "", "dev", "x.y"])
def test_older_or_unreadable_versions_map_to_nothing(version):
    assert release_for(version) is None


@pytest.mark.parametrize(("opset", "ops", "oldest"), [
    (20, VIT_OPS, "TensorRT 10"), (20, CNN_OPS, "TensorRT 10"),
    (17, VIT_OPS, "TensorRT 8.6"),  # 8.5 stops at 17 but has no LayerNormalization importer
    (17, CNN_OPS, "TensorRT 8.5"),
    (17, None, "TensorRT 8.6"),  # ops unknown (an old record): assume a ViT
    (16, VIT16_OPS, "TensorRT 8.5"),
    (13, CNN_OPS, "TensorRT 8.2"),
])
def test_oldest_parser_of_a_graph(opset, ops, oldest):
    assert oldest_parser(opset, ops).name == oldest


def test_no_listed_release_parses_a_newer_opset_and_the_note_lists_every_option():
    assert oldest_parser(21, CNN_OPS) is None
    note = compatibility_note(21, CNN_OPS)
    assert note.startswith("No TensorRT release listed here parses this opset-21 graph")
    for opset in ("--opset 20", "--opset 17", "--opset 16", "--opset 13"):
        assert opset in note


def test_note_for_the_default_export_names_the_jetpacks_and_the_opsets_for_older_ones():
    assert DEFAULT_OPSET == 20
    note = compatibility_note(DEFAULT_OPSET, VIT_OPS, command="elastoformer export RUN --levels 2 --overwrite")
    assert note.startswith("TensorRT parses this opset-20 graph from TensorRT 10 (JetPack 6.1+) on.")
    assert "`elastoformer export RUN --levels 2 --overwrite`" in note
    assert "`--opset 17` for TensorRT 8.6 (JetPack 6.0)" in note
    assert "`--opset 16` for TensorRT 8.5 (JetPack 5.1)" in note
    assert "`--opset 13` for TensorRT 8.2 (JetPack 4.6" in note
    # the oldest release has nothing older to point to
    assert compatibility_note(13, CNN_OPS) == ("TensorRT parses this opset-13 graph from TensorRT 8.2 (JetPack 4.6, "
                                               "the last for the original Jetson Nano) on.")


@pytest.mark.parametrize(("opset", "ops", "version", "why"), [
    (20, VIT_OPS, "8.5.2.2", "it stops at opset 17"),
    (17, VIT_OPS, "8.5.2.2", "its ONNX parser has no LayerNormalization"),
    (17, None, "8.5.2.2", "its ONNX parser has no LayerNormalization"),
    (20, CNN_OPS, "8.6.2", "it stops at opset 17"),
    (16, CNN_OPS, "8.2.1", "it stops at opset 13"),
])
def test_a_graph_the_installed_tensorrt_cannot_parse_is_refused_with_the_opset_to_export(opset, ops, version, why):
    with pytest.raises(ElastoformerError, match=why) as caught:
        check_parseable(opset, ops, version, "dn1/onnx/model.onnx")
    message = str(caught.value)
    assert f"TensorRT {version}" in message and "dn1/onnx/model.onnx" in message
    expected = {"8.5": 16, "8.6": 17, "8.2": 13}[version[:3]]
    assert f"--opset {expected} --overwrite" in message


@pytest.mark.parametrize(("opset", "ops", "version"), [
    (20, VIT_OPS, "10.3.0"), (17, VIT_OPS, "8.6.2"), (17, CNN_OPS, "8.5.2.2"), (16, VIT16_OPS, "8.5.2.2"),
    (13, CNN_OPS, "8.2.1"), (20, VIT_OPS, "7.1.3"),  # older than the table: the parser itself decides
])
def test_graphs_the_installed_tensorrt_parses_pass(opset, ops, version):
    check_parseable(opset, ops, version, "model.onnx")
