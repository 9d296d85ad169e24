"""Descendant-network folders: stock reloads, the three checkpoint forms, strict loading and atomic saves.

Subprocess tests open folders in a Python that never imports elastoformer_hf (what a user of the Hub sees).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import NUM_LABELS

from elastoformer_hf import descendant as ckpt
from elastoformer_hf.descendant import load_descendant, save_descendant
from elastoformer_hf.errors import CheckpointError, ElastoformerError
from elastoformer_hf.run_folder import LEVEL_FILE, read_level_info

# (family fixture, level, expected checkpoint_format, expected loaded class name)
STOCK_CASES = [
    ("vit_family", 1, "transformers", "ViTForImageClassification"),
    ("vit_family", 2, "transformers", "ViTForImageClassification"),
    ("deit_family", 1, "transformers", "DeiTForImageClassificationWithTeacher"),
    ("resnet_family", 3, "timm", "ResNet"),  # dense timm resnet: timm's own Hub layout
    ("resnet_family", 1, "elastoformer", "ElastoformerForImageClassification"),  # pruned 7x7 stem: not expressible
    ("tv_resnet_family", 1, "elastoformer", "ElastoformerForImageClassification"),
    ("vgg_family", 1, "elastoformer", "ElastoformerForImageClassification"),
    ("timm_vit_family", 1, "elastoformer", "ElastoformerForImageClassification"),
    ("vit_global_family", 1, "elastoformer", "ElastoformerForImageClassification"),
]


def _input(family, batch=2, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, family.input_size, family.input_size, generator=generator)


def _subprocess_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "hf_modules"),
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def _run_isolated(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter, outside the repository, and assert it never imported us."""
    code = textwrap.dedent(script) + "\nassert 'elastoformer_hf' not in sys.modules, 'elastoformer_hf was imported'\n"
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=_subprocess_env(tmp_path),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# =============================================================================================================
# 6. stock reloads
# =============================================================================================================
@pytest.mark.parametrize("fam, level, form, cls_name", STOCK_CASES,
                         ids=[f"{f.removesuffix('_family')}-dn{k}" for f, k, _, _ in STOCK_CASES])
