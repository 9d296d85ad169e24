"""``elastoformer bench`` and the latency store: latency.json, merging into cards and the family, selection.

Runs on the untrained output of ``elastoformer plan --output_dir`` (a tiny random ViT, three levels) with a few
repeats; every test times on its own copy of the run. No timing assertions: only schema, merging and errors.
"""

from __future__ import annotations

import datetime
import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import ViTConfig

from elastoformer_hf.cards import level_card, write_family_card, write_level_card
from elastoformer_hf.cli import main
from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.family import ElasticFamily
from elastoformer_hf.family.selection import select_level
from elastoformer_hf.latency import device as device_mod
from elastoformer_hf.latency import read_latency, record_entries
from elastoformer_hf.latency.device import device_name_of, device_record, jetson_info
from elastoformer_hf.latency.timing import percentile, summarize, time_interleaved
from elastoformer_hf.nesting import build_family
from elastoformer_hf.refresh import record_latency, refresh_run

FAST = ["--repeats", "3", "--warmup", "1", "--threads", "1"]
ENTRY_FIELDS = {"batch_size", "median_ms", "min_ms", "p90_ms", "repeats", "runtime", "precision", "method", "date",
                "device", "notes", "details"}


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    """plan --output_dir of a tiny ViT, its family artifact and every card (built once; tests copy it)."""
    root = tmp_path_factory.mktemp("bench")
    ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
              patch_size=8, num_labels=5).save_pretrained(root / "vit")
    run = root / "run"
    assert main(["plan", "--model_name", str(root / "vit"), "--random_init", "--pruning_ratio", "0.5",
                 "--pruning_steps", "2", "--round_to", "4", "--output_dir", str(run)]) == 0
    build_family(run).save_pretrained(run / "family")
    for k in (1, 2, 3):
        write_level_card(run, k, repo_prefix="acme/tiny")
    write_family_card(run, run / "family", repo_prefix="acme/tiny")
    return run


@pytest.fixture
def card_run(planned, tmp_path) -> Path:
    """A copy of the planned run with its cards (updating cards renders plots: the slow part)."""
    run = tmp_path / "run"
    shutil.copytree(planned, run)
    return run


@pytest.fixture
def run_dir(planned, tmp_path) -> Path:
    """A copy of the planned run without cards."""
    run = tmp_path / "run"
    shutil.copytree(planned, run, ignore=shutil.ignore_patterns("README.md", "*.png"))
    return run


