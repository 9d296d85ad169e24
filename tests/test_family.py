"""ElasticFamily: every level in one artifact (shared tensors once, every level a prefix view), switched at run
time without copying weights. A real trainer run (tiny ViT on sklearn digits) and untrained but exactly nested
runs (tiny timm ResNet, timm VGG) written with ``write_synthetic_run``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from elastoformer_hf.adapters import get_adapter
from elastoformer_hf.descendant import load_descendant
from elastoformer_hf.errors import CheckpointError, ElastoformerError
from elastoformer_hf.family import CONFIG_FILE, WEIGHTS_FILE, ElasticFamily, PrefixLinear
from elastoformer_hf.family.layout import Heads, Prefix
from elastoformer_hf.family.modules import copied_per_call
from elastoformer_hf.family.selection import select_level
from elastoformer_hf.nesting import build_family
from elastoformer_hf.nesting.synthetic import write_synthetic_run
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.record import ElasticPlan
from elastoformer_hf.run_folder import weight_digests

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from conftest import TIMM_VIT_ARGS, VGG_ARGS, load_tiny  # noqa: E402
from tiny_elastic_run import tiny_vit  # noqa: E402

TINY_RESNET = {"channels": [16, 32, 64, 128], "stem_width": 16}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and OpenMP threads on shared, busy cores make them 5-20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory) -> Path:
    """A real ElasticTrainer run: tiny ViT (2 heads of 16), 3 levels, round_to 1 (per-head widths 8, 12, 16)."""
    from elastoformer_hf.data import build_transforms, load_image_datasets, with_transforms
    from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments

    out = tmp_path_factory.mktemp("family_vit") / "run"
    train, evaluation, names = load_image_datasets("digits", max_train_samples=32, max_eval_samples=64)
    transform = build_transforms(32, is_training=False, crop_pct=1.0)
    args = ElasticTrainingArguments(output_dir=str(out), pruning_ratio=0.5, pruning_steps=2, round_to=1, max_steps=1,
                                    per_device_train_batch_size=16, per_device_eval_batch_size=64, learning_rate=1e-3,
                                    save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True)
    ElasticTrainer(model=tiny_vit(len(names)), args=args, train_dataset=with_transforms(train, transform),
                   eval_dataset=with_transforms(evaluation, transform), label_names=names).train()
    return out


def _resnet_run(folder: Path, **kwargs) -> Path:
    """timm ResNet-18 at 1/4 width, 3 levels, synthetic weights; accuracies tie between the two largest levels."""
    lm = load_tiny("resnet18", model_args=TINY_RESNET)
    plan = plan_levels(lm.model, PruningConfig(pruning_ratio=0.5, pruning_steps=2, round_to=1), model_name="resnet18",
                       image_size=32)
    return write_synthetic_run(lm, plan, folder / "run", accuracies=[0.6, 0.8, 0.8], verify=False, **kwargs)


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory) -> Path:
    return _resnet_run(tmp_path_factory.mktemp("family_resnet"))


@pytest.fixture(scope="module")
def resnet_shared_run(tmp_path_factory) -> Path:
    """The resnet_run's plan and seed, with the classifier weight shared across levels (bias per level)."""
    return _resnet_run(tmp_path_factory.mktemp("family_resnet_shared"), share_classifier=True)


@pytest.fixture(scope="module")
def vgg_run(tmp_path_factory) -> Path:
    lm = load_tiny("vgg11", model_args=VGG_ARGS)
    plan = plan_levels(lm.model, PruningConfig(pruning_ratio=0.5, pruning_steps=1, round_to=8), model_name="vgg11",
                       image_size=32)
    return write_synthetic_run(lm, plan, tmp_path_factory.mktemp("family_vgg") / "run", verify=False)


@pytest.fixture(scope="module")
def timm_vit_run(tmp_path_factory) -> Path:
    """timm ViT: a fused qkv (3 groups of heads), per-head widths 32 and 48 of 64."""
    lm = load_tiny("vit_tiny_patch16_224", model_args=TIMM_VIT_ARGS)
    plan = plan_levels(lm.model, PruningConfig(pruning_ratio=0.5, pruning_steps=2, round_to=8, head_pruning="head_dims"),
                       image_size=32)
    return write_synthetic_run(lm, plan, tmp_path_factory.mktemp("family_timm_vit") / "run", verify=False)


