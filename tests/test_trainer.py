"""ElasticTrainer on a tiny ViT and real data (sklearn digits): the family, its nesting, resume and the knobs."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from datasets import __version__ as datasets_version
from packaging.version import Version
from safetensors.torch import load_file

from elastoformer_hf.data import build_transforms, load_image_datasets, with_transforms
from elastoformer_hf.errors import ElastoformerError, SettingError
from elastoformer_hf.nesting import build_family
from elastoformer_hf.nesting.levels import (
    FrozenBlocks,
    extract_nested,
    grow_level,
    kept_mask,
    level_specific_names,
    nested_positions,
    new_mask,
    original_indices,
)
from elastoformer_hf.pruning.record import ElasticPlan
from elastoformer_hf.pruning.replay import apply_level
from elastoformer_hf.run_folder import read_level_info
from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments
from elastoformer_hf.training.trainer import _load_level

SCRIPT = Path(__file__).parent / "scripts" / "tiny_elastic_run.py"
sys.path.insert(0, str(SCRIPT.parent))
from tiny_elastic_run import tiny_vit  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    train, evaluation, names = load_image_datasets("digits", max_train_samples=256, max_eval_samples=128)
    transform = build_transforms(32, is_training=False, crop_pct=1.0)
    return with_transforms(train, transform), with_transforms(evaluation, transform), names


def make_args(out, **overrides) -> ElasticTrainingArguments:
    settings = dict(output_dir=str(out), pruning_ratio=0.5, pruning_steps=2, round_to=1, max_steps=4,
                    per_device_train_batch_size=16, per_device_eval_batch_size=64, learning_rate=1e-3,
                    weight_decay=0.05, save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True)
    settings.update(overrides)
    return ElasticTrainingArguments(**settings)


@pytest.fixture(scope="module")
def family(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("family") / "run"
    train, evaluation, names = digits
    trainer = ElasticTrainer(model=tiny_vit(len(names)), args=make_args(out), train_dataset=train,
                             eval_dataset=evaluation, label_names=names)
    summary = trainer.train()
    return out, summary


def _level_model(out: Path, k: int):
    dense = tiny_vit(10)
    plan = ElasticPlan.load(out)
    return _load_level(out / f"dn{k}", apply_level(copy.deepcopy(dense), plan, k)), dense, plan


def test_family_is_written_with_metrics(family):
    out, summary = family
    assert [lv["level"] for lv in summary["levels"]] == [1, 2, 3]
    params = [lv["params"] for lv in summary["levels"]]
    assert params == sorted(params) and len(set(params)) == 3
    for k in (1, 2, 3):
        info = read_level_info(out / f"dn{k}")
        assert info["trained"] is True and 0 <= info["metrics"]["eval_accuracy"] <= 1
    assert json.loads((out / "elastic_summary.json").read_text()) == summary
    assert not (out / "checkpoints" / "dn1").exists()  # level checkpoints go once dn{k}/ is written


def test_every_level_records_its_agreement_with_the_full_level(family):
    """The levels' consistency (no benchmark reports it): top-1 agreement with the full and next level and the worst
    class against the full level, measured on the evaluation set, in each level's record, the summary and cards."""
    out, summary = family
    records = [read_level_info(out / f"dn{k}") for k in (1, 2, 3)]
    for k, record in enumerate(records, 1):
        c = record["consistency"]
        assert 0.0 <= c["agreement_full"] <= 1.0 and c["worst_class"] in [str(i) for i in range(10)]
        assert (c["agreement_next"] is None) == (k == 3)
    assert records[2]["consistency"]["agreement_full"] == 1.0  # the full level agrees with itself
    assert summary["levels"][0]["consistency"] == records[0]["consistency"]
    assert "Agrees with full (%)" in (out / "dn1" / "README.md").read_text()
    assert "**Consistency:** the same top-1 class as the full level" in (out / "dn1" / "README.md").read_text()


def test_levels_nest_exactly(family):
    """Level k taken out of the final level k+1 (plus its own classifier and tokens) is the trained level k."""
    out, _ = family
    x = torch.randn(4, 3, 32, 32)
    for small_k, big_k in ((1, 2), (2, 3), (1, 3)):
        small, dense, plan = _level_model(out, small_k)
        big, _, _ = _level_model(out, big_k)
        small_idx = original_indices(dense, plan, small_k)
        positions = nested_positions(small_idx, original_indices(dense, plan, big_k))
        own = {n: t for n, t in small.state_dict().items() if n in level_specific_names(small)}
        assert own, "a ViT level keeps its own classifier and tokens"
        extracted = extract_nested(big, apply_level(copy.deepcopy(dense), plan, small_k), positions, own)
        with torch.no_grad():
            torch.testing.assert_close(extracted(x).logits, small(x).logits, atol=1e-6, rtol=0)


def test_levels_load_with_stock_transformers(family):
    from transformers import AutoModelForImageClassification

    out, _ = family
    model = AutoModelForImageClassification.from_pretrained(out / "dn1")
    trained, _, _ = _level_model(out, 1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, trained(x).logits)


