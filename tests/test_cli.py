"""``elastoformer plan``: table, JSON, output folders and every bad input (one line, exit 2, nothing written)."""

import json
import os
import subprocess
import sys

import pytest
from transformers import ViTConfig

from elastoformer_hf.cli import main


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit-config")
    ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
              patch_size=8, num_labels=5).save_pretrained(path)
    return str(path)


def run(capsys, *argv):
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_one_object_levels_ascending_last_dense(capsys, vit_folder):
    code, out, _ = run(capsys, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.5",
                       "--pruning_steps", "3", "--round_to", "4", "--json")
    assert code == 0
    data = json.loads(out)  # exactly one JSON document on stdout
    assert data["model_name"] == vit_folder
    levels = data["levels"]
    assert [lv["level"] for lv in levels] == [1, 2, 3, 4]
    for lv in levels:
        assert {"params", "macs", "flops", "dims"} <= set(lv)
        assert all(isinstance(lv[k], int) for k in ("params", "macs", "flops"))
    assert [lv["macs"] for lv in levels] == sorted(lv["macs"] for lv in levels)
    assert levels[-1]["dims"]["hidden"] == 64 and levels[0]["dims"]["hidden"] == 32
    assert "kept" not in levels[0]


def test_table_lists_every_level(capsys, vit_folder):
    code, out, _ = run(capsys, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.4",
                       "--pruning_steps", "2", "--round_to", "1")
    assert code == 0
    assert "DN1 (core)" in out and "DN3 (dense)" in out and "100.0%" in out


def test_output_dir_writes_plan_and_loadable_levels(capsys, vit_folder, tmp_path):
    out_dir = tmp_path / "family"
    code, _, _ = run(capsys, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.5",
                     "--pruning_steps", "2", "--round_to", "4", "--output_dir", str(out_dir))
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["base_model.json", "dn1", "dn2", "dn3", "elastic_plan.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    config = json.loads((out_dir / "dn1" / "config.json").read_text())
    assert (config["hidden_size"], config["intermediate_size"]) == (32, 64)
    level = json.loads((out_dir / "dn1" / "elastic_level.json").read_text())
    assert level["level"] == 1 and level["checkpoint_format"] == "transformers" and level["trained"] is False
    # an existing, non-empty output folder is never mixed with a new plan
    code, _, err = run(capsys, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.3",
                       "--output_dir", str(out_dir))
    assert code == 2 and "--overwrite" in err
    assert json.loads((out_dir / "elastic_plan.json").read_text())["pruning"]["pruning_ratio"] == 0.5


PLAN = ("--random_init", "--pruning_steps", "2", "--round_to", "4")


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_never_replaces_a_trained_run(capsys, vit_folder, tmp_path):
    """--overwrite replaces an earlier plan, not training: a folder holding a trained level is refused in one line
    (naming what it holds and the way on) and left as it was; --overwrite_trained replaces it."""
    out_dir = tmp_path / "run"
    code, _, _ = run(capsys, "--model_name", vit_folder, *PLAN, "--pruning_ratio", "0.5", "--output_dir", str(out_dir))
    assert code == 0
    code, _, _ = run(capsys, "--model_name", vit_folder, *PLAN, "--pruning_ratio", "0.4", "--output_dir", str(out_dir),
                     "--overwrite")
    assert code == 0, "an untrained plan is replaced by --overwrite"
    assert json.loads((out_dir / "elastic_plan.json").read_text())["pruning"]["pruning_ratio"] == 0.4
    record = out_dir / "dn2" / "elastic_level.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "trained": True,
                                  "metrics": {"eval_accuracy": 0.81}}))
    before = _files(out_dir)
    code, out, err = run(capsys, "--model_name", vit_folder, *PLAN, "--pruning_ratio", "0.3",
                         "--output_dir", str(out_dir), "--overwrite")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "holds a trained run (trained level(s) dn2)" in err and "--overwrite_trained" in err
    assert _files(out_dir) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    code, _, _ = run(capsys, "--model_name", vit_folder, *PLAN, "--pruning_ratio", "0.3", "--output_dir",
                     str(out_dir), "--overwrite_trained")
    assert code == 0
    assert json.loads((out_dir / "elastic_plan.json").read_text())["pruning"]["pruning_ratio"] == 0.3
    assert json.loads(record.read_text())["trained"] is False
    # the other marks of training: a run's records, its checkpoints
    for name in ("elastic_summary.json", "elastic_run.json", "checkpoints"):
        (out_dir / name).write_text("{}")
        code, _, err = run(capsys, "--model_name", vit_folder, *PLAN, "--output_dir", str(out_dir), "--overwrite")
        assert code == 2 and "holds a trained run (" in err and name in err, name
        (out_dir / name).unlink()


