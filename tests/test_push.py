"""``elastoformer push`` against the loopback Hub: one commit per repo, retries, re-runs, stock loading, no leaks.

Each test starts its own :class:`LoopbackHub` and points ``HF_ENDPOINT`` at it; huggingface_hub read the variable
when it was imported, so the command passes it on as ``HfApi(endpoint=...)`` (and the fresh process that loads a
pushed level reads it itself). Retry waits are recorded instead of slept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
import yaml
from huggingface_hub import HfApi
from huggingface_hub.utils import _http
from loopback_hub import LoopbackHub
from test_cards import tiny_run

from elastoformer_hf.cli import main
from elastoformer_hf.hub import retry as retry_module

TOKEN = "hf_elastoformerPushTest_9f3a7c1e"
PREFIX = "acme/tiny-elastic"
REPOS = [PREFIX, *(f"{PREFIX}-dn{k}" for k in (1, 2, 3))]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory)


@pytest.fixture(autouse=True)
def _hub_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(retry_module, "time", SimpleNamespace(sleep=recorded.append))
    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=recorded.append))  # hf_xet's commit retries
    return recorded


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with LoopbackHub(tmp_path / "hub_storage") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def push(run_dir, *extra: str) -> int:
    # the shared run is never modified: no default latency estimate recorded into it (tested on a copy below)
    return main(["push", str(run_dir), "--repo_prefix", PREFIX, "--token", TOKEN, "--dataset", "digits",
                 "--latency_profile", "none", *extra])


def commit_counts(hub) -> dict[str, int]:
    return {repo: len(hub.commits(repo)) for repo in REPOS}


def test_push_then_load_in_a_fresh_process(run_dir, hub, tmp_path, capsys, sleeps):
    assert push(run_dir, "--include_family") == 0
    out = capsys.readouterr().out
    assert commit_counts(hub) == dict.fromkeys(REPOS, 1)
    assert out.count("in one commit") == 4  # the trainer wrote run/family/: the family repo carries the artifact
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    assert sorted(api.list_repo_files(f"{PREFIX}-dn2")) == sorted(
        ["README.md", "config.json", "elastic_accuracy_vs_flops.png", "elastic_level.json", "model.safetensors"])
    family_files = {"README.md", "family_config.json", "family.safetensors", "elastic_plan.json", "elastic_summary.json"}
    assert family_files <= set(api.list_repo_files(PREFIX))
    for name in ("elastic_plan.json", "elastic_summary.json"):  # the run's own files, as they are
        remote = Path(api.hf_hub_download(PREFIX, name, cache_dir=tmp_path / "c"))
        assert remote.read_bytes() == (run_dir / name).read_bytes()
    readme = Path(api.hf_hub_download(f"{PREFIX}-dn2", "README.md", cache_dir=tmp_path / "c"))
    card = yaml.safe_load(readme.read_text().split("---\n")[1])
    assert card["elastoformer"]["level"] == 2 and card["elastoformer"]["family_repo"] == PREFIX
    (collection,) = json.loads((Path(hub.root) / "collections.json").read_text()).values()
    assert [i["id"] for i in collection["items"]] == REPOS and collection["title"] == "tiny-elastic elastic family"
    assert sleeps == []

    # a fresh process, knowing nothing of elastoformer_hf, loads dn2 from the Hub by name
    pixels = torch.randn(2, 3, 32, 32)
    torch.save(pixels, tmp_path / "pixels.pt")
    script = textwrap.dedent(f"""
        import sys, torch
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained("{PREFIX}-dn2").eval()
        with torch.no_grad():
            torch.save(model(torch.load({str(tmp_path / "pixels.pt")!r})).logits, {str(tmp_path / "logits.pt")!r})
        assert "elastoformer_hf" not in sys.modules
        from elastoformer_hf import ElasticFamily  # the whole family, switched to level 2
        family = ElasticFamily.from_pretrained("{PREFIX}").set_level(2)
        with torch.no_grad():
            torch.save(family(torch.load({str(tmp_path / "pixels.pt")!r})), {str(tmp_path / "family.pt")!r})
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "fresh_hf_home"), HF_HUB_OFFLINE="0",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from transformers import AutoModelForImageClassification

    local = AutoModelForImageClassification.from_pretrained(run_dir / "dn2").eval()
    with torch.no_grad():
        expected = local(pixels).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.load(tmp_path / "family.pt"), expected, atol=1e-5, rtol=0)

    # nothing changed: a second push commits nothing
    assert push(run_dir, "--include_family") == 0
    assert commit_counts(hub) == dict.fromkeys(REPOS, 1)
    assert capsys.readouterr().out.count("up to date, nothing to commit") == 4


