"""Roofline latency estimates (``elastoformer_hf.latency.roofline``, ``elastoformer estimate``): tiny models only."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import ViTConfig, ViTForImageClassification

from elastoformer_hf.cli import main
from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.latency.profiles import PROFILES, DeviceProfile, load_profile
from elastoformer_hf.latency.roofline import (
    ModelCosts,
    OpCost,
    calibrate,
    estimate_latency,
    extract_costs,
    leave_one_out,
)

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
            patch_size=8, num_labels=5)


def vit(**changes) -> nn.Module:
    torch.manual_seed(0)
    return ViTForImageClassification(ViTConfig(**{**TINY, **changes})).eval()


def synthetic(label: str, ops: list[tuple[float, float]]) -> ModelCosts:
    """Costs made of ``(flops, elements)`` kernels, one layer each."""
    return ModelCosts([OpCost(f"l{i}", "op", f, e) for i, (f, e) in enumerate(ops)], 1, 224, label)


# ------------------------------------------------------------------------------------------------ extraction
def test_costs_count_every_kernel_and_the_attention_matmuls():
    costs = extract_costs(vit())
    ops = [o.op for o in costs.ops]
    assert ops.count("addmm") == 2 * 6 + 1  # q, k, v, o, fc1, fc2 per layer + classifier
    attention = [o for o in costs.ops if o.attention is not None]
    assert len(attention) == 2 and all(o.layer.endswith("attention") for o in attention)
    bh, t, s, d, dv = attention[0].attention
    assert (bh, t, s, d, dv) == (4, 17, 17, 16, 16)  # 1 x 4 heads, 16 patches + CLS, head dim 16
    linear = next(o for o in costs.ops if o.op == "addmm")
    assert linear.flops == 2 * 17 * 64 * 64  # torch's formula: 2 x M x K x N
    assert linear.elements == 64 + 17 * 64 + 64 * 64 + 17 * 64  # bias, input, weight, output
    assert not any(o.op in ("view", "t", "transpose", "empty") for o in costs.ops)  # views launch nothing
    # a forward hook must never replace outputs: the model still runs the same afterwards
    model = vit()
    x = torch.randn(1, 3, 32, 32)
    before = model(x).logits
    extract_costs(model)
    assert torch.equal(model(x).logits, before)


def test_estimate_grows_with_width_and_depth():
    nano = PROFILES["jetson-nano"]
    base = estimate_latency(vit(), nano)
    wider = estimate_latency(vit(hidden_size=128, intermediate_size=256), nano)
    deeper = estimate_latency(vit(num_hidden_layers=4), nano)
    assert wider["ms"] > base["ms"] and wider["flops"] > base["flops"] and wider["kernels"] == base["kernels"]
    assert deeper["ms"] > base["ms"] and deeper["kernels"] > base["kernels"]
    assert base["ms"] == pytest.approx(base["compute_ms"] + base["memory_ms"] + base["overhead_ms"])
    bigger_batch = estimate_latency(vit(), nano, batch_size=8)
    assert bigger_batch["ms"] > base["ms"] and bigger_batch["batch_size"] == 8


def test_fused_and_math_attention_and_precision():
    costs = extract_costs(vit())
    fused = estimate_latency(costs, PROFILES["jetson-orin-nano-8gb"])
    math_path = estimate_latency(costs, PROFILES["jetson-orin-nano-8gb"].replace(fused_attention=False))
    assert math_path["kernels"] == fused["kernels"] + 2 * 4  # 5 kernels instead of 1 per attention layer
    assert math_path["bytes"] > fused["bytes"]  # the score matrix goes through memory
    half = estimate_latency(costs, PROFILES["jetson-orin-nano-8gb"], precision="fp16")
    assert half["bytes"] == pytest.approx(fused["bytes"] / 2) and half["ms"] < fused["ms"]
    with pytest.raises(ElastoformerError, match="fp32, fp16"):
        estimate_latency(costs, "jetson-nano", precision="int4")


# ------------------------------------------------------------------------------------------------ the roofline
def test_bandwidth_shortens_only_memory_bound_kernels():
    costs = synthetic("mix", [(1e10, 1e3), (1e3, 1e8)])  # l0: compute-bound matmul, l1: memory-bound copy
    p = DeviceProfile(key="x", name="X", peak_flops={"fp32": 1e12, "fp16": 2e12}, memory_bandwidth=1e10,
                      kernel_overhead_s=0.0, eff_compute=1.0, eff_memory=1.0)
    base = {r["layer"]: r["ms"] for r in estimate_latency(costs, p)["layers"]}
    assert base == pytest.approx({"l0": 10.0, "l1": 40.0})  # 1e10 / 1e12 s; 4e8 bytes / 1e10 B/s
    fast_memory = {r["layer"]: r["ms"] for r in estimate_latency(costs, p.replace(memory_bandwidth=2e10))["layers"]}
    assert fast_memory == pytest.approx({"l0": 10.0, "l1": 20.0})
    fast_compute = {r["layer"]: r["ms"] for r in
                    estimate_latency(costs, p.replace(peak_flops={"fp32": 2e12, "fp16": 4e12}))["layers"]}
    assert fast_compute == pytest.approx({"l0": 5.0, "l1": 40.0})
    # a kernel near the ridge switches from memory- to compute-bound when the bandwidth grows
    ridge = synthetic("ridge", [(1e9, 1e6)])  # 1 ms of compute, 0.4 ms of memory at 1e10 B/s
    assert estimate_latency(ridge, p.replace(memory_bandwidth=1e9))["compute_bound_kernels"] == 0
    assert estimate_latency(ridge, p)["compute_bound_kernels"] == 1
    # the overhead is per kernel
    assert estimate_latency(costs, p.replace(kernel_overhead_s=1e-3))["overhead_ms"] == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------------ calibration
MODELS = [
    synthetic("compute", [(4e10, 1e6)] * 10),
    synthetic("memory", [(1e6, 2e8)] * 10),
    synthetic("launches", [(1e5, 1e4)] * 400),
    synthetic("mix", [(2e10, 1e6)] * 5 + [(1e6, 1e8)] * 20 + [(1e5, 1e4)] * 100),
]


def test_calibration_recovers_known_parameters():
    truth = PROFILES["jetson-nano"].replace(eff_compute=0.3, eff_memory=0.6, kernel_overhead_s=40e-6)
    measured = [(m, estimate_latency(m, truth)["ms"]) for m in MODELS]
    fitted = calibrate("jetson-nano", measured)
    assert fitted.eff_compute == pytest.approx(0.3, rel=1e-3)
    assert fitted.eff_memory == pytest.approx(0.6, rel=1e-3)
    assert fitted.kernel_overhead_s == pytest.approx(40e-6, rel=1e-3)
    assert fitted.calibration["points"] == 4 and len(fitted.calibration["fitted"]) == 3
    assert max(abs(r) for r in fitted.calibration["residuals_pct"]) < 0.1
    assert "calibrated on 4 measured points" in estimate_latency(MODELS[0], fitted)["notes"]
    # leave-one-out predicts each point from the 3 others: exact data, so exact predictions
    for row in leave_one_out("jetson-nano", measured):
        assert row["error_pct"] == pytest.approx(0.0, abs=0.5)


def test_calibration_with_two_points_fits_two_parameters_and_needs_two():
    truth = PROFILES["jetson-nano"].replace(eff_compute=0.25, eff_memory=0.35, kernel_overhead_s=1e-4)  # same ratio
    measured = [(m, estimate_latency(m, truth)["ms"]) for m in MODELS[2:]]
    fitted = calibrate("jetson-nano", measured)
    assert fitted.calibration["points"] == 2 and len(fitted.calibration["fitted"]) == 2
    assert fitted.eff_compute == pytest.approx(0.25, rel=1e-3) and fitted.kernel_overhead_s == pytest.approx(1e-4,
                                                                                                              rel=1e-3)
    with pytest.raises(ElastoformerError, match="at least 2 measured points"):
        calibrate("jetson-nano", measured[:1])
    assert leave_one_out("jetson-nano", measured)[0]["error_pct"] is None  # one point left: no fit


# ------------------------------------------------------------------------------------------------ profiles
def test_bad_profile_name_lists_the_profiles(tmp_path):
    with pytest.raises(ElastoformerError) as err:
        load_profile("jetson-xavier")
    assert all(key in str(err.value) for key in PROFILES)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ElastoformerError, match="not valid JSON"):
        load_profile(bad)
    bad.write_text(json.dumps({"name": "X", "peak_flops": {"fp32": 1e12}}))
    with pytest.raises(ElastoformerError, match="lacks memory_bandwidth, kernel_overhead_s"):
        load_profile(bad)
    bad.write_text(json.dumps({"name": "X", "peak_flops": {"fp32": 1e12, "fp16": 2e12}, "memory_bandwidth": 1e11,
                               "kernel_overhead_s": 1e-5, "eff_compute": 1.5}))
    with pytest.raises(ElastoformerError, match="eff_compute must be in"):
        load_profile(bad)
    with pytest.raises(ElastoformerError, match="does not exist"):
        load_profile(tmp_path / "missing.json")


def test_user_profile_round_trips_through_json(tmp_path):
    path = tmp_path / "orin-super.json"
    mine = PROFILES["jetson-orin-nano-8gb"].replace(key="orin-nano-super", memory_bandwidth=102e9)
    path.write_text(json.dumps(mine.to_dict()))
    assert load_profile(str(path)) == mine
    every = [PROFILES[k] for k in PROFILES]
    assert all(p.sources.get("peak_flops.fp32") and p.sources.get("memory_bandwidth") for p in every)


# ------------------------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """An untrained run (``elastoformer plan --output_dir``) of a tiny ViT, with level cards."""
    from elastoformer_hf.cards.render import write_level_card

    root = tmp_path_factory.mktemp("estimate")
    ViTConfig(**TINY).save_pretrained(root / "config")
    out = root / "run"
    assert main(["plan", "--model_name", str(root / "config"), "--random_init", "--pruning_ratio", "0.5",
                 "--pruning_steps", "2", "--round_to", "4", "--output_dir", str(out)]) == 0
    for level in (1, 2, 3):
        write_level_card(out, level)
    return out


def _measured(ms: float) -> dict:
    return {"batch_size": 1, "median_ms": ms, "min_ms": ms * 0.95, "p90_ms": ms * 1.1, "repeats": 20,
            "runtime": "torch", "precision": "fp32", "method": "measured", "date": "2026-01-01T00:00:00+00:00",
            "device": {"name": "Jetson Nano (test)", "type": "cuda"}}


def test_cli_records_labelled_estimates_and_the_card_says_so(capsys, run_folder, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    assert main(["estimate", str(run), "--profile", "jetson-nano", "--no_write"]) == 0
    out = capsys.readouterr().out
    assert "dn1" in out and "dn3" in out and "published peak specs" in out
    assert not (run / "dn1" / "latency.json").exists()  # --no_write writes nothing

    assert main(["estimate", str(run), "--profile", "jetson-nano", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["level"] for r in data["levels"]] == [1, 2, 3] and data["written"] is True
    for level in (1, 2, 3):
        entries = json.loads((run / f"dn{level}" / "latency.json").read_text())
        assert len(entries) == 1
        e = entries[0]
        assert e["method"] == "estimated" and e["device"]["name"] == "Jetson Nano"
        assert e["runtime"] == "PyTorch eager (roofline estimate)" and e["repeats"] is None
        assert e["notes"].startswith("estimate: roofline from published peak specs")
        assert e["median_ms"] == pytest.approx(data["levels"][level - 1]["ms"], rel=1e-4)
    card = (run / "dn1" / "README.md").read_text()
    assert "(est.)" in card and "are estimates (not timed on the device)" in card
    assert "roofline estimate" in card
    shown = f"{data['levels'][0]['ms']:.2f} (est.)"
    assert shown in card


def test_cli_calibrates_on_measured_latency_files(capsys, run_folder, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    for level, ms in ((1, 3.1), (3, 3.4)):
        (run / f"dn{level}" / "latency.json").write_text(json.dumps([_measured(ms)]))
    saved = tmp_path / "nano-calibrated.json"
    assert main(["estimate", str(run / "dn2"), "--profile", "jetson-nano", "--calibrate",
                 str(run / "dn1" / "latency.json"), str(run / "dn3"), "--save_profile", str(saved), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calibration_device"] == "Jetson Nano (test)"
    assert data["profile"]["calibration"]["points"] == 2
    assert 3.1 < data["levels"][0]["ms"] < 3.4  # the middle level between the two measured ones
    entry = json.loads((run / "dn2" / "latency.json").read_text())[0]
    assert entry["method"] == "estimated" and "calibrated on 2 measured points" in entry["notes"]
    assert load_profile(saved).calibration["points"] == 2
    # the measured entries are untouched by the estimate
    assert json.loads((run / "dn1" / "latency.json").read_text())[0]["median_ms"] == 3.1

    code = main(["estimate", str(run / "dn2"), "--profile", "jetson-nano", "--calibrate",
                 str(run / "dn1" / "latency.json")])
    assert code == 2 and "at least 2 measured points" in capsys.readouterr().err
    # only PyTorch eager GPU timings calibrate the eager roofline: a TensorRT measurement is not a point
    (run / "dn3" / "latency.json").write_text(json.dumps([{**_measured(1.0), "runtime": "tensorrt"}]))
    code = main(["estimate", str(run / "dn2"), "--profile", "jetson-nano", "--calibrate", str(run / "dn3")])
    assert code == 2 and "no measured fp32 PyTorch eager GPU entries" in capsys.readouterr().err


def test_cli_bad_inputs_are_one_line(capsys, run_folder, tmp_path):
    code = main(["estimate", str(run_folder), "--profile", "xavier"])
    err = capsys.readouterr().err
    assert code == 2 and "jetson-orin-nano-8gb, jetson-agx-orin-64gb, jetson-nano" in err and err.count("\n") == 1
    code = main(["estimate", str(tmp_path / "nowhere"), "--profile", "jetson-nano"])
    assert code == 2 and "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    code = main(["estimate", str(tmp_path / "empty"), "--profile", "jetson-nano"])
    assert code == 2 and "holds no dn{k}/ folders" in capsys.readouterr().err
