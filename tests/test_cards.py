"""Model cards of an elastic family: rendered from a real (tiny) trained run, valid metadata, updates that merge.

The run (a tiny ViT on sklearn digits, three levels, one step each) is trained once per session by
:func:`tiny_run` and shared with tests/test_push.py; tests never modify it (they copy what they change).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from elastoformer_hf.cards import (
    ACCURACY_PLOT,
    LATENCY_PLOT,
    base_model_id,
    family_card,
    human,
    level_card,
    merge_cards,
    update_card,
    write_family_card,
    write_level_card,
)
from elastoformer_hf.data.catalog import describe_dataset
from elastoformer_hf.errors import ElastoformerError
from elastoformer_hf.latency.entries import merge_latency
from elastoformer_hf.run_folder import load_run
from elastoformer_hf.version import TRANSFORMERS_MIN_VERSION

SCRIPTS = Path(__file__).parent / "scripts"
_CACHE: dict[str, Path] = {}

ORIN = {"device": "Jetson Orin Nano 8GB", "runtime": "TensorRT 10.3", "precision": "fp16", "batch_size": 1,
        "method": "measured"}


def tiny_run(tmp_path_factory) -> Path:
    """A trained run folder (dn1..dn3, plan, summary, settings), made once per session."""
    if "run" not in _CACHE:
        sys.path.insert(0, str(SCRIPTS))
        from tiny_elastic_run import tiny_vit

        from elastoformer_hf.data import build_transforms, load_image_datasets, with_transforms
        from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments

        train, evaluation, names = load_image_datasets("digits", max_train_samples=64, max_eval_samples=64)
        transform = build_transforms(32, is_training=False, crop_pct=1.0)
        out = tmp_path_factory.mktemp("tiny_elastic") / "run"
        args = ElasticTrainingArguments(
            output_dir=str(out), pruning_ratio=0.5, pruning_steps=2, round_to=1, max_steps=1,
            per_device_train_batch_size=16, per_device_eval_batch_size=64, learning_rate=1e-3,
            save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True)
        ElasticTrainer(model=tiny_vit(len(names)), args=args, train_dataset=with_transforms(train, transform),
                       eval_dataset=with_transforms(evaluation, transform), label_names=names).train()
        _CACHE["run"] = out
    return _CACHE["run"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory)


def header(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def levels(run_dir: Path) -> dict[int, dict]:
    return {k: json.loads((run_dir / f"dn{k}" / "elastic_level.json").read_text()) for k in (1, 2, 3)}


def test_level_card_has_every_levels_real_numbers(run_dir, tmp_path):
    card = write_level_card(run_dir, 2, tmp_path / "dn2", repo_prefix="acme/tiny-elastic",
                            family_repo="acme/tiny-elastic", dataset="digits")
    text = (tmp_path / "dn2" / "README.md").read_text()
    assert text == str(card) + "\n" or text == str(card)
    infos = levels(run_dir)
    for k, info in infos.items():
        acc = f"{100 * info['metrics']['eval_accuracy']:.2f}"
        row = next(line for line in text.splitlines() if line.startswith(("| [DN", "| **[DN")) and f"DN{k}" in line)
        assert acc in row and human(info["params"]) in row and human(info["flops"]) in row
        assert f"/acme/tiny-elastic-dn{k}" in row
    assert "**[DN2](/acme/tiny-elastic-dn2)** (this model)" in text  # this DN is highlighted
    assert 'AutoModelForImageClassification.from_pretrained("acme/tiny-elastic-dn2")' in text
    assert "`AutoModel` opens the backbone without the classifier" in text  # explains transformers' load report
    assert 'ElasticFamily.from_pretrained("acme/tiny-elastic")' in text and "family.set_level(2)" in text
    assert "```yaml\nbase_model: ViTForImageClassification\ndataset: digits" in text
    assert "pruning_ratio: 0.5" in text and "learning_rate: 0.001" in text  # the recipe
    assert "Latency is not measured yet" in text  # no latency recorded: said so, and no latency plot
    assert f"]({ACCURACY_PLOT})" in text and LATENCY_PLOT not in text
    assert sorted(p.name for p in (tmp_path / "dn2").iterdir()) == sorted(["README.md", ACCURACY_PLOT])
    assert (tmp_path / "dn2" / ACCURACY_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metadata_is_valid_hub_metadata(run_dir):
    card = level_card(run_dir, 3, repo_prefix="acme/tiny-elastic", dataset="cifar10",
                      base_model="google/vit-base-patch16-224", license="apache-2.0")
    meta = header(str(card))
    info = levels(run_dir)[3]
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "image-classification"
    assert meta["tags"] == ["elastoformer", "pruning", "image-classification", "elastic"]
    assert meta["base_model"] == "google/vit-base-patch16-224" and meta["base_model_relation"] == "finetune"
    assert meta["datasets"] == ["uoft-cs/cifar10"] and meta["license"] == "apache-2.0"
    (entry,) = meta["model-index"]
    assert entry["name"] == "tiny-elastic-dn3"
    (result,) = entry["results"]
    assert result["task"]["type"] == "image-classification" and result["dataset"]["type"] == "uoft-cs/cifar10"
    assert result["metrics"] == [{"type": "accuracy", "value": round(info["metrics"]["eval_accuracy"], 4),
                                  "name": "Top-1 accuracy"},
                                 {"type": "top_5_accuracy", "value": round(info["metrics"]["eval_top5_accuracy"], 4),
                                  "name": "Top-5 accuracy"}]  # ten classes: the trainer's evaluate metrics add top-5
    custom = meta["elastoformer"]
    assert {k: custom[k] for k in ("level", "num_levels", "params", "macs", "flops")} == {
        "level": 3, "num_levels": 3, "params": info["params"], "macs": info["macs"], "flops": info["flops"]}
    assert custom["latency"] == [] and [r["level"] for r in custom["family"]] == [1, 2, 3]
    # huggingface_hub parses it back (model-index included) and renders the same YAML: what the Hub validates
    reparsed = ModelCard(str(card))
    assert reparsed.data.eval_results[0].metric_value == result["metrics"][0]["value"]
    assert header(str(reparsed)) == meta
    assert "&id" not in str(card)  # no YAML anchors


def test_base_model_and_dataset_resolution(run_dir):
    meta = header(str(level_card(run_dir, 1)))  # an in-memory base model: no Hub id, no relation, no datasets
    assert "base_model" not in meta and "base_model_relation" not in meta and "datasets" not in meta
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == "unknown"
    assert base_model_id({"source": "transformers", "name": "facebook/deit-base-patch16-224"}) == \
        "facebook/deit-base-patch16-224"
    assert base_model_id({"source": "timm", "name": "deit_tiny_patch16_224"}) == "timm/deit_tiny_patch16_224.fb_in1k"
    assert base_model_id({"source": "timm", "name": "resnet50", "pretrained": False}) is None
    assert base_model_id({"source": "torchvision", "name": "torchvision:resnet50"}) is None
    assert base_model_id({"source": "transformers", "name": str(run_dir)}) is None  # a local folder
    assert describe_dataset("ImageNet-1k") == ("ILSVRC/imagenet-1k", "ILSVRC/imagenet-1k", "ImageNet-1k")
    assert describe_dataset("digits")[0] is None and describe_dataset("org/data")[0] == "org/data"


@pytest.mark.parametrize(("form", "library", "snippet"), [
    ("timm", "timm", 'timm.create_model("hf-hub:acme/x-dn1", pretrained=True)'),
    ("elastoformer", "transformers", 'from_pretrained("acme/x-dn1", trust_remote_code=True)'),
    ("transformers", "transformers", 'AutoModelForImageClassification.from_pretrained("acme/x-dn1")'),
])
def test_usage_follows_the_checkpoint_form(run_dir, tmp_path, form, library, snippet):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    info_file = run / "dn1" / "elastic_level.json"
    info_file.write_text(json.dumps({**json.loads(info_file.read_text()), "checkpoint_format": form}))
    text = str(level_card(run, 1, repo_prefix="acme/x"))
    assert header(text)["library_name"] == library and snippet in text
    assert ("custom_code" in header(text)["tags"]) == (form == "elastoformer")  # the Hub's remote-code marker
    assert "ElasticFamily" not in text  # no family repo given: no family snippet
    # a level that transformers opens names the oldest transformers that can (the floor in pyproject.toml)
    assert (f"Requires transformers >= {TRANSFORMERS_MIN_VERSION}." in text) == (library == "transformers")


def test_family_card(run_dir, tmp_path):
    card = write_family_card(run_dir, tmp_path, repo_prefix="acme/tiny-elastic", dataset="digits")
    meta = header(str(card))
    assert meta["library_name"] == "elastoformer-hf" and "model-index" not in meta
    assert meta["elastoformer"]["card"] == "family" and len(meta["elastoformer"]["family"]) == 3
    text = (tmp_path / "README.md").read_text()
    assert 'ElasticFamily.from_pretrained("acme/tiny-elastic")' in text  # the trainer wrote run/family/
    assert all(f"- [acme/tiny-elastic-dn{k}](/acme/tiny-elastic-dn{k})" in text for k in (1, 2, 3))
    assert "(this model)" not in text
    without = str(family_card(run_dir, repo_prefix="acme/tiny-elastic", has_family_artifact=False))
    assert "not the elastic\nmodel itself yet" in without and "ElasticFamily.from_pretrained" not in without


def test_rendering_is_deterministic(run_dir, tmp_path):
    for out in ("a", "b"):
        write_level_card(run_dir, 1, tmp_path / out, repo_prefix="acme/x")
    for name in ("README.md", ACCURACY_PLOT):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_update_merges_latency_and_keeps_user_metadata(run_dir, tmp_path):
    folder = tmp_path / "dn2"
    write_level_card(run_dir, 2, folder, repo_prefix="acme/tiny-elastic")
    readme = folder / "README.md"
    text = readme.read_text()
    # the user adds a license, a tag, a field of their own and a paragraph of their own
    text = text.replace("tags:\n", "license: mit\nmy_field: keep me\ntags:\n- my-tag\n", 1)
    text = text.replace("## How to use", "## Notes from the author\n\nHand-written notes.\n\n## How to use", 1)
    readme.write_text(text)

    update_card(folder, [{**ORIN, "ms": 3.0}, {**ORIN, "ms": 2.0, "level": 1},
                         {**ORIN, "ms": 9.0, "runtime": "roofline", "method": "estimated"}])
    card = update_card(folder, [{**ORIN, "ms": 2.5}, {**ORIN, "ms": 2.5, "date": "2020-01-01", "level": 1},
                                {**ORIN, "ms": 2.4, "date": "2026-01-01", "level": 3}])
    meta = header(readme.read_text())
    assert str(card).strip() == readme.read_text().strip()
    assert meta["license"] == "mit" and meta["my_field"] == "keep me" and "my-tag" in meta["tags"]
    assert "elastoformer" in meta["tags"] and "model-index" in meta
    latency = meta["elastoformer"]["latency"]
    assert [(e["runtime"], e["ms"], e["method"]) for e in latency] == [
        ("TensorRT 10.3", 2.5, "measured"), ("roofline", 9.0, "estimated")]  # deduped: the newer 2.5 won
    rows = {r["level"]: r for r in meta["elastoformer"]["family"]}
    assert [e["ms"] for e in rows[1]["latency"]] == [2.5]  # undated entry replaced by a dated one
    assert rows[2]["latency"] == latency and [e["ms"] for e in rows[3]["latency"]] == [2.4]
    body = readme.read_text()
    assert "Hand-written notes." in body and "Latency is not measured yet" not in body
    assert "| **2.50** | **9.00 (est.)** |" in body and "(est.) are estimates" in body
    # efficiency of each measured setting against the full cost (FLOPs); the estimated setting has none
    full = rows[3]["flops"]
    assert (f"DN1 {2.4 / 2.5 * rows[1]['flops'] / full:.2f}, DN2 {2.4 / 2.5 * rows[2]['flops'] / full:.2f} "
            "(speed-up over DN3 / the ideal speed-up") in body
    assert body.count("Efficiency, ") == 1
    assert f"]({LATENCY_PLOT})" in body and (folder / LATENCY_PLOT).is_file()

    older = update_card(card, [{**ORIN, "ms": 7.0, "date": "2019-01-01", "level": 3}])  # a card object: in memory
    assert [e["ms"] for e in header(str(older))["elastoformer"]["family"][2]["latency"]] == [2.4]  # newer kept
    assert header(readme.read_text()) == meta  # nothing written


def test_update_rejects_bad_entries(run_dir, tmp_path):
    write_level_card(run_dir, 1, tmp_path, repo_prefix="acme/x")
    with pytest.raises(ElastoformerError, match="method"):
        update_card(tmp_path, [{**ORIN, "ms": 1.0, "method": "guessed"}])
    with pytest.raises(ElastoformerError, match="no level 7"):
        update_card(tmp_path, [{**ORIN, "ms": 1.0, "level": 7}])
    with pytest.raises(ElastoformerError, match="lacks ms"):
        update_card(tmp_path, [ORIN])
    with pytest.raises(ElastoformerError, match="does not exist"):
        update_card(tmp_path / "nowhere")
    assert merge_latency([], [{**ORIN, "ms": "1.5"}]) == [{**{k: v for k, v in ORIN.items()}, "ms": 1.5}]


def test_merge_cards_updates_numbers_and_keeps_the_rest(run_dir):
    fresh = level_card(run_dir, 2, repo_prefix="acme/tiny-elastic")
    text = str(fresh).replace("tags:\n", "license: mit\ntags:\n- vision\n", 1) + "\n## Extra\n\nKept.\n"
    existing = ModelCard(text.replace("params: 15", "params: 99", 1))  # a stale number on the Hub
    merged = merge_cards(existing, fresh)
    meta = header(str(merged))
    assert meta["license"] == "mit" and meta["tags"][0] == "vision" and "Kept." in str(merged)
    assert meta["elastoformer"]["params"] == header(str(fresh))["elastoformer"]["params"]
    # merging an up-to-date card changes nothing (a re-push makes no commit)
    assert str(merge_cards(merged, fresh)) == str(merged)
    relicensed = merge_cards(merged, level_card(run_dir, 2, repo_prefix="acme/tiny-elastic", license="apache-2.0"))
    assert header(str(relicensed))["license"] == "mit"  # the license on the Hub is the owner's call
    user_body = ModelCard("---\nlicense: mit\n---\n# My own card\n")  # no generated sections: body left alone
    assert str(merge_cards(user_body, fresh)).endswith("# My own card\n")


def test_load_run_errors(tmp_path):
    with pytest.raises(ElastoformerError, match="not an elastoformer run"):
        load_run(tmp_path)


def test_cards_are_complete_from_the_run_alone(run_dir, tmp_path):
    """No card flags: the dataset, its split and how many images the accuracy rests on come from the run's record;
    a license nobody recorded is an explicit ``unknown`` with a note, and a real one replaces it later."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    settings = json.loads((run / "elastic_run.json").read_text())
    assert settings["data"]["eval_rows"] == 64  # the trainer records what it evaluated on
    settings["data"].update(dataset_name="cifar10", eval_split="test")  # as the recipe records it
    (run / "elastic_run.json").write_text(json.dumps(settings))
    card = level_card(run, 2)
    meta = header(str(card))
    assert meta["datasets"] == ["uoft-cs/cifar10"]
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"]["type"] == "uoft-cs/cifar10" and result["dataset"]["split"] == "test"
    assert "64 images of the test split" in str(card)
    assert meta["license"] == "unknown" and "**License:** `unknown`: neither the run" in str(card)
    assert "**License:** `unknown`" in str(family_card(run))
    relicensed = merge_cards(card, level_card(run, 2, license="apache-2.0"))
    assert header(str(relicensed))["license"] == "apache-2.0"  # "unknown" is a placeholder, not the owner's call