def test_save_then_load_reproduces_logits(request, extracted, saved_level, logits, fam, level, form, cls_name):
    family = request.getfixturevalue(fam)
    if fam == "vit_global_family":
        assert not family.plan.level(level).structure["uniform"]
    folder = saved_level(family, level)
    info = json.loads((folder / LEVEL_FILE).read_text())
    assert info["checkpoint_format"] == form
    assert info["level"] == level and info["num_levels"] == family.plan.num_levels
    assert info["base_model"]["source"] == family.lm.spec.source
    assert read_level_info(folder) == info
    reloaded = load_descendant(folder)
    assert type(reloaded).__name__ == cls_name
    assert not reloaded.training
    x = _input(family)
    expected = logits(extracted(family, level), x)
    got = logits(reloaded, x)
    assert got.shape == (2, NUM_LABELS)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert sum(p.numel() for p in reloaded.parameters()) == family.plan.level(level).params
    assert not [p.name for p in folder.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_transformers_form_config_is_stock(vit_family, saved_level):
    structure = vit_family.plan.level(2).structure
    assert structure["hidden_size"] != structure["num_attention_heads"] * structure["head_dim"], (
        "pick a level whose head_dim is not hidden/heads, so the explicit head_dim matters"
    )
    config = json.loads((saved_level(vit_family, 2) / "config.json").read_text())
    assert config["model_type"] == "vit"
    assert config["architectures"] == ["ViTForImageClassification"]
    for key in ("hidden_size", "num_attention_heads", "head_dim", "intermediate_size"):
        assert config[key] == structure[key], key
    assert "auto_map" not in config
    assert len(config["id2label"]) == NUM_LABELS


def test_loading_a_level_draws_no_progress_bar(vit_family, saved_level, capfd):
    import warnings

    import transformers.utils.logging as hf_logging

    from elastoformer_hf.descendant import load_descendant

    folder = saved_level(vit_family, 2)
    before = hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():  # huggingface_hub warns that HF_HUB_DISABLE_PROGRESS_BARS (conftest) wins
        warnings.simplefilter("ignore")
        hf_logging.enable_progress_bar()
    try:
        capfd.readouterr()
        load_descendant(folder)
        assert "Loading weights" not in capfd.readouterr().err
        assert hf_logging.is_progress_bar_enabled()  # the user's setting is back
    finally:
        if not before:
            hf_logging.disable_progress_bar()


def test_stock_vit_opens_with_plain_transformers(vit_family, extracted, saved_level, logits, tmp_path):
    folder = saved_level(vit_family, 2)
    x = _input(vit_family)
    torch.save({"x": x}, tmp_path / "inputs.pt")
    expected = logits(extracted(vit_family, 2), x)
    script = """
        import sys, torch, transformers
        folder, inputs, out = sys.argv[1:4]
        model = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
        with torch.no_grad():
            torch.save(model(pixel_values=torch.load(inputs)["x"]).logits, out)
        print(type(model).__name__)
    """
    result = _run_isolated(script, [str(folder), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")], tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "ViTForImageClassification"
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, atol=1e-5, rtol=0)


def test_elastoformer_form_opens_with_trust_remote_code(tv_resnet_family, extracted, saved_level, logits, tmp_path):
    folder = saved_level(tv_resnet_family, 1)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "elastoformer"
    assert config["auto_map"]["AutoModelForImageClassification"].endswith("ElastoformerForImageClassification")
    assert (folder / "modeling_elastoformer.py").is_file() and (folder / "configuration_elastoformer.py").is_file()
    assert config["param_shapes"]["conv1.weight"][0] == len(tv_resnet_family.plan.level(1).kept["conv1"])
    x = _input(tv_resnet_family)
    torch.save({"x": x}, tmp_path / "inputs.pt")
    expected = logits(extracted(tv_resnet_family, 1), x)
    script = """
        import sys, torch, transformers
        folder, inputs, out = sys.argv[1:4]
        model = transformers.AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            torch.save(model(pixel_values=torch.load(inputs)["x"]).logits, out)
        print(type(model).__module__, type(model).__name__)
    """
    result = _run_isolated(script, [str(folder), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")], tmp_path)
    module, name = result.stdout.strip().splitlines()[-1].split()
    assert name == "ElastoformerForImageClassification" and "elastoformer_hf" not in module
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, atol=1e-5, rtol=0)


def test_elastoformer_form_records_attention(vit_global_family, saved_level):
    plan = vit_global_family.plan
    config = json.loads((saved_level(vit_global_family, 1) / "config.json").read_text())
    assert config["base_source"] == "transformers"
    assert config["base_architecture"] == "ViTForImageClassification"
    for name, heads in plan.level(1).heads.items():
        width = plan.level(1).dims[f"layers.{name.split('.')[2]}.attention"]
        assert config["attention"][name] == {"num_heads": heads, "head_dim": width // heads}


# =============================================================================================================
# 7. strict loading and atomic saves
# =============================================================================================================
# one folder per form: (family, level, form)
FORMS = [("vit_family", 1, "transformers"), ("resnet_family", 3, "timm"), ("tv_resnet_family", 1, "elastoformer")]
FORM_IDS = [form for _, _, form in FORMS]


@pytest.fixture
def damaged_copy(request, saved_level, tmp_path):
    """A writable copy of a saved level (the session's folders stay pristine)."""

    def copy(fam: str, level: int, form: str) -> Path:
        folder = saved_level(request.getfixturevalue(fam), level)
        assert read_level_info(folder)["checkpoint_format"] == form
        return Path(shutil.copytree(folder, tmp_path / "dn"))

    return copy


@pytest.mark.parametrize("fam, level, form", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "one bit"])
def test_damaged_weights_are_a_checkpoint_error(damaged_copy, fam, level, form, damage):
    folder = damaged_copy(fam, level, form)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        weights.write_bytes(data[:8] + b"\xff" * (len(data) - 8))
    elif damage == "one bit":  # an exponent bit: the file still loads, one weight is far off
        weights.write_bytes(data[:-3] + bytes([data[-3] ^ 0x40]) + data[-2:])
    else:
        weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors" if damage != "garbage" else None):
        load_descendant(folder)


def _shrink_a_width(config: dict, form: str) -> None:
    if form == "transformers":
        config["intermediate_size"] += 8
    elif form == "timm":
        config["model_args"]["channels"][-1] //= 2
    else:
        key = "conv1.weight"
        config["param_shapes"][key][0] -= 1


@pytest.mark.parametrize("fam, level, form", FORMS, ids=FORM_IDS)
def test_config_width_mismatch_is_a_checkpoint_error(damaged_copy, fam, level, form):
    folder = damaged_copy(fam, level, form)
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    _shrink_a_width(config, form)
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_descendant(folder)
    assert str(folder) in str(info.value)


@pytest.mark.parametrize("fam, level, form, key", [("resnet_family", 3, "timm", "model_args"),
                                                   ("resnet_family", 1, "elastoformer", "base_model_args")])
@pytest.mark.parametrize("option", ["checkpoint_path", "pretrained_cfg_overlay", "pretrained"])
def test_a_config_that_names_a_file_to_load_is_refused(damaged_copy, tmp_path, monkeypatch, fam, level, form, key,
                                                       option):
    """A level's config.json hands the model builder architecture arguments only: a checkpoint to read, a
    pretrained_cfg overlay naming a file, or pretrained weights are refused (one line naming the key and the file),
    and the file they name is never opened."""
    import timm.models._factory as timm_factory

    touched = []
    monkeypatch.setattr(timm_factory, "load_checkpoint", lambda model, path, *a, **k: touched.append(path))
    trap = tmp_path / "elsewhere.pth"
    torch.save({}, trap)
    folder = damaged_copy(fam, level, form)
    config = json.loads((folder / "config.json").read_text())
    config.setdefault(key, {})[option] = {"checkpoint_path": str(trap), "pretrained": True,
                                          "pretrained_cfg_overlay": {"file": str(trap)}}[option]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_descendant(folder)
    message = str(info.value)
    assert f"{folder / 'config.json'}: {key} sets {option!r}, which is not an architecture argument" in message
    assert "\n" not in message and touched == []


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fam, level, form", FORMS, ids=FORM_IDS)
def test_the_same_level_saved_twice_is_the_same_bytes(request, extracted, tmp_path, fam, level, form):
    """Every file of a level (weights, config.json, elastic_level.json, ...) is the same, byte for byte, when the same
    level is written again: the evaluation's timings, which differ on every run, are not recorded."""
    family = request.getfixturevalue(fam)
    lm = family.lm
    folders = []
    for i, seconds in enumerate((0.0175, 0.0149)):
        metrics = {"eval_loss": 2.3, "eval_accuracy": 0.5, "epoch": 1.0, "eval_runtime": seconds,
                   "eval_samples_per_second": 64 / seconds, "eval_steps_per_second": 1 / seconds}
        folders.append(save_descendant(
            extracted(family, level), tmp_path / str(i) / f"dn{level}", spec=lm.spec, verify=False,
            level_info={"level": level, "num_levels": family.plan.num_levels, "metrics": metrics},
            label_names=lm.label_names, data_config=lm.data_config, image_processor=lm.image_processor))
    info = read_level_info(folders[0])
    assert info["checkpoint_format"] == form
    assert info["metrics"] == {"eval_loss": 2.3, "eval_accuracy": 0.5, "epoch": 1.0}
    assert {"config.json", "elastic_level.json", "model.safetensors"} <= set(_digests(folders[0]))
    assert _digests(folders[0]) == _digests(folders[1])


@pytest.mark.parametrize("fam, level, form", FORMS, ids=FORM_IDS)
def test_weight_files_get_the_mode_of_their_siblings(request, extracted, tmp_path, fam, level, form):
    """safetensors creates its files 0600: a saved level's weights get the mode of the JSON beside them (a new
    file's, under the umask), or a shared folder would show the configs but not the weights."""
    family = request.getfixturevalue(fam)
    lm = family.lm
    old = os.umask(0o027)
    try:
        folder = save_descendant(extracted(family, level), tmp_path / f"dn{level}", spec=lm.spec, verify=False,
                                 level_info={"level": level}, label_names=lm.label_names,
                                 data_config=lm.data_config, image_processor=lm.image_processor)
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir() if p.is_file()}
    assert "model.safetensors" in modes and "config.json" in modes
    assert set(modes.values()) == {"0o640"}, modes


def test_corrupt_or_missing_config(damaged_copy, tmp_path):
    folder = damaged_copy("vit_family", 1, "transformers")
    (folder / "config.json").write_text('{"model_type": "vit", ')
    with pytest.raises(CheckpointError, match="corrupt"):
        load_descendant(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        load_descendant(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_descendant(empty)
    with pytest.raises(CheckpointError):
        load_descendant(tmp_path / "does_not_exist")
    with pytest.raises(CheckpointError, match=LEVEL_FILE):
        read_level_info(empty)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def _save(family, model, path, **kwargs):
    lm = family.lm
    return save_descendant(model, path, spec=lm.spec, level_info={"level": 1}, label_names=lm.label_names,
                           data_config=lm.data_config, image_processor=lm.image_processor, **kwargs)


def test_existing_folder_is_not_overwritten(vit_family, extracted, tmp_path):
    target = tmp_path / "dn1"
    _save(vit_family, extracted(vit_family, 1), target)
    before = _snapshot(target)
    with pytest.raises(ElastoformerError, match="already exists"):
        _save(vit_family, extracted(vit_family, 2), target)
    assert _snapshot(target) == before
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_the_folder(vit_family, extracted, tmp_path, logits):
    target = tmp_path / "dn"
    _save(vit_family, extracted(vit_family, 1), target)
    (target / "stale.txt").write_text("from the old save")
    _save(vit_family, extracted(vit_family, 2), target, overwrite=True)
    assert not (target / "stale.txt").exists()
    x = _input(vit_family)
    torch.testing.assert_close(logits(load_descendant(target), x), logits(extracted(vit_family, 2), x),
                               atol=1e-5, rtol=0)
    assert _leftovers(tmp_path) == []


def test_failed_save_leaves_no_temporary_folder(vit_family, extracted, tmp_path, monkeypatch):
    def disk_full(path, data):
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt, "write_json", disk_full)
    target = tmp_path / "dn1"
    with pytest.raises(OSError, match="No space left"):
        _save(vit_family, extracted(vit_family, 1), target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_folder(tv_resnet_family, extracted, tmp_path, monkeypatch):
    target = tmp_path / "dn1"
    _save(tv_resnet_family, extracted(tv_resnet_family, 1), target)
    before = _snapshot(target)

    def broken(model, folder, spec):
        assert folder.name.startswith(".dn1.tmp-") and (folder / "config.json").is_file()
        raise RuntimeError("reloading does not reproduce the model's logits")

    monkeypatch.setattr(ckpt, "_verify", broken)
    with pytest.raises(RuntimeError, match="reproduce"):
        _save(tv_resnet_family, extracted(tv_resnet_family, 2), target, overwrite=True)
    assert _snapshot(target) == before
    assert _leftovers(tmp_path) == []


def test_verify_catches_a_save_that_does_not_round_trip(vit_family, extracted, tmp_path, monkeypatch):
    """The reload check is real: a save that writes other weights than the model's fails and leaves nothing."""
    real_save = ckpt._save_transformers

    def corrupting_save(model, folder, spec, label_names, image_processor):
        ok = real_save(model, folder, spec, label_names, image_processor)
        from safetensors.torch import load_file, save_file

        tensors = load_file(folder / "model.safetensors")
        tensors["classifier.bias"] = tensors["classifier.bias"] + 1.0
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
        return ok

    monkeypatch.setattr(ckpt, "_save_transformers", corrupting_save)
    target = tmp_path / "dn1"
    with pytest.raises(RuntimeError, match="logits"):
        _save(vit_family, extracted(vit_family, 1), target)
    assert list(tmp_path.iterdir()) == []
