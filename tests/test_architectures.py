"""Any attention-free classifier of timm, torchvision or transformers becomes a family (the generic adapters), and so
do the attention models with adapters of their own (transformers BEiT and DINOv2, timm Swin): tiny configurations
with random weights, each planned, saved level by level (grown from the level below with its blocks frozen),
reloaded by stock code, turned into the family artifact and exported to ONNX."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers

from elastoformer_hf.adapters import get_adapter
from elastoformer_hf.base_model import load_base_model, probe_adapter
from elastoformer_hf.cli import main
from elastoformer_hf.descendant import bare_model, load_descendant
from elastoformer_hf.errors import CheckpointError, SettingError, UnsupportedModelError
from elastoformer_hf.family import ElasticFamily
from elastoformer_hf.nesting import build_family, write_synthetic_run
from elastoformer_hf.nesting.levels import extract_nested, grow_level, nested_positions, original_indices
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.replay import apply_level
from elastoformer_hf.run_folder import read_level_info

SIZE = 64
BEIT = dict(image_size=SIZE, patch_size=16, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=96, use_relative_position_bias=True, layer_scale_init_value=0.1, use_mean_pooling=True)
HF_CONFIGS = {
    "hf-convnext": ("ConvNextConfig", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1], image_size=SIZE)),
    "hf-mobilenetv2": ("MobileNetV2Config", dict(depth_multiplier=0.35, image_size=SIZE)),
    "hf-beit": ("BeitConfig", BEIT),
    "hf-beit-heads": ("BeitConfig", BEIT),
    "hf-beit-shared-bias": ("BeitConfig", {**BEIT, "use_relative_position_bias": False,
                                           "use_shared_relative_position_bias": True}),
    "hf-dinov2": ("Dinov2Config", dict(image_size=SIZE, patch_size=16, hidden_size=48, num_hidden_layers=2,
                                       num_attention_heads=4, mlp_ratio=2)),
    "hf-dinov2-swiglu-heads": ("Dinov2Config", dict(image_size=SIZE, patch_size=16, hidden_size=48,
                                                    num_hidden_layers=2, num_attention_heads=4, use_swiglu_ffn=True)),
}
SWIN = dict(img_size=SIZE, window_size=4, embed_dim=32, depths=(2, 2), num_heads=(2, 4))
#: timm constructor arguments (tiny versions of the named architecture) and pruning settings other than the default
MODEL_ARGS = {"timm-swin": SWIN, "timm-swin-heads": SWIN}
PRUNING = {"hf-beit": dict(head_pruning="head_dims"), "hf-dinov2": dict(head_pruning="head_dims"),
           "timm-swin": dict(head_pruning="head_dims"), "hf-beit-heads": dict(head_pruning="heads"),
           "hf-dinov2-swiglu-heads": dict(head_pruning="heads"), "timm-swin-heads": dict(head_pruning="heads")}
#: name -> (what load_base_model takes, the adapter expected)
MODELS = {
    "timm-mobilenetv2": ("mobilenetv2_050", "timm-cnn"),
    "timm-mobilenetv3": ("mobilenetv3_small_050", "timm-cnn"),
    "timm-efficientnet-lite": ("tf_efficientnet_lite0", "timm-cnn"),
    "timm-convnext": ("convnext_atto", "timm-cnn"),
    "torchvision-mobilenetv2": ("torchvision:mobilenet_v2", "torchvision-cnn"),
    "torchvision-efficientnet": ("torchvision:efficientnet_b0", "torchvision-cnn"),
    "hf-convnext": (None, "transformers-cnn"),
    "hf-mobilenetv2": (None, "transformers-cnn"),
    "hf-beit": (None, "transformers-beit"),
    "hf-beit-heads": (None, "transformers-beit"),
    "hf-beit-shared-bias": (None, "transformers-beit"),
    "hf-dinov2": (None, "transformers-dinov2"),
    "hf-dinov2-swiglu-heads": (None, "transformers-dinov2"),
    "timm-swin": ("swin_tiny_patch4_window7_224", "timm-swin"),
    "timm-swin-heads": ("swin_tiny_patch4_window7_224", "timm-swin"),
}
ATTENTION = [k for k, (_, adapter) in MODELS.items() if not adapter.endswith("cnn")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(key)``: (loaded model, plan, run folder) of a synthetic 3-level run of that model (memoised)."""
    root = tmp_path_factory.mktemp("architectures")
    cache = {}

    def get(key: str):
        if key not in cache:
            name, _ = MODELS[key]
            if name is None:  # a transformers config folder
                cls, kwargs = HF_CONFIGS[key]
                name = str(root / key)
                getattr(transformers, cls)(num_labels=5, architectures=[cls.replace("Config", "ForImageClassification")],
                                           **kwargs).save_pretrained(name)
            torch.manual_seed(0)
            loaded = load_base_model(name, random_init=True, num_labels=5, model_args=MODEL_ARGS.get(key))
            with torch.no_grad():  # BEiT starts its relative position tables at zero: make every column tell
                for param_name, param in loaded.model.named_parameters():
                    if "relative_position_bias_table" in param_name:
                        param.normal_()
            plan = plan_levels(loaded.model, PruningConfig(pruning_ratio=0.4, pruning_steps=2, **PRUNING.get(key, {})),
                               model_name=key, image_size=SIZE)
            run = write_synthetic_run(loaded, plan, root / f"{key}-run")
            cache[key] = (loaded, plan, run)
        return cache[key]

    return get