@pytest.fixture(scope="module")
def heads_run(hf_vit12_dir, tmp_path_factory) -> Path:
    """transformers ViT losing whole heads (12 -> 9 -> 6), head_dim kept: the heads are reordered."""
    lm = load_tiny(str(hf_vit12_dir))
    plan = plan_levels(lm.model, PruningConfig(pruning_ratio=0.5, pruning_steps=2, round_to=1, prune_heads=True))
    return write_synthetic_run(lm, plan, tmp_path_factory.mktemp("family_heads") / "run", verify=False)


@pytest.fixture(scope="module")
def runs(request):
    """``runs(key)``: the run folder of ``{key}_run``."""
    return lambda key: request.getfixturevalue(f"{key}_run")


@pytest.fixture(scope="module")
def families(runs):
    """``families(key)``: build_family of that run (memoised; tests must not change it)."""
    cache = {}

    def get(key: str) -> ElasticFamily:
        if key not in cache:
            cache[key] = build_family(runs(key))
        return cache[key]

    return get


def _x(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _reference_logits(folder: Path, x: torch.Tensor) -> torch.Tensor:
    model = load_descendant(folder)
    inner = getattr(model, "model", model) if type(model).__name__ == "ElastoformerForImageClassification" else model
    with torch.no_grad():
        return get_adapter(inner).output_transform(model(x))


@pytest.mark.parametrize("key", ["vit", "resnet", "vgg", "timm_vit", "heads", "resnet_shared"])
def test_every_level_matches_its_descendant_folder(families, runs, key):
    family = families(key)
    x = _x()
    for k in range(1, family.num_levels + 1):
        with torch.no_grad():
            got = family.set_level(k)(x)
        torch.testing.assert_close(got, _reference_logits(runs(key) / f"dn{k}", x), atol=1e-5, rtol=1.3e-6)
        assert family.model is family.level_model(k)
        assert sum(p.numel() for p in family.model.parameters()) == family.levels[k - 1]["params"]
        exported = family.export_level(k)  # stock modules, contiguous weights
        assert not any(isinstance(m, PrefixLinear) for m in exported.modules())
        with torch.no_grad():
            torch.testing.assert_close(get_adapter(exported).forward_logits(exported, x), got, atol=1e-6, rtol=0)
    prefix_linears = [sum(isinstance(m, PrefixLinear) for m in family.level_model(k).modules())
                      for k in range(1, family.num_levels + 1)]
    # per-head widths below the full head_dim: q/k/v (or qkv) and the output projection cannot be 2-D views
    expected = {"vit": [8, 8, 0], "timm_vit": [4, 4, 0]}.get(key, [0] * family.num_levels)
    assert prefix_linears == expected
    if key == "heads":
        assert [lv["heads"]["vit.layers.0.attention"] for lv in family.levels] == [6, 9, 12]


def _data_ranges(family: ElasticFamily) -> list[tuple[int, int]]:
    shared, own = family.storage()
    tensors = list(shared.values()) + [t for level in own for t in level.values()]
    return [(t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()) for t in tensors]


@pytest.mark.parametrize("key", ["vit", "resnet"])
def test_levels_are_views_and_the_current_level_runs_on_copies(families, key):
    """Every level's tensors are views of the storage, except the current level's that a forward pass would copy
    on every call (strided convolution weights, per-head prefixes): set_level binds those to contiguous copies and
    the next switch puts the views back. The full level runs on the storage itself; a level that is not current
    still gives its logits (on views)."""
    family = families(key)
    shared, own = family.storage()
    ranges = _data_ranges(family)
    x = _x()
    try:
        for current in [*range(1, family.num_levels + 1), 1, family.num_levels]:
            family.set_level(current)
            assert copied_per_call(family.model) == []  # nothing left that a forward pass would copy
            for k in range(1, family.num_levels + 1):
                state = family.level_model(k).state_dict(keep_vars=True)
                outside = 0
                for name, tensor in state.items():
                    if not any(lo <= tensor.data_ptr() < hi for lo, hi in ranges):
                        assert k == current and tensor.is_contiguous(), f"dn{k} {name} is not in the storage"
                        outside += tensor.numel() * tensor.element_size()
                    elif name in shared:  # a view of the one full-width tensor, starting at its first element
                        assert tensor.untyped_storage().data_ptr() == shared[name].untyped_storage().data_ptr()
                        assert tensor.data_ptr() == shared[name].data_ptr()
                    else:
                        assert tensor.data_ptr() == own[k - 1][name].data_ptr()
                if k == current:
                    assert outside == family.copied_bytes
                    assert (outside > 0) == (k < family.num_levels)  # every smaller level has a strided tensor
        with torch.no_grad():
            on_views = [get_adapter(m).forward_logits(m, x) for m in map(family.level_model, range(1, 3))]
            for k, logits in enumerate(on_views, start=1):
                torch.testing.assert_close(family.set_level(k)(x), logits, atol=1e-6, rtol=0)
        with torch.inference_mode():
            family.set_level(1)
        pixels = x.clone().requires_grad_()
        family(pixels).sum().backward()  # the copies made under inference_mode are plain tensors
        assert pixels.grad is not None
    finally:
        family.set_level(family.num_levels)
    with pytest.raises(ElastoformerError, match="level must be an integer in 1..3"):
        family.set_level(4)


def test_a_channels_last_family_runs_every_level_in_that_layout(runs):
    """``to(memory_format=torch.channels_last)`` (how ``elastoformer bench`` times CNNs): 4-D storage in that
    layout, the full level on the storage itself (channels_last output-channel prefixes stay dense), every smaller
    level's copies channels_last, the same logits as the standard layout; saving writes the standard layout."""
    family = build_family(runs("resnet"))  # its own: the memoised one stays in the standard layout
    x = _x()
    with torch.no_grad():
        want = [family.set_level(k)(x) for k in range(1, family.num_levels + 1)]
    assert family.to(memory_format=torch.channels_last) is family and family.memory_format == torch.channels_last
    shared, _ = family.storage()
    assert all(t.is_contiguous(memory_format=torch.channels_last) for t in shared.values() if t.dim() == 4)
    for k in range(1, family.num_levels + 1):
        family.set_level(k)
        assert copied_per_call(family.model, torch.channels_last) == []
        assert (family.copied_bytes > 0) == (k < family.num_levels)
        weights = [m.weight for m in family.model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
        with torch.no_grad():
            torch.testing.assert_close(family(x), want[k - 1], atol=1e-5, rtol=1e-5)
    entries = family.measure_latency(repeats=1, warmup=0, image_size=32, threads=1)
    assert all(e["notes"].endswith("eager, channels_last") for e in entries)
    with pytest.raises(ElastoformerError, match="memory_format must be torch.channels_last"):
        family.to(memory_format=torch.preserve_format)


def test_storage_puts_every_level_first_and_per_head_prefixes(families, vit_run):
    """Stored shared tensors hold each level's channels first (hidden: core, then level 2's, ...; q rows: the
    level's offsets first inside every head), in the order the level's own dn{k}/ weights fix."""
    family = families("vit")
    plan = ElasticPlan.load(vit_run)
    layout, (shared, _) = family.layout, family.storage()
    hidden = layout.orders[layout.shared["vit.layernorm.weight"][0].order]
    previous = 0
    for k in range(1, plan.num_levels + 1):
        width = hidden.widths[k - 1]
        assert sorted(hidden.perm[:width].tolist()) == plan.level(k).kept["hidden"]
        chunk = hidden.perm[previous:width].tolist()
        assert chunk == sorted(chunk)
        previous = width
    q = "vit.layers.0.attention.q_proj.weight"
    spec = layout.shared[q]
    assert isinstance(spec[0], Heads) and isinstance(spec[1], Prefix)
    heads, head_dim = 2, 16
    offsets = layout.orders[spec[0].offsets].perm
    for k in range(1, plan.num_levels + 1):
        kept = torch.tensor(plan.level(k).kept["layers.0.attention"])  # original rows, ascending: dn{k}'s order
        d_k, w_k = len(kept) // heads, hidden.widths[k - 1]
        stored = shared[q].view(heads, head_dim, -1)[:, :d_k, :w_k]  # a prefix inside every head
        rows = (torch.arange(heads).view(-1, 1) * head_dim + offsets[:d_k].view(1, -1)).flatten()
        level = load_descendant(vit_run / f"dn{k}").state_dict()[q]
        cols = torch.searchsorted(torch.tensor(plan.level(k).kept["hidden"]), hidden.perm[:w_k])
        expected = level[torch.searchsorted(kept, rows)][:, cols]
        assert torch.equal(stored.reshape(-1, w_k), expected)


def test_save_load_round_trip(families, tmp_path):
    family = families("vit")
    folder = family.save_pretrained(tmp_path / "family")
    assert {p.name for p in folder.iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["format"] == "elastoformer-family" and config["num_levels"] == 3
    assert config["format_version"] == 1 and "unit" not in json.dumps(config["storage"])  # as before version 2
    assert config["base_model"]["source"] == "transformers" and config["plan"]["levels"][0]["params"] > 0
    assert [lv["latency"] for lv in config["levels"]] == [[], [], []]
    assert all(0 <= lv["accuracy"] <= 1 and lv["macs"] > 0 for lv in config["levels"])
    assert set(config["storage"]["layout"]["own"]) >= {"classifier.weight", "vit.embeddings.position_embeddings"}
    loaded = ElasticFamily.from_pretrained(folder)
    assert loaded.levels == family.levels and loaded.num_levels == 3 and loaded.level == 3
    x = _x()
    for k in (1, 2, 3):
        with torch.no_grad():
            assert torch.equal(loaded.set_level(k)(x), family.set_level(k)(x))
    with pytest.raises(CheckpointError, match="already exists"):
        family.save_pretrained(folder)
    family.save_pretrained(folder, overwrite=True)
    loaded.set_level(2).to(dtype=torch.float64)  # the storage is cast once, every level bound to it again
    assert loaded.level == 2 and {p.dtype for p in loaded.level_model(1).parameters()} == {torch.float64}
    assert loaded.level_model(1).vit.layernorm.weight.data_ptr() == loaded.storage()[0]["vit.layernorm.weight"].data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x.double()).float(), family.set_level(2)(x), atol=1e-5, rtol=1e-5)


def test_artifact_size(families, runs, tmp_path):
    """Shared tensors once: the artifact is the full level plus the smaller levels' own tensors and the orders,
    far below the sum of the dn folders."""
    for key in ("vit", "resnet"):
        family = families(key)
        size = (family.save_pretrained(tmp_path / key) / WEIGHTS_FILE).stat().st_size
        folders = [runs(key) / f"dn{k}" / "model.safetensors" for k in range(1, family.num_levels + 1)]
        dense = folders[-1].stat().st_size
        storage = json.loads((tmp_path / key / CONFIG_FILE).read_text())["storage"]["bytes"]
        extra = sum(storage["own"][:-1]) + storage["orders"]
        assert dense < size <= dense + extra + 64 * 1024  # headers and key names
        assert size < 0.75 * sum(f.stat().st_size for f in folders)


def test_shared_classifier_is_stored_once(families, runs, tmp_path):
    """A run that shared the classifier weight: the family stores it once (every level a prefix view of it) and
    only the bias per level; the run without sharing stores one classifier per level. Same plan, same sizes
    otherwise: the artifact shrinks by the smaller levels' classifier weights."""
    shared, per_level = families("resnet_shared"), families("resnet")
    assert shared.info["share_classifier"] is True and per_level.info["share_classifier"] is False
    assert "fc.weight" in shared.layout.shared and "fc.bias" in shared.layout.own
    assert "fc.weight" in per_level.layout.own
    storage, _ = shared.storage()
    widths = []
    for k in (1, 2, 3):
        weight = shared.level_model(k).fc.weight
        assert weight.data_ptr() == storage["fc.weight"].data_ptr()  # a view of the one stored weight
        widths.append(weight.shape[1])
    assert widths == sorted(set(widths)) and widths[-1] == storage["fc.weight"].shape[1]
    sizes = {key: (families(key).save_pretrained(tmp_path / key) / WEIGHTS_FILE).stat().st_size
             for key in ("resnet", "resnet_shared")}
    classifiers = sum(4 * t.numel() for own in per_level.storage()[1][:-1] for n, t in own.items() if n == "fc.weight")
    assert classifiers > 0 and sizes["resnet"] - sizes["resnet_shared"] == pytest.approx(classifiers, abs=4096)
    loaded = ElasticFamily.from_pretrained(tmp_path / "resnet_shared")
    assert loaded.info["share_classifier"] is True
    config = json.loads((tmp_path / "resnet_shared" / CONFIG_FILE).read_text())
    assert config["share_classifier"] is True and "fc.weight" in config["storage"]["layout"]["shared"]


def test_select_picks_the_most_accurate_level_within_budget(families):
    family = families("resnet")  # accuracies 0.6, 0.8, 0.8
    levels = family.levels
    assert family.select() == 2  # tie with dn3: the cheaper
    assert family.select(max_macs=levels[1]["macs"] - 1) == 1
    assert family.select(max_params=levels[1]["params"]) == 2
    with pytest.raises(ElastoformerError, match=r"no level fits max_macs=10; the cheapest level is dn1: .* M MACs"):
        family.select(max_macs=10)
    with pytest.raises(ElastoformerError, match="run a latency benchmark"):
        family.select(max_latency_ms=1e6)
    untimed = [dict(lv, latency=[]) for lv in levels]
    entries = family.measure_latency(repeats=2, warmup=1)
    try:
        assert all(e["device"].split(":")[0] == "cpu" for e in entries) and len(entries) == 3  # "cpu[: model]"
        assert all(e["ms"] > 0 and e["method"] == "measured" for e in entries)
        assert family.select(max_latency_ms=1e6) == 2
        assert family.select(max_latency_ms=1e6, device="cpu", batch_size=1) == 2
        with pytest.raises(ElastoformerError, match=r"ms on cpu"):
            family.select(max_latency_ms=1e-9)
        with pytest.raises(ElastoformerError, match="on cuda"):
            family.select(max_latency_ms=1e6, device="cuda")
    finally:
        family.levels[:] = untimed  # the family fixture is shared
    # no accuracy recorded: the largest level that fits
    bare = [dict(lv, accuracy=None) for lv in levels]
    assert select_level(bare) == 3 and select_level(bare, max_macs=levels[1]["macs"]) == 2


@pytest.fixture
def saved_copy(families, tmp_path):
    return families("vit").save_pretrained(tmp_path / "family")


def _flip_a_bit(path: Path) -> None:
    """An exponent bit of a shared float weight: the file still loads and passes every shape check."""
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    name = next(n for n, t in header.items() if n.startswith("shared.") and t["dtype"] == "F32")
    data[8 + header_len + header[name]["data_offsets"][0] + 3] ^= 0x40
    path.write_bytes(bytes(data))


def _rewrite(path: Path, change) -> None:
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / CONFIG_FILE).unlink(), "not an elastic family folder"),
    (lambda f: (f / CONFIG_FILE).write_text("{oops"), "corrupt"),
    (lambda f: (f / CONFIG_FILE).write_text('{"format": "other"}'), "not an elastic family config"),
    (lambda f: (f / CONFIG_FILE).write_text(json.dumps({**json.loads((f / CONFIG_FILE).read_text()),
                                                        "format_version": 99})), "newer"),
    (lambda f: (f / WEIGHTS_FILE).unlink(), "has no family.safetensors"),
    (lambda f: (f / WEIGHTS_FILE).write_bytes((f / WEIGHTS_FILE).read_bytes()[:5000]), "corrupt or truncated"),
    (lambda f: _rewrite(f / WEIGHTS_FILE, lambda t: t.pop("shared.vit.layernorm.weight")), "missing the tensor"),
    (lambda f: _rewrite(f / WEIGHTS_FILE, lambda t: t.update({"level1.classifier.bias": torch.zeros(3)})),
     "has shape"),
    (lambda f: _rewrite(f / WEIGHTS_FILE, lambda t: t.update({"extra": torch.zeros(3)})), "does not describe"),
    (lambda f: _rewrite(f / WEIGHTS_FILE, lambda t: t.update({"order.0": torch.zeros_like(t["order.0"])})),
     "inconsistent"),
    (lambda f: _flip_a_bit(f / WEIGHTS_FILE), "family.safetensors is not the file that was written"),
])
def test_damaged_family_folders_are_checkpoint_errors(saved_copy, damage, message):
    damage(saved_copy)
    with pytest.raises(CheckpointError, match=message):
        ElasticFamily.from_pretrained(saved_copy)


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("key", ["vit", "resnet"])
def test_the_same_run_gives_the_same_bytes(families, runs, tmp_path, key):
    """build_family twice from one run (a trained one, a synthetic one), saved several times: every file the same,
    byte for byte (the push compares hashes, so an unchanged family is never uploaded again). safetensors wrote the
    header's metadata in a random order when it held several entries; the evaluation's timings differ on every run
    and are not kept."""
    folders = [families(key).save_pretrained(tmp_path / "built")]
    rebuilt = build_family(runs(key), verify=False)
    folders += [rebuilt.save_pretrained(tmp_path / f"rebuilt{i}") for i in range(8)]
    first = _digests(folders[0])
    assert set(first) == {CONFIG_FILE, WEIGHTS_FILE}
    assert all(_digests(folder) == first for folder in folders[1:])
    for level in json.loads((folders[0] / CONFIG_FILE).read_text())["levels"]:
        assert "eval_accuracy" in level["metrics"] and level["accuracy"] == level["metrics"]["eval_accuracy"]
        assert not [k for k in level["metrics"] if k.endswith(("_runtime", "_per_second"))]


