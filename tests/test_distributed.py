"""Two real processes (DDP over gloo, on CPU) through ``accelerate launch``: the tiny elastic run of test_trainer.

``accelerate launch --cpu --num_processes 2`` silently starts ONE process; ``--multi_gpu`` with no visible GPU
starts two workers that join a gloo process group (accelerate's MULTI_CPU), which is what a two-GPU run does
except for the backend.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from elastoformer_hf.nesting.levels import (
    extract_nested,
    level_specific_names,
    nested_positions,
    original_indices,
)
from elastoformer_hf.pruning.record import ElasticPlan
from elastoformer_hf.pruning.replay import apply_level
from elastoformer_hf.run_folder import read_level_info
from elastoformer_hf.training.trainer import _load_level

SCRIPT = Path(__file__).parent / "scripts" / "tiny_elastic_run.py"
sys.path.insert(0, str(SCRIPT.parent))
from tiny_elastic_run import tiny_vit  # noqa: E402

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with gloo")

STEPS, BATCH, TRAIN_IMAGES = 2, 16, 256  # the script trains on 256 digits


#: planted before the two-process run (relative to the folder that holds its run folder)
LEFTOVERS = ("run/.elastic_run.json.tmp-0123abcd", "run/.dn1.tmp-0123abcd", ".run.tmp-0123abcd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path, tmp: Path, *overrides: str, timeout: int = 300, ok: bool = True) -> tuple[str, str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp / "hf_home")}  # no user default_config.yaml of accelerate's can interfere
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(SCRIPT), str(out), *overrides]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the launcher forwards it to the workers (they run in their own sessions)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"the two-process run did not finish in {timeout} s:\n{stderr[-3000:]}")
    assert (proc.returncode == 0) == ok, f"exit status {proc.returncode}\nstdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-4000:]}"
    return stdout, stderr


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"')]  # not Trainer's log dicts


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    out = tmp / "run"
    for leftover in LEFTOVERS:  # what a killed run left: removed by rank 0 alone, before anything is written
        (tmp / leftover).parent.mkdir(parents=True, exist_ok=True)
        (tmp / leftover).write_text("{}")
    # RepeatAugSampler + Mixup/CutMix: the sampler shards by itself and the trainer undoes accelerate's sharding
    stdout, stderr = _launch(out, tmp, f"max_steps={STEPS}", f"per_device_train_batch_size={BATCH}",
                             'save_strategy="no"', "ra_sampler=true", "mixup_alpha=0.8", "cutmix_alpha=1.0",
                             "report_ranks=true")
    return out, _json_lines(stdout), stderr


def test_two_ranks_train_in_sync(two_process_run):
    out, lines, _ = two_process_run
    final = [line for line in lines if "levels" in line]
    assert final == [{"world_size": 2, "levels": 3}], lines  # printed by rank 0 only
    ranks = {line["rank"]: line for line in lines if "rank" in line}
    assert sorted(ranks) == [0, 1] and all(r["world_size"] == 2 for r in ranks.values()), lines
    # DDP keeps the replicas equal: both ranks end with the same weights of the last level
    assert ranks[0]["weights"] == ranks[1]["weights"]
    # each rank trains on its half of an epoch: RepeatAugSampler gives a rank len/world (timm's epoch) images;
    # sharding them again (accelerate's BatchSamplerShard) would halve the epoch and double this
    assert ranks[0]["epoch"] == ranks[1]["epoch"] == pytest.approx(STEPS * BATCH * 2 / TRAIN_IMAGES)


def test_family_is_written_once(two_process_run):
    out, _, stderr = two_process_run
    for k in (1, 2, 3):
        info = read_level_info(out / f"dn{k}")
        assert info["trained"] is True and info["level"] == k and 0 <= info["metrics"]["eval_accuracy"] <= 1
    assert not (out / "dn4").exists()
    assert len(json.loads((out / "elastic_summary.json").read_text())["levels"]) == 3
    assert stderr.count("planning the levels") == 1  # rank 0 plans, rank 1 reads its plan


def test_leftovers_are_removed_once(two_process_run):
    out, _, stderr = two_process_run
    assert not [name for name in LEFTOVERS if (out.parent / name).exists()]
    assert stderr.count("removed 3 leftover(s) of interrupted writes") == 1, stderr[-3000:]
    assert "could not" not in stderr and "Traceback" not in stderr


def test_levels_nest_exactly_under_ddp(two_process_run):
    """The frozen blocks held under DDP: level k taken out of the trained level k+1 is the trained level k."""
    out, _, _ = two_process_run
    dense, plan = tiny_vit(10), ElasticPlan.load(out)
    levels = {k: _load_level(out / f"dn{k}", apply_level(copy.deepcopy(dense), plan, k)).eval() for k in (1, 2, 3)}
    indices = {k: original_indices(dense, plan, k) for k in (1, 2, 3)}
    x = torch.randn(4, 3, 32, 32)
    untrained_core = apply_level(copy.deepcopy(dense), plan, 1).eval()
    with torch.no_grad():
        assert not torch.allclose(levels[1](x).logits, untrained_core(x).logits, atol=1e-4)  # the core did train
    for small_k, big_k in ((1, 2), (2, 3), (1, 3)):
        small = levels[small_k]
        positions = nested_positions(indices[small_k], indices[big_k])
        own = {n: t for n, t in small.state_dict().items() if n in level_specific_names(small)}
        extracted = extract_nested(levels[big_k], apply_level(copy.deepcopy(dense), plan, small_k), positions, own)
        with torch.no_grad():
            torch.testing.assert_close(extracted.eval()(x).logits, small(x).logits, atol=1e-6, rtol=0)


def test_ranks_that_did_not_join_are_refused(tmp_path):
    """Without a GPU, TrainingArguments join the launched processes only with use_cpu=True; otherwise every rank
    would train alone (world size 1) and write the same output_dir."""
    out = tmp_path / "run"
    _, stderr = _launch(out, tmp_path, "max_steps=1", "use_cpu=false", ok=False)
    assert stderr.count("launched as 2 processes, but the training arguments did not join them") == 2
    assert not out.exists()