def test_transient_failures_are_retried_into_one_commit_per_repo(run_dir, hub, sleeps, capsys):
    hub.fail_next(2, 500, "/api/repos/create")  # create_repo: no retry of its own
    hub.fail_next(2, 503, f"/api/models/{PREFIX}-dn1/tree/")  # listing the remote files
    hub.fail_next(2, 500, f"/api/models/{PREFIX}-dn2/commit/")  # the commit itself
    hub.fail_next(2, 502, "/api/collections")
    assert push(run_dir) == 0
    assert commit_counts(hub) == {PREFIX: 0, **{r: 1 for r in REPOS[1:]}}  # no family repo without the flag
    assert len(sleeps) >= 8 and max(sleeps) <= 2
    assert [r for r in hub.requests if r[0] == "POST" and r[1].endswith("/commit/main")].count(
        ("POST", f"/api/models/{PREFIX}-dn2/commit/main")) == 3


def test_a_failed_push_names_what_made_it_and_a_rerun_finishes(run_dir, hub, sleeps, capsys):
    hub.fail_next(100, 500, f"/api/models/{PREFIX}-dn2/")
    assert push(run_dir, "--retries", "2") == 2
    err = capsys.readouterr().err
    assert f"{PREFIX}-dn2 failed: HTTP 500" in err and f"Done: {PREFIX}-dn1 (pushed)" in err
    assert f"Not attempted: {PREFIX}-dn3" in err and "Re-run the same command" in err
    assert commit_counts(hub) == {PREFIX: 0, f"{PREFIX}-dn1": 1, f"{PREFIX}-dn2": 0, f"{PREFIX}-dn3": 0}
    hub._faults.clear()
    assert push(run_dir) == 0
    assert f"{PREFIX}-dn1: up to date" in capsys.readouterr().out
    assert commit_counts(hub) == {PREFIX: 0, **{r: 1 for r in REPOS[1:]}}


def test_client_errors_are_not_retried(run_dir, hub, sleeps, capsys):
    hub.fail_next(1, 403, "/api/repos/create")
    assert push(run_dir) == 2
    err = capsys.readouterr().err
    assert "HTTP 403" in err and "check the token" in err and len(err.strip().splitlines()) == 1
    assert hub.requests.count(("POST", "/api/repos/create")) == 1 and sleeps == []


def test_an_updated_card_on_the_hub_is_merged_not_replaced(run_dir, hub, sleeps, tmp_path):
    assert push(run_dir) == 0
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    repo = f"{PREFIX}-dn2"
    text = Path(api.hf_hub_download(repo, "README.md", cache_dir=tmp_path / "c")).read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    meta["license"] = "mit"
    meta["tags"].append("edge")
    meta["elastoformer"]["latency"] = [{"device": "Jetson Orin Nano 8GB", "runtime": "TensorRT 10.3",
                                        "precision": "fp16", "batch_size": 1, "ms": 3.1, "method": "measured"}]
    edited = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + text.split("---\n", 2)[2]
    api.upload_file(path_or_fileobj=edited.encode(), path_in_repo="README.md", repo_id=repo)
    assert push(run_dir) == 0
    assert commit_counts(hub) == {PREFIX: 0, f"{PREFIX}-dn1": 1, repo: 3, f"{PREFIX}-dn3": 1}
    assert sorted(hub.commits(repo)[-1]["files"]) == ["README.md", "elastic_latency_vs_flops.png"]
    card = Path(api.hf_hub_download(repo, "README.md", cache_dir=tmp_path / "d")).read_text()
    new = yaml.safe_load(card.split("---\n")[1])
    assert new["license"] == "mit" and "edge" in new["tags"] and new["elastoformer"]["latency"][0]["ms"] == 3.1
    assert "**3.10**" in card and "Latency is not measured yet" not in card
    assert push(run_dir) == 0 and commit_counts(hub)[repo] == 3  # and then it is stable