def test_plan_clears_what_an_interrupted_plan_left(capsys, vit_folder, tmp_path):
    """A plan killed while it replaced --output_dir left the old folder aside (and its new one staged): the old one
    is put back (it is the last complete one) and judged as usual; the staging goes. Inside --output_dir nothing
    is touched (it may be a run that is training now)."""
    out_dir = tmp_path / "run"
    code, _, _ = run(capsys, "--model_name", vit_folder, *PLAN, "--pruning_ratio", "0.5", "--output_dir", str(out_dir))
    assert code == 0
    (out_dir / "dn1" / ".latency.json.tmp-0123abcd").write_text("{}")  # e.g. `elastoformer bench` writing now
    before = _files(out_dir)
    aside = tmp_path / ".run.old-0123abcd"
    out_dir.rename(aside)  # kill -9 between replace_folder's two renames
    staged = tmp_path / ".run.tmp-89abcdef"
    (staged / "dn1").mkdir(parents=True)
    (tmp_path / ".run2.tmp-89abcdef").mkdir()  # another folder's
    code, _, err = run(capsys, "--model_name", vit_folder, *PLAN, "--pruning_ratio", "0.3", "--output_dir",
                       str(out_dir))
    assert code == 2 and "--overwrite" in err.splitlines()[-1]
    assert f"put back {out_dir}" in err and "removed 1 leftover(s) of interrupted writes (.run.tmp-89abcdef)" in err
    assert _files(out_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run2.tmp-89abcdef", "run"]


BAD_INPUTS = [
    (["--pruning_ratio", "0"], "strictly between 0 and 1"),
    (["--pruning_ratio", "1"], "strictly between 0 and 1"),
    (["--pruning_ratio", "-0.2"], "strictly between 0 and 1"),
    (["--pruning_ratio", "0.5", "--pruning_steps", "0"], "pruning_steps must be an integer >= 1"),
    (["--pruning_ratio", "0.5", "--round_to", "0"], "round_to must be an integer >= 1"),
    (["--pruning_ratio", "0.5", "--round_to", "64"], "--round_to 64 is wider than"),
    (["--pruning_ratio", "0.5", "--pruning_type", "taylor"], "needs data for its gradients"),
    (["--pruning_ratio", "0.5", "--pruning_type", "hessian"], "needs data for its gradients"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_INPUTS)
def test_bad_input_is_one_clear_line(capsys, vit_folder, tmp_path, extra, message):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "--model_name", vit_folder, "--random_init", *extra, "--output_dir", str(out_dir))
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("no_such_model_xyz", "unknown model"),
        ("pvt_v2_b0", "unsupported architecture"),
        ("acme/not-on-this-machine", "could not read the config"),
    ],
)
def test_unknown_or_unsupported_model(capsys, model, message):
    code, _, err = run(capsys, "--model_name", model, "--random_init", "--pruning_ratio", "0.5")
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_folder_config(capsys, tmp_path):
    code, _, err = run(capsys, "--model_name", str(tmp_path), "--pruning_ratio", "0.5")
    assert code == 2 and "without config.json" in err


def test_taylor_with_synthetic_calibration(capsys, vit_folder):
    code, out, _ = run(capsys, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.5",
                       "--pruning_steps", "2", "--round_to", "4", "--pruning_type", "taylor",
                       "--calibration", "synthetic", "--taylor_batches", "2", "--batch_size", "4", "--json")
    assert code == 0 and len(json.loads(out)["levels"]) == 3


def test_taylor_with_real_data(capsys, vit_folder):
    code, out, _ = run(capsys, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.5",
                       "--pruning_steps", "2", "--round_to", "4", "--pruning_type", "taylor",
                       "--dataset_name", "digits", "--taylor_batches", "2", "--batch_size", "4", "--json",
                       "--num_labels", "10")
    assert code == 0 and len(json.loads(out)["levels"]) == 3
    code, _, err = run(capsys, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.5",
                       "--pruning_type", "taylor", "--dataset_name", "digits")
    assert code == 2 and "pass --num_labels 10" in err


