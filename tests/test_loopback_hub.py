"""Tests for the loopback Hub: huggingface_hub 2.x and transformers 5.x must work against it unmodified.

No test reads or writes ``~/.cache/huggingface``: HF_HOME points into tmp_path, downloads pass ``cache_dir``,
and every client call passes an explicit token and endpoint (huggingface_hub reads HF_ENDPOINT at import time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub import CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _http
from huggingface_hub.utils._runtime import is_xet_available
from loopback_hub import LoopbackHub, git_blob_oid

TOKEN = "hf_loopback_test_token"
REPO = "acme/tiny"
FILES = {
    "config.json": b'{"model_type": "none"}',
    "README.md": b"---\nlicense: mit\n---\n# tiny\n",
    "sub/weights.bin": bytes(range(256)) * 8,
}


@pytest.fixture(autouse=True)
def _isolated_hf_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # in case the caller runs offline


@pytest.fixture
def hub(tmp_path):
    with LoopbackHub(tmp_path / "hub") as server:
        yield server


@pytest.fixture
def api(hub):
    return HfApi(endpoint=hub.endpoint, token=TOKEN)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "upload"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def download(hub, filename, repo_id=REPO, cache=None, **kwargs):
    cache = cache or Path(hub.root).parent / "cache"
    return hf_hub_download(repo_id, filename, endpoint=hub.endpoint, cache_dir=cache, token=TOKEN, **kwargs)


def commit_posts(hub, repo_id=REPO):
    return [r for r in hub.requests if r == ("POST", f"/api/models/{repo_id}/commit/main")]


def test_create_repo_and_exist_ok(hub, api):
    url = api.create_repo(REPO)
    assert url == f"{hub.endpoint}/{REPO}" and url.repo_id == REPO
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    assert api.repo_exists(REPO) and not api.repo_exists("acme/other")
    assert hub.commits(REPO) == []  # unlike the Hub, no .gitattributes commit: commits() counts uploads only


def test_upload_folder_is_one_commit_and_round_trips(hub, api, folder, tmp_path):
    api.create_repo(REPO)
    info = api.upload_folder(folder_path=folder, repo_id=REPO, commit_message="add tiny")

    (commit,) = hub.commits(REPO)
    assert commit["oid"] == info.oid and len(info.oid) == 40 and commit["message"] == "add tiny"
    assert sorted(commit["files"]) == sorted(FILES)
    assert api.list_repo_files(REPO) == sorted(FILES)
    model = api.model_info(REPO)
    assert model.sha == info.oid and sorted(s.rfilename for s in model.siblings) == sorted(FILES)
    assert [c.commit_id for c in api.list_repo_commits(REPO)] == [info.oid]
    tree = {entry.path: entry for entry in api.list_repo_tree(REPO, recursive=True)}
    assert tree["sub/weights.bin"].blob_id == git_blob_oid(FILES["sub/weights.bin"]) and "sub" in tree

    for name, data in FILES.items():
        path = Path(download(hub, name))
        assert path.read_bytes() == data and info.oid in path.parts  # cached under snapshots/<commit oid>/
    snapshot = Path(snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=tmp_path / "snap", token=TOKEN))
    assert {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()} == set(FILES)

    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}
    stored = [p.read_bytes() for p in Path(hub.root).rglob("*") if p.is_file()]
    assert not any(TOKEN.encode() in data for data in stored)  # tokens stay in memory only


def test_unchanged_reupload_makes_no_commit_and_deletions_work(hub, api, folder):
    api.create_repo(REPO)
    api.upload_folder(folder_path=folder, repo_id=REPO)
    api.upload_folder(folder_path=folder, repo_id=REPO)  # preupload reports oids: nothing changed, no commit
    assert len(hub.commits(REPO)) == 1

    api.create_commit(
        REPO,
        operations=[CommitOperationDelete("sub/"), CommitOperationDelete("README.md")],
        commit_message="prune",
    )
    assert api.list_repo_files(REPO) == ["config.json"]
    assert hub.commits(REPO)[-1]["deleted"] == ["sub", "README.md"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("nope.txt", REPO)
    assert len(hub.commits(REPO)) == 2


def test_missing_entries_repos_and_revisions_raise_client_errors(hub, api, folder):
    api.create_repo(REPO)
    api.upload_folder(folder_path=folder, repo_id=REPO)
    with pytest.raises(EntryNotFoundError):
        download(hub, "missing.json")
    with pytest.raises(RepositoryNotFoundError):
        download(hub, "config.json", repo_id="acme/missing")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/missing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        download(hub, "config.json", revision="dev")
    assert api.file_exists(REPO, "config.json") and not api.file_exists(REPO, "missing.json")


def test_create_commit_does_not_retry_5xx(hub, api):
    # huggingface_hub 2.4.0 does NOT retry a failed commit POST from `HfApi.create_commit` (and hence
    # `upload_file`/`delete_file`): it calls `_send_commit(...)` with the default `retry_on_error=False`,
    # i.e. `get_session().post(url, ...)` (huggingface_hub/_commit_api.py, `_send_commit`), because a lost
    # response would make a retry create a duplicate commit. Each call therefore fails once per injected 500.
    api.create_repo(REPO)
    hub.fail_next(2, status=500, path_prefix=f"/api/models/{REPO}/commit/")
    op = {"path_or_fileobj": b"{}", "path_in_repo": "config.json", "repo_id": REPO}
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as err:
            api.upload_file(**op)
        assert err.value.response.status_code == 500
    assert hub.commits(REPO) == []
    api.upload_file(**op)
    assert len(hub.commits(REPO)) == 1 and len(commit_posts(hub)) == 3


@pytest.mark.skipif(not is_xet_available(), reason="upload_folder only pipelines (and retries) with hf_xet")
def test_upload_folder_retries_5xx_on_commit(hub, api, folder, monkeypatch):
    # With hf_xet installed, `upload_folder` goes through `_upload_pipeline._UploadPipeline._do_commit`, which
    # calls `_send_commit(..., retry_on_error=True)` -> `http_backoff` (retries 408/429/500/502/503/504 with
    # 1s, 2s, ... waits). The sleeps are recorded instead of slept to keep the test fast.
    sleeps: list[float] = []
    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=sleeps.append))
    api.create_repo(REPO)
    hub.fail_next(2, status=500, path_prefix=f"/api/models/{REPO}/commit/")
    info = api.upload_folder(folder_path=folder, repo_id=REPO)
    assert sleeps == [1, 2] and len(commit_posts(hub)) == 3
    assert [c["oid"] for c in hub.commits(REPO)] == [info.oid]


def test_private_dataset_needs_a_token(hub, api, tmp_path):
    api.create_repo("acme/data", repo_type="dataset", private=True)
    api.upload_file(
        path_or_fileobj=b"x,y\n1,2\n", path_in_repo="data.csv", repo_id="acme/data", repo_type="dataset"
    )
    assert api.dataset_info("acme/data").private is True
    path = download(hub, "data.csv", repo_id="acme/data", repo_type="dataset")
    assert Path(path).read_bytes() == b"x,y\n1,2\n"
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=False).dataset_info("acme/data")


def test_collections(hub, api):
    api.create_repo(REPO)
    # No namespace given: create_collection asks /api/whoami-v2 for the user name.
    collection = api.create_collection("Elastic family", description="nested descendants")
    assert collection.slug.startswith("acme/elastic-family-") and collection.items == []
    assert api.create_collection("Elastic family", exists_ok=True).slug == collection.slug
    api.add_collection_item(collection.slug, REPO, "model", note="the parent")
    with pytest.raises(HfHubHTTPError):
        api.add_collection_item(collection.slug, REPO, "model")
    items = api.add_collection_item(collection.slug, REPO, "model", exists_ok=True).items
    assert [(i.item_id, i.item_type, i.note) for i in items] == [(REPO, "model", "the parent")]
    assert api.get_collection(collection.slug).title == "Elastic family"


def test_transformers_from_pretrained_in_subprocess(hub, api, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "vit")
    pixels = torch.randn(2, 3, 32, 32)
    torch.save(pixels, tmp_path / "pixels.pt")
    api.create_repo("acme/tiny-vit")
    oid = api.upload_folder(folder_path=tmp_path / "vit", repo_id="acme/tiny-vit").oid
    assert len(hub.commits("acme/tiny-vit")) == 1

    script = textwrap.dedent(f"""
        import json, sys, torch
        from transformers import AutoConfig, ViTForImageClassification
        config = AutoConfig.from_pretrained("acme/tiny-vit")
        model = ViTForImageClassification.from_pretrained("acme/tiny-vit").eval()
        with torch.no_grad():
            logits = model(torch.load({str(tmp_path / "pixels.pt")!r})).logits
        torch.save(logits, {str(tmp_path / "logits.pt")!r})
        print(json.dumps({{"model_type": config.model_type, "labels": config.num_labels}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "sub_hf_home"),
        HF_TOKEN="hf_subprocess",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"model_type": "vit", "labels": 3}
    with torch.no_grad():
        expected = model(pixels).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected)
    assert "Bearer hf_subprocess" in hub.authorizations
    # transformers resolves main to its head commit (model_info), then downloads by commit oid.
    assert ("GET", f"/acme/tiny-vit/resolve/{oid}/model.safetensors") in hub.requests


def test_module_cli_serves_until_killed(tmp_path):
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("loopback_hub.py")),
        "--root",
        str(tmp_path),
        "--port",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        assert HfApi(endpoint=endpoint, token=TOKEN).whoami()["name"] == "acme"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