def test_the_token_is_never_written(run_dir, hub, sleeps, tmp_path, capsys, caplog):
    hf_logger = logging.getLogger("huggingface_hub")
    hf_logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    hf_logger.setLevel(logging.DEBUG)
    try:
        hub.fail_next(1, 500, "/api/repos/create")  # a retry warning is logged too
        assert push(run_dir, "--include_family", "--stage_dir", str(tmp_path / "staging")) == 0
    finally:
        hf_logger.removeHandler(caplog.handler)
    captured = capsys.readouterr()
    assert f"Bearer {TOKEN}" in hub.authorizations  # it was used ...
    assert any("attempt 2 of 5" in r.getMessage() for r in caplog.records)
    for text in (captured.out, captured.err, caplog.text):
        assert TOKEN not in text
    staged = [p for p in (tmp_path / "staging").rglob("*") if p.is_file()]
    assert {p.parent.name for p in staged} >= {"acme--tiny-elastic", "acme--tiny-elastic-dn2"}
    for root in (tmp_path, run_dir):  # staging folders, the hub's storage, HF_HOME, the cards, the run
        for path in (p for p in Path(root).rglob("*") if p.is_file()):
            assert TOKEN.encode() not in path.read_bytes(), path


def test_dry_run_needs_no_hub(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(run_dir), "--repo_prefix", PREFIX, "--dry_run", "--include_family",
                 "--stage_dir", str(tmp_path), "--latency_profile", "none"]) == 0
    assert (tmp_path / "acme--tiny-elastic-dn3" / "README.md").is_file()
    assert (tmp_path / "acme--tiny-elastic" / "family_config.json").is_file()
    assert (tmp_path / "acme--tiny-elastic" / "elastic_plan.json").is_file()
    assert (tmp_path / "acme--tiny-elastic" / "elastic_summary.json").is_file()
    assert main(["push", str(run_dir), "--repo_prefix", PREFIX]) == 2  # offline: refused in one line
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert main(["push", str(run_dir), "--repo_prefix", "no-org"]) == 2


def test_remote_comparison_uses_lfs_sha256_or_the_git_blob_id(tmp_path):
    import hashlib

    from huggingface_hub.hf_api import RepoFile
    from loopback_hub import git_blob_oid

    from elastoformer_hf.hub import same_as_remote

    data = b"weights" * 1000
    (tmp_path / "w.bin").write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    lfs = {"size": len(data), "oid": sha256, "pointerSize": 134}
    assert same_as_remote(tmp_path / "w.bin", RepoFile(path="w.bin", size=len(data), oid="0" * 40, lfs=lfs))
    assert not same_as_remote(tmp_path / "w.bin", RepoFile(path="w.bin", size=len(data), oid="0" * 40,
                                                           lfs={**lfs, "oid": "f" * 64}))
    assert same_as_remote(tmp_path / "w.bin", RepoFile(path="w.bin", size=len(data), oid=git_blob_oid(data)))
    assert not same_as_remote(tmp_path / "w.bin", RepoFile(path="w.bin", size=1, oid=git_blob_oid(data)))
    assert not same_as_remote(tmp_path / "w.bin", None)


