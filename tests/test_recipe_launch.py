"""The full-scale recipes start unchanged under ``accelerate launch``: only the model, the data (dummy) and the
sizes are overridden on the command line, as a user would shrink them for a smoke test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import ViTConfig

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--dataset_name", "dummy", "--dummy_num_classes", "10", "--dummy_image_size", "32",
         "--max_train_samples", "32", "--max_eval_samples", "16", "--per_device_train_batch_size", "8",
         "--per_device_eval_batch_size", "8", "--max_steps", "1", "--bf16", "false", "--use_cpu", "true",
         "--dataloader_num_workers", "0", "--save_strategy", "no", "--save_family", "false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(script: str | list[str], config: str, out: Path, processes: int, *extra: str
            ) -> subprocess.CompletedProcess:
    """``accelerate launch`` a recipe script, or a module with its arguments (``["-m", "elastoformer_hf.cli",
    "train"]``)."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--num_processes", str(processes), "--main_process_port", str(_free_port())]
    launcher += ["--multi_gpu"] if processes > 1 else ["--cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "HF_HOME": str(out.parent / "hf_home")}
    target = [str(ROOT / "recipes" / script)] if isinstance(script, str) else script
    cmd = [*launcher, *target, "--config", str(ROOT / "recipes" / "configs" / config),
           *SMALL, "--output_dir", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


@pytest.fixture
def tiny_vit_dir(tmp_path) -> Path:
    folder = tmp_path / "tiny-vit"
    ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
              patch_size=8, num_labels=10, architectures=["ViTForImageClassification"]).save_pretrained(folder)
    return folder


def _levels(out: Path) -> list[int]:
    summary = json.loads((out / "elastic_summary.json").read_text())
    return [lv["level"] for lv in summary["levels"]]


def test_deit_reference_recipe_starts_under_two_processes(tmp_path, tiny_vit_dir):
    out = tmp_path / "deit"
    proc = _launch("deit.py", "deit_base_imagenet.yaml", out, 2, "--model_name_or_path", str(tiny_vit_dir),
                   "--random_init", "true")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert _levels(out) == [1, 2, 3, 4, 5, 6]  # the recipe's own 5 steps, RA/Mixup/EMA/drop path all on
    run = json.loads((out / "elastic_run.json").read_text())
    assert run["training"]["ra_sampler"] and run["training"]["model_ema"] and run["training"]["mixup_alpha"] == 0.8


def test_cnn_recipe_starts_under_accelerate(tmp_path):
    out = tmp_path / "cnn"
    proc = _launch("cnn.py", "resnet50_imagenet.yaml", out, 1, "--model_name_or_path", "resnet18",
                   "--random_init", "true", "--pruning_steps", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert _levels(out) == [1, 2]


def test_train_subcommand_is_the_same_run_as_the_recipe_script(tmp_path):
    """``accelerate launch -m elastoformer_hf.cli train`` shares the recipe's parser and run: the same settings and the
    same plan (levels, widths, costs; which channels are kept depends on the random initial weights) as
    ``recipes/cnn.py`` with the same arguments."""
    extra = ("--model_name_or_path", "resnet18", "--random_init", "true", "--pruning_steps", "1")
    by_script = _launch("cnn.py", "resnet50_imagenet.yaml", tmp_path / "script", 1, *extra)
    by_command = _launch(["-m", "elastoformer_hf.cli", "train"], "resnet50_imagenet.yaml", tmp_path / "command", 1,
                         *extra)
    assert by_script.returncode == 0, by_script.stderr[-4000:]
    assert by_command.returncode == 0, by_command.stderr[-4000:]
    def read(run: str, name: str) -> dict:
        data = json.loads((tmp_path / run / name).read_text())
        for level in data.get("levels", []):
            level.pop("kept", None)
        return data

    for name in ("elastic_run.json", "elastic_plan.json"):
        assert read("script", name) == read("command", name)
    assert _levels(tmp_path / "command") == [1, 2]
