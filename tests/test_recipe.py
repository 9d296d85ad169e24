"""The training recipes: YAML + command-line parsing, validation, order of failures, ViT/CNN scripts, the demo parent.

Everything here is parsing or a tiny run on random/synthetic data: seconds on 2 CPU cores, no network.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from enum import Enum
from pathlib import Path

import pytest
import torch
import yaml
from datasets import __version__ as datasets_version
from packaging.version import Version

from elastoformer_hf.data import DataError
from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.recipe import (
    DataArguments,
    ModelArguments,
    ParentArguments,
    model_kind,
    parse_recipe_args,
    run_recipe,
)
from elastoformer_hf.recipe import data as recipe_data
from elastoformer_hf.recipe import run as recipe_run
from elastoformer_hf.training.arguments import ElasticTrainingArguments

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "recipes" / "configs").glob("*.yaml"))
#: ``bf16: true`` in the reference configs needs a bf16 GPU (or use_cpu) for TrainingArguments to accept it
HARDWARE = [] if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else ["--use_cpu", "true"]


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_script_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_model_loading(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("load_base_model was called")

    monkeypatch.setattr(recipe_run, "load_base_model", fail)


@pytest.fixture
def no_data_loading(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("load_image_datasets was called")

    monkeypatch.setattr(recipe_data, "load_image_datasets", fail)


# -- parsing ----------------------------------------------------------------------------------------------


def test_yaml_values_then_command_line_overrides(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {
        "model_name_or_path": "resnet18", "dataset_name": "dummy", "learning_rate": 0.1, "pruning_ratio": 0.3,
        "output_dir": str(tmp_path / "from_yaml"), "auto_augment": "rand-m9-mstd0.5-inc1", "mixup_alpha": 0.8,
        "model_args": {"drop_path_rate": 0.1},
    })
    m, d, t, p = parse_recipe_args(["--config", str(cfg), "--learning_rate", "1e-3",
                                    "--output_dir", str(tmp_path / "from_cli"), "--re_prob", "0.25"])
    assert isinstance(t, ElasticTrainingArguments)
    assert t.learning_rate == pytest.approx(1e-3)  # the flag wins
    assert t.output_dir == str(tmp_path / "from_cli")
    assert t.pruning_ratio == pytest.approx(0.3) and t.mixup_alpha == pytest.approx(0.8)  # the file's
    assert d.dataset_name == "dummy" and d.auto_augment == "rand-m9-mstd0.5-inc1" and d.re_prob == 0.25
    assert m.model_name_or_path == "resnet18" and m.model_args == {"drop_path_rate": 0.1}
    assert not p.enabled
    # --config=FILE works too, and the file's value stays when no flag overrides it
    _, _, t2, _ = parse_recipe_args([f"--config={cfg}"])
    assert t2.learning_rate == pytest.approx(0.1) and t2.output_dir == str(tmp_path / "from_yaml")


def test_required_argument_from_file_or_flag(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"model_name_or_path": "resnet18"})
    _, d, _, _ = parse_recipe_args(["--config", str(cfg), "--dataset_name", "digits"])
    assert d.dataset_name == "digits"
    with_data = write_yaml(tmp_path / "d.yaml", {"model_name_or_path": "resnet18", "dataset_name": "Fashion-MNIST"})
    _, d, _, _ = parse_recipe_args(["--config", str(with_data)])
    assert d.dataset_name == "fashion_mnist"  # canonical name
    with pytest.raises(SystemExit) as exc:  # neither: argparse's usage error (status 2)
        parse_recipe_args(["--config", str(cfg)])
    assert exc.value.code == 2


def test_model_args_json_on_the_command_line():
    m, *_ = parse_recipe_args(["--model_name_or_path", "resnet18", "--dataset_name", "dummy",
                               "--model_args", '{"drop_path_rate": 0.05}'])
    assert m.model_args == {"drop_path_rate": 0.05}
    with pytest.raises(ElastoformerError, match="model_args must be a JSON object"):
        parse_recipe_args(["--model_name_or_path", "resnet18", "--dataset_name", "dummy", "--model_args", "{oops"])


def test_model_args_take_architecture_arguments_only(tmp_path):
    """A run records --model_args and rebuilds every level with them: a loader option (a checkpoint to read, a
    pretrained_cfg overlay naming a file) is refused at the door, before anything is loaded or written."""
    from elastoformer_hf.base_model import load_base_model
    from elastoformer_hf.errors import SettingError

    trap = tmp_path / "elsewhere.pth"
    for option in ({"checkpoint_path": str(trap)}, {"pretrained_cfg_overlay": {"file": str(trap)}}):
        with pytest.raises(ElastoformerError, match=f"model_args '{next(iter(option))}' is not an architecture"):
            parse_recipe_args(["--model_name_or_path", "resnet18", "--dataset_name", "dummy",
                               "--model_args", json.dumps({"drop_path_rate": 0.1, **option})])
        with pytest.raises(SettingError, match=next(iter(option))):
            load_base_model("resnet18", random_init=True, model_args=option)
    assert not trap.exists() and list(tmp_path.iterdir()) == []


def test_unknown_yaml_keys_are_named(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"dataset_name": "dummy", "learning_rat": 0.1, "frobnicate": 1})
    with pytest.raises(ElastoformerError) as exc:
        parse_recipe_args(["--config", str(cfg)])
    message = str(exc.value)
    assert "unknown keys" in message and "frobnicate" in message
    assert "learning_rat (did you mean learning_rate?)" in message


def test_missing_or_malformed_config_file(tmp_path):
    with pytest.raises(ElastoformerError, match="does not exist"):
        parse_recipe_args(["--config", str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ElastoformerError, match="must hold a mapping"):
        parse_recipe_args(["--config", str(bad)])
    bad.write_text("key: [unclosed\n")
    with pytest.raises(ElastoformerError, match="not valid YAML"):
        parse_recipe_args(["--config", str(bad)])


@pytest.mark.parametrize("where", ["yaml", "cli"])
def test_bad_pruning_ratio_is_a_clear_error(tmp_path, where):
    base = {"model_name_or_path": "resnet18", "dataset_name": "dummy"}
    if where == "yaml":
        argv = ["--config", str(write_yaml(tmp_path / "c.yaml", {**base, "pruning_ratio": 1.5}))]
    else:
        argv = ["--config", str(write_yaml(tmp_path / "c.yaml", base)), "--pruning_ratio", "1.5"]
    with pytest.raises(ElastoformerError, match=r"pruning_ratio must be .* between 0 and 1, got 1.5"):
        parse_recipe_args(argv)


@pytest.mark.parametrize("flags, match", [
    (["--re_prob", "2"], "re_prob must be in"),
    (["--crop_pct", "0"], "crop_pct must be in"),
    (["--auto_augment", "nonsense"], "auto_augment 'nonsense' is not a timm policy"),
    (["--interpolation", "cubic"], "interpolation must be one of"),
    (["--max_train_samples", "0"], "max_train_samples must be a positive integer"),
    (["--dataset_name", "  "], "--dataset_name is empty"),
    (["--label_smoothing", "1"], "label_smoothing must be in"),
    (["--parent_config", '{"hidden_size": 24, "num_attention_heads": 2}'], "not both"),
    (["--learning_rate", "-1"], "learning_rate must be > 0, got -1"),  # finding 8d: torch refused it mid-run
    (["--per_device_train_batch_size", "0"], "per_device_train_batch_size must be an integer >= 1, got 0"),
    (["--num_train_epochs", "-3"], r"num_train_epochs must be > 0 \(or max_steps > 0\)"),
    (["--num_labels", "0"], "num_labels must be a positive integer, got 0"),  # 9h, 9i: the recipe's own checks
    (["--image_size", "0"], "image_size must be a positive integer, got 0"),
])
def test_bad_values(flags, match):
    argv = ["--model_name_or_path", "resnet18", "--dataset_name", "dummy", *flags]
    with pytest.raises(ElastoformerError, match=match):
        parse_recipe_args(argv)


def test_any_dataset_name_and_its_columns_are_kept():
    """A name that is no shortcut is a Hub id or folder for datasets.load_dataset: parsed as given, with its config
    and column names (transformers' run_image_classification.py flags)."""
    args = parse_recipe_args(["--model_name_or_path", "resnet18", "--dataset_name", "AI-Lab-Makerere/beans",
                              "--dataset_config", "default", "--image_column_name", "image",
                              "--label_column_name", "labels"])
    data = next(a for a in args if hasattr(a, "dataset_name"))
    assert (data.dataset_name, data.dataset_config, data.image_column_name, data.label_column_name) == (
        "AI-Lab-Makerere/beans", "default", "image", "labels")
    shortcut = next(a for a in parse_recipe_args(["--model_name_or_path", "resnet18", "--dataset_name", "Fashion-MNIST"])
                    if hasattr(a, "dataset_name"))
    assert shortcut.dataset_name == "fashion_mnist"


def test_parent_config_is_validated():
    with pytest.raises(ElastoformerError, match="ViTConfig does not know: hidden_sise"):
        parse_recipe_args(["--dataset_name", "digits", "--parent_config", '{"hidden_sise": 8}'])
    with pytest.raises(ElastoformerError, match="model_name_or_path is required"):
        parse_recipe_args(["--dataset_name", "digits"])


def test_trainer_argument_errors_become_one_line(tmp_path):
    with pytest.raises(ElastoformerError, match="invalid arguments: .*fp16 and bf16"):
        parse_recipe_args(["--model_name_or_path", "resnet18", "--dataset_name", "dummy", "--bf16", "true",
                           "--fp16", "true", *HARDWARE])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_parses(path, tmp_path):
    values = yaml.safe_load(path.read_text())
    m, d, t, p = parse_recipe_args(["--config", str(path), *HARDWARE])
    objects = (m, d, t, p)
    for key, expected in values.items():
        owner = next(o for o in objects if key in type(o).__dataclass_fields__)
        actual = getattr(owner, key)
        actual = actual.value if isinstance(actual, Enum) else actual
        if key == "dataset_name":
            expected = expected.replace("-", "_")
        if key == "distillation_teacher" and expected == "none":
            expected = None
        if key in ("report_to",):
            continue  # Trainer normalises it ("none" -> [])
        if isinstance(expected, float):
            assert actual == pytest.approx(expected), key
        else:
            assert actual == expected, key
    assert (m.model_name_or_path is None) == p.from_scratch


def test_mobilenet_demo_starts_from_real_imagenet_weights_offline():
    """The second default: torchvision's ImageNet MobileNetV2, installed offline by scripts/setup.sh, fine-tuned first."""
    m, d, t, p = parse_recipe_args(["--config", str(ROOT / "recipes" / "configs" / "mobilenet_demo.yaml")])
    assert (m.model_name_or_path, m.weights) == ("mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V1")
    assert p.parent_finetune and not m.random_init and d.dataset_name == "fashion_mnist"
    torchvision = pytest.importorskip("torchvision")
    weights = torchvision.models.get_weight(m.weights)
    if not (Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name).is_file():
        pytest.skip("the MobileNetV2 weights are not installed (scripts/setup.sh installs them)")
    from elastoformer_hf.base_model import load_base_model

    loaded = load_base_model(m.model_name_or_path, weights=m.weights)  # offline: the file setup.sh put in place
    assert loaded.spec.pretrained and len(loaded.label_names) == 1000 and loaded.label_names[0] == "tench"


def test_demo_config_trains_a_parent_on_real_data():
    m, d, t, p = parse_recipe_args(["--config", str(ROOT / "recipes" / "configs" / "demo.yaml")])
    assert p.enabled and m.model_name_or_path is None
    assert d.dataset_name in ("fashion_mnist", "digits")  # real images that install offline
    assert t.pruning_steps in (3, 5)


# -- order of failures and the ViT/CNN scripts ---------------------------------------------------------------


def test_missing_data_fails_before_any_model_is_loaded(no_model_loading, tmp_path):
    m, d, t, p = parse_recipe_args(["--model_name_or_path", "resnet18", "--dataset_name", "imagefolder",
                                    "--data_path", "/nonexistent", "--output_dir", str(tmp_path / "out")])
    with pytest.raises(DataError, match="/nonexistent"):
        run_recipe(m, d, t, p)
    assert not (tmp_path / "out").exists()


def test_script_reports_missing_data_in_one_line(no_model_loading, tmp_path, capsys):
    code = load_script("cnn").main(["--model_name_or_path", "resnet18", "--dataset_name", "imagefolder",
                                    "--data_path", "/nonexistent", "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("recipes/cnn.py: error: --data_path '/nonexistent'") and "\n" not in err


def test_model_kind_from_names(hf_vit_dir):
    assert model_kind("resnet50") == "cnn"
    assert model_kind("vgg16") == "cnn"
    assert model_kind("resnet50.a1_in1k") == "cnn"
    assert model_kind("deit_base_patch16_224") == "vit"
    assert model_kind("timm:vit_tiny_patch16_224") == "vit"
    assert model_kind("torchvision:resnet50") == "cnn"
    assert model_kind("vgg16", weights="VGG16_Weights.IMAGENET1K_V1") == "cnn"
    assert model_kind(str(hf_vit_dir)) == "vit"
    assert model_kind("someone/some-model") is None  # a Hub id: only the loaded model's adapter can tell


@pytest.mark.parametrize("script, name, other", [
    ("deit", "resnet50", "recipes/cnn.py"),
    ("deit", "torchvision:vgg16", "recipes/cnn.py"),
    ("cnn", "vit_tiny_patch16_224", "recipes/deit.py"),
    ("cnn", "HF_VIT_DIR", "recipes/deit.py"),
])
def test_scripts_refuse_the_other_family_before_loading_anything(script, name, other, hf_vit_dir, capsys,
                                                                  no_model_loading, no_data_loading, tmp_path):
    name = str(hf_vit_dir) if name == "HF_VIT_DIR" else name
    code = load_script(script).main(["--model_name_or_path", name, "--dataset_name", "dummy",
                                     "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"recipes/{script}.py trains" in err and f"use {other}" in err


def test_loaded_model_adapter_decides_when_the_name_cannot(monkeypatch, tmp_path):
    """A name the family check cannot classify is checked again once loaded (here: a CNN given to deit.py)."""
    from elastoformer_hf.base_model import load_base_model

    monkeypatch.setattr(recipe_run, "load_base_model",
                        lambda name, **kw: load_base_model("resnet18", random_init=True, num_labels=kw["num_labels"]))
    m, d, t, p = parse_recipe_args(["--model_name_or_path", "someone/mystery", "--dataset_name", "dummy",
                                    "--max_train_samples", "4", "--max_eval_samples", "2", "--dummy_num_classes", "3",
                                    "--dummy_image_size", "16", "--output_dir", str(tmp_path / "o")])
    with pytest.raises(ElastoformerError, match=r"is a CNN \(ResNet/VGG\) \(timm-resnet\): use recipes/cnn.py"):
        run_recipe(m, d, t, p, kind="vit")


# -- what run_recipe hands to the trainer ---------------------------------------------------------------------


class FakeTrainer:
    """Records what run_recipe passes to ElasticTrainer (the real one trains)."""

    seen: dict = {}

    def __init__(self, model, args, train_dataset, eval_dataset, label_names, data_info=None):
        FakeTrainer.seen = dict(model=model, args=args, train=train_dataset, eval=eval_dataset, labels=label_names,
                                data_info=data_info)

    def train(self):
        return {"levels": [], "fake": True}


@pytest.fixture
def fake_trainer(monkeypatch):
    monkeypatch.setattr(recipe_run, "ElasticTrainer", FakeTrainer)
    FakeTrainer.seen = {}
    return FakeTrainer


def test_run_recipe_builds_model_data_and_transforms(fake_trainer, tmp_path):
    m, d, t, p = parse_recipe_args([
        "--model_name_or_path", "resnet18", "--random_init", "--dataset_name", "dummy", "--dummy_num_classes", "3",
        "--dummy_image_size", "40", "--max_train_samples", "6", "--max_eval_samples", "4", "--image_size", "32",
        "--auto_augment", "rand-m9-mstd0.5-inc1", "--re_prob", "0.25", "--output_dir", str(tmp_path / "o"),
    ])
    summary = run_recipe(m, d, t, p, kind="cnn")
    assert summary == {"levels": [], "fake": True}
    seen = fake_trainer.seen
    assert seen["model"].model.fc.out_features == 3  # the head follows the dataset
    assert seen["labels"] == ["class_0", "class_1", "class_2"]
    assert len(seen["train"]) == 6 and len(seen["eval"]) == 4
    assert seen["data_info"]["dataset_name"] == "dummy" and seen["data_info"]["max_train_samples"] == 6
    row = seen["train"][0]
    assert row["pixel_values"].shape == (3, 32, 32) and isinstance(row["labels"], int)
    assert seen["eval"][0]["pixel_values"].shape == (3, 32, 32)
    assert seen["args"] is t


def test_num_labels_must_match_the_dataset(fake_trainer, tmp_path):
    m, d, t, p = parse_recipe_args(["--model_name_or_path", "resnet18", "--random_init", "--num_labels", "7",
                                    "--dataset_name", "dummy", "--dummy_num_classes", "3", "--dummy_image_size", "16",
                                    "--max_train_samples", "2", "--max_eval_samples", "2",
                                    "--output_dir", str(tmp_path / "o")])
    with pytest.raises(ElastoformerError, match="num_labels 7 differs from the 3 classes"):
        run_recipe(m, d, t, p)


def test_vit_resolution_cannot_be_overridden(fake_trainer, hf_vit_dir, tmp_path):
    m, d, t, p = parse_recipe_args(["--model_name_or_path", str(hf_vit_dir), "--random_init", "--dataset_name",
                                    "dummy", "--dummy_num_classes", "5", "--dummy_image_size", "16",
                                    "--max_train_samples", "2", "--max_eval_samples", "2", "--image_size", "64",
                                    "--output_dir", str(tmp_path / "o")])
    with pytest.raises(ElastoformerError, match="image_size 64 differs from the resolution"):
        run_recipe(m, d, t, p, kind="vit")


# -- the demo's parent ---------------------------------------------------------------------------------------

TINY_PARENT = ["--dataset_name", "digits", "--hflip", "0", "--color_jitter", "0", "--max_eval_samples", "40",
               "--parent_config", json.dumps({"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                              "intermediate_size": 32, "image_size": 8, "patch_size": 4}),
               "--parent_max_steps", "2", "--parent_batch_size", "8", "--parent_max_train_samples", "32",
               "--max_train_samples", "16", "--disable_tqdm", "true", "--pruning_steps", "2"]


def test_parent_is_trained_saved_and_reused(fake_trainer, tmp_path, monkeypatch):
    out = tmp_path / "run"
    m, d, t, p = parse_recipe_args([*TINY_PARENT, "--output_dir", str(out)])
    run_recipe(m, d, t, p, kind="vit")
    parent = out / "parent"
    info = json.loads((parent / "parent_info.json").read_text())
    assert info["steps"] == 2 and info["train_images"] == 32 and 0.0 <= info["eval_accuracy"] <= 1.0
    assert (parent / "model.safetensors").is_file() and (parent / "preprocessor_config.json").is_file()
    assert not [x for x in out.iterdir() if x.name.startswith(".")]  # the temporary folder is gone
    seen = fake_trainer.seen
    assert seen["model"].spec.name == str(parent) and seen["model"].spec.pretrained
    assert len(seen["train"]) == 16 and seen["train"][0]["pixel_values"].shape == (3, 8, 8)
    assert seen["labels"] == [str(i) for i in range(10)]

    # a second run reuses the parent: no training
    import transformers

    monkeypatch.setattr(transformers.Trainer, "train", lambda *a, **k: pytest.fail("the parent was retrained"))
    run_recipe(m, d, t, p, kind="vit")
    # other parent settings in the same output_dir: refused, never silently reused or deleted
    m, d, t, p = parse_recipe_args([*TINY_PARENT, "--output_dir", str(out), "--parent_learning_rate", "0.1"])
    with pytest.raises(ElastoformerError, match="holds a parent trained with other settings"):
        run_recipe(m, d, t, p, kind="vit")
    assert (parent / "parent_info.json").is_file()


def test_a_schedule_with_identical_levels_is_refused_before_the_parent_trains(tmp_path, monkeypatch):
    """Local pruning's widths do not depend on the weights: the untrained parent is planned first, so a schedule
    finer than a channel fails in seconds, not after the parent's training, and nothing is written."""
    import transformers

    monkeypatch.setattr(transformers.Trainer, "train", lambda *a, **k: pytest.fail("the parent was trained"))
    out = tmp_path / "run"
    m, d, t, p = parse_recipe_args([*TINY_PARENT, "--output_dir", str(out), "--pruning_ratio", "0.5",
                                    "--pruning_steps", "12", "--round_to", "4"])
    with pytest.raises(ElastoformerError, match="gives identical levels"):
        run_recipe(m, d, t, p, kind="vit")
    assert not (out / "parent").exists()


def test_cnn_recipe_refuses_a_parent(tmp_path, no_data_loading):
    m, d, t, p = parse_recipe_args([*TINY_PARENT, "--output_dir", str(tmp_path / "o")])
    with pytest.raises(ElastoformerError, match="use recipes/deit.py"):
        run_recipe(m, d, t, p, kind="cnn")


def test_dataclass_defaults_are_valid():
    DataArguments(dataset_name="dummy")
    ModelArguments(model_name_or_path="resnet18")
    assert not ParentArguments().enabled


def test_bare_yaml_no_means_the_string(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_name_or_path: resnet18\ndataset_name: dummy\neval_strategy: no\nsave_strategy: no\n"
                   "random_init: no\n")
    m, _, t, _ = parse_recipe_args(["--config", str(cfg)])
    assert t.eval_strategy.value == "no" and t.save_strategy.value == "no" and m.random_init is False


# -- what a finished run leaves and prints -------------------------------------------------------------------
def test_a_finished_run_writes_its_cards_and_plot_and_prints_where_to_look(hf_vit_dir, tmp_path, capsys):
    from elastoformer_hf.recipe import recipe_main

    out = tmp_path / "run"
    code = recipe_main(["--model_name_or_path", str(hf_vit_dir), "--random_init", "--dataset_name", "dummy",
                        "--dummy_num_classes", "5", "--dummy_image_size", "32", "--max_train_samples", "16",
                        "--max_eval_samples", "8", "--per_device_train_batch_size", "8", "--max_steps", "1",
                        "--pruning_steps", "1", "--round_to", "4", "--save_strategy", "no", "--report_to", "none",
                        "--use_cpu", "true", "--output_dir", str(out)], kind="vit")
    stdout = capsys.readouterr().out
    assert code == 0
    for card in (out / "dn1" / "README.md", out / "dn2" / "README.md", out / "family" / "README.md"):
        text = card.read_text()
        assert text.startswith("---\n") and "elastoformer" in text and "DN1 (core)" in text
    assert (out / "family.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ORG/" in (out / "family" / "README.md").read_text()  # not published yet: placeholder repo names
    # the last lines: the table and where to look; the summary stays in its file, not on stdout
    assert "DN1 (core)" in stdout and str(out / "family.png") in stdout and "elastoformer push" in stdout
    assert stdout.rstrip().endswith(f"elastoformer push {out} --repo_prefix ORG/NAME --include_family")
    assert '"levels"' not in stdout and json.loads((out / "elastic_summary.json").read_text())["levels"]
    # the same renderer as push: a dry-run push stages the same card text (but for the repo names it is given)
    from elastoformer_hf.hub import push_run

    push_run(out, "acme/zq-family", dry_run=True, stage_dir=tmp_path / "stage", include_family=True,
             log=lambda _: None)
    for local, staged in ((out / "dn1", "acme--zq-family-dn1"), (out / "family", "acme--zq-family")):
        published = (tmp_path / "stage" / staged / "README.md").read_text()
        kept = (local / "README.md").read_text()
        placeholder = f"{hf_vit_dir.name}-elastic"
        assert published.replace("acme/zq-family", "X").replace("zq-family", "Y") == kept.replace(
            f"ORG/{placeholder}", "X").replace(placeholder, "Y")


def test_parent_finetune_trains_the_dense_baseline_first_and_reuses_it(tmp_path, capsys):
    """--parent_finetune: the loaded model is fine-tuned into parent/ (a level folder of the base architecture),
    the levels are cut from it and distil from it, its accuracy is the summary's baseline; a re-run reuses it."""
    from elastoformer_hf.recipe import recipe_main
    from elastoformer_hf.run_folder import read_level_info

    out = tmp_path / "run"
    argv = ["--model_name_or_path", "resnet18", "--random_init", "--dataset_name", "dummy", "--dummy_num_classes",
            "3", "--dummy_image_size", "32", "--max_train_samples", "16", "--max_eval_samples", "8",
            "--per_device_train_batch_size", "8", "--max_steps", "1", "--pruning_steps", "1", "--round_to", "4",
            "--parent_finetune", "true", "--parent_max_steps", "2", "--parent_batch_size", "8",
            "--save_strategy", "no", "--report_to", "none", "--use_cpu", "true", "--output_dir", str(out)]
    assert recipe_main(argv, kind="cnn") == 0
    stdout = capsys.readouterr().out
    info = json.loads((out / "parent" / "parent_info.json").read_text())
    assert info["steps"] == 2 and 0 <= info["eval_accuracy"] <= 1
    assert f"dense parent: {100 * info['eval_accuracy']:.2f} %" in stdout
    assert read_level_info(out / "parent")["base_model"]["name"] == "resnet18"  # the levels' base: the original
    assert read_level_info(out / "dn1")["base_model"]["name"] == "resnet18"
    summary = json.loads((out / "elastic_summary.json").read_text())
    assert [lv["level"] for lv in summary["levels"]] == [1, 2]
    capsys.readouterr()
    assert recipe_main(argv, kind="cnn") == 0  # finished run: parent and levels reused
    assert "reusing the parent" in capsys.readouterr().err
    with pytest.raises(ElastoformerError, match="not both"):  # --parent_config and --parent_finetune exclude each other
        parse_recipe_args(["--dataset_name", "dummy", "--parent_config", '{"hidden_size": 8}', "--parent_finetune",
                           "true", "--output_dir", str(tmp_path / "x")])


def test_cards_are_complete_without_card_flags(hf_vit_dir, tmp_path):
    """A run trained on a Hub dataset (here its local copy, with its own column names) and pushed (dry run) with no
    --dataset/--license: the staged cards name the dataset and the split evaluated, state the license explicitly,
    carry FLOPs and a Jetson latency labelled as an estimate."""
    import yaml

    from elastoformer_hf.hub import push_run
    from elastoformer_hf.recipe import recipe_main

    sys.path.insert(0, str(Path(__file__).parent))
    from test_data import _hub_style_folder

    folder = _hub_style_folder(tmp_path / "beans_copy")
    out = tmp_path / "run"
    assert recipe_main(["--model_name_or_path", str(hf_vit_dir), "--random_init", "--dataset_name",
                        "AI-Lab-Makerere/beans", "--data_path", str(folder), "--image_column_name", "picture",
                        "--label_column_name", "kind", "--per_device_train_batch_size", "4", "--max_steps", "1",
                        "--pruning_steps", "1", "--round_to", "4", "--save_strategy", "no", "--report_to", "none",
                        "--use_cpu", "true", "--output_dir", str(out)], kind="vit") == 0
    push_run(out, "acme/beans-elastic", dry_run=True, stage_dir=tmp_path / "stage", log=lambda _: None)
    text = (tmp_path / "stage" / "acme--beans-elastic-dn1" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["datasets"] == ["AI-Lab-Makerere/beans"] and meta["license"] == "unknown"
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"] == {"type": "AI-Lab-Makerere/beans", "name": "AI-Lab-Makerere/beans", "split": "test"}
    assert "6 images of the test split" in text
    assert meta["elastoformer"]["flops"] > 0
    (latency,) = meta["elastoformer"]["latency"]
    assert latency["method"] == "estimated" and latency["device"] == "Jetson Orin Nano 8GB"
    assert "(est.)" in text


@pytest.mark.skipif(Version(datasets_version) < Version("4.0.0"), reason="streaming needs datasets >= 4.0.0 (refused below)")
def test_a_streamed_dataset_trains_the_family_and_its_cards_count_the_images(hf_vit_dir, tmp_path):
    """--streaming on a Hub-style dataset (its local copy): the levels train in steps, the run records a stream (no
    row counts up front), and the cards say how many images the accuracy is on (counted by the evaluation). A stream
    without --max_steps, with --ra_sampler or with a demo parent is refused before anything is written."""
    from elastoformer_hf.hub import push_run
    from elastoformer_hf.recipe import recipe_main

    sys.path.insert(0, str(Path(__file__).parent))
    from test_data import _hub_style_folder

    folder = _hub_style_folder(tmp_path / "beans_copy", class_label=True)
    out = tmp_path / "run"
    base = ["--model_name_or_path", str(hf_vit_dir), "--random_init", "--dataset_name", "AI-Lab-Makerere/beans",
            "--data_path", str(folder), "--image_column_name", "picture", "--label_column_name", "kind",
            "--streaming", "--per_device_train_batch_size", "4", "--pruning_steps", "1", "--round_to", "4",
            "--save_strategy", "no", "--report_to", "none", "--use_cpu", "true"]
    assert recipe_main([*base, "--max_steps", "1", "--core_max_steps", "2", "--output_dir", str(out)],
                       kind="vit") == 0
    run = json.loads((out / "elastic_run.json").read_text())
    assert run["data"]["streaming"] is True and "eval_rows" not in run["data"]
    assert json.loads((out / "dn1" / "elastic_level.json").read_text())["train_steps"] == 2
    push_run(out, "acme/beans-elastic", dry_run=True, stage_dir=tmp_path / "stage", log=lambda _: None)
    assert "6 images of the test split" in (tmp_path / "stage" / "acme--beans-elastic-dn1" / "README.md").read_text()
    for extra, message in ((["--num_train_epochs", "1"], "set --max_steps"),
                           (["--max_steps", "1", "--ra_sampler", "true"], "drop --ra_sampler or --streaming"),
                           (["--max_steps", "1", "--parent_finetune", "true"], "drop them or --streaming")):
        fresh = tmp_path / f"refused-{len(message)}"
        with pytest.raises(ElastoformerError, match=message):
            parse_recipe_args([*base, *extra, "--output_dir", str(fresh)])
        assert not fresh.exists()
