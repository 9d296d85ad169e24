"""The default ``round_to`` ("auto"): per-architecture resolution, graceful on tiny models, recorded in the plan,
and explicit values used exactly as given."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_VIT, load_tiny
from transformers import ViTConfig

from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.pruning import alignment
from elastoformer_hf.pruning.alignment import (
    DEVICE_PROFILES,
    FALLBACK_ROUND_TO,
    PREFERRED_ROUND_TO,
    fit_round_to,
    preferred_round_to,
)
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.record import ElasticPlan


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """hidden 64, 4 heads of 16, MLP 128: at CR 0.5 the core keeps 8 dims per head, 32 hidden, 64 MLP."""
    folder = tmp_path_factory.mktemp("vit")
    ViTConfig(**TINY_VIT, architectures=["ViTForImageClassification"]).save_pretrained(folder)
    return load_tiny(str(folder)).model


# -- the table ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("adapter, family", [
    ("transformers-vit", "vit"), ("timm-vit", "vit"), ("timm-resnet", "resnet"), ("torchvision-resnet", "resnet"),
    ("timm-vgg", "vgg"), ("torchvision-vgg", "vgg"),
])
def test_every_adapter_family_has_a_measured_entry_per_profile(adapter, family):
    assert alignment.round_to_group(adapter) == family
    for profile in DEVICE_PROFILES:
        assert preferred_round_to(adapter, profile) == PREFERRED_ROUND_TO[family][profile]


def test_unknown_architecture_falls_back_and_unknown_profile_is_rejected():
    assert preferred_round_to("someone-else", "cpu") == FALLBACK_ROUND_TO
    with pytest.raises(ElastoformerError, match="round_to_profile.*cpu, cuda, jetson"):
        preferred_round_to("transformers-vit", "tpu")
    with pytest.raises(ElastoformerError, match="round_to_profile"):
        PruningConfig(round_to_profile="tpu")


@pytest.mark.parametrize("preferred, widths, expected", [
    (16, {"a": 25, "b": 300}, 16),  # fits
    (16, {"a": 12, "b": 300}, 8),  # the narrowest core width caps it, to a power of two
    (8, {"a": 8}, 8),  # exactly one multiple is enough
    (64, {"a": 3}, 2),
    (8, {"a": 1}, 1),  # a single channel: no rounding
    (8, {"a": 0}, 1),
    (8, {}, 8),
])
def test_fit_round_to(preferred, widths, expected):
    assert fit_round_to(preferred, widths) == expected


# -- the config -----------------------------------------------------------------------------------------------
def test_default_is_auto_and_explicit_values_stay_explicit():
    auto = PruningConfig()
    assert auto.round_to is None and auto.auto_round_to and auto.round_to_profile == "cpu"
    explicit = PruningConfig(round_to=8)
    assert not explicit.auto_round_to
    assert explicit.with_round_to(16) is explicit  # an explicit value is never replaced
    resolved = auto.with_round_to(16)
    assert (resolved.round_to, resolved.round_to_auto) == (16, True)


def test_equality_auto_matches_its_resolved_form_only():
    auto, resolved = PruningConfig(), PruningConfig().with_round_to(8)
    assert resolved == auto  # a run folder planned with auto matches the auto setting that made it
    assert resolved != PruningConfig(round_to=8)  # ... but not an explicit 8
    assert PruningConfig(round_to=8) == PruningConfig(round_to=8)
    assert PruningConfig(round_to=8) != PruningConfig(round_to=16)
    assert auto != PruningConfig(round_to_profile="cuda")  # auto aims at another device
    assert PruningConfig(round_to=8, round_to_profile="cuda") == PruningConfig(round_to=8)  # profile unused
    assert auto != PruningConfig(pruning_ratio=0.3)
    assert PruningConfig.from_dict(resolved.to_dict()).to_dict() == resolved.to_dict()


@pytest.mark.parametrize("kwargs, match", [
    ({"round_to": 0}, "or None"),
    ({"round_to": "auto"}, "round_to"),
    ({"round_to": True}, "round_to"),
    ({"round_to_auto": True}, "needs an integer round_to"),
])
def test_bad_round_to(kwargs, match):
    with pytest.raises(ElastoformerError, match=match):
        PruningConfig(**kwargs)


def test_old_plans_without_the_new_fields_load_as_explicit():
    data = {"pruning_type": "l1", "pruning_ratio": 0.4, "pruning_steps": 5, "round_to": 8, "global_pruning": False,
            "prune_heads": False, "taylor_batches": 10}
    config = PruningConfig.from_dict(data)
    assert config.round_to == 8 and not config.auto_round_to
    assert config == PruningConfig(pruning_ratio=0.4, round_to=8, head_pruning="head_dims")  # what it meant then


# -- planning -------------------------------------------------------------------------------------------------
def test_auto_plan_records_the_resolved_value(tiny_vit, tmp_path):
    plan = plan_levels(tiny_vit, PruningConfig(pruning_ratio=0.5, pruning_steps=2))
    # ViT cpu prefers 8; the core keeps 8 dims per head, 32 hidden, 64 MLP: 8 fits
    expected = fit_round_to(PREFERRED_ROUND_TO["vit"]["cpu"], {"head": 8, "hidden": 32, "mlp": 64})
    assert (plan.config.round_to, plan.config.round_to_auto) == (expected, True)
    for lv in plan.levels:
        for name, width in lv.dims.items():
            assert width % expected == 0, f"{name}@{lv.level}: {width}"
    plan.save(tmp_path)
    stored = json.loads((tmp_path / "elastic_plan.json").read_text())["pruning"]
    assert stored["round_to"] == expected and stored["round_to_auto"] is True and stored["round_to_profile"] == "cpu"
    loaded = ElasticPlan.load(tmp_path / "elastic_plan.json")
    assert loaded.config == PruningConfig(pruning_ratio=0.5, pruning_steps=2)  # what the trainer checks
    assert loaded.config.round_to == expected


def test_auto_degrades_on_a_tiny_model_where_the_same_explicit_value_is_rejected(tiny_vit, monkeypatch):
    monkeypatch.setitem(PREFERRED_ROUND_TO, "vit", {p: 64 for p in DEVICE_PROFILES})
    dims = dict(pruning_ratio=0.5, pruning_steps=2, head_pruning="head_dims")
    with pytest.raises(ElastoformerError, match="--round_to 64 is wider than"):
        plan_levels(tiny_vit, PruningConfig(**dims, round_to=64))
    plan = plan_levels(tiny_vit, PruningConfig(**dims))
    assert plan.config.round_to == 8  # 64 lowered to the core's 8 dims per head
    assert plan.levels[0].structure["head_dim"] == 8
    # whole heads (auto's choice here: 2, 3, 4 heads) keep head_dim 16: only the hidden 32 and MLP 64 bound it
    heads = plan_levels(tiny_vit, PruningConfig(pruning_ratio=0.5, pruning_steps=2))
    assert heads.config.head_pruning == "heads" and heads.config.round_to == 32
    assert heads.levels[0].structure["head_dim"] == 16


def test_auto_follows_the_profile(tiny_vit, monkeypatch):
    monkeypatch.setitem(PREFERRED_ROUND_TO, "vit", {"cpu": 2, "cuda": 4, "jetson": 1})
    plans = {p: plan_levels(tiny_vit, PruningConfig(pruning_ratio=0.4, pruning_steps=1, round_to_profile=p))
             for p in DEVICE_PROFILES}
    assert {p: plan.config.round_to for p, plan in plans.items()} == {"cpu": 2, "cuda": 4, "jetson": 1}
    # the widths follow: the hidden core int(64 * 0.6) = 38 floors to 38 (2), 36 (4), 38 (1)
    assert {p: plan.levels[0].dims["hidden"] for p, plan in plans.items()} == {"cpu": 38, "cuda": 36, "jetson": 38}


def test_explicit_round_to_is_used_exactly(tiny_vit):
    plan = plan_levels(tiny_vit, PruningConfig(pruning_ratio=0.4, pruning_steps=1, round_to=1))
    assert (plan.config.round_to, plan.config.round_to_auto) == (1, False)
    assert plan.levels[0].dims["hidden"] == int(64 * 0.6)  # no rounding at all
    plan4 = plan_levels(tiny_vit, PruningConfig(pruning_ratio=0.4, pruning_steps=1, round_to=4))
    assert (plan4.config.round_to, plan4.config.round_to_auto) == (4, False)
    assert plan4.levels[0].dims["hidden"] == 36


# -- front ends -----------------------------------------------------------------------------------------------
def test_cli_plan_defaults_to_auto_and_accepts_the_word(capsys, tmp_path):
    from elastoformer_hf.cli import main

    ViTConfig(**TINY_VIT).save_pretrained(tmp_path)
    for extra in ([], ["--round_to", "auto", "--round_to_profile", "cpu"]):
        assert main(["plan", "--model_name", str(tmp_path), "--random_init", "--pruning_ratio", "0.5",
                     "--pruning_steps", "1", "--json", *extra]) == 0
        pruning = json.loads(capsys.readouterr().out)["pruning"]
        assert pruning["round_to"] == 8 and pruning["round_to_auto"] is True
    assert main(["plan", "--model_name", str(tmp_path), "--random_init", "--pruning_ratio", "0.5",
                 "--pruning_steps", "1"]) == 0
    assert "round_to 8 (auto, cpu)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["plan", "--model_name", str(tmp_path), "--random_init", "--pruning_ratio", "0.5", "--round_to", "big"])
    assert "'auto'" in capsys.readouterr().err


def test_training_arguments_default_to_auto(tmp_path):
    from elastoformer_hf.training import ElasticTrainingArguments

    args = ElasticTrainingArguments(output_dir=str(tmp_path), report_to="none")
    assert args.pruning_config == PruningConfig(pruning_ratio=args.pruning_ratio)
    assert args.pruning_config.auto_round_to
    cuda = ElasticTrainingArguments(output_dir=str(tmp_path), report_to="none", round_to_profile="cuda", round_to=4)
    assert cuda.pruning_config.round_to == 4 and not cuda.pruning_config.auto_round_to
    with pytest.raises(ElastoformerError, match="round_to_profile"):
        ElasticTrainingArguments(output_dir=str(tmp_path), report_to="none", round_to_profile="tpu")


@pytest.mark.parametrize("cli, expected", [(["--round_to", "auto"], None), (["--round_to", "16"], 16), ([], None)])
def test_training_arguments_parse_auto_and_integers_from_the_command_line(tmp_path, cli, expected):
    from transformers import HfArgumentParser

    from elastoformer_hf.training import ElasticTrainingArguments

    (args,) = HfArgumentParser(ElasticTrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--report_to", "none", *cli])
    assert args.round_to == expected and args.pruning_config.round_to == expected
    with pytest.raises(ValueError, match="'auto' or an integer"):
        ElasticTrainingArguments(output_dir=str(tmp_path), report_to="none", round_to="eight")