@pytest.mark.parametrize(("spec", "expected"), [
    ({"source": "timm", "name": "resnet18.a1_in1k"}, "apache-2.0"),
    ({"source": "timm", "name": "vgg11.tv_in1k"}, "bsd-3-clause"),
    ({"source": "torchvision", "name": "mobilenet_v2"}, "bsd-3-clause"),
    ({"source": "timm", "name": "resnet18.a1_in1k", "pretrained": False}, None),  # random init: no base weights
    ({"source": "transformers", "name": "google/vit-base-patch16-224"}, None),  # not in transformers' config
])
def test_base_license_where_the_metadata_records_it(spec, expected):
    from elastoformer_hf.cards.provenance import base_license

    assert base_license(spec) == expected


def test_level_plots_start_at_zero_and_keep_legends_off_the_data(tmp_path, monkeypatch):
    """A 6 % latency spread must not look like 3x: both axes start at zero, and the legend sits below the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from elastoformer_hf.cards.plots import write_plots

    figures = []
    real = plt.subplots

    def recording(*args, **kwargs):
        fig, ax = real(*args, **kwargs)
        figures.append((fig, ax))
        return fig, ax

    monkeypatch.setattr(plt, "subplots", recording)
    orin = {"device": "Jetson Orin Nano 8GB", "runtime": "torch", "precision": "fp16", "batch_size": 1,
            "method": "measured"}
    rows = [{"level": k, "macs": m, "flops": 2 * m, "top1": a, "latency": [{**orin, "ms": ms}]}
            for k, m, a, ms in ((1, 1e9, 0.80, 9.4), (2, 2e9, 0.81, 9.7), (3, 3e9, 0.815, 10.0))]
    assert write_plots({"family": rows, "level": 2}, tmp_path) == [ACCURACY_PLOT, LATENCY_PLOT]
    for fig, ax in figures:
        assert ax.get_ylim()[0] == 0 and ax.get_xlim()[0] == 0
        renderer = FigureCanvasAgg(fig).get_renderer()  # the figure was closed after saving
        legend = ax.get_legend().get_window_extent(renderer)
        assert legend.y1 <= ax.get_window_extent(renderer).y0  # below the axes, never over a point