def test_trainer_pushes_every_level_as_it_finishes(hub, sleeps, tmp_path, capsys):
    """--push_to_hub --hub_model_id org/name: each dn{k} reaches org/name-dn{k} as soon as it is written."""
    from test_trainer import tiny_vit

    from elastoformer_hf.data import build_transforms, load_image_datasets, with_transforms
    from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments

    train, evaluation, names = load_image_datasets("digits", max_train_samples=64, max_eval_samples=32)
    transform = build_transforms(32, is_training=False, crop_pct=1.0)
    args = ElasticTrainingArguments(
        output_dir=str(tmp_path / "run"), pruning_ratio=0.5, pruning_steps=1, round_to=1, max_steps=1,
        per_device_train_batch_size=16, save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
        push_to_hub=True, hub_model_id="acme/pushed", hub_token=TOKEN)
    assert args.push_levels and not args.push_to_hub  # Trainer's own checkpoint push stays off
    ElasticTrainer(model=tiny_vit(len(names)), args=args, train_dataset=with_transforms(train, transform),
                   eval_dataset=with_transforms(evaluation, transform), label_names=names).train()
    # one commit per level per change: dn1 as it finished and once more when its card's family table was complete;
    # the last level and the family once, at the end
    assert {repo: len(hub.commits(repo)) for repo in ("acme/pushed-dn1", "acme/pushed-dn2", "acme/pushed")} == {
        "acme/pushed-dn1": 2, "acme/pushed-dn2": 1, "acme/pushed": 1}
    files = set(HfApi(endpoint=hub.endpoint, token=TOKEN).list_repo_files("acme/pushed-dn2"))
    assert {"model.safetensors", "config.json", "README.md"} <= files
    assert TOKEN not in capsys.readouterr().err