def test_rerun_skips_finished_levels(family, digits, capsys):
    out, summary = family
    mtimes = {k: (out / f"dn{k}" / "model.safetensors").stat().st_mtime for k in (1, 2, 3)}
    train, evaluation, names = digits
    again = ElasticTrainer(model=tiny_vit(10), args=make_args(out), train_dataset=train, eval_dataset=evaluation,
                           label_names=names).train()
    assert again == summary
    assert {k: (out / f"dn{k}" / "model.safetensors").stat().st_mtime for k in (1, 2, 3)} == mtimes
    assert "dn1 is already trained" in capsys.readouterr().err


def test_other_settings_are_refused(family, digits):
    out, _ = family
    train, evaluation, names = digits
    trainer = ElasticTrainer(model=tiny_vit(10), args=make_args(out, learning_rate=5e-4), train_dataset=train,
                             eval_dataset=evaluation, label_names=names)
    with pytest.raises(ElastoformerError, match="learning_rate"):
        trainer.train()


def test_other_data_is_refused_and_the_run_records_it(family, digits):
    """The data is part of the run's identity: resuming on another subset (or other files) trains the remaining
    levels on other data, so it is refused like any other setting; the run records what it learnt from."""
    out, _ = family
    train, evaluation, names = digits
    recorded = json.loads((out / "elastic_run.json").read_text())["data"]
    assert recorded["train_rows"] == 256 and recorded["eval_rows"] == 128 and recorded["image_size"] == 32
    trainer = ElasticTrainer(model=tiny_vit(10), args=make_args(out), train_dataset=train.select(range(200)),
                             eval_dataset=evaluation, label_names=names)
    with pytest.raises(ElastoformerError, match="train_rows: 256 -> 200"):
        trainer.train()


def test_a_refused_plan_records_no_settings_and_the_corrected_run_trains(digits, tmp_path):
    """Finding 8g: the settings are recorded once they are accepted; a schedule refused when planning (identical
    levels) used to leave elastic_run.json behind, and the corrected re-run was refused as "other settings"."""
    out = tmp_path / "run"
    train, evaluation, names = digits
    refused = ElasticTrainer(model=tiny_vit(len(names)), args=make_args(out, pruning_steps=16, round_to=8),
                             train_dataset=train, eval_dataset=evaluation, label_names=names)
    with pytest.raises(ElastoformerError, match="identical levels"):
        refused.train()
    assert not (out / "elastic_run.json").exists() and not (out / "elastic_plan.json").exists()
    summary = ElasticTrainer(model=tiny_vit(len(names)), args=make_args(out), train_dataset=train,
                             eval_dataset=evaluation, label_names=names).train()
    assert [lv["level"] for lv in summary["levels"]] == [1, 2, 3]
    assert json.loads((out / "elastic_run.json").read_text())["pruning"]["pruning_steps"] == 2


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(learning_rate=-1.0), "learning_rate must be > 0, got -1.0"),
    (dict(learning_rate=0.0), "learning_rate must be > 0, got 0.0"),
    (dict(per_device_train_batch_size=0), "per_device_train_batch_size must be an integer >= 1, got 0"),
    (dict(per_device_eval_batch_size=-2), "per_device_eval_batch_size must be an integer >= 1, got -2"),
    (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps must be an integer >= 1, got 0"),
    (dict(num_train_epochs=-1.0, max_steps=-1), r"num_train_epochs must be > 0 \(or max_steps > 0\), got -1.0"),
    (dict(weight_decay=-0.1), "weight_decay must be >= 0, got -0.1"),
    (dict(adam_beta2=1.5), r"adam_beta1 and adam_beta2 must be in \[0, 1\), got 0.9, 1.5"),
    (dict(adam_epsilon=-1e-8), "adam_epsilon must be >= 0"),
    (dict(max_grad_norm=-1.0), "max_grad_norm must be >= 0"),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else None)
def test_invalid_trainer_numbers_are_refused_when_the_arguments_are_made(tmp_path, overrides, message):
    """Finding 8d: TrainingArguments leaves these unchecked; they failed in torch after the run had recorded them
    (or trained nothing)."""
    with pytest.raises(SettingError, match=message):
        make_args(tmp_path / "run", **overrides)
    assert not (tmp_path / "run").exists()


def test_output_dir_naming_a_file_is_refused(tmp_path):
    """Finding 8e: the run folder cannot be a file (Trainer's makedirs failed with a traceback)."""
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    for out in (target, target / "run"):
        with pytest.raises(SettingError, match=f"output_dir '{re.escape(str(out))}' (is a file|is inside .*, a file)"):
            make_args(out)
    assert target.read_text() == "keep me"