def test_console_script_exit_code_and_no_traceback(vit_folder):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "elastoformer_hf", "plan", "--model_name", vit_folder,
                           "--pruning_ratio", "1.5"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("elastoformer plan: error: pruning_ratio")
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------ one declaration
def test_every_pruning_knob_has_one_default_everywhere(capsys, vit_folder, tmp_path):
    """PruningConfig, the trainer's arguments and `plan` take their defaults from one table; `plan` accepts the
    recipes' --model_name_or_path (--model_name stays as its old spelling)."""
    from elastoformer_hf.pruning.config import KNOBS, PruningConfig
    from elastoformer_hf.training import ElasticTrainingArguments

    args = ElasticTrainingArguments(output_dir=str(tmp_path), report_to="none")
    config = PruningConfig()
    for name, knob in KNOBS.items():
        assert getattr(config, name) == knob.default, name
        assert getattr(args.pruning_config, name) == knob.default, name
    code, out, _ = run(capsys, "--model_name_or_path", vit_folder, "--random_init", "--json")
    assert code == 0
    assert json.loads(out)["pruning"]["pruning_ratio"] == KNOBS["pruning_ratio"].default
    assert json.loads(out)["pruning"]["pruning_steps"] == KNOBS["pruning_steps"].default


def test_train_subcommand_is_the_recipe_parser(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "elastoformer train" in out
    assert all(flag in out for flag in ("--config", "--model_name_or_path", "--dataset_name", "--pruning_ratio",
                                        "--parent_config", "--learning_rate"))
    config = tmp_path / "bad.yaml"
    config.write_text("pruning_ratoi: 0.5\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "unknown keys: pruning_ratoi (did you mean pruning_ratio?)" in capsys.readouterr().err
    assert "train" in subprocess.run([sys.executable, "-m", "elastoformer_hf.cli", "--help"], capture_output=True,
                                     text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}).stdout


def test_version_names_the_package_and_its_stack(capsys):
    from elastoformer_hf import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first == f"elastoformer {__version__}"
    import transformers

    assert f"transformers {transformers.__version__}" in second and "torch-pruning " in second


# ------------------------------------------------------------------------------------ strict input validation
def run_or_exit(capsys, *argv):
    """``main(argv)``'s status, an argparse refusal (SystemExit) included, with stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, out, err, *words):
    """Status 2, no traceback, nothing on stdout; the error is one line (argparse puts its usage above it)
    that names the input and says what is accepted."""
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    line = err.strip().splitlines()[-1]
    assert line.startswith("elastoformer ") and ": error: " in line
    assert all(word in line for word in words), line


REFUSED_NUMBERS = [  # (finding) argv after the model, words of the error
    ("b", ["--image_size", "-5"], ["--image_size", ">= 1", "-5"]),
    ("b,i", ["--image_size", "0"], ["--image_size", ">= 1", "got 0"]),  # 0 was silently "the model's own"
    ("c", ["--batch_size", "0", "--pruning_type", "taylor", "--calibration", "synthetic"],
     ["--batch_size", ">= 1", "got 0"]),
    ("h", ["--num_labels", "0"], ["--num_labels", ">= 1", "got 0"]),  # planned a headless model
    ("h", ["--num_labels", "-1"], ["--num_labels", ">= 1", "got -1"]),
    ("j", ["--pruning_ratio", "0.999", "--pruning_steps", "50", "--round_to", "1"],
     ["identical levels", "DN1 = DN2", "fewer --pruning_steps", "smaller --pruning_ratio"]),
]


@pytest.mark.parametrize(("finding", "extra", "words"), REFUSED_NUMBERS,
                         ids=[f"{r[0]}:{' '.join(r[1][:2])}" for r in REFUSED_NUMBERS])
def test_plan_refuses_bad_numbers_before_writing(capsys, vit_folder, tmp_path, finding, extra, words):
    out_dir = tmp_path / "out"
    code, out, err = run_or_exit(capsys, "plan", "--model_name", vit_folder, "--random_init", "--pruning_ratio",
                                 "0.5", "--pruning_steps", "2", "--round_to", "4", *extra, "--output_dir", str(out_dir))
    assert_refused(code, out, err, *words)
    assert err.count("error:") == 1
    assert not out_dir.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["plan"], ["plan", "--overwrite"], ["train"]])
@pytest.mark.parametrize("where", ["file", "inside-a-file"])
def test_output_dir_naming_a_file_is_refused_and_the_file_kept(capsys, vit_folder, tmp_path, where, command):
    """Finding 8e: a file is never a run folder, not even with --overwrite (which replaced it, or failed with a
    traceback, or called it 'not empty'); `train` failed in Trainer's makedirs."""
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    out_dir = target if where == "file" else target / "run"
    if command[0] == "plan":
        argv = [*command, "--model_name", vit_folder, "--random_init", "--pruning_ratio", "0.5", "--pruning_steps",
                "2", "--round_to", "4"]
    else:
        argv = ["train", "--model_name_or_path", vit_folder, "--random_init", "--dataset_name", "dummy"]
    code, out, err = run_or_exit(capsys, *argv, "--output_dir", str(out_dir))
    assert_refused(code, out, err, "output_dir", str(out_dir), "a file", "give a folder")
    assert err.count("\n") == 1
    assert target.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.fixture
def broken_imagefolder(tmp_path, monkeypatch):
    """An imagefolder whose train/cat/ holds a text file named .jpg; the datasets cache goes to tmp_path."""
    import datasets
    import numpy as np
    from PIL import Image

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "images"
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(root / split / cls / f"{i}.jpg")
    bad = root / "train" / "cat" / "broken.jpg"
    bad.write_text("this is not a JPEG")
    return root, bad


def test_a_non_image_file_in_an_imagefolder_is_named_in_one_line(capsys, vit_folder, broken_imagefolder, tmp_path):
    """Finding 8a: the file that does not decode is named (it was a PIL traceback from inside datasets)."""
    root, bad = broken_imagefolder
    out_dir = tmp_path / "out"
    code, out, err = run_or_exit(capsys, "plan", "--model_name", vit_folder, "--random_init", "--pruning_ratio",
                                 "0.5", "--pruning_steps", "2", "--round_to", "4", "--pruning_type", "taylor",
                                 "--dataset_name", "imagefolder", "--data_path", str(root), "--num_labels", "2",
                                 "--batch_size", "4", "--taylor_batches", "2", "--output_dir", str(out_dir))
    assert_refused(code, out, err, str(bad), "cannot be read as an image", "remove or replace it")
    assert err.count("error:") == 1 and not out_dir.exists()  # (above it: datasets' progress bars)


def test_training_settings_are_validated_before_they_are_recorded(capsys, hf_vit_dir, tmp_path):
    """Findings 8d and 8g: `--learning_rate -1` is refused in one line before the run folder exists (it used to
    record elastic_run.json, then fail in torch's optimizer); the corrected re-run into the same folder then
    trains instead of being refused as "a run with other settings"."""
    out_dir = tmp_path / "run"
    argv = ["train", "--model_name_or_path", str(hf_vit_dir), "--random_init", "--dataset_name", "dummy",
            "--dummy_num_classes", "5", "--dummy_image_size", "32", "--max_train_samples", "8",
            "--max_eval_samples", "8", "--per_device_train_batch_size", "8", "--max_steps", "1", "--pruning_steps",
            "1", "--round_to", "4", "--save_strategy", "no", "--report_to", "none", "--use_cpu", "true",
            "--save_family", "false", "--output_dir", str(out_dir)]
    for bad, words in ((["--learning_rate", "-1"], ["learning_rate must be > 0", "got -1"]),
                       (["--per_device_train_batch_size", "0"], ["per_device_train_batch_size", ">= 1", "got 0"])):
        code, out, err = run_or_exit(capsys, *argv, *bad)
        assert_refused(code, out, err, *words)
        assert err.count("\n") == 1 and not out_dir.exists()
    code, _, err = run_or_exit(capsys, *argv)
    assert code == 0, err
    assert json.loads((out_dir / "elastic_run.json").read_text())["training"]["learning_rate"] > 0


@pytest.mark.parametrize("command", ["plan", "push", "bench", "export", "estimate"])
def test_help_is_plain_text(command, capsys):
    """--help shows the module docstring's text without reST's double backticks."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "usage: elastoformer" in out