@pytest.mark.parametrize("prefix, rule", [
    (PREFIX + "\n", r"'acme/tiny-elastic\n' is not valid on the Hub: only letters, digits, '-', '_' and '.' "),
    ("acme/tiny..elastic", "'acme/tiny..elastic' is not valid on the Hub: '--' and '..' are not allowed"),
    ("acme/tiny--elastic", "'--' and '..' are not allowed"),
    ("acme/" + "x" * 93, "x-dn3' is not valid on the Hub: its name is 97 characters long, the Hub allows at most 96"),
])
def test_repo_ids_the_hub_refuses_stop_the_push_at_the_door(run_dir, hub, tmp_path, capsys, prefix, rule):
    """Every repo the push would create ({prefix}-dn1 .. -dn3 and the family repo) is checked with the Hub's own
    rules before anything is staged or sent: one line naming the id and the rule, no request, no staging folder."""
    staging = tmp_path / "staging"
    assert main(["push", str(run_dir), "--repo_prefix", prefix, "--token", TOKEN, "--include_family",
                 "--stage_dir", str(staging)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("elastoformer push: error: --repo_prefix") and rule in err and err.count("\n") == 1
    assert hub.requests == [] and not staging.exists()


@pytest.mark.parametrize("repo_id, steps", [("acme/pushed\n", 2), ("acme/a..b", 2), ("acme/a--b", 2),
                                            ("acme/" + "x" * 93, 2), ("acme/" + "x" * 92, 9), ("pushed", 2)])
def test_a_hub_model_id_the_hub_refuses_is_a_setting_error(tmp_path, repo_id, steps):
    """--push_to_hub pushes org/name and org/name-dn1 .. -dn{N+1}: checked when the arguments are made, before the
    run starts (a name that fits alone but not with -dn10 included)."""
    from elastoformer_hf.errors import SettingError
    from elastoformer_hf.training import ElasticTrainingArguments

    with pytest.raises(SettingError, match="hub_model_id") as info:
        ElasticTrainingArguments(output_dir=str(tmp_path / "run"), push_to_hub=True, hub_model_id=repo_id,
                                 pruning_steps=steps, report_to="none")
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()
    if len(repo_id) > 96:
        assert f"-dn{steps + 1}' is not valid on the Hub: its name is 97 characters long" in str(info.value)


def test_a_rebuilt_family_is_the_same_bytes_and_pushes_nothing(run_dir, hub, sleeps, tmp_path):
    """The same run gives the same family, byte for byte (one safetensors metadata entry, no evaluation timings, the
    latencies recorded in the run): rebuilding the family of a pushed run commits nothing, even after a latency
    was recorded (and merged into the family's metadata) before the push."""
    from elastoformer_hf.nesting import build_family
    from elastoformer_hf.refresh import record_latency

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    estimate = {"batch_size": 1, "median_ms": 12.0, "runtime": "torch", "precision": "fp32", "method": "estimated",
                "device": {"name": "Jetson Orin Nano 8GB", "type": "cuda"}, "date": "2025-01-02T03:04:05+00:00"}
    record_latency({run / "dn2": [estimate]})  # latency.json, then the cards and family_config.json refreshed
    assert push(run, "--include_family") == 0
    pushed = commit_counts(hub)
    published = {p.name: p.read_bytes() for p in (run / "family").iterdir() if p.suffix in (".json", ".safetensors")}
    assert set(published) == {"family_config.json", "family.safetensors"}
    for _ in range(3):  # safetensors wrote several metadata entries in a random order: rebuild more than once
        build_family(run).save_pretrained(run / "family", overwrite=True)
        assert {name: (run / "family" / name).read_bytes() for name in published} == published
    assert push(run, "--include_family") == 0
    assert commit_counts(hub) == pushed


def test_push_to_hub_needs_a_repo_id(tmp_path):
    from elastoformer_hf.errors import ElastoformerError
    from elastoformer_hf.training import ElasticTrainingArguments

    with pytest.raises(ElastoformerError, match="hub_model_id"):
        ElasticTrainingArguments(output_dir=str(tmp_path), push_to_hub=True, report_to="none")


def test_timm_levels_open_with_timm_from_the_hub(hub, sleeps, tmp_path, capsys):
    """A timm ResNet family: the level saved in timm form (the dense one: timm's ResNet arguments cannot express
    a pruned 7x7 stem) opens in a fresh process with ``timm.create_model("hf-hub:...", pretrained=True)``; the
    pruned levels (elastoformer form) open there with ``trust_remote_code=True``. Same logits as the local run."""
    from conftest import load_tiny

    from elastoformer_hf.nesting.synthetic import write_synthetic_run
    from elastoformer_hf.pruning.config import PruningConfig
    from elastoformer_hf.pruning.planner import plan_levels
    from elastoformer_hf.run_folder import read_level_info

    lm = load_tiny("resnet18", model_args={"channels": [16, 32, 64, 128], "stem_width": 16})
    plan = plan_levels(lm.model, PruningConfig(pruning_ratio=0.5, pruning_steps=2, round_to=1), model_name="resnet18",
                       image_size=32)
    run = write_synthetic_run(lm, plan, tmp_path / "run", verify=False)
    forms = [read_level_info(run / f"dn{k}")["checkpoint_format"] for k in (1, 2, 3)]
    assert forms == ["elastoformer", "elastoformer", "timm"]
    prefix = "acme/tiny-resnet-elastic"
    assert main(["push", str(run), "--repo_prefix", prefix, "--token", TOKEN]) == 0
    card = Path(HfApi(endpoint=hub.endpoint, token=TOKEN).hf_hub_download(f"{prefix}-dn3", "README.md",
                                                                         cache_dir=tmp_path / "c")).read_text()
    assert f'timm.create_model("hf-hub:{prefix}-dn3", pretrained=True)' in card and "library_name: timm" in card

    pixels = torch.randn(2, 3, 32, 32)
    torch.save(pixels, tmp_path / "pixels.pt")
    script = textwrap.dedent(f"""
        import sys, timm, torch
        from transformers import AutoModelForImageClassification
        x = torch.load({str(tmp_path / "pixels.pt")!r})
        dense = timm.create_model("hf-hub:{prefix}-dn3", pretrained=True).eval()
        pruned = AutoModelForImageClassification.from_pretrained("{prefix}-dn2", trust_remote_code=True).eval()
        with torch.no_grad():
            torch.save({{"dn3": dense(x), "dn2": pruned(x).logits}}, {str(tmp_path / "logits.pt")!r})
        assert type(dense).__name__ == "ResNet" and dense.num_classes == 5
        assert "elastoformer_hf" not in sys.modules
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "fresh_hf_home"), HF_HUB_OFFLINE="0",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from elastoformer_hf.descendant import load_descendant

    got = torch.load(tmp_path / "logits.pt")
    with torch.no_grad():
        torch.testing.assert_close(got["dn3"], load_descendant(run / "dn3")(pixels), atol=1e-5, rtol=0)
        torch.testing.assert_close(got["dn2"], load_descendant(run / "dn2")(pixels).logits, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ secrets
def test_the_environment_token_is_scanned_for_too(run_dir, hub, sleeps, tmp_path, monkeypatch, capsys):
    """With the token in HF_TOKEN (what push --help recommends), a file holding it is refused as with --token,
    weights and images included."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    (run / "dn2" / "notes.bin").write_bytes(b"\x00" * (1 << 22) + TOKEN.encode() + b"\x00")  # across a chunk edge
    assert main(["push", str(run), "--repo_prefix", PREFIX]) == 2
    assert f"refusing to upload notes.bin to {PREFIX}-dn2 (from {run / 'dn2' / 'notes.bin'}): it contains the Hub " \
           "token" in capsys.readouterr().err
    assert hub.requests == []  # found before the first request (dn1 is pushed before dn2)
    (run / "dn2" / "notes.bin").unlink()
    assert main(["push", str(run), "--repo_prefix", PREFIX]) == 0  # the same token, nothing secret: pushed
    assert f"Bearer {TOKEN}" in hub.authorizations


@pytest.mark.parametrize("planted", ["dn2/README.md", "dn1/notes.json", "family/README.md"])
def test_a_dry_run_refuses_a_token_as_the_push_does(run_dir, hub, tmp_path, monkeypatch, capsys, planted):
    """The dry run predicts the push: a run file holding the token (a card the push merges into the one it
    publishes, any other file) stops both with the same line, naming the file and not the token, before anything is
    staged for upload or sent."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    path = run / planted
    if path.suffix == ".md":
        assert path.is_file()  # the run's own card: the push merges it into the card it publishes
        path.write_text(path.read_text() + f"\nMy notes: the token is {TOKEN}\n")
    else:
        path.write_text(json.dumps({"token": TOKEN}))
    errors = []
    for extra in (["--dry_run", "--stage_dir", str(tmp_path / "staging")], []):
        assert main(["push", str(run), "--repo_prefix", PREFIX, "--include_family", *extra]) == 2
        errors.append(capsys.readouterr().err)
    repo = PREFIX if planted.startswith("family/") else f"{PREFIX}-{planted.split('/')[0]}"
    assert errors[0] == errors[1] == (f"elastoformer push: error: refusing to upload {path.name} to {repo} (from "
                                      f"{path}): it contains the Hub token; remove it from the file\n")
    assert TOKEN not in errors[0] and hub.requests == []


def test_a_symbolic_link_is_refused_not_followed(run_dir, hub, sleeps, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    secret = tmp_path / "outside.txt"
    secret.write_text("private")
    (run / "dn1" / "extra.txt").symlink_to(secret)
    assert push(run) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert not hub.commits(f"{PREFIX}-dn1")


def test_no_token_in_the_checkpoints_the_trainer_writes(tmp_path):
    from test_trainer import tiny_vit

    from elastoformer_hf.data import build_transforms, load_image_datasets, with_transforms
    from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments

    train, evaluation, names = load_image_datasets("digits", max_train_samples=32, max_eval_samples=16)
    transform = build_transforms(32, is_training=False, crop_pct=1.0)
    args = ElasticTrainingArguments(
        output_dir=str(tmp_path / "run"), pruning_ratio=0.5, pruning_steps=1, round_to=1, max_steps=2,
        save_strategy="steps", save_steps=1, keep_level_checkpoints=True, per_device_train_batch_size=16,
        report_to="none", disable_tqdm=True, use_cpu=True, hub_token=TOKEN, save_family=False)
    ElasticTrainer(model=tiny_vit(len(names)), args=args, train_dataset=with_transforms(train, transform),
                   eval_dataset=with_transforms(evaluation, transform), label_names=names).train()
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in written)
    assert not [p for p in written if TOKEN.encode() in p.read_bytes()]
    assert args.hub_token == TOKEN  # kept in memory for the pushes


def test_a_commit_the_hub_applied_but_did_not_confirm_is_not_made_again(run_dir, hub, sleeps, tmp_path):
    """The Hub applies a commit and the answer is lost (an error after the fact): the retry, made against the head
    read before, is refused (412); the push reads the repo again, sees its files there, makes no second commit."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert push(run) == 0
    before = commit_counts(hub)
    measured = {"batch_size": 1, "median_ms": 2.0, "min_ms": 1.5, "p90_ms": 3.0, "repeats": 5, "runtime": "torch",
                "precision": "fp32", "method": "measured", "device": {"name": "cpu: test (1 thread)", "type": "cpu"}}
    from elastoformer_hf.latency import record_entries

    record_entries(run / "dn1", [measured])  # dn1's card changes: one file to commit
    hub.fail_next(1, 500, f"/api/models/{PREFIX}-dn1/commit", after=True)  # applied, then "500"
    assert push(run) == 0
    after = commit_counts(hub)
    # every card shows dn1's new latency in its family table: one commit per repo, dn1's not made twice
    assert {repo: after[repo] - before[repo] for repo in REPOS} == {repo: 1 for repo in REPOS[1:]} | {PREFIX: 0}
    assert push(run) == 0 and commit_counts(hub) == after  # nothing new: no commit at all


def test_weights_that_are_not_the_ones_written_are_never_published(run_dir, hub, sleeps, tmp_path, capsys):
    """One bit flipped in a level's weights (a number far off, the file still loadable) or a truncated file: the
    sha256 recorded when the level was written no longer matches, and the push stops naming the file."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    weights = run / "dn2" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x40  # an exponent bit of the last float
    weights.write_bytes(bytes(data))
    assert push(run) == 2
    err = capsys.readouterr().err
    assert "dn2/model.safetensors is not the file that was written" in err and err.count("\n") == 1
    assert not any(hub.commits(repo) for repo in REPOS)
    weights.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    assert push(run) == 2 and "is not the file that was written" in capsys.readouterr().err


def test_a_first_push_names_the_repos_it_goes_to(run_dir, hub, sleeps, tmp_path):
    """The run's own cards (written by the trainer, naming placeholder repos ORG/...) are what a repo without a card
    receives, merged: their links, snippets and title name the repos pushed to, and a user's edit stays. The dry run
    stages the same card."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    local = run / "dn2" / "README.md"
    assert "ORG/" in local.read_text()
    local.write_text(local.read_text() + "\nNotes of the owner: trained on a Tuesday.\n")
    assert main(["push", str(run), "--repo_prefix", PREFIX, "--token", TOKEN, "--latency_profile", "none",
                 "--include_family", "--dry_run", "--stage_dir", str(tmp_path / "stage")]) == 0
    assert push(run, "--include_family") == 0
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    for repo in REPOS:
        text = Path(api.hf_hub_download(repo, "README.md", cache_dir=tmp_path / "c")).read_text()
        assert "ORG/" not in text, repo
        assert f"\n# {repo.split('/')[-1]}\n" in text, repo
        staged = (tmp_path / "stage" / repo.replace("/", "--") / "README.md").read_text()
        assert "ORG/" not in staged and f"\n# {repo.split('/')[-1]}\n" in staged, repo
    text = Path(api.hf_hub_download(f"{PREFIX}-dn2", "README.md", cache_dir=tmp_path / "c")).read_text()
    assert f'from_pretrained("{PREFIX}-dn2")' in text and "Notes of the owner: trained on a Tuesday." in text