def test_a_local_base_model_is_recorded_by_its_place_in_the_run(digits, tmp_path):
    """A base model from a folder inside the run is named by its place there ("parent"), whatever way the run is
    reached: the same run given by another path resumes; no absolute path of this machine is recorded."""
    from elastoformer_hf.base_model import load_base_model

    train, evaluation, names = digits
    out = tmp_path / "run"
    tiny_vit(len(names)).save_pretrained(out / "parent")
    args = dict(max_steps=1, pruning_steps=1)
    ElasticTrainer(model=load_base_model(str(out / "parent")), args=make_args(out, **args), train_dataset=train,
                   eval_dataset=evaluation, label_names=names).train()
    level = json.loads((out / "dn1" / "elastic_level.json").read_text())
    assert level["model_name"] == "parent" and level["base_model"]["name"] == "parent"
    assert str(tmp_path) not in (out / "elastic_run.json").read_text()
    relative = Path(os.path.relpath(out / "parent"))  # the same folder, reached another way
    again = ElasticTrainer(model=load_base_model(str(relative)), args=make_args(os.path.relpath(out), **args),
                           train_dataset=train, eval_dataset=evaluation, label_names=names).train()
    assert [lv["level"] for lv in again["levels"]] == [1, 2]


def test_shared_classifier_nests_and_old_runs_resume(digits, tmp_path, capsys):
    """share_classifier: the classifier weight nests like every other layer (dn1's is the prefix of dn2's, the
    new columns trained), the bias stays per level; level k taken out of level k+1 plus its own tensors gives
    level k's logits. The setting is recorded, the family stores the weight once, and a run folder written
    before the option existed (no share_classifier in elastic_run.json) still resumes."""

    out = tmp_path / "run"
    trainer = _trainer(digits, out, share_classifier=True, max_steps=2, eval_strategy="no")
    trainer.eval_dataset = None
    trainer.train()
    assert json.loads((out / "elastic_run.json").read_text())["training"]["share_classifier"] is True
    assert read_level_info(out / "dn2")["share_classifier"] is True
    x = torch.randn(4, 3, 32, 32)
    for small_k, big_k in ((1, 2), (2, 3), (1, 3)):
        small, dense, plan = _level_model(out, small_k)
        big, _, _ = _level_model(out, big_k)
        positions = nested_positions(original_indices(dense, plan, small_k), original_indices(dense, plan, big_k))
        names = level_specific_names(small, share_classifier=True)
        assert "classifier.bias" in names and "classifier.weight" not in names
        w_small, w_big = small.classifier.weight, big.classifier.weight
        kept = kept_mask(positions["classifier.weight"], w_big.shape)
        assert torch.equal(w_big[kept], w_small.flatten()) and not torch.equal(small.classifier.bias, big.classifier.bias)
        if big_k == plan.num_levels:  # the full level: positions are original indices
            assert not torch.equal(w_big[~kept], dense.classifier.weight[~kept])  # the new columns trained
        extracted = extract_nested(big, apply_level(copy.deepcopy(dense), plan, small_k), positions, small,
                                   share_classifier=True)
        with torch.no_grad():
            torch.testing.assert_close(extracted(x).logits, small(x).logits, atol=1e-6, rtol=0)
        per_level = extract_nested(big, apply_level(copy.deepcopy(dense), plan, small_k), positions, small)
        assert torch.equal(per_level.classifier.weight, small.classifier.weight)  # per level: its own copy
    family = build_family(out)  # checks every level's logits against its dn{k}/
    assert "classifier.weight" in family.layout.shared and "classifier.bias" in family.layout.own
    assert family.info["share_classifier"] is True
    # an older run folder: the settings file predates the option; resuming it is not "other settings"
    settings = json.loads((out / "elastic_run.json").read_text())
    del settings["training"]["share_classifier"]
    (out / "elastic_run.json").write_text(json.dumps(settings))
    with pytest.raises(ElastoformerError, match="share_classifier"):  # recorded as False: True is another run
        _trainer(digits, out, share_classifier=True, max_steps=2).train()
    mtime = (out / "dn3" / "model.safetensors").stat().st_mtime
    resumed = _trainer(digits, out, max_steps=2, eval_strategy="no")
    resumed.eval_dataset = None  # the same data as the run was started with
    resumed.train()
    assert "dn3 is already trained" in capsys.readouterr().err
    assert (out / "dn3" / "model.safetensors").stat().st_mtime == mtime


def _grown(mixed_init: str):
    dense = tiny_vit(10)
    from elastoformer_hf.nesting.levels import random_like
    from elastoformer_hf.pruning.config import PruningConfig
    from elastoformer_hf.pruning.planner import plan_levels

    plan = plan_levels(dense, PruningConfig(pruning_ratio=0.5, pruning_steps=1, round_to=1))
    small = apply_level(copy.deepcopy(dense), plan, 1)
    with torch.no_grad():
        for p in small.parameters():
            p.add_(1.0)  # "trained": distinguishable from the pre-trained weights
    big = apply_level(copy.deepcopy(dense), plan, 2)
    positions = nested_positions(original_indices(dense, plan, 1), original_indices(dense, plan, 2))
    source = random_like(big, seed=1) if mixed_init == "random" else None
    frozen = grow_level(small, big, positions, mixed_init=mixed_init, random_source=source)
    return dense, small, big, positions, frozen