def test_the_weights_file_gets_the_mode_of_its_sibling(families, tmp_path):
    """safetensors creates family.safetensors 0600; it gets the mode of family_config.json (a new file's, under
    the umask)."""
    old = os.umask(0o022)
    try:
        folder = families("resnet").save_pretrained(tmp_path / "family")
    finally:
        os.umask(old)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {CONFIG_FILE: "0o644",
                                                                              WEIGHTS_FILE: "0o644"}


def test_configs_that_name_a_file_to_load_are_refused(families, resnet_run, tmp_path, monkeypatch):
    """A family config (or a run's level record) may hand the architecture's builder its own arguments only:
    ``checkpoint_path`` would make rebuilding the skeleton read a file of the config's choosing. Refused in one
    line naming the key and the file; the file is never opened."""
    import timm.models._factory as timm_factory

    touched = []
    monkeypatch.setattr(timm_factory, "load_checkpoint", lambda model, path, *a, **k: touched.append(path))
    trap = tmp_path / "elsewhere.pth"
    torch.save({}, trap)
    folder = families("resnet").save_pretrained(tmp_path / "family")
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["base_model"]["model_args"]["checkpoint_path"] = str(trap)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        ElasticFamily.from_pretrained(folder)
    message = str(info.value)
    assert f"{folder / CONFIG_FILE}: base_model.model_args sets 'checkpoint_path'" in message and "\n" not in message
    run = shutil.copytree(resnet_run, tmp_path / "run")
    record = json.loads((run / "dn3" / "elastic_level.json").read_text())
    record["base_model"]["model_args"]["checkpoint_path"] = str(trap)
    (run / "dn3" / "elastic_level.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"dn3/elastic_level.json: base_model.model_args sets 'checkpoint_path'"):
        build_family(run, verify=False)
    assert touched == []


def test_missing_folders_and_uncached_repos(tmp_path):
    with pytest.raises(CheckpointError, match="not a family folder"):
        ElasticFamily.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="cannot fetch the family 'nobody/no-family'"):
        ElasticFamily.from_pretrained("nobody/no-family", cache_dir=tmp_path / "cache")  # offline, not cached


