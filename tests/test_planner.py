"""The pruning engine: nesting, schedule, head pruning, costs, replay, importance criteria and bad input.

Tiny random-init models on the CPU; plans are session fixtures (conftest.py) shared by these tests.
"""

from __future__ import annotations

import copy
import json
import math
import re

import pytest
import timm
import torch
import torch_pruning as tp
from conftest import ALL_FAMILIES, NUM_LABELS, TINY_VIT, Family, load_tiny
from torch_pruning.pruner.algorithms.scheduler import linear_scheduler
from transformers import ViTConfig, ViTForImageClassification

from elastoformer_hf.errors import CheckpointError, ElastoformerError, SettingError, UnsupportedModelError
from elastoformer_hf.pruning.config import PRUNING_TYPES, PruningConfig
from elastoformer_hf.pruning.importance import synthetic_batches
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.record import ElasticPlan
from elastoformer_hf.pruning.replay import apply_level, extract_level


def _family(request, name) -> Family:
    return request.getfixturevalue(name)


def _n_heads(dim, level) -> int:
    """Heads of an attention dimension at ``level`` (1 for non-attention dimensions)."""
    if dim.kind != "attention":
        return 1
    return level.heads[dim.attention]


def _step_of(plan, k: int) -> int:
    """torch-pruning step that produced level k (0 = dense)."""
    return plan.config.pruning_steps + 1 - k


# =============================================================================================================
# 1. nesting and schedule
# =============================================================================================================
@pytest.mark.parametrize("fam", ALL_FAMILIES)
def test_levels_nest_and_last_is_dense(request, fam):
    family = _family(request, fam)
    plan = family.plan
    assert plan.num_levels == plan.config.pruning_steps + 1
    assert [lv.level for lv in plan.levels] == list(range(1, plan.num_levels + 1))
    dense = plan.levels[-1]
    for name, dim in plan.dims.items():
        assert dense.kept[name] == list(range(dim.size)), f"{name}: the last level is not dense"
        assert dense.dims[name] == dim.size
        for lv in plan.levels:
            kept = lv.kept[name]
            assert kept == sorted(set(kept)), f"{name}@{lv.level}: indices not ascending/unique"
            assert all(0 <= i < dim.size for i in kept)
            assert lv.dims[name] == len(kept)
        for small, big in zip(plan.levels, plan.levels[1:]):
            assert set(small.kept[name]) <= set(big.kept[name]), f"{name}: level {small.level} not nested"
            assert small.dims[name] <= big.dims[name], f"{name}: widths not ascending"
    core = plan.levels[0]
    assert any(core.dims[n] < d.size for n, d in plan.dims.items()), "the core prunes nothing"


@pytest.mark.parametrize("fam", ALL_FAMILIES)
def test_costs_strictly_increase_with_level(request, fam):
    plan = _family(request, fam).plan
    for metric in ("params", "macs", "flops"):
        values = [getattr(lv, metric) for lv in plan.levels]
        assert all(a < b for a, b in zip(values, values[1:])), f"{metric} not strictly increasing: {values}"


@pytest.mark.parametrize("fam", ALL_FAMILIES)
def test_keep_fraction_follows_linear_schedule(request, fam):
    plan = _family(request, fam).plan
    n, cr = plan.config.pruning_steps, plan.config.pruning_ratio
    for k in range(1, n + 2):
        expected = 1 - cr * (n + 1 - k) / n
        assert plan.level(k).keep_fraction == pytest.approx(expected, abs=1e-6)
        assert plan.config.keep_fraction(k) == pytest.approx(expected, abs=1e-12)
    assert plan.level(1).keep_fraction == pytest.approx(1 - cr)
    assert plan.level(n + 1).keep_fraction == 1.0