@pytest.mark.parametrize("mixed_init", ["pretrained", "random"])
def test_grow_level_blocks(mixed_init):
    dense, small, big, positions, _ = _grown(mixed_init)
    name = "vit.layers.0.mlp.fc1.weight"  # mlp rows x hidden columns: has all three blocks
    w, pos = big.state_dict()[name], positions[name]
    kept, new = kept_mask(pos, w.shape), new_mask(pos, w.shape)
    mixed = ~kept & ~new
    assert kept.any() and new.any() and mixed.any()
    torch.testing.assert_close(w[kept], small.state_dict()[name].flatten())
    pretrained = dense.state_dict()[name]  # the dense level: big's positions are original indices
    torch.testing.assert_close(w[new], pretrained[new])
    assert torch.equal(w[mixed], pretrained[mixed]) == (mixed_init == "pretrained")


@pytest.mark.parametrize("hooks", [True, False])
def test_frozen_block_never_moves_under_weight_decay(hooks):
    """Per-tensor gradient hooks and the fused ``mask_gradients`` (what ElasticTrainer calls after backward) zero
    the same gradients; the fused ``restore`` puts every frozen entry back exactly and leaves the rest alone."""
    _, small, big, positions, frozen = _grown("pretrained")
    frozen.install(hooks=hooks)
    optimizer = torch.optim.AdamW([p for p in big.parameters() if p.requires_grad], lr=0.1, weight_decay=0.5)
    optimizer.register_step_post_hook(frozen.restore)
    before = copy.deepcopy(big.state_dict())
    big.train()
    name = "vit.layers.0.attention.q_proj.weight"
    param = dict(big.named_parameters())[name]
    kept = kept_mask(positions[name], param.shape)
    for _ in range(3):
        big(torch.randn(4, 3, 32, 32)).logits.square().mean().backward()
        if not hooks:
            assert param.grad[kept].abs().sum() > 0  # nothing masked them yet
            frozen.mask_gradients()
        assert torch.equal(param.grad[kept], torch.zeros_like(param.grad[kept]))
        assert param.grad[~kept].abs().sum() > 0
        trained = param.detach()[~kept].clone()
        optimizer.step()
        moved = param.detach()[~kept].clone()
        frozen.restore()  # again: trainable entries are untouched by a restore
        assert torch.equal(param.detach()[~kept], moved) and not torch.equal(moved, trained)
        optimizer.zero_grad()
    frozen.remove()
    assert all(torch.equal(p.detach()[mask], values) for p, mask, values in frozen.entries)
    after = big.state_dict()
    assert torch.equal(after[name][kept], before[name][kept])
    assert not torch.equal(after[name][~kept], before[name][~kept])
    assert isinstance(frozen, FrozenBlocks) and frozen.num_frozen > 0


def _trainer(digits, out, **overrides):
    train, evaluation, names = digits
    return ElasticTrainer(model=tiny_vit(len(names)), args=make_args(out, **overrides), train_dataset=train,
                          eval_dataset=evaluation, label_names=names)