@pytest.mark.parametrize("key", list(MODELS))
def test_plan_save_reload_family_and_onnx(runs, key, tmp_path):
    loaded, plan, run = runs(key)
    assert get_adapter(loaded.model).name == MODELS[key][1] and plan.architecture == MODELS[key][1]
    macs = [lv.macs for lv in plan.levels]
    assert macs == sorted(macs) and macs[0] < 0.8 * macs[-1]
    for small, big in zip(plan.levels, plan.levels[1:]):  # nested: every level's channels are inside the next's
        assert all(set(small.kept[dim]) <= set(big.kept[dim]) for dim in plan.dims)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    family = build_family(run)  # checks that every level nests in the next and reproduces its dn{k}/ logits
    for k in range(1, plan.num_levels + 1):
        level = load_descendant(run / f"dn{k}")
        # the reloaded level is the plan's level: its parameter count, and its grouped convolutions' groups
        assert sum(p.numel() for p in bare_model(level).parameters()) == plan.level(k).params
        want = get_adapter(bare_model(level)).forward_logits(bare_model(level), x)
        family.set_level(k)
        assert torch.allclose(family(x), want, atol=1e-5, rtol=1e-5), key
    pytest.importorskip("onnxruntime")
    from elastoformer_hf.export import export_onnx

    record = export_onnx(run / "dn1", exporter="torchscript", overwrite=True)  # checked at atol 1e-4
    assert max(record["max_abs_diff"].values()) <= 1e-4


