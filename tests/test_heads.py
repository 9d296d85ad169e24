"""``head_pruning``: auto resolved per model (whole heads where every level gets its own head count), recorded in
the plan, old plans and the ``prune_heads`` spelling keep their meaning, and the reference recipe still gives the
paper's DeiT-B structures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from conftest import TINY_VIT

from elastoformer_hf.cli import main
from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.heads import head_schedule, resolve_head_pruning
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.record import ElasticPlan
from elastoformer_hf.recipe.parser import load_config_file
from elastoformer_hf.training.settings import recorded_setting

REFERENCE_YAML = Path(__file__).parents[1] / "recipes" / "configs" / "deit_base_imagenet.yaml"
PRUNING_KEYS = ("pruning_type", "pruning_ratio", "pruning_steps", "round_to", "head_pruning", "global_pruning")


def vit(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.ViTConfig(**{**TINY_VIT, **overrides})
    return transformers.ViTForImageClassification(config).eval()


def structures(plan) -> list[tuple]:
    return [(lv.structure["hidden_size"], lv.structure["num_attention_heads"], lv.structure["head_dim"],
             lv.structure["intermediate_size"]) for lv in plan.levels]


# -- the rule -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("heads, ratio, steps, schedule, resolved", [
    (12, 0.6, 5, [4, 6, 7, 9, 10, 12], "heads"),      # DeiT-B, CR 0.6, 6 levels
    (12, 0.4, 5, [7, 8, 9, 10, 11, 12], "heads"),     # DeiT-B, the paper's CR 0.4
    (3, 0.4, 3, [1, 2, 2, 3], "head_dims"),           # the demo's 3-head ViT: DN2 and DN3 would share 2 heads
    (4, 0.5, 5, [2, 2, 2, 3, 3, 4], "head_dims"),
    (4, 0.5, 2, [2, 3, 4], "heads"),
])
def test_auto_takes_whole_heads_only_when_every_level_gets_its_own_count(heads, ratio, steps, schedule, resolved):
    config = PruningConfig(pruning_ratio=ratio, pruning_steps=steps)
    assert head_schedule(heads, config) == schedule
    got = resolve_head_pruning(config, {"q": heads, "k": heads})
    assert (got.head_pruning, got.head_pruning_auto) == (resolved, True)


def test_explicit_choices_global_pruning_and_models_without_heads():
    heads = PruningConfig(pruning_ratio=0.6, head_pruning="head_dims")
    assert resolve_head_pruning(heads, {"q": 12}) is heads  # an explicit choice is never replaced
    assert resolve_head_pruning(PruningConfig(pruning_ratio=0.6, global_pruning=True), {"q": 12}).head_pruning == \
        "head_dims"  # global pruning ranks heads across layers: no per-level count to check
    cnn = resolve_head_pruning(PruningConfig(), {})
    assert cnn.head_pruning == "auto" and not cnn.head_pruning_auto  # nothing to choose


def test_the_schedule_is_what_the_pruner_keeps():
    plan = plan_levels(vit(hidden_size=96, num_attention_heads=12, num_hidden_layers=1),
                       PruningConfig(pruning_ratio=0.6, pruning_steps=5, round_to=1))
    assert (plan.config.head_pruning, plan.config.head_pruning_auto) == ("heads", True)
    assert [lv.structure["num_attention_heads"] for lv in plan.levels] == head_schedule(12, plan.config)
    assert {lv.structure["head_dim"] for lv in plan.levels} == {8}  # whole heads: head_dim kept


def test_a_three_head_vit_keeps_head_dims_and_plans_exactly_as_before():
    """The demo's shape (3 heads, CR 0.4, 3 steps): auto resolves to head dims, and the plan (every kept index, so
    every trained weight and number) is the one the explicit head-dim setting gives."""
    model = vit(hidden_size=48, num_attention_heads=3, intermediate_size=96)
    auto = plan_levels(model, PruningConfig(pruning_ratio=0.4, pruning_steps=3, round_to=8))
    dims = plan_levels(model, PruningConfig(pruning_ratio=0.4, pruning_steps=3, round_to=8, head_pruning="head_dims"))
    assert (auto.config.head_pruning, auto.config.head_pruning_auto) == ("head_dims", True)
    assert [lv.kept for lv in auto.levels] == [lv.kept for lv in dims.levels]
    assert [lv.macs for lv in auto.levels] == [lv.macs for lv in dims.levels]


# -- the record -----------------------------------------------------------------------------------------------
def test_the_plan_records_the_resolved_choice_and_matches_the_setting_that_made_it(tmp_path):
    plan = plan_levels(vit(), PruningConfig(pruning_ratio=0.5, pruning_steps=2))
    plan.save(tmp_path)
    stored = json.loads((tmp_path / "elastic_plan.json").read_text())["pruning"]
    assert (stored["head_pruning"], stored["head_pruning_auto"]) == ("heads", True)
    loaded = ElasticPlan.load(tmp_path).config
    assert loaded == PruningConfig(pruning_ratio=0.5, pruning_steps=2)  # auto matches its resolved form
    assert loaded == PruningConfig(pruning_ratio=0.5, pruning_steps=2, head_pruning="heads")
    assert loaded != PruningConfig(pruning_ratio=0.5, pruning_steps=2, head_pruning="head_dims")
    assert PruningConfig(head_pruning="heads") != PruningConfig()  # explicit is not (unresolved) auto


@pytest.mark.parametrize("prune_heads, meaning", [(False, "head_dims"), (True, "heads")])
def test_an_old_plan_means_what_it_meant(prune_heads, meaning):
    old = {"pruning_type": "l1", "pruning_ratio": 0.4, "pruning_steps": 5, "round_to": 8, "global_pruning": False,
           "prune_heads": prune_heads, "taylor_batches": 10}
    config = PruningConfig.from_dict(old)
    assert (config.head_pruning, config.head_pruning_auto, config.whole_heads) == (meaning, False, prune_heads)
    # a run recorded before the setting: prune_heads true compares as heads, the old default as auto (the plan
    # check then holds auto to what the old plan did)
    assert recorded_setting({"pruning": old}, "pruning", "head_pruning") == ("heads" if prune_heads else "auto")


# -- the spellings --------------------------------------------------------------------------------------------
def test_prune_heads_is_the_older_spelling():
    assert PruningConfig(prune_heads=True).head_pruning == "heads"
    assert PruningConfig(prune_heads=False).head_pruning == "head_dims"
    assert PruningConfig(prune_heads=True, head_pruning="heads").whole_heads
    with pytest.raises(ElastoformerError, match="contradicts head_pruning"):
        PruningConfig(prune_heads=True, head_pruning="head_dims")
    with pytest.raises(ElastoformerError, match="accepted: auto, heads, head_dims"):
        PruningConfig(head_pruning="dims")


@pytest.mark.parametrize("flags, expected", [([], "heads (auto)"), (["--head_pruning", "head_dims"], "head dims"),
                                             (["--prune_heads"], "whole heads")])
def test_plan_command_line(capsys, tmp_path, flags, expected):
    transformers.ViTConfig(**TINY_VIT).save_pretrained(tmp_path)
    argv = ["plan", "--model_name", str(tmp_path), "--random_init", "--pruning_ratio", "0.5", "--pruning_steps", "2"]
    assert main([*argv, *flags]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert (", whole heads (auto)" if expected == "heads (auto)" else f", {expected};") in head
    assert main([*argv, *flags, "--json"]) == 0
    pruning = json.loads(capsys.readouterr().out)["pruning"]
    assert pruning["head_pruning"] == ("head_dims" if "dims" in expected else "heads")


def test_training_arguments_take_both_spellings(tmp_path):
    from transformers import HfArgumentParser

    from elastoformer_hf.training import ElasticTrainingArguments

    parse = HfArgumentParser(ElasticTrainingArguments).parse_args_into_dataclasses
    base = ["--output_dir", str(tmp_path), "--report_to", "none"]
    assert parse(base)[0].pruning_config.head_pruning == "auto"
    assert parse([*base, "--head_pruning", "head_dims"])[0].pruning_config.head_pruning == "head_dims"
    assert parse([*base, "--prune_heads"])[0].pruning_config.head_pruning == "heads"
    assert parse([*base, "--prune_heads", "false"])[0].pruning_config.head_pruning == "head_dims"
    with pytest.raises(ElastoformerError, match="head_pruning"):
        ElasticTrainingArguments(output_dir=str(tmp_path), report_to="none", head_pruning="whole")


# -- the paper ------------------------------------------------------------------------------------------------
def test_the_reference_recipe_gives_the_papers_deit_b_structures():
    """DeiT-B's widths (hidden 768, 12 heads of 64, MLP 3072; one block suffices: local pruning gives every block
    the same widths) under the pruning keys of recipes/configs/deit_base_imagenet.yaml: all 12 heads kept and
    narrowed, as the reference prunes them (and as this project did before whole heads became the default)."""
    recipe = load_config_file(REFERENCE_YAML)
    assert recipe["head_pruning"] == "head_dims"
    config = PruningConfig(**{k: recipe[k] for k in PRUNING_KEYS if k in recipe})
    model = vit(hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=1,
                patch_size=16)
    plan = plan_levels(model, config)
    assert structures(plan) == [(456, 12, 32, 1840), (520, 12, 40, 2088), (576, 12, 48, 2328),
                                (640, 12, 48, 2576), (704, 12, 56, 2824), (768, 12, 64, 3072)]
    default = plan_levels(model, PruningConfig(**{k: recipe[k] for k in PRUNING_KEYS if k not in ("head_pruning",)
                                                  and k in recipe}))
    assert structures(default)[0] == (456, 7, 64, 1840)  # the default here: whole heads, same hidden and MLP


def test_the_demo_run_made_before_head_pruning_still_matches_the_demo_settings(tmp_path):
    """model_cards/sample_run is a demo run from before head_pruning (its plan and settings say prune_heads: false).
    Resuming it with recipes/configs/demo.yaml (head_pruning left at auto) passes both checks the trainer makes."""
    from elastoformer_hf.training import ElasticTrainingArguments
    from elastoformer_hf.training.settings import run_settings

    sample = Path(__file__).parents[1] / "model_cards" / "sample_run"
    plan = ElasticPlan.load(sample)
    demo = load_config_file(Path(__file__).parents[1] / "recipes" / "configs" / "demo.yaml")
    args = ElasticTrainingArguments(output_dir=str(tmp_path), report_to="none",
                                    **{k: demo[k] for k in PRUNING_KEYS if k in demo})
    assert args.pruning_config.head_pruning == "auto"
    heads = {"q": plan.levels[-1].structure["num_attention_heads"]}  # what the trainer reads from the model: 3
    assert plan.config == resolve_head_pruning(args.pruning_config, heads)  # the plan check
    recorded = json.loads((sample / "elastic_run.json").read_text())
    now = run_settings(args, "parent")["pruning"]
    assert all(recorded_setting(recorded, "pruning", k) == v for k, v in now.items())  # the settings check


@pytest.mark.parametrize("pruning, shown", [
    ({"head_pruning": "heads", "head_pruning_auto": True}, "(head_pruning auto: whole heads)"),
    ({"head_pruning": "head_dims", "head_pruning_auto": False}, "(head_pruning head dims)"),
    ({"head_pruning": "auto"}, None),  # a CNN
    ({"prune_heads": True}, "(head_pruning whole heads)"),  # recorded before head_pruning
    ({"prune_heads": False}, None),
])
def test_the_card_says_which_heads_choice_the_plan_made(pruning, shown):
    from elastoformer_hf.cards.render import _pruning_line

    line = _pruning_line({"pruning_type": "l1", "pruning_ratio": 0.4, "pruning_steps": 5, "round_to": 8, **pruning})
    assert line.endswith("multiples of 8" if shown is None else f"multiples of 8 {shown}")