@pytest.mark.parametrize("fam", ["resnet_family", "vit12_heads_family", "vit12_dims_family"])
def test_round_to_1_widths_follow_torch_pruning_convention(request, fam):
    """Local pruning keeps ``int(initial * (1 - ratio_s))`` channels (per head for attention dims; whole heads
    with prune_heads)."""
    plan = _family(request, fam).plan
    cfg = plan.config
    assert cfg.round_to == 1 and not cfg.global_pruning
    ratios = linear_scheduler(cfg.pruning_ratio, cfg.pruning_steps)
    for lv in plan.levels:
        keep = 1 - ratios[_step_of(plan, lv.level)]
        for name, dim in plan.dims.items():
            if dim.kind == "attention":
                heads = dim.size // dim.group_size
                if cfg.whole_heads:
                    expected = int(heads * keep + 1e-6) * dim.group_size
                else:
                    expected = heads * int(dim.group_size * keep)
            else:
                expected = int(dim.size * keep)
            assert lv.dims[name] == expected, f"{name}@{lv.level}: {lv.dims[name]} != {expected} (keep {keep})"


@pytest.mark.parametrize("fam", ["vit_family", "timm_vit_family", "tv_resnet_family", "vgg_family"])
def test_round_to_8_widths_are_multiples(request, fam):
    plan = _family(request, fam).plan
    assert plan.config.round_to == 8
    for lv in plan.levels:
        for name, dim in plan.dims.items():
            heads = _n_heads(dim, lv)
            assert lv.dims[name] % heads == 0
            per_head = lv.dims[name] // heads
            assert per_head % 8 == 0, f"{name}@{lv.level}: {per_head} channels{' per head' * (heads > 1)}"


def test_plan_leaves_the_base_model_untouched(vit_family, resnet_family):
    for family in (vit_family, resnet_family):
        after = family.model.state_dict()
        assert after.keys() == family.before.keys()
        for key, value in family.before.items():
            assert torch.equal(after[key], value), key
    assert vit_family.model.config.hidden_size == TINY_VIT["hidden_size"]