def test_mixed_precision_levels_save_as_plain_fp32(digits, tmp_path):
    """bf16 autocast (CPU here; the same accelerate wrapper on CUDA) trains every level; the saved levels are fp32
    and reload to the logits of the trained modules, which keep no autocast wrapper on their forward."""
    out = tmp_path / "bf16"
    trainer = _trainer(digits, out, bf16=True, max_steps=2, pruning_steps=1)
    summary = trainer.train()
    assert [lv["level"] for lv in summary["levels"]] == [1, 2]
    weights = load_file(str(out / "dn1" / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    assert "_original_forward" not in vars(trainer.model)  # the last level trained, unwrapped


def test_loss_knobs_change_the_loss(digits, tmp_path):
    batch = next(iter(torch.utils.data.DataLoader(digits[0], batch_size=8, collate_fn=_collate)))

    def loss(**overrides):
        trainer = _trainer(digits, tmp_path / "x", **overrides)
        model = copy.deepcopy(trainer.dense).train()
        torch.manual_seed(0)
        return trainer.compute_loss(model, dict(batch)).item()

    plain = loss(distillation_teacher="none")
    assert loss(distillation_teacher="none", label_smoothing=0.3) != pytest.approx(plain)
    assert loss(distillation_alpha=1.0) == pytest.approx(0.0, abs=1e-5)  # the student is the teacher
    assert loss(distillation_alpha=0.5) == pytest.approx(plain / 2, rel=1e-4)


def _collate(rows):
    return {"pixel_values": torch.stack([r["pixel_values"] for r in rows]),
            "labels": torch.tensor([r["labels"] for r in rows])}


def test_mixup_and_ra_sampler_knobs(digits, tmp_path):
    from timm.data.distributed_sampler import RepeatAugSampler

    trainer = _trainer(digits, tmp_path / "x", mixup_alpha=0.8, cutmix_alpha=1.0, ra_sampler=True, ra_reps=3)
    batch = trainer.data_collator([digits[0][i] for i in range(8)])
    assert batch["labels"].shape == (8, 10) and batch["labels"].is_floating_point()
    assert trainer._eval_collator([digits[0][i] for i in range(8)])["labels"].dtype == torch.long
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, RepeatAugSampler) and sampler.num_repeats == 3
    with pytest.raises(ElastoformerError, match="data_collator"):
        ElasticTrainer(model=tiny_vit(10), args=make_args(tmp_path / "y", mixup_alpha=0.8), train_dataset=digits[0],
                       data_collator=_collate)


def test_core_epochs_weight_decay_ema_and_stochastic_depth(digits, tmp_path, monkeypatch):
    """core_epochs sets the core's length, core_weight_decay its decay, model_ema the saved weights, and
    stochastic_depth hooks every level's residual branches while it trains (and only then)."""
    from elastoformer_hf.training import drop_path
    from elastoformer_hf.training import trainer as trainer_module

    applied = []
    original_apply = drop_path.apply_stochastic_depth

    def spy_apply(model, rate):
        handle = original_apply(model, rate)
        applied.append((rate, handle))
        return handle

    monkeypatch.setattr(trainer_module, "apply_stochastic_depth", spy_apply)
    runs = {}
    for ema in (False, True):
        out = tmp_path / f"ema{ema}"
        trainer = _trainer(digits, out, max_steps=-1, num_train_epochs=1, core_epochs=2, core_weight_decay=0.3,
                           pruning_steps=1, model_ema=ema, model_ema_decay=0.5, save_strategy="epoch",
                           keep_level_checkpoints=True, per_device_train_batch_size=64,
                           stochastic_depth=0.2 if ema else 0.0)
        decays = []
        original = trainer.create_optimizer

        def spy(model=None, original=original, decays=decays):
            optimizer = original(model)
            decays.append(max(g["weight_decay"] for g in optimizer.param_groups))
            return optimizer

        trainer.create_optimizer = spy
        trainer.train()
        assert decays == [0.3, 0.05]
        steps = {k: json.loads((out / "checkpoints" / f"dn{k}" / sorted(os.listdir(out / "checkpoints" / f"dn{k}"))[-1]
                                / "trainer_state.json").read_text())["global_step"] for k in (1, 2)}
        assert steps == {1: 8, 2: 4}  # 256 images / 64 = 4 steps an epoch; the core trains 2 epochs
        ckpt = out / "checkpoints" / "dn1" / "checkpoint-8"
        assert (ckpt / "ema.safetensors").is_file() == ema
        runs[ema] = load_file(out / "dn1" / "model.safetensors")
    assert any(not torch.equal(runs[True][k], runs[False][k]) for k in runs[True])
    assert [rate for rate, _ in applied] == [0.2, 0.2]  # one per level, only in the run that asked for it
    assert all(handle.rates and handle.rates[-1] == 0.2 and handle.num_hooks == 0 for _, handle in applied)


def _run_script(out, *extra, wait_for=None, timeout=240):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), str(out), "max_steps=12", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if wait_for is None:
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, stderr[-3000:]
        return stderr
    deadline = time.time() + timeout
    while not wait_for.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "the run never reached the kill point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    return proc.communicate()[1]


def test_kill_and_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    # killed mid-core, right after its second checkpoint
    _run_script(out, wait_for=out / "checkpoints" / "dn1" / "checkpoint-2" / "trainer_state.json")
    assert not (out / "dn1").exists()
    # killed mid-dn2: the core finished and was saved
    _run_script(out, wait_for=out / "checkpoints" / "dn2" / "checkpoint-3" / "trainer_state.json")
    assert (out / "dn1").is_dir() and not (out / "dn2").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".dn")], "no half-written dn folder is left visible"
    dn1_mtime = (out / "dn1" / "model.safetensors").stat().st_mtime
    stderr = _run_script(out)
    assert "dn1 is already trained" in stderr
    # from checkpoint-3, or checkpoint-2 when the kill cut checkpoint-3's trainer_state.json short
    resumed = re.search(r"dn2: resuming from \S*checkpoint-(\d+)", stderr)
    assert resumed and int(resumed.group(1)) >= 2, stderr[-3000:]
    assert (out / "dn1" / "model.safetensors").stat().st_mtime == dn1_mtime
    assert all((out / f"dn{k}" / "elastic_level.json").is_file() for k in (1, 2, 3))
    state = json.loads((out / "elastic_summary.json").read_text())
    assert len(state["levels"]) == 3