def test_depthwise_levels_open_with_stock_transformers_and_a_pipeline(runs):
    """A pruned MobileNet level (depthwise convolutions, fewer groups) opens without elastoformer-hf: AutoModel,
    AutoModelForImageClassification, AutoImageProcessor and pipeline(), with trust_remote_code."""
    _, _, run = runs("torchvision-mobilenetv2")
    level = run / "dn1"
    config = json.loads((level / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
    assert config["conv_groups"] and (level / "preprocessor_config.json").is_file()
    code = textwrap.dedent(f"""
        import numpy as np, torch
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline
        path = {str(level)!r}
        x = torch.randn(1, 3, 64, 64)
        a = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True).eval()(x).logits
        b = AutoModel.from_pretrained(path, trust_remote_code=True).eval()(x).logits
        assert torch.equal(a, b)
        assert AutoImageProcessor.from_pretrained(path, trust_remote_code=True)(
            Image.new("RGB", (40, 50)), return_tensors="pt")["pixel_values"].shape[-1] == 224
        out = pipeline("image-classification", model=path, trust_remote_code=True)(Image.new("RGB", (40, 50)))
        print(len(out))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/",
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "5"


def test_full_width_timm_level_is_stock_timm_and_opens_in_timm_wrapper(runs):
    _, plan, run = runs("timm-mobilenetv2")
    full = run / f"dn{plan.num_levels}"
    assert read_level_info(full)["checkpoint_format"] == "timm"
    assert "num_classes" not in json.loads((full / "config.json").read_text()).get("model_args", {})
    wrapper = transformers.AutoModelForImageClassification.from_pretrained(full).eval()  # transformers' TimmWrapper
    x = torch.randn(1, 3, SIZE, SIZE)
    torch.testing.assert_close(wrapper(x).logits, load_descendant(full)(x))


RESNEXT_ARGS = {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_width": 16, "cardinality": 4,
                "base_width": 16}  # 4 groups of 4 to 32 channels


@pytest.mark.parametrize(("name", "model_args", "steps"), [("regnety_002", None, 1),
                                                           ("resnext50_32x4d", RESNEXT_ARGS, 2)])
def test_grouped_convolutions_family_levels_give_their_dn_logits(tmp_path, monkeypatch, name, model_args, steps):
    """RegNetY and ResNeXt keep their group count while each group narrows, the same offsets in every group
    (torch-pruning): the family stores those channels as per-group prefixes (format version 2, which a reader of
    version 1 refuses by its version) and every level gives its dn{k} logits, current or not."""
    loaded = load_base_model(name, random_init=True, num_labels=5, model_args=model_args)
    plan = plan_levels(loaded.model, PruningConfig(pruning_ratio=0.4, pruning_steps=steps), image_size=SIZE)
    run = write_synthetic_run(loaded, plan, tmp_path / "run")
    folder = build_family(run).save_pretrained(tmp_path / "family")
    assert json.loads((folder / "family_config.json").read_text())["format_version"] == 2
    again = build_family(run, verify=False).save_pretrained(tmp_path / "again")  # reproducible, byte for byte
    assert all((folder / f).read_bytes() == (again / f).read_bytes() for f in ("family_config.json", "family.safetensors"))
    family = ElasticFamily.from_pretrained(folder)
    grouped = {n for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Conv2d) and 1 < m.groups < m.in_channels}
    assert grouped and all(family.layout.shared[f"{n}.weight"][0].unit == "conv_groups" for n in grouped)
    x = torch.randn(2, 3, SIZE, SIZE)
    for k in range(1, plan.num_levels + 1):
        reference = load_descendant(run / f"dn{k}")
        with torch.no_grad():
            want = get_adapter(bare_model(reference)).output_transform(reference(x))
            on_views = get_adapter(family.level_model(k)).forward_logits(family.level_model(k), x)
            got = family.set_level(k)(x)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1.3e-6)
        torch.testing.assert_close(on_views, want, atol=1e-5, rtol=1.3e-6)
        assert all(family.model.get_submodule(n).groups == loaded.model.get_submodule(n).groups for n in grouped)
        exported = family.export_level(k)  # stock modules, contiguous weights
        with torch.no_grad():
            torch.testing.assert_close(get_adapter(exported).forward_logits(exported, x), got, atol=1e-6, rtol=0)
    monkeypatch.setattr("elastoformer_hf.family.storage.FORMAT_VERSION", 1)
    with pytest.raises(CheckpointError, match="format version 2, newer than this elastoformer-hf reads"):
        ElasticFamily.from_pretrained(folder)


@pytest.mark.parametrize(("model", "message"), [
    ("pvt_v2_b0", "unsupported architecture PyramidVisionTransformerV2"),
    ("acme/not-on-this-machine", "could not read the config"),
])
def test_refusals_are_one_line_and_write_nothing(capsys, tmp_path, model, message):
    out = tmp_path / "out"
    code = main(["plan", "--model_name_or_path", model, "--random_init", "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not out.exists()
    if "unsupported" in message:
        assert "register_adapter" in err


@pytest.mark.parametrize("num_labels", [0, -1, True])
@pytest.mark.parametrize("source", ["transformers", "timm", "torchvision"])
def test_a_class_count_below_one_is_refused_not_a_headless_model(hf_vit_dir, source, num_labels):
    """Finding 9h: 0 (or less) classes built a model without a classifier (transformers and timm read it as "no
    head"), and a family was planned from it; 1 stays legal (a one-class head exists)."""
    name = {"transformers": str(hf_vit_dir), "timm": "resnet18", "torchvision": "torchvision:resnet18"}[source]
    with pytest.raises(SettingError, match=f"num_labels must be an integer >= 1 .*got {num_labels}"):
        load_base_model(name, random_init=True, num_labels=num_labels)


def test_an_architecture_torch_pruning_cannot_trace_is_refused_in_one_line(capsys, tmp_path):
    folder = tmp_path / "efficientnet"
    transformers.EfficientNetConfig(width_coefficient=0.25, depth_coefficient=0.25, num_labels=5, image_size=SIZE,
                                    architectures=["EfficientNetForImageClassification"]).save_pretrained(folder)
    code = main(["plan", "--model_name_or_path", str(folder), "--random_init", "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "torch-pruning's dependency graph cannot trace" in err and "register_adapter" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()


STOCK_OPEN = textwrap.dedent("""
    import json, sys, torch
    from pathlib import Path
    from transformers import AutoModelForImageClassification
    x = torch.load(sys.argv[1])
    for path, want in json.loads(sys.argv[2]).items():
        form = json.loads((Path(path) / "elastic_level.json").read_text())["checkpoint_format"]
        if form == "timm":
            import timm
            out = timm.create_model("local-dir:" + path, pretrained=True).eval()(x)
        else:  # the stock class, or the elastoformer form through its auto_map code
            out = AutoModelForImageClassification.from_pretrained(
                path, trust_remote_code=form == "elastoformer").eval()(x).logits
        assert (out - torch.load(want)).abs().max() <= 1e-5, path
        print(form)
""")


def test_attention_levels_open_with_stock_code_and_equal_the_plan(runs, tmp_path):
    """Every attention model's core and full level, opened in a process that never imports elastoformer_hf: stock
    transformers where the config expresses the level (BEiT, DINOv2), timm for Swin's dense level, the
    elastoformer form with trust_remote_code otherwise; the same logits as the level the plan describes."""
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    torch.save(x, tmp_path / "x.pt")
    expected, forms = {}, {}
    for key in ATTENTION:
        loaded, plan, run = runs(key)
        for k in (1, plan.num_levels):
            level = bare_model(load_descendant(run / f"dn{k}"))
            assert sum(p.numel() for p in level.parameters()) == plan.level(k).params
            want = tmp_path / f"{key}-{k}.pt"
            with torch.no_grad():
                torch.save(get_adapter(level).forward_logits(level, x), want)
            expected[str(run / f"dn{k}")] = str(want)
            forms[(key, k)] = read_level_info(run / f"dn{k}")["checkpoint_format"]
    proc = subprocess.run([sys.executable, "-c", STOCK_OPEN, str(tmp_path / "x.pt"), json.dumps(expected)],
                          capture_output=True, text=True, timeout=600, cwd="/",
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    # uniform BEiT / DINOv2 levels are stock configs; Swin's pruned levels are not (timm form: the dense one)
    assert forms[("hf-beit", 1)] == forms[("hf-beit-heads", 1)] == forms[("hf-dinov2", 1)] == "transformers"
    assert forms[("timm-swin", 1)] == "elastoformer" and forms[("timm-swin", 3)] == "timm"
    assert forms[("hf-dinov2-swiglu-heads", 1)] == "elastoformer"  # SwiGLU rounds its width: no stock config


@pytest.mark.parametrize("key", ["hf-beit-heads", "timm-swin-heads"])
def test_relative_position_tables_keep_the_columns_of_the_kept_heads(runs, key):
    """The tables are indexed by head, which torch-pruning's graph cannot see: a level's table holds the dense
    table's columns of exactly the heads its q projection kept (as torch-pruning chose them)."""
    loaded, plan, _ = runs(key)
    dense, adapter = loaded.model, get_adapter(loaded.model)
    level = apply_level(copy.deepcopy(dense), plan, 1)
    rows = original_indices(dense, plan, 1, level)
    tables = dict(level.named_parameters())
    dense_tables = dict(dense.named_parameters())
    checked = 0
    for name, (heads, head_dim) in adapter.attention_modules(dense).items():
        q = f"{name}.q_proj.weight" if f"{name}.q_proj.weight" in rows else f"{name}.qkv.weight"
        kept_heads = torch.unique((rows[q][0] // head_dim) % heads)
        block = name.rsplit(".", 1)[0] + "."  # the layer holding this attention (BEiT: its table sits beside it)
        table = next(n for n in tables if n.startswith(block) and n.endswith("relative_position_bias_table"))
        assert 0 < kept_heads.numel() < heads
        torch.testing.assert_close(tables[table], dense_tables[table][:, kept_heads], rtol=0, atol=0)
        checked += 1
    assert checked == len(adapter.attention_modules(dense))


@pytest.mark.parametrize("key", ["hf-beit-heads", "hf-dinov2", "timm-swin"])
def test_rebuilding_a_level_keeps_the_smaller_level_frozen(runs, key):
    """A level grown from the one below (layer scales, relative position tables, DINOv2's two-copy classifier input,
    Swin's patch merging included): after optimizer steps with weight decay, the smaller level cut out of it is
    the smaller level, exactly."""
    loaded, plan, _ = runs(key)
    dense = loaded.model
    small = apply_level(copy.deepcopy(dense), plan, 1)
    with torch.no_grad():
        for p in small.parameters():
            p.add_(0.5)  # "trained": distinguishable from the dense weights
    big = apply_level(copy.deepcopy(dense), plan, 2)
    positions = nested_positions(original_indices(dense, plan, 1), original_indices(dense, plan, 2))
    frozen = grow_level(small, big, positions).install()
    optimizer = torch.optim.AdamW([p for p in big.parameters() if p.requires_grad], lr=0.1, weight_decay=0.5)
    optimizer.register_step_post_hook(frozen.restore)
    adapter = get_adapter(big)
    big.train()
    for _ in range(2):
        adapter.forward_logits(big, torch.randn(2, 3, SIZE, SIZE)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    frozen.remove()
    cut = extract_nested(big, apply_level(copy.deepcopy(dense), plan, 1), positions, level_specific=small)
    for name, tensor in small.state_dict().items():
        assert torch.equal(cut.state_dict()[name], tensor), name


def test_dinov2_family_with_a_shared_classifier(runs, tmp_path):
    """DINOv2's classifier reads two copies of the hidden width; shared across levels, each level's view takes
    the same channels of both copies."""
    loaded, plan, _ = runs("hf-dinov2")
    run = write_synthetic_run(loaded, plan, tmp_path / "run", share_classifier=True)
    family = build_family(run)  # checks every level's logits against its dn{k}/
    x = torch.randn(2, 3, SIZE, SIZE)
    for k in range(1, plan.num_levels + 1):
        family.set_level(k)
        torch.testing.assert_close(family(x), load_descendant(run / f"dn{k}")(x).logits, atol=1e-5, rtol=1e-5)


def test_whole_heads_with_a_shared_relative_position_table_are_refused(runs):
    loaded, _, _ = runs("hf-beit-shared-bias")
    with pytest.raises(UnsupportedModelError, match="shared by all layers .*plan with head_pruning head_dims"):
        plan_levels(loaded.model, PruningConfig(pruning_ratio=0.4, pruning_steps=2, prune_heads=True), image_size=SIZE)
    # auto never picks what the architecture cannot do, whatever the head count
    auto = plan_levels(loaded.model, PruningConfig(pruning_ratio=0.4, pruning_steps=2), image_size=SIZE)
    assert auto.config.head_pruning == "head_dims"


@pytest.mark.parametrize("source", ["hf-beit", "hf-dinov2", "timm-swin", "hf-swin"])
def test_the_architecture_is_known_from_the_config_before_any_weights(tmp_path, capsys, source):
    """A config folder without weights, or a timm name, offline: supported ones get their adapter, transformers'
    Swin is refused in one line saying why and naming timm's Swin, with exit 2 and nothing written."""
    if source == "timm-swin":
        assert probe_adapter("swin_tiny_patch4_window7_224").name == "timm-swin"
        return
    cls, kwargs = HF_CONFIGS[source] if source != "hf-swin" else ("SwinConfig", dict(image_size=SIZE, window_size=4))
    folder = tmp_path / source
    getattr(transformers, cls)(num_labels=5, architectures=[cls.replace("Config", "ForImageClassification")],
                               **kwargs).save_pretrained(folder)
    if source != "hf-swin":
        assert probe_adapter(str(folder)).name == MODELS[source][1]
        return
    out = tmp_path / "out"
    with pytest.raises(UnsupportedModelError):
        probe_adapter(str(folder))
    # no --random_init: the weights it would load are not there; the refusal comes first
    code = main(["plan", "--model_name_or_path", str(folder), "--output_dir", str(out)])
    line = capsys.readouterr().err
    assert code == 2 and line.count("\n") == 1 and not out.exists()
    assert "SwinForImageClassification" in line and "LayerNorm size mismatch" in line and "timm-swin" in line