# =============================================================================================================
# 2. heads
# =============================================================================================================
def test_prune_heads_removes_whole_heads(vit12_heads_family, extracted):
    plan = vit12_heads_family.plan
    attn = "vit.layers.0.attention"
    heads = [lv.heads[attn] for lv in plan.levels]
    assert heads[0] == 6 and heads[-1] == 12
    assert heads == sorted(heads)
    assert all(lv.structure["head_dim"] == 8 for lv in plan.levels)
    dim = plan.dims["layers.0.attention"]
    assert dim.group_size == 8
    for lv in plan.levels:
        kept = lv.kept["layers.0.attention"]
        by_head = {}
        for i in kept:
            by_head.setdefault(i // 8, set()).add(i % 8)
        assert len(by_head) == lv.heads[attn]
        assert all(offsets == set(range(8)) for offsets in by_head.values()), "a kept head lost channels"
    core = extracted(vit12_heads_family, 1)
    module = core.vit.layers[0].attention
    assert (module.num_attention_heads, module.head_dim, module.q_proj.out_features) == (6, 8, 48)
    assert core.config.num_attention_heads == 6 and core.config.head_dim == 8


def test_without_prune_heads_head_count_stays_and_head_dim_shrinks(vit12_dims_family, extracted):
    plan = vit12_dims_family.plan
    attn = "vit.layers.0.attention"
    assert all(lv.heads[attn] == 12 for lv in plan.levels)
    head_dims = [lv.structure["head_dim"] for lv in plan.levels]
    assert head_dims[0] == 4 and head_dims[-1] == 8 and head_dims == sorted(head_dims)
    core = extracted(vit12_dims_family, 1)
    module = core.vit.layers[0].attention
    assert (module.num_attention_heads, module.head_dim) == (12, 4)


def test_the_default_takes_whole_heads_where_every_level_keeps_its_own_count(deit_family, extracted):
    """deit_family plans with the default head_pruning (auto): 4 heads at CR 0.5 in 2 steps keep 2, 3, 4."""
    plan = deit_family.plan
    assert (plan.config.head_pruning, plan.config.head_pruning_auto) == ("heads", True)
    assert [lv.structure["num_attention_heads"] for lv in plan.levels] == [2, 3, 4]
    assert {lv.structure["head_dim"] for lv in plan.levels} == {16}  # head_dim kept
    for name, dim in plan.dims.items():
        if dim.kind == "attention":
            for lv in plan.levels:
                by_head = {}
                for i in lv.kept[name]:
                    by_head.setdefault(i // dim.group_size, set()).add(i % dim.group_size)
                assert all(offsets == set(range(dim.group_size)) for offsets in by_head.values())
    core = extracted(deit_family, 1)
    assert (core.config.num_attention_heads, core.config.head_dim) == (2, 16)


@pytest.mark.parametrize("fam", ["vit12_dims_family", "vit_family", "timm_vit_family"])
def test_every_head_keeps_the_same_offsets(request, fam):
    plan = _family(request, fam).plan
    for name, dim in plan.dims.items():
        if dim.kind != "attention":
            continue
        head_dim = dim.group_size
        assert dim.size % head_dim == 0 and dim.size // head_dim > 1
        for lv in plan.levels:
            by_head = {}
            for i in lv.kept[name]:
                by_head.setdefault(i // head_dim, []).append(i % head_dim)
            offsets = {tuple(v) for v in by_head.values()}
            assert len(offsets) == 1, f"{name}@{lv.level}: heads keep different offsets {offsets}"
            assert len(by_head) == dim.size // head_dim  # no head removed without prune_heads


# =============================================================================================================
# 3. counts
# =============================================================================================================
@pytest.mark.parametrize("fam", ALL_FAMILIES)
def test_level_params_equal_extracted_numel(request, fam, extracted):
    family = _family(request, fam)
    levels = range(1, family.plan.num_levels + 1) if family.is_vit else [1]
    for k in levels:
        module = extracted(family, k)
        assert family.plan.level(k).params == sum(p.numel() for p in module.parameters()), f"level {k}"
    assert family.plan.levels[-1].params == sum(p.numel() for p in family.model.parameters())


@pytest.mark.parametrize("fam", ["vit_family", "deit_family", "timm_vit_family", "resnet_family", "vgg_family"])
def test_dense_macs_equal_torch_pruning_count(request, fam):
    family = _family(request, fam)
    size = family.plan.image_size
    macs, params = tp.utils.count_ops_and_params(family.model.eval(), torch.randn(1, 3, size, size))
    dense = family.plan.levels[-1]
    assert dense.macs == int(macs)
    assert dense.params == int(params)


@pytest.mark.parametrize("fam", ["vit_family", "deit_family", "timm_vit_family", "vit12_heads_family"])
def test_vit_flops_include_attention_matmuls(request, fam):
    family = _family(request, fam)
    plan = family.plan
    for lv in plan.levels:
        assert lv.flops > 2 * lv.macs
    # dense: 2 x (QK^T + AV) = 2 x 2 x tokens^2 x width per layer, tokens = patches + prefix tokens
    model = family.model
    if plan.architecture == "timm-vit":
        tokens = model.patch_embed.num_patches + model.num_prefix_tokens
        widths = [b.attn.qkv.out_features // 3 for b in model.blocks]
    else:
        backbone = model.vit if hasattr(model, "vit") else model.deit
        tokens = backbone.embeddings.position_embeddings.shape[1]
        widths = [layer.attention.q_proj.out_features for layer in backbone.layers]
    dense = plan.levels[-1]
    assert dense.flops - 2 * dense.macs == 2 * sum(2 * tokens * tokens * w for w in widths)


@pytest.mark.parametrize("fam", ["resnet_family", "tv_resnet_family", "vgg_family"])
def test_cnn_flops_are_twice_macs(request, fam):
    for lv in _family(request, fam).plan.levels:
        assert lv.flops == 2 * lv.macs


# =============================================================================================================
# 4. replay
# =============================================================================================================
def _take(t: torch.Tensor, *indices) -> torch.Tensor:
    """``t`` indexed along dim 0, 1, ... by the given index lists (None = keep that dim)."""
    for axis, idx in enumerate(indices):
        if idx is not None:
            t = t.index_select(axis, torch.tensor(idx))
    return t


def test_hf_vit_level_weights_are_slices_of_the_base(vit_family, extracted):
    base, plan = vit_family.model, vit_family.plan
    for k in (1, 2):
        kept = plan.level(k).kept
        e = extracted(vit_family, k)
        h = kept["hidden"]
        emb, base_emb = e.vit.embeddings, base.vit.embeddings
        assert torch.equal(emb.patch_embeddings.projection.weight, _take(base_emb.patch_embeddings.projection.weight, h))
        assert torch.equal(emb.cls_token, _take(base_emb.cls_token, None, None, h))
        assert torch.equal(emb.position_embeddings, _take(base_emb.position_embeddings, None, None, h))
        for i, (layer, base_layer) in enumerate(zip(e.vit.layers, base.vit.layers)):
            a, m = kept[f"layers.{i}.attention"], kept[f"layers.{i}.mlp"]
            for proj in ("q_proj", "k_proj", "v_proj"):
                got, ref = getattr(layer.attention, proj), getattr(base_layer.attention, proj)
                assert torch.equal(got.weight, _take(ref.weight, a, h)), f"level {k} layer {i} {proj}"
                assert torch.equal(got.bias, _take(ref.bias, a))
            assert torch.equal(layer.attention.o_proj.weight, _take(base_layer.attention.o_proj.weight, h, a))
            assert torch.equal(layer.mlp.fc1.weight, _take(base_layer.mlp.fc1.weight, m, h))
            assert torch.equal(layer.mlp.fc2.weight, _take(base_layer.mlp.fc2.weight, h, m))
            assert torch.equal(layer.layernorm_before.weight, _take(base_layer.layernorm_before.weight, h))
        assert torch.equal(e.vit.layernorm.bias, _take(base.vit.layernorm.bias, h))
        assert torch.equal(e.classifier.weight, _take(base.classifier.weight, None, h))
        assert torch.equal(e.classifier.bias, base.classifier.bias)


def test_timm_vit_fused_qkv_is_sliced_per_projection(timm_vit_family, extracted):
    base, plan = timm_vit_family.model, timm_vit_family.plan
    kept = plan.level(1).kept
    e = extracted(timm_vit_family, 1)
    h = kept["hidden"]
    width = base.blocks[0].attn.qkv.out_features // 3
    for i, block in enumerate(e.blocks):
        a = kept[f"layers.{i}.attention"]
        rows = [j * width + c for j in range(3) for c in a]
        assert torch.equal(block.attn.qkv.weight, _take(base.blocks[i].attn.qkv.weight, rows, h))
        assert block.attn.num_heads * block.attn.head_dim == len(a)
    assert torch.equal(e.cls_token, _take(base.cls_token, None, None, h))
    assert torch.equal(e.head.weight, _take(base.head.weight, None, h))


@pytest.mark.parametrize("fam", ["resnet_family", "tv_resnet_family"])
def test_resnet_level_weights_are_slices_of_the_base(request, fam, extracted):
    family = _family(request, fam)
    base, plan = family.model, family.plan
    kept = plan.level(1).kept
    e = extracted(family, 1)
    stem, inner = kept["conv1"], kept["layer1.0.conv1"]
    assert torch.equal(e.conv1.weight, _take(base.conv1.weight, stem))
    assert torch.equal(e.bn1.running_mean, _take(base.bn1.running_mean, stem))
    assert torch.equal(e.layer1[0].conv1.weight, _take(base.layer1[0].conv1.weight, inner, stem))
    assert torch.equal(e.layer1[0].conv2.weight, _take(base.layer1[0].conv2.weight, stem, inner))
    out4, inner4 = kept["layer4.0.downsample.0"], kept["layer4.1.conv1"]
    assert torch.equal(e.layer4[1].conv2.weight, _take(base.layer4[1].conv2.weight, out4, inner4))
    assert torch.equal(e.fc.weight, _take(base.fc.weight, None, out4))


def test_plan_json_round_trip_replays_identically(vit_family, tmp_path):
    plan = vit_family.plan
    path = plan.save(tmp_path)
    assert path.name == "elastic_plan.json" and path.is_file()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    loaded = ElasticPlan.load(path)
    assert loaded.to_dict() == plan.to_dict()
    x = torch.randn(2, 3, 32, 32)
    for k in (1, 2):
        a = extract_level(vit_family.model, plan, k)
        b = extract_level(vit_family.model, loaded, k)
        assert torch.equal(a(x).logits, b(x).logits)


def test_plan_load_errors(tmp_path):
    with pytest.raises(ElastoformerError, match="no elastic plan"):
        ElasticPlan.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "elastoformer-plan", ')
    with pytest.raises(ElastoformerError, match="corrupt"):
        ElasticPlan.load(bad)
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ElastoformerError):
        ElasticPlan.load(bad)


def test_level_out_of_range(vit_family):
    with pytest.raises(ElastoformerError):
        vit_family.plan.level(0)
    with pytest.raises(ElastoformerError):
        vit_family.plan.level(vit_family.plan.num_levels + 1)


def test_extract_does_not_mutate_parent(vit_family):
    parent = vit_family.model
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    config_before = parent.config.to_dict()
    e = extract_level(parent, vit_family.plan, 1)
    assert e.config.hidden_size < TINY_VIT["hidden_size"]
    assert parent.config.to_dict() == config_before
    assert parent.vit.layers[0].attention.head_dim == TINY_VIT["hidden_size"] // TINY_VIT["num_attention_heads"]
    after = parent.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not e.training


def _tiny_hf_vit(**overrides):
    torch.manual_seed(0)
    return ViTForImageClassification(ViTConfig(**{**TINY_VIT, **overrides})).eval()


def test_replay_on_a_wrong_model_raises(vit_family):
    with pytest.raises(ElastoformerError, match="not the dense model this plan was made from"):
        apply_level(_tiny_hf_vit(hidden_size=48), vit_family.plan, 1)
    with pytest.raises(ElastoformerError, match="not the dense model this plan was made from"):
        apply_level(_tiny_hf_vit(intermediate_size=96), vit_family.plan, 1)
    with pytest.raises(ElastoformerError, match="transformers-vit"):
        apply_level(timm.create_model("resnet18", num_classes=NUM_LABELS), vit_family.plan, 1)


@pytest.mark.parametrize("overrides", [{"num_hidden_layers": 3}, {"num_attention_heads": 8}], ids=["depth3", "heads8"])
def test_replay_rejects_model_with_extra_layers_or_other_heads(vit_family, overrides):
    with pytest.raises(ElastoformerError, match="not the dense model"):
        apply_level(_tiny_hf_vit(**overrides), vit_family.plan, 1)


def test_replay_on_vit_of_other_resolution_raises_elastoformer_error(vit_family):
    with pytest.raises(ElastoformerError, match="plan was made at 32px"):
        apply_level(_tiny_hf_vit(image_size=48), vit_family.plan, 1)


def _mlp_dim(plan):
    return next(name for name, dim in plan.dims.items() if dim.kind == "mlp")


def _not_nested(kept, wider, size):
    outside = next(i for i in range(size) if i not in wider)
    return sorted(kept[:-1] + [outside])


CORRUPTIONS = {  # finding 8f: how a kept-index list of level 1 is edited, and what the error says
    "shortened": (lambda kept, wider, size: kept[:-1], "indices but the level's width is"),
    "out-of-range": (lambda kept, wider, size: kept[:-1] + [size + 3], "outside the dimension's 0.."),
    "duplicate": (lambda kept, wider, size: [kept[0], *kept[:-1]], "repeats indices"),
    "unsorted": (lambda kept, wider, size: [kept[1], kept[0], *kept[2:]], "not in ascending order"),
    "not-nested": (_not_nested, "keeps indices that DN2 does not"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupt_plan_is_refused_naming_file_level_and_layer(vit_family, tmp_path, corruption):
    """A plan whose index lists disagree with its records is a CheckpointError when read or applied, never a
    level narrower than its record (an index out of range, or repeated, used to be dropped silently)."""
    plan, (edit, words) = vit_family.plan, CORRUPTIONS[corruption]
    name = _mlp_dim(plan)
    data = plan.to_dict()
    kept = data["levels"][0]["kept"]
    kept[name] = edit(kept[name], data["levels"][1]["kept"][name], plan.dims[name].size)
    path = tmp_path / "elastic_plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError) as info:
        ElasticPlan.load(path)
    message = str(info.value)
    layer = name if name == plan.dims[name].root else f"{name} ({plan.dims[name].root})"
    assert message.startswith(f"{path}: level 1, layer {layer}: ") and words in message and "\n" not in message
    if corruption != "not-nested":  # a plan in memory: the level applied is checked (its nesting on reading)
        with pytest.raises(CheckpointError, match=f"level 1, layer {re.escape(layer)}"):
            apply_level(copy.deepcopy(vit_family.model), ElasticPlan.from_dict(data), 1)


def test_a_plan_missing_a_level_is_refused(vit_family, tmp_path):
    data = vit_family.plan.to_dict()
    del data["levels"][1]
    path = tmp_path / "elastic_plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"levels are numbered \[1, 3\], not 1..3"):
        ElasticPlan.load(path)


@pytest.mark.parametrize(("config", "words"), [
    # ratio near 1: the core and the next level are both at the 1-channel floor
    (dict(pruning_ratio=0.999, pruning_steps=50, round_to=1), ["DN1 = DN2", "at least one channel"]),
    # steps finer than the rounding: mlp 128 -> 64 in 16 steps of 4 channels, rounded to 8
    (dict(pruning_ratio=0.5, pruning_steps=16, round_to=8), ["DN1 = DN2, DN3 = DN4", "and 4 more",
                                                              "one --round_to multiple (8 channels)"]),
], ids=["ratio", "round_to"])
def test_a_schedule_with_identical_levels_is_refused(vit_family, config, words):
    """Finding 9j: two levels with the same kept channels (a family holding one network twice) are refused
    when planning, before any training, saying which levels and what to change."""
    with pytest.raises(ElastoformerError, match="gives identical levels") as info:
        plan_levels(vit_family.model, PruningConfig(**config))
    message = str(info.value)
    assert all(w in message for w in [*words, "MACs each", "fewer --pruning_steps"]), message


def test_image_size_must_be_positive(vit_family):
    """Finding 9i: 0 was read as "the model's own resolution"."""
    for size in (0, -5):
        with pytest.raises(SettingError, match=f"image_size must be an integer >= 1 .*got {size}"):
            plan_levels(vit_family.model, PruningConfig(pruning_ratio=0.5, pruning_steps=2), image_size=size)


# =============================================================================================================
# 5. importance criteria
# =============================================================================================================
@pytest.fixture(scope="session")
def importance_plan(hf_vit_dir):
    """``importance_plan(arch, pruning_type)``: memoised 3-level (ViT) / 2-level (resnet18 @ 32 px) plans."""
    cache, models = {}, {}

    def get(arch: str, pruning_type: str):
        key = (arch, pruning_type)
        if key not in cache:
            if arch not in models:  # plan_levels never modifies the model: one per architecture
                models[arch] = load_tiny(str(hf_vit_dir) if arch == "vit" else "resnet18").model
            steps, size = (2, None) if arch == "vit" else (1, 32)
            model = models[arch]
            config = PruningConfig(pruning_type=pruning_type, pruning_ratio=0.5, pruning_steps=steps, round_to=1,
                                   taylor_batches=1)
            calibration = None
            if config.needs_gradients:
                calibration = synthetic_batches(torch.zeros(1, 3, 32, 32), NUM_LABELS, batch_size=2, seed=1)
            torch.manual_seed(0)
            cache[key] = plan_levels(model, config, calibration=calibration, image_size=size)
        return cache[key]

    return get


@pytest.mark.parametrize("arch", ["vit", "resnet"])
@pytest.mark.parametrize("pruning_type", PRUNING_TYPES)
def test_every_importance_plans(importance_plan, arch, pruning_type):
    plan = importance_plan(arch, pruning_type)
    assert plan.config.pruning_type == pruning_type
    for name, dim in plan.dims.items():
        assert plan.levels[-1].kept[name] == list(range(dim.size))
        for small, big in zip(plan.levels, plan.levels[1:]):
            assert set(small.kept[name]) <= set(big.kept[name])
        core = plan.levels[0].dims[name]
        expected = (dim.size // dim.group_size) * int(dim.group_size * 0.5) if dim.kind == "attention" else dim.size // 2
        assert core == expected, name


@pytest.mark.parametrize("pruning_type", ["taylor", "hessian"])
def test_gradient_importance_needs_calibration(vit_family, pruning_type):
    config = PruningConfig(pruning_type=pruning_type, pruning_steps=1, round_to=1)
    with pytest.raises(ElastoformerError, match="calibration"):
        plan_levels(vit_family.model, config)


def test_taylor_and_l1_choose_different_channels(importance_plan):
    l1, taylor = importance_plan("vit", "l1"), importance_plan("vit", "taylor")
    differing = [n for n in l1.dims if set(l1.levels[0].kept[n]) != set(taylor.levels[0].kept[n])]
    assert differing, "taylor picked exactly the l1 channels: gradients do not reach the importance"
    # same widths though: the criterion changes which channels, not how many
    assert l1.levels[0].dims == taylor.levels[0].dims


def test_calibration_loader_without_batches_is_an_error(vit_family):
    config = PruningConfig(pruning_type="taylor", pruning_steps=1, round_to=1, taylor_batches=1)
    with pytest.raises(ElastoformerError, match="no batches"):
        plan_levels(vit_family.model, config, calibration=[])


def test_global_pruning_gives_non_uniform_widths(vit_global_family):
    plan = vit_global_family.plan
    assert plan.config.global_pruning
    assert not plan.levels[0].structure["uniform"]
    assert any(
        lv.dims["layers.0.mlp"] != lv.dims["layers.1.mlp"]
        or lv.dims["layers.0.attention"] != lv.dims["layers.1.attention"]
        for lv in plan.levels
    )
    assert plan.levels[-1].structure["uniform"]


# =============================================================================================================
# 8. bad input
# =============================================================================================================
@pytest.mark.parametrize("ratio", [0, 1, -0.1, 1.5, "abc", None, True, math.nan])
def test_bad_pruning_ratio(ratio):
    with pytest.raises(ElastoformerError, match="pruning_ratio"):
        PruningConfig(pruning_ratio=ratio)


@pytest.mark.parametrize("kwargs, field", [
    ({"pruning_steps": 0}, "pruning_steps"),
    ({"pruning_steps": -2}, "pruning_steps"),
    ({"pruning_steps": 2.5}, "pruning_steps"),
    ({"round_to": 0}, "round_to"),
    ({"round_to": -8}, "round_to"),
    ({"taylor_batches": 0}, "taylor_batches"),
])
def test_bad_integer_settings(kwargs, field):
    with pytest.raises(ElastoformerError, match=field):
        PruningConfig(**kwargs)


@pytest.mark.parametrize("name", ["l3", "L1", "", "magnitude"])
def test_unknown_pruning_type_lists_accepted(name):
    with pytest.raises(ElastoformerError) as info:
        PruningConfig(pruning_type=name)
    message = str(info.value)
    assert "pruning_type" in message
    for accepted in ("l1", "l2", "taylor", "hessian", "random"):
        assert accepted in message


def test_keep_fraction_rejects_levels_out_of_range():
    config = PruningConfig(pruning_steps=3)
    assert config.num_levels == 4
    with pytest.raises(ElastoformerError):
        config.keep_fraction(0)
    with pytest.raises(ElastoformerError):
        config.keep_fraction(5)


def test_config_dict_round_trip():
    config = PruningConfig(pruning_type="taylor", pruning_ratio=0.4, pruning_steps=3, round_to=4, prune_heads=True)
    assert PruningConfig.from_dict({**config.to_dict(), "unknown": 1}) == config


def test_round_to_wider_than_a_layer(vit_family):
    with pytest.raises(ElastoformerError, match="--round_to") as info:
        plan_levels(vit_family.model, PruningConfig(pruning_steps=2, round_to=64))
    assert "hidden" in str(info.value) or "layers." in str(info.value)


def test_unknown_model_name():
    from elastoformer_hf.base_model import load_base_model

    with pytest.raises(UnsupportedModelError, match="no_such_model_xyz"):
        load_base_model("no_such_model_xyz", random_init=True)


@pytest.mark.parametrize("name", ["pvt_v2_b0", "levit_128s", "coat_lite_tiny", "torchvision:swin_t"])
def test_unsupported_architecture_names_supported_families(name):
    from elastoformer_hf.base_model import load_base_model

    with pytest.raises(UnsupportedModelError) as info:
        load_base_model(name, random_init=True, num_labels=NUM_LABELS)
    message = str(info.value)
    assert "unsupported architecture" in message
    for family in ("timm ResNet", "timm VGG", "torchvision ResNet", "torchvision VGG", "VisionTransformer",
                   "ViTForImageClassification", "any attention-free timm classifier", "register_adapter"):
        assert family in message, family


def test_folder_without_config_is_an_error(tmp_path):
    from elastoformer_hf.base_model import load_base_model

    with pytest.raises(ElastoformerError, match="config.json"):
        load_base_model(str(tmp_path), random_init=True)


def test_hf_config_without_architectures_loads(tmp_path):
    """A config.json without ``architectures`` falls back to the image-classification Auto mapping."""
    from elastoformer_hf.base_model import load_base_model

    ViTConfig(**TINY_VIT).save_pretrained(tmp_path)
    lm = load_base_model(str(tmp_path), random_init=True, num_labels=NUM_LABELS)
    assert isinstance(lm.model, ViTForImageClassification)


def test_planning_shows_a_progress_bar_that_the_usual_switches_turn_off(vit_family, capsys, monkeypatch):
    """Planning steps show huggingface_hub's tqdm on stderr; ``disable_progress_bars`` (the Hub's switch, here for
    the package's group) and a package log level above INFO turn it off; the plan is the same either way."""
    import importlib

    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    from elastoformer_hf.messages import set_level

    # as a fresh process has it: conftest sets HF_HUB_DISABLE_PROGRESS_BARS=1 for the suite (read once, at import),
    # earlier tests switch bars off (transformers' disable_progress_bar) or leave a quieter level (--log_level)
    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    monkeypatch.setattr(hub_tqdm, "progress_bar_states", {})
    set_level("INFO")

    config = PruningConfig(pruning_ratio=0.5, pruning_steps=2)
    shown = plan_levels(vit_family.model, config)
    assert "[elastoformer] planning levels" in capsys.readouterr().err
    try:
        disable_progress_bars("elastoformer_hf")
        hidden = plan_levels(vit_family.model, config)
        assert "planning levels" not in capsys.readouterr().err
    finally:
        enable_progress_bars("elastoformer_hf")
    try:
        set_level("WARNING")
        plan_levels(vit_family.model, config)
        assert "planning levels" not in capsys.readouterr().err
    finally:
        set_level("INFO")
    assert [lv.kept for lv in shown.levels] == [lv.kept for lv in hidden.levels]