def test_kills_around_the_ema_file_resume_bit_exact(tmp_path):
    """With model_ema, a checkpoint is complete once its EMA is saved and then its marker: a run killed after
    Trainer's files of a checkpoint but before its EMA (in the core), and one killed after the EMA but before the
    marker (in dn2), resume from the checkpoint before (EMA included, never restarted) and end with the weights of
    an uninterrupted run, bit for bit. The script pauses around the EMA of every checkpoint-3, so both kills land in
    their gap."""
    from elastoformer_hf.training.trainer import COMPLETE_FILE, EMA_FILE

    settings = ("max_steps=4", "pruning_steps=1", "model_ema=true", "model_ema_decay=0.5")  # two levels
    whole, out = tmp_path / "whole", tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = tmp_path / "whole.log"
    with open(log, "w") as stderr:  # the uninterrupted run, meanwhile
        reference = subprocess.Popen([sys.executable, str(SCRIPT), str(whole), *settings], stdout=subprocess.DEVNULL,
                                     stderr=stderr, env=env)

    def kill_at(k: int, name: str) -> tuple[str, int]:
        """Run until checkpoint-3 of dn{k} has the file ``name``, kill -9; the step a resume must start from."""
        checkpoint = out / "checkpoints" / f"dn{k}" / "checkpoint-3"
        stderr = _run_script(out, *settings, "ema_pause=0.5", wait_for=checkpoint / name)
        assert not (out / f"dn{k}").exists()
        # the kill landed in the gap (or, on a very slow machine, after the marker: then checkpoint-3 is whole)
        return stderr, 3 if (checkpoint / COMPLETE_FILE).is_file() else 2

    def assert_resumed(stderr: str, k: int, step: int) -> None:
        found = re.search(rf"dn{k}: resuming from \S*checkpoint-(\d+)", stderr)
        assert found and int(found.group(1)) == step, stderr[-3000:]
        assert "the EMA restarts" not in stderr

    try:
        _, core_step = kill_at(1, "trainer_state.json")
        stderr, dn2_step = kill_at(2, EMA_FILE)
        assert_resumed(stderr, 1, core_step)
        assert_resumed(_run_script(out, *settings, "ema_pause=0.5"), 2, dn2_step)
        assert reference.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        reference.kill()  # a no-op once it has ended
        reference.wait()
    for k in (1, 2):
        a, b = load_file(whole / f"dn{k}" / "model.safetensors"), load_file(out / f"dn{k}" / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), f"dn{k} differs"


@pytest.mark.parametrize("killed", ["mid-level", "at the final step"])
def test_resuming_is_bit_exact(digits, tmp_path, killed):
    """A level resumed from a checkpoint in its middle ends where the uninterrupted run ends, every weight of it and
    of the levels grown from it, EMA included. transformers saves a ViT's encoder under legacy names and Trainer
    alone loads them with strict=False: the encoder then kept the level's starting weights (dn2 ended 2.8e-3 away).
    A run killed while a level was being saved resumes from the checkpoint of its last step: Trainer alone trains
    one step more from there (and updates the EMA once more: 2e-4 away)."""
    import shutil

    train, evaluation, names = digits

    def run(out):
        args = make_args(out, save_strategy="steps", save_steps=1, keep_level_checkpoints=True, model_ema=True,
                         model_ema_decay=0.5)
        ElasticTrainer(model=tiny_vit(len(names)), args=args, train_dataset=train, eval_dataset=evaluation,
                       label_names=names).train()

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run(whole)
    shutil.copytree(whole, resumed)
    # dn2 and dn3 unwritten; mid-level: as if killed after dn2's second step (its later checkpoints gone)
    later = ["checkpoints/dn2/checkpoint-3", "checkpoints/dn2/checkpoint-4"] if killed == "mid-level" else []
    for name in ("dn2", "dn3", "family", *later, "checkpoints/dn3"):
        shutil.rmtree(resumed / name, ignore_errors=True)
    (resumed / "elastic_summary.json").unlink(missing_ok=True)
    run(resumed)
    for k in (1, 2, 3):
        a, b = load_file(whole / f"dn{k}" / "model.safetensors"), load_file(resumed / f"dn{k}" / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), f"dn{k} differs"


def test_load_best_model_at_end_loads_every_weight_of_the_best_checkpoint(digits, tmp_path):
    from elastoformer_hf.training.trainer import _own_names

    train, evaluation, names = digits
    out = tmp_path / "run"
    args = make_args(out, save_strategy="steps", save_steps=1, eval_strategy="steps", eval_steps=1,
                     load_best_model_at_end=True, metric_for_best_model="eval_accuracy", keep_level_checkpoints=True)
    ElasticTrainer(model=tiny_vit(len(names)), args=args, train_dataset=train, eval_dataset=evaluation,
                   label_names=names).train()
    for k in (1, 2):
        state = json.loads(max((out / "checkpoints" / f"dn{k}").glob("checkpoint-*/trainer_state.json"),
                               key=lambda p: int(p.parent.name.split("-")[1])).read_text())
        best = load_file(Path(state["best_model_checkpoint"]) / "model.safetensors")
        level, _, _ = _level_model(out, k)
        saved = _own_names(level, best)
        assert saved.keys() == level.state_dict().keys()
        assert all(torch.equal(saved[n], t) for n, t in level.state_dict().items()), f"dn{k}"


def test_a_checkpoint_of_another_model_is_a_clear_error(digits, tmp_path):
    from safetensors.torch import save_file

    train, evaluation, names = digits
    trainer = ElasticTrainer(model=tiny_vit(len(names)), args=make_args(tmp_path / "run"), train_dataset=train,
                             eval_dataset=evaluation, label_names=names)
    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    save_file({"other.weight": torch.zeros(2)}, str(checkpoint / "model.safetensors"))
    with pytest.raises(ElastoformerError, match="does not hold this level's weights"):
        trainer._load_from_checkpoint(str(checkpoint))