def bench(capsys, *argv):
    code = main(["bench", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def card_meta(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---\n")[1])["elastoformer"]


def family_levels(run: Path) -> list[dict]:
    return json.loads((run / "family" / "family_config.json").read_text())["levels"]


# ------------------------------------------------------------------------------------------------ latency.json
def test_bench_writes_latency_json_with_every_field(capsys, card_run):
    run_dir = card_run
    code, out, _ = bench(capsys, run_dir, "--batch_sizes", "1,2", *FAST, "--json")
    assert code == 0
    result = json.loads(out)
    assert [(r["level"], r["batch_size"]) for r in result["rows"]] == [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)]
    for r in result["rows"]:
        assert r["image_size"] == 32 and r["repeats"] == 3
        if r["level"] == 3:
            assert r["speedup"] == 1.0 and r["macs_ratio"] == 1.0 and r["flops_ratio"] == 1.0
            assert r["efficiency"] == r["efficiency_macs"] == 1.0
        # efficiency: measured over ideal speed-up, the ideal from the full cost (attention matmuls counted)
        level = json.loads((run_dir / f"dn{r['level']}" / "elastic_level.json").read_text())
        top = json.loads((run_dir / "dn3" / "elastic_level.json").read_text())
        assert r["flops"] == level["flops"] and r["flops_ratio"] == pytest.approx(level["flops"] / top["flops"], abs=1e-4)
        assert r["efficiency"] == pytest.approx(r["speedup"] * level["flops"] / top["flops"], abs=2e-3)
        assert r["efficiency_macs"] == pytest.approx(r["speedup"] * level["macs"] / top["macs"], abs=2e-3)
    ratios = [r["macs_ratio"] for r in result["rows"] if r["batch_size"] == 1]
    assert ratios == sorted(ratios) and ratios[0] < 0.5
    assert sorted(result["written"]) == sorted(
        [str(run_dir / f"dn{k}" / name) for k in (1, 2, 3) for name in ("latency.json", "README.md")]
        + [str(run_dir / "family" / "README.md"), str(run_dir / "family" / "family_config.json")])
    for k in (1, 2, 3):
        entries = json.loads((run_dir / f"dn{k}" / "latency.json").read_text())
        assert [e["batch_size"] for e in entries] == [1, 2]
        for e in entries:
            assert set(e) == ENTRY_FIELDS
            assert isinstance(e["batch_size"], int) and isinstance(e["repeats"], int) and e["repeats"] == 3
            assert all(isinstance(e[key], float) for key in ("median_ms", "min_ms", "p90_ms"))
            assert 0 < e["min_ms"] <= e["median_ms"] <= e["p90_ms"]
            assert (e["runtime"], e["precision"], e["method"]) == ("torch", "fp32", "measured")
            assert datetime.datetime.fromisoformat(e["date"]).tzinfo is not None
            device = e["device"]
            assert device["name"].startswith("cpu: ") and device["name"].endswith("(1 thread)")
            assert device["type"] == "cpu" and device["threads"] == 1 and device["cpu"]
            assert device["versions"]["torch"] and device["versions"]["python"]
            assert "interleaved" in e["notes"]
            # a ViT runs in the default layout; the layout is recorded with the measurement
            assert e["details"] == {"memory_format": "contiguous"} and "contiguous" in e["notes"]
        assert read_latency(run_dir / f"dn{k}") == entries  # what is written validates
    assert result["memory_format"] == "contiguous"


def test_rerun_replaces_and_never_duplicates(capsys, run_dir):
    assert bench(capsys, run_dir, *FAST)[0] == 0
    first = read_latency(run_dir / "dn2")
    assert bench(capsys, run_dir, *FAST)[0] == 0
    again = read_latency(run_dir / "dn2")
    assert len(first) == len(again) == 1 and again[0]["date"] >= first[0]["date"]
    assert bench(capsys, run_dir, "--batch_sizes", "2", *FAST)[0] == 0
    assert [e["batch_size"] for e in read_latency(run_dir / "dn2")] == [1, 2]
    # the family keeps one entry per setting as well
    assert [e["batch_size"] for e in family_levels(run_dir)[1]["latency"]] == [1, 2]
    assert not (run_dir / "dn2" / "README.md").exists()  # no card: none is made
    # a different thread count is a different device setting: a second entry, not a replacement
    assert bench(capsys, run_dir, "--repeats", "2", "--warmup", "0", "--threads", "2", "--levels", "2")[0] == 0
    names = [e["device"]["name"] for e in read_latency(run_dir / "dn2")]
    assert len(names) == 3 and len(set(names)) == 2


def test_table_levels_single_folder_and_no_write(capsys, run_dir):
    code, out, _ = bench(capsys, run_dir, "--levels", "1,3", *FAST)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("cpu: ") and "median of 3 runs" in lines[0]
    assert "Median ms" in lines[1] and "Speedup" in lines[1] and "MACs ratio" in lines[1]
    assert "FLOPs ratio" in lines[1] and "Efficiency" in lines[1] and "attention matmuls" in lines[0]
    assert [line.split()[0] for line in lines[3:5]] == ["dn1", "dn3"] and "100.0%" in lines[4]
    assert not (run_dir / "dn2" / "latency.json").exists() and (run_dir / "dn3" / "latency.json").is_file()
    code, out, _ = bench(capsys, run_dir / "dn2", *FAST, "--no_write")
    assert code == 0 and "nothing recorded" in out and not (run_dir / "dn2" / "latency.json").exists()
    assert bench(capsys, run_dir / "dn2", *FAST)[0] == 0
    assert len(read_latency(run_dir / "dn2")) == 1


# ------------------------------------------------------------------------------------------------ cards, family
def test_cards_and_family_get_the_entries_and_select_uses_them(capsys, card_run):
    run_dir = card_run
    assert bench(capsys, run_dir, *FAST)[0] == 0
    measured = {k: read_latency(run_dir / f"dn{k}")[0] for k in (1, 2, 3)}
    name = measured[1]["device"]["name"]
    for k in (1, 2, 3):
        meta = card_meta(run_dir / f"dn{k}")
        (own,) = meta["latency"]
        assert own["device"] == name and own["ms"] == pytest.approx(measured[k]["median_ms"])
        assert own["min_ms"] == pytest.approx(measured[k]["min_ms"]) and own["repeats"] == 3
        assert own["device_type"] == "cpu" and own["runtime"] == "torch" and own["method"] == "measured"
        # every level's card shows every level's number in its family table
        rows = {r["level"]: r for r in meta["family"]}
        assert [rows[j]["latency"][0]["ms"] for j in (1, 2, 3)] == [measured[j]["median_ms"] for j in (1, 2, 3)]
        assert "Latency is not measured yet" not in (run_dir / f"dn{k}" / "README.md").read_text()
    family_rows = {r["level"]: r for r in card_meta(run_dir / "family")["family"]}
    assert family_rows[2]["latency"][0]["ms"] == measured[2]["median_ms"]
    # a card rendered afresh from the run (e.g. by push) reads latency.json too
    fresh = level_card(run_dir, 2).data.to_dict()["elastoformer"]
    assert fresh["latency"][0]["ms"] == measured[2]["median_ms"]

    family = ElasticFamily.from_pretrained(run_dir / "family")
    ms = {lv["level"]: lv["latency"][0]["ms"] for lv in family.levels}
    assert ms == {k: measured[k]["median_ms"] for k in (1, 2, 3)}
    assert family.select(max_latency_ms=1e6) == 3  # no accuracy recorded: the largest level that fits
    budget = sorted(ms.values())[1]
    expected = max(k for k, v in ms.items() if v <= budget)
    assert family.select(max_latency_ms=budget) == expected
    assert family.select(max_latency_ms=budget, device=name) == expected
    assert family.select(max_latency_ms=budget, device="EPYC" if "EPYC" in name else name[5:12]) == expected
    assert family.select(max_latency_ms=budget, runtime="torch", precision="fp32") == expected
    with pytest.raises(ElastoformerError, match="no latency recorded on cuda"):
        family.select(max_latency_ms=1e6, device="cuda")
    with pytest.raises(ElastoformerError, match="runtime tensorrt"):
        family.select(max_latency_ms=1e6, runtime="tensorrt")
    with pytest.raises(ElastoformerError, match=r"no level fits .* ms on cpu: "):
        family.select(max_latency_ms=min(ms.values()) / 2)


def test_estimates_never_hide_measurements(capsys, card_run):
    run_dir = card_run
    assert bench(capsys, run_dir, *FAST, "--levels", "2")[0] == 0
    measured = read_latency(run_dir / "dn2")[0]
    estimate = {"batch_size": 1, "median_ms": 123.0, "min_ms": None, "p90_ms": None, "repeats": None,
                "runtime": "torch", "precision": "fp32", "method": "estimated",
                "device": {"name": measured["device"]["name"], "type": "cpu"}, "notes": "roofline"}
    record_latency({run_dir / "dn2": [estimate]})  # recorded, then the cards and the family refreshed
    merged = read_latency(run_dir / "dn2")
    assert [e["method"] for e in merged] == ["measured", "estimated"]  # both kept in latency.json
    assert merged[1]["date"] and merged[1]["min_ms"] is None
    (shown,) = card_meta(run_dir / "dn2")["latency"]  # one number per setting on the card: the measurement
    assert shown["method"] == "measured" and shown["ms"] == measured["median_ms"]
    assert family_levels(run_dir)[1]["latency"][0]["ms"] == measured["median_ms"]
    # an estimate of a setting nobody measured shows up, marked
    record_latency({run_dir / "dn2": [{**estimate, "device": {"name": "Jetson Orin Nano 8GB", "type": "cuda"}}]})
    shown = card_meta(run_dir / "dn2")["latency"]
    assert [(e["device"], e["method"]) for e in shown][-1] == ("Jetson Orin Nano 8GB", "estimated")
    assert "(est.)" in (run_dir / "dn2" / "README.md").read_text()


# ------------------------------------------------------------------------------------------------ onnxruntime
def test_onnxruntime_runtime(capsys, run_dir):
    pytest.importorskip("onnxruntime")
    export = pytest.importorskip("elastoformer_hf.export.onnx")
    export.export_onnx(run_dir / "dn1", exporter="torchscript")
    # a benchmark measures, it never exports: a level without its ONNX file is a clear error, nothing recorded
    code, out, err = bench(capsys, run_dir, "--runtime", "onnxruntime", "--levels", "1,2", *FAST)
    assert code == 2 and "dn2/onnx/model.onnx does not exist" in err and "elastoformer export" in err
    assert not (run_dir / "dn1" / "latency.json").exists()
    export.export_onnx(run_dir / "dn2", exporter="torchscript")  # TorchScript: the fast exporter
    code, out, _ = bench(capsys, run_dir, "--runtime", "onnxruntime", "--levels", "1,2", "--batch_sizes", "1,3",
                         *FAST, "--json")
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [(r["level"], r["batch_size"]) for r in rows] == [(1, 1), (2, 1), (1, 3), (2, 3)]
    entries = read_latency(run_dir / "dn1")
    assert [(e["runtime"], e["precision"], e["batch_size"]) for e in entries] == [("onnxruntime", "fp32", 1),
                                                                                ("onnxruntime", "fp32", 3)]
    assert entries[0]["device"]["versions"]["onnxruntime"]
    code, _, err = bench(capsys, run_dir, "--runtime", "onnxruntime", "--precision", "bf16")
    assert code == 2 and "onnxruntime on cpu does not run bf16" in err


def test_onnxruntime_sessions_do_not_spin():
    """Interleaved levels: a session's threads must not spin-wait after a run (they would take the cores from the
    next level's session)."""
    pytest.importorskip("onnxruntime")
    from elastoformer_hf.latency.bench import ort_session_options

    options = ort_session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_cnn_levels_run_channels_last_by_default_and_the_layout_is_recorded(capsys, tmp_path):
    """Eager CPU convolutions follow their FLOPs closer in channels_last, so ``auto`` times CNNs in it; the
    layout goes into each entry; ``--memory_format`` chooses; other runtimes refuse a layout."""
    from elastoformer_hf.latency.bench import TorchRunner

    run = tmp_path / "resnet"
    assert main(["plan", "--model_name", "resnet18", "--random_init", "--pruning_ratio", "0.5", "--pruning_steps", "1",
                 "--num_labels", "5", "--image_size", "32", "--output_dir", str(run)]) == 0
    capsys.readouterr()
    runner = TorchRunner(run / "dn1", "cpu", "fp32", 32)
    runner.prepare(2)
    conv = runner.model.conv1.weight
    assert runner.memory_format == "channels_last" and conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous() and runner.x.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        laid_out = runner.model(runner.x)
        plain = runner.model.to(memory_format=torch.contiguous_format)(runner.x.contiguous())
    torch.testing.assert_close(laid_out, plain, atol=1e-4, rtol=1e-4)  # the same model, only laid out differently

    code, out, _ = bench(capsys, run, *FAST, "--json")
    assert code == 0 and json.loads(out)["memory_format"] == "channels_last"
    assert [e["details"] for e in read_latency(run / "dn1")] == [{"memory_format": "channels_last"}]
    assert "channels_last" in read_latency(run / "dn1")[0]["notes"]
    code, out, _ = bench(capsys, run, *FAST, "--memory_format", "contiguous", "--json")
    assert code == 0 and json.loads(out)["memory_format"] == "contiguous"
    assert [e["details"] for e in read_latency(run / "dn2")] == [{"memory_format": "contiguous"}]  # replaced
    code, out, err = bench(capsys, run, "--runtime", "onnxruntime", "--memory_format", "channels_last")
    assert code == 2 and "applies to the torch runtime only" in err and out == ""


def test_bf16_on_cpu(capsys, run_dir):
    code, out, _ = bench(capsys, run_dir / "dn1", "--precision", "bf16", *FAST, "--json")
    assert code == 0 and json.loads(out)["precision"] == "bf16"
    assert read_latency(run_dir / "dn1")[0]["precision"] == "bf16"


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_inputs_are_clear_errors_and_change_nothing(capsys, run_dir, tmp_path):
    import importlib.util


    (tmp_path / "empty").mkdir()
    cases = [
        ([tmp_path / "missing"], "does not exist"),
        ([tmp_path / "empty"], "is neither a run folder (it holds no dn{k}/ folders"),
        ([run_dir, "--precision", "fp16"], "torch on cpu does not run fp16; it runs fp32, bf16"),
        ([run_dir, "--levels", "2,7"], "has no level(s) [7]"),
        ([run_dir, "--batch_sizes", "0"], "batch sizes must be integers >= 1"),
        ([run_dir, "--repeats", "0"], "--repeats must be >= 1"),
        ([run_dir, "--device", "tpu"], "supported: cpu, cuda, cuda:N"),
    ]
    if importlib.util.find_spec("tensorrt") is None:
        cases.append(([run_dir, "--runtime", "tensorrt"], "TensorRT is not installed here"))
    if not torch.cuda.is_available():
        cases.append(([run_dir, "--device", "cuda"], "CUDA is not available here"))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for argv, message in cases:
        code, out, err = bench(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
        assert out == ""
    # a corrupt latency.json: nothing is overwritten, not even the other levels' files
    (run_dir / "dn2" / "latency.json").write_text("{not json")
    code, _, err = bench(capsys, run_dir, *FAST)
    assert code == 2 and "latency.json is corrupt" in err
    assert (run_dir / "dn2" / "latency.json").read_text() == "{not json"
    (run_dir / "dn2" / "latency.json").unlink()
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_record_entries_validates_before_writing(run_dir, tmp_path):
    good = {"batch_size": 1, "median_ms": 2.0, "min_ms": 1.5, "p90_ms": 3.0, "repeats": 5, "runtime": "torch",
            "precision": "fp32", "method": "measured", "device": {"name": "cpu: test (1 thread)", "type": "cpu"}}
    bad = [({**good, "min_ms": None}, "lacks min_ms"),
           ({**good, "min_ms": 2.5}, "min_ms <= median_ms <= p90_ms"),
           ({**good, "median_ms": -1.0}, "median_ms must be a positive number"),
           ({**good, "batch_size": 0}, "batch_size must be an integer >= 1"),
           ({**good, "speed": 1}, "unknown fields ['speed']"),
           ({**good, "device": "cpu"}, "device must be a device record"),
           ({**good, "method": "guessed"}, "method must be one of"),
           ({**good, "date": "yesterday"}, "date must be ISO 8601")]
    for entry, message in bad:
        with pytest.raises(ElastoformerError, match=_escape(message)):
            record_entries(run_dir / "dn1", [good, entry])
    assert not (run_dir / "dn1" / "latency.json").exists()
    with pytest.raises(ElastoformerError, match="is not a folder"):
        record_entries(tmp_path / "nowhere", [good])
    # a family artifact from another run is refused, before latency.json is written
    config = run_dir / "family" / "family_config.json"
    data = json.loads(config.read_text())
    data["levels"][0]["macs"] += 1
    config.write_text(json.dumps(data))
    with pytest.raises(ElastoformerError, match="not this run's family"):
        record_latency({run_dir / "dn1": [good]})
    assert not (run_dir / "dn1" / "latency.json").exists()
    with pytest.raises(ElastoformerError, match="not this run's family"):  # recorded alone, its views refreshed later
        record_entries(run_dir / "dn1", [good]) and refresh_run(run_dir)
    assert config.read_text() == json.dumps(data)
    # a folder outside any run: latency.json only
    lone = tmp_path / "lone"
    lone.mkdir()
    assert record_entries(lone, [good])[0]["median_ms"] == 2.0 and sorted(p.name for p in lone.iterdir()) == [
        "latency.json"]


def _escape(text: str) -> str:
    import re

    return re.escape(text)


# ------------------------------------------------------------------------------------------------ pieces
def test_statistics_and_interleaving():
    values = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.0]
    assert percentile(values, 90) == pytest.approx(np.percentile(values, 90))
    assert summarize(values) == {"median_ms": 4.0, "min_ms": 1.0, "p90_ms": pytest.approx(np.percentile(values, 90)),
                                 "repeats": 7}
    order = []
    times = time_interleaved({k: (lambda k=k: order.append(k)) for k in "abc"}, repeats=3, warmup=2)
    assert order == list("aabbcc") + list("abc") + list("bca") + list("cab")  # warm-up, then rotated rounds
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    with pytest.raises(ElastoformerError, match="repeats must be an integer >= 1"):
        time_interleaved({"a": lambda: None}, repeats=0, warmup=0)


def test_device_record_names_and_jetson(tmp_path, monkeypatch):
    record = device_record("cpu", threads=3)
    assert record["name"] == f"cpu: {record['cpu']} (3 threads)" and record["threads"] == 3
    assert device_name_of({"type": "cuda", "gpu": "NVIDIA H100 80GB HBM3"}) == "cuda: NVIDIA H100 80GB HBM3"
    # a Jetson: model from the device tree, power mode from nvpmodel, L4T from nv_tegra_release
    model, release, tools = tmp_path / "model", tmp_path / "nv_tegra_release", tmp_path / "bin"
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    release.write_text("# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64\n")
    tools.mkdir()
    nvpmodel = tools / "nvpmodel"
    nvpmodel.write_text("#!/bin/sh\necho 'NV Power Mode: 15W'\necho 0\n")
    nvpmodel.chmod(nvpmodel.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(device_mod, "DEVICE_TREE_MODEL", model)
    monkeypatch.setattr(device_mod, "TEGRA_RELEASE", release)
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    info = jetson_info()
    assert info["model"] == "NVIDIA Jetson Orin Nano Developer Kit" and info["power_mode"] == "15W"
    assert info["power_mode_id"] == 0 and info["l4t"] == "R36.3.0"
    gpu = {"type": "cuda", "gpu": "Orin", "jetson": info}
    assert device_name_of(gpu) == "NVIDIA Jetson Orin Nano Developer Kit (15W)"
    cpu = device_record("cpu", threads=6)
    assert cpu["jetson"] == info and cpu["name"].startswith("cpu: ")
    monkeypatch.setattr(device_mod, "DEVICE_TREE_MODEL", tmp_path / "none")
    monkeypatch.setattr(device_mod, "TEGRA_RELEASE", tmp_path / "none")
    assert jetson_info() is None


def test_select_matches_device_names_types_and_text():
    def level(k, macs, *entries):
        return {"level": k, "macs": macs, "params": macs, "accuracy": None, "latency": list(entries)}

    def e(device, ms, **kw):
        return {"device": device, "runtime": "torch", "precision": "fp32", "batch_size": 1, "ms": ms,
                "method": "measured", **kw}

    jetson = "Jetson Orin Nano 8GB (15W)"
    levels = [level(1, 10, e(jetson, 2.0, device_type="cuda", runtime="tensorrt", precision="fp16"),
                    e("cpu", 9.0), e("cpu: Big CPU (8 threads)", 5.0)),
              level(2, 20, e(jetson, 4.0, device_type="cuda", runtime="tensorrt", precision="fp16"),
                    e("cpu", 15.0), e("cpu: Big CPU (8 threads)", 8.0))]
    assert select_level(levels, max_latency_ms=3.0, device="cuda") == 1  # by device_type
    assert select_level(levels, max_latency_ms=5.0, device="cuda") == 2
    assert select_level(levels, max_latency_ms=5.0, device="orin") == 2  # by text in the name
    assert select_level(levels, max_latency_ms=9.0, device="cpu") == 1  # an exact "cpu" entry comes first
    assert select_level(levels, max_latency_ms=9.0, device="cpu: Big CPU (8 threads)") == 2
    assert select_level(levels, max_latency_ms=9.0, device="Big CPU") == 2
    with pytest.raises(ElastoformerError, match="no latency recorded on H100"):
        select_level(levels, max_latency_ms=9.0, device="H100")
    # levels are compared on ONE setting: the one covering most levels wins over a faster partial one
    partial = [dict(levels[0], latency=[e("cpu: Fast (1 thread)", 0.1), e("cpu: Slow (1 thread)", 7.0)]),
               dict(levels[1], latency=[e("cpu: Slow (1 thread)", 8.0)])]
    assert select_level(partial, max_latency_ms=7.5, device="cpu") == 1