def test_runs_that_do_not_nest_or_lack_a_level(resnet_run, tmp_path):
    broken = shutil.copytree(resnet_run, tmp_path / "run")
    weights = broken / "dn2" / "model.safetensors"
    _rewrite(weights, lambda t: t[next(n for n in t if n.endswith("layer1.0.conv1.weight"))].add_(1.0))
    with pytest.raises(CheckpointError, match="dn2/model.safetensors is not the file that was written"):
        build_family(broken, verify=False)
    record = json.loads((broken / "dn2" / "elastic_level.json").read_text())  # as if written so: nests no longer
    (broken / "dn2" / "elastic_level.json").write_text(json.dumps({**record, "sha256": weight_digests(broken / "dn2")}))
    with pytest.raises(ElastoformerError, match="layer1.0.conv1.weight is not the prefix of dn3's.*do not nest"):
        build_family(broken, verify=False)
    shutil.rmtree(broken / "dn2")
    with pytest.raises(CheckpointError, match="no elastic_level.json"):
        build_family(broken)


def test_hub_repo_round_trip_and_offline_cache(families, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import HfApi
    from loopback_hub import LoopbackHub

    family = families("vgg")
    folder = family.save_pretrained(tmp_path / "family")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "cache"
    with LoopbackHub(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.endpoint, token="hf_test")
        api.create_repo("acme/vgg-family")
        api.upload_folder(folder_path=folder, repo_id="acme/vgg-family")
        remote = ElasticFamily.from_pretrained("acme/vgg-family", endpoint=hub.endpoint, token="hf_test",
                                               cache_dir=cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cached = ElasticFamily.from_pretrained("acme/vgg-family", cache_dir=cache)  # the server is gone
    x = _x()
    with torch.no_grad():
        for k in (1, 2):
            want = family.set_level(k)(x)
            assert torch.equal(remote.set_level(k)(x), want) and torch.equal(cached.set_level(k)(x), want)