def test_last_complete_checkpoint_skips_half_written(tmp_path):
    from elastoformer_hf.training.trainer import COMPLETE_FILE, last_complete_checkpoint

    # 4: killed while writing the marker; 6: after Trainer's files, before the EMA and the marker; 8: before all
    for step, marker in ((2, "{}"), (4, ""), (6, None), (8, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if step < 8:
            (folder / "trainer_state.json").write_text("{}")
        if marker is not None:
            (folder / COMPLETE_FILE).write_text(marker)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_tensorboard_keeps_the_curves_of_every_level(digits, tmp_path):
    """``--report_to tensorboard``: every level's loss curve is in ``logs/dn{k}``, none in ``checkpoints/``
    (which goes when a level is done), and every logged point carries its level."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    trainer = _trainer(digits, out, report_to=["tensorboard"], logging_steps=1, max_steps=2)
    trainer.train()
    assert not (out / "checkpoints").exists()
    for k in (1, 2, 3):
        events = EventAccumulator(str(out / "logs" / f"dn{k}"))
        events.Reload()
        scalars = events.Tags()["scalars"]
        assert "train/loss" in scalars, (k, scalars)
        assert len(events.Scalars("train/loss")) == 2  # one point per step
        assert {e.value for e in events.Scalars("train/level")} == {k}
        assert "eval/accuracy" in scalars  # the level's evaluation lands beside its curves



def _plant(path: Path, file: str | None = None, size: int = 0) -> Path:
    """``path`` as a file of ``size`` bytes, or (``file``) as a folder holding that file; returns ``path``."""
    target = path / file if file else path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\0" * size)
    return path


def test_a_killed_runs_leftovers_are_removed_and_nothing_else(family, digits, tmp_path, monkeypatch, capsys):
    """What kill -9 leaves (the hidden temporaries of staged folders and atomic JSON writes, a folder set aside for a
    replacement, the checkpoints of levels already written) is removed when the run is opened again, before
    anything is written; the level in progress keeps its checkpoints, and names that only look like ours, the
    user's files and folders, stay. A run with other settings is refused before anything is removed."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(family[0], out)
    shutil.rmtree(out / "dn3")  # dn3 is the level in progress
    gone = [
        _plant(out / ".dn3.tmp-1a2b3c4d", "model.safetensors", 4096),  # a staged level folder
        _plant(out / ".elastic_summary.json.tmp-0f0f0f0f"),  # write_json
        _plant(out / "dn1" / ".latency.json.tmp-abcdef01"),
        _plant(out / "dn2" / ".onnx.tmp-00000000", "model.onnx"),  # export's staged folder, inside a level
        _plant(out / "family" / ".family_config.json.tmp-12345678"),
        _plant(out / ".family.old-89abcdef", "family.safetensors"),  # family/ was replaced: the old one lingered
        _plant(tmp_path / ".run.tmp-fedcba98", "dn1/model.safetensors"),  # beside the run: a plan's staging
        _plant(out / "checkpoints" / "dn1", "checkpoint-4/model.safetensors", 1 << 20),  # dn1/ is written
        _plant(out / "checkpoints" / "dn2", "checkpoint-2/model.safetensors"),
    ]
    kept = [
        _plant(out / "checkpoints" / "dn3", "checkpoint-2/model.safetensors"),  # the level in progress
        _plant(out / "notes.txt"),
        _plant(out / ".dn3.tmp-1A2B3C4D"),  # upper-case hex: not a name uuid4().hex makes
        _plant(out / ".dn3.tmp-1a2b3c4"),  # 7 digits
        _plant(out / ".dn3.tmp-1a2b3c4d.bak"),
        _plant(out / "dn3.tmp-1a2b3c4d"),  # not hidden
        _plant(out / ".dn3.new-1a2b3c4d"),
        _plant(out / "mine" / ".draft.tmp-1a2b3c4d"),  # in a folder of the user's
        _plant(tmp_path / ".other.tmp-fedcba98"),  # beside the run, another folder's
    ]
    with pytest.raises(ElastoformerError, match="learning_rate"):
        _trainer(digits, out, learning_rate=5e-4).train()
    assert all(p.exists() for p in gone + kept), "a refused run removed something"

    class Opened(Exception):
        pass

    def stop(self, out, settings):  # right after the run folder is opened: what the cleaning did, before any training
        raise Opened

    monkeypatch.setattr(ElasticTrainer, "_make_plan", stop)
    capsys.readouterr()
    with pytest.raises(Opened):
        _trainer(digits, out).train()
    assert [p for p in gone if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert all((out / f"dn{k}" / "elastic_level.json").is_file() for k in (1, 2))
    assert (out / "family" / "family_config.json").is_file() and (out / "elastic_plan.json").is_file()
    err = capsys.readouterr().err
    assert re.search(r"removed 7 leftover\(s\) of interrupted writes \(.*\): 4\.1 kB freed", err), err
    assert "removed 2 checkpoint folder(s) of levels already written (dn1, dn2): 1.0 MB freed" in err
    # with keep_level_checkpoints, the checkpoints of finished levels are the user's to keep
    kept_checkpoint = _plant(out / "checkpoints" / "dn1", "checkpoint-4/model.safetensors")
    with pytest.raises(Opened):
        _trainer(digits, out, keep_level_checkpoints=True).train()
    assert kept_checkpoint.exists()


def test_no_pin_memory_warning_at_every_level_on_cpu(tmp_path):
    """Pinning needs an accelerator: on CPU the argument is off, so torch does not warn once per level."""
    assert make_args(tmp_path).dataloader_pin_memory is False  # use_cpu
    if not torch.cuda.is_available():
        args = make_args(tmp_path, use_cpu=False)
        assert args.dataloader_pin_memory is False


def test_log_level_applies_to_the_progress_lines(digits, tmp_path, capsys):
    """Progress goes through logging (the package logger): --log_level warning silences it, as transformers'."""
    from elastoformer_hf.messages import set_level

    try:
        _trainer(digits, tmp_path / "quiet", log_level="warning", max_steps=1, pruning_steps=1).train()
        assert "[elastoformer]" not in capsys.readouterr().err
    finally:
        set_level("INFO")
    _trainer(digits, tmp_path / "loud", max_steps=1, pruning_steps=1).train()
    assert "[elastoformer] === dn1/2 (core)" in capsys.readouterr().err


def test_measuring_consistency_changes_no_level(digits, tmp_path, monkeypatch):
    """The extra evaluation pass per level (for the consistency numbers) draws no random numbers the next level's
    training would have drawn: the levels are bit-identical with and without it."""
    settings = dict(max_steps=2, pruning_steps=1, stochastic_depth=0.3)  # training that draws random numbers
    measured = tmp_path / "measured"
    _trainer(digits, measured, **settings).train()
    monkeypatch.setattr(ElasticTrainer, "_needs_consistency", lambda self, out, plan: False)
    plain = tmp_path / "plain"
    _trainer(digits, plain, **settings).train()
    assert "consistency" in read_level_info(measured / "dn1") and "consistency" not in read_level_info(plain / "dn1")
    for k in (1, 2):
        a, b = load_file(str(measured / f"dn{k}" / "model.safetensors")), load_file(str(plain / f"dn{k}" / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), f"dn{k}"


@pytest.mark.skipif(Version(datasets_version) < Version("4.0.0"), reason="streaming needs datasets >= 4.0.0 (refused below)")
def test_a_stream_trains_every_level_in_steps_and_logs_one_monotonic_step(tmp_path):
    """A streamed dataset (datasets.IterableDataset): every level is counted in steps (core_max_steps for the core),
    its evaluation counts the images it saw; the step every reporting integration sees grows across levels, each
    log naming its level. Without max_steps, or with ra_sampler, a stream is refused before anything is written."""
    from transformers import TrainerCallback

    train, evaluation, names = load_image_datasets("digits", max_train_samples=96, max_eval_samples=40,
                                                   streaming=True)
    transform = build_transforms(32, is_training=False, crop_pct=1.0)
    train, evaluation = with_transforms(train, transform), with_transforms(evaluation, transform)

    class Steps(TrainerCallback):
        seen: list = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if "loss" in (logs or {}):
                self.seen.append((state.global_step, logs["level"]))

    out = tmp_path / "run"
    trainer = ElasticTrainer(model=tiny_vit(len(names)), args=make_args(out, max_steps=2, core_max_steps=3,
                                                                         logging_steps=1),
                             train_dataset=train, eval_dataset=evaluation, label_names=names, callbacks=[Steps()])
    summary = trainer.train()
    assert [lv["metrics"]["eval_samples"] for lv in summary["levels"]] == [40, 40, 40]
    assert [read_level_info(out / f"dn{k}")["train_steps"] for k in (1, 2, 3)] == [3, 2, 2]
    assert Steps.seen == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 3), (7, 3)]
    run = json.loads((out / "elastic_run.json").read_text())
    assert run["data"]["streaming"] is True and "train_rows" not in run["data"]
    for args, message in ((dict(max_steps=-1, num_train_epochs=1), "set max_steps"),
                          (dict(ra_sampler=True), "draws indices")):
        fresh = tmp_path / f"refused-{len(message)}"
        with pytest.raises(ElastoformerError, match=message):
            ElasticTrainer(model=tiny_vit(len(names)), args=make_args(fresh, **args), train_dataset=train,
                           label_names=names).train()
        assert not fresh.exists()


@pytest.mark.parametrize("settings, message", [
    (dict(max_steps=-1, num_train_epochs=1, core_max_steps=3), "goes with max_steps > 0"),
    (dict(max_steps=4, core_max_steps=0), "core_max_steps must be an integer >= 1"),
])
def test_core_length_in_steps_goes_with_max_steps(tmp_path, settings, message):
    """core_max_steps counts the core in steps: only where the levels are counted in steps (max_steps > 0)."""
    with pytest.raises(SettingError, match=message):
        make_args(tmp_path / "run", **settings)
