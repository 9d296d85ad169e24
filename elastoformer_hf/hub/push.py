"""Publishing a run: one Hub repo per descendant network, the family repo, and a collection grouping them.

For every repo the push builds a staging folder (the ``dn{k}/`` files - for the family repo the ``family/``
artifact, ``elastic_plan.json`` and ``elastic_summary.json`` -, hard-linked, plus the rendered README.md and plots), compares it with the repo's files on the Hub (sizes and git blob ids, or the LFS sha256 of large
files) and uploads the files that differ with ONE ``upload_folder`` call, i.e. one commit. A repo with nothing
new gets no commit. An existing card on the Hub is updated, not replaced (:func:`~elastoformer_hf.cards.merge_cards`):
a license or tags added on the Hub, and latency entries measured later, survive a re-push.

Failures: transient ones (5xx, dropped connections) are retried with exponential backoff
(:class:`~elastoformer_hf.hub.retry.RetryPolicy`); a repo that still fails stops the push with a
:class:`PushError` that names the repos already up to date. Re-running the same push finishes the rest.

The token is handed to :class:`huggingface_hub.HfApi` and nowhere else: it is not written to the staging
folders, the cards or the logs, and a staged file that contains it stops the push (and the dry run, which
stages and scans the same files) before anything is sent.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from huggingface_hub import HfApi, ModelCard
from huggingface_hub.hf_api import RepoFile

from ..cards import (
    ACCURACY_PLOT,
    LATENCY_PLOT,
    dn_repo,
    family_card,
    human,
    level_card,
    merge_cards,
    retarget_card,
    write_card,
)
from ..descendant import verify_level_files
from ..errors import ElastoformerError
from ..family.storage import CONFIG_FILE as FAMILY_CONFIG
from ..latency.profiles import load_profile
from ..refresh import DEFAULT_LATENCY_PROFILE, estimate_missing_latency
from ..run_folder import CARD_FILE as CARD
from ..run_folder import FAMILY_DIR, PLAN_FILE, SUMMARY_FILE, RunRecord, check_digests, load_run, read_json
from .repo_ids import check_repo_prefix
from .retry import RetryPolicy, describe, status_of

GENERATED = (CARD, ACCURACY_PLOT, LATENCY_PLOT)
_SKIP_DIRS = {"__pycache__", ".git", ".cache", ".ipynb_checkpoints"}


class PushError(ElastoformerError):
    """A push that stopped part-way; ``result`` holds what was done before.

    Args:
        message (`str`): what failed, what was done and what was not attempted.
        result (`PushResult`): what was done before the failure.
    """

    def __init__(self, message: str, result: PushResult):
        super().__init__(message)
        self.result = result


@dataclass
class RepoOutcome:
    """What a push did to one repo.

    Args:
        repo_id (`str`): the repo.
        status (`str`): ``"pushed"``, ``"up to date"`` or ``"staged"`` (dry run).
        files (`list[str]`, *optional*, defaults to `[]`): the files committed (or that would be).
        commit (`str`, *optional*): the commit id, when one was made.
    """

    repo_id: str
    status: str  # "pushed" | "up to date" | "staged" (dry run)
    files: list[str] = field(default_factory=list)  # files committed (or that would be)
    commit: str | None = None


@dataclass
class PushResult:
    """What :func:`push_run` did.

    Args:
        repos (`list[RepoOutcome]`, *optional*, defaults to `[]`): per repo, in the order pushed.
        collection (`str`, *optional*): the collection's slug.
        stage_dir (`Path`, *optional*): the kept staging folders (``stage_dir=...``), else None.
    """

    repos: list[RepoOutcome] = field(default_factory=list)
    collection: str | None = None  # slug
    stage_dir: Path | None = None  # kept staging folders (stage_dir=...), else None


@dataclass
class _Job:
    repo_id: str
    label: str
    files: dict[str, Path]  # path in repo -> local file (generated files excluded)
    card: Callable[[list[str] | None], ModelCard]  # plots written -> fresh card
    local_card: Path | None  # a README.md already next to the files (used when the repo has none)
    note: str
    prefix: str  # org/name: the repos the cards name


# ------------------------------------------------------------------------------------------------ hashing
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git_blob_oid(path: Path) -> str:
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def same_as_remote(local: Path, entry: RepoFile | None) -> bool:
    """Whether the Hub already has exactly this file (LFS: sha256 of the content; regular: git blob id).

    Args:
        local (`Path`): the local file.
        entry (`RepoFile`, *optional*): the file of the same path on the Hub; None when the repo has none.

    Returns:
        `bool`: True when the sizes and the content hashes match.
    """
    if entry is None or entry.size != local.stat().st_size:
        return False
    if entry.lfs is not None:
        return _sha256(local) == entry.lfs.sha256
    return _git_blob_oid(local) == entry.blob_id


# ------------------------------------------------------------------------------------------------ staging
def _folder_files(folder: Path) -> dict[str, Path]:
    """``{repo path: file}`` of what ``folder`` publishes (hidden and cache folders left out).

    Raises:
        ElastoformerError: a symbolic link: its target, which may lie anywhere, would be uploaded in its place.
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts):
            continue
        if path.is_symlink():
            raise ElastoformerError(f"refusing to upload {path}: it is a symbolic link (to {path.readlink()}), "
                                    "and its target's content would be published; copy the file in instead")
        if path.is_file():
            files[rel.as_posix()] = path
    return files


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)  # free for multi-GB weights; generated files are never written through a link
    except OSError:
        shutil.copy2(src, dst)


def _contains(path: Path, needle: bytes, chunk: int = 1 << 22) -> bool:
    """Whether ``needle`` occurs in the file, read in chunks that overlap by ``len(needle) - 1`` bytes."""
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-(len(needle) - 1):] if len(needle) > 1 else b""
    return False


def _check_no_secret(job: _Job, folder: Path, token: str | None, names: list[str] | None = None) -> None:
    """Every byte that will be uploaded from the staged ``folder`` (weights and images too: a token fits in any
    file's metadata) and the run's own card, or only the staged files ``names``.

    Raises:
        ElastoformerError: a file holds the token (one line naming the file it comes from, never the token).
    """
    if not token:
        return
    needle = token.encode()
    checks = [(rel, folder / rel) for rel in (names if names is not None else _folder_files(folder))]
    if names is None and job.local_card is not None:
        # the run's own card: a push to a repo without a card merges it into the published one, its text kept
        checks.append((CARD, job.local_card))
    for rel, path in checks:
        if _contains(path, needle):
            source = job.local_card if rel == CARD else job.files.get(rel)
            raise ElastoformerError(f"refusing to upload {rel} to {job.repo_id}"
                                    f"{f' (from {source})' if source else ''}: it contains the Hub token; remove "
                                    "it from the file")


def _staging_name(repo_id: str) -> str:
    return repo_id.replace("/", "--")


# ------------------------------------------------------------------------------------------------ jobs
def _jobs(record: RunRecord, repo_prefix: str, *, include_family: bool, card_kwargs: dict,
          log: Callable[[str], None], levels: set[int] | None = None) -> list[_Job]:
    family_repo = repo_prefix if include_family else None
    jobs = []
    for level in record.levels:
        if levels is not None and level not in levels:
            continue
        folder = record.folder(level)
        verify_level_files(folder)  # never publish weights that are not the ones written
        files = {k: v for k, v in _folder_files(folder).items() if k not in GENERATED}
        info = record.levels[level]
        top1 = (info.get("metrics") or {}).get("eval_accuracy")
        note = f"DN{level} of {record.num_levels}: {human(info['params'])} params, {human(info['flops'])}FLOPs"
        note += f", top-1 {100 * top1:.2f} %" if top1 is not None else ""

        def make(plots, level=level):
            return level_card(record, level, repo_prefix=repo_prefix, family_repo=family_repo, plots=plots,
                              **card_kwargs)

        jobs.append(_Job(dn_repo(repo_prefix, level), f"dn{level}", files, make,
                         folder / CARD if (folder / CARD).is_file() else None, note, repo_prefix))
    if include_family:
        artifact = record.family_dir
        # the plan and the summary (a few KB) travel with the family either way: which channels every level keeps,
        # and the family table, readable without opening the weights
        files = {name: record.root / name for name in (PLAN_FILE, SUMMARY_FILE) if (record.root / name).is_file()}
        if artifact is not None:
            check_digests(artifact, read_json(artifact / FAMILY_CONFIG).get("sha256") or {})
            files.update({k: v for k, v in _folder_files(artifact).items() if k not in GENERATED})
            local_card = artifact / CARD if (artifact / CARD).is_file() else None
        else:
            log(f"{record.root} has no {FAMILY_DIR}/ folder (the elastic family artifact): the family repo "
                f"{repo_prefix} gets {PLAN_FILE}, {SUMMARY_FILE} and a card only")
            local_card = None

        def make_family(plots):
            return family_card(record, repo_prefix=repo_prefix, family_repo=repo_prefix,
                               has_family_artifact=artifact is not None, plots=plots, **card_kwargs)

        jobs.insert(0, _Job(repo_prefix, "family", files, make_family, local_card,
                            f"the whole family: {record.num_levels} nested levels", repo_prefix))
    return jobs


def _stage(job: _Job, folder: Path, existing: ModelCard | None) -> list[str]:
    """Fill ``folder`` with what the repo should hold; returns the file names in it (repo paths)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for rel, src in job.files.items():
        _link_or_copy(src, folder / rel)
    card = job.card(None)
    if existing is not None:
        card = merge_cards(existing, card)
    write_card(card, folder)
    return sorted(_folder_files(folder))


def _local_card(job: _Job) -> ModelCard | None:
    """The README.md already next to the files: what the pushed card is merged into when the repo has none, naming
    the repos pushed to (it was written naming placeholders, or another prefix)."""
    if job.local_card is None:
        return None
    return retarget_card(ModelCard.load(job.local_card, ignore_metadata_errors=True), job.prefix)


def _stage_all(jobs: list[_Job], stage_root: Path, token: str | None) -> list[RepoOutcome]:
    """Stage every repo (the cards freshly rendered) and scan every byte to upload for the token, the run's own
    cards included.

    The dry run is this, and the real push runs it before its first request: a file holding the token stops both
    in the same line, before anything is sent (the real push would otherwise publish the repos before it).
    """
    outcomes = []
    for job in jobs:
        folder = stage_root / _staging_name(job.repo_id)
        files = _stage(job, folder, _local_card(job))  # what a repo without a card gets (the Hub's is not read)
        _check_no_secret(job, folder, token)
        outcomes.append(RepoOutcome(job.repo_id, "staged", files))
    return outcomes


# ------------------------------------------------------------------------------------------------ pushing
def _remote_files(api: HfApi, repo_id: str, retry: RetryPolicy) -> dict[str, RepoFile]:
    entries = retry.call(f"listing {repo_id}", lambda: list(api.list_repo_tree(repo_id, recursive=True)))
    return {e.path: e for e in entries if isinstance(e, RepoFile)}


def _remote_card(api: HfApi, repo_id: str, remote: dict, cache: Path, retry: RetryPolicy) -> ModelCard | None:
    if CARD not in remote:
        return None
    path = retry.call(f"downloading {repo_id}/{CARD}", api.hf_hub_download, repo_id, CARD, cache_dir=cache)
    return ModelCard(Path(path).read_text(encoding="utf-8"), ignore_metadata_errors=True)


def _push_repo(api: HfApi, job: _Job, *, private: bool, retry: RetryPolicy, stage_root: Path,
               token: str | None) -> RepoOutcome:
    retry.call(f"creating {job.repo_id}", api.create_repo, job.repo_id, private=private, exist_ok=True)
    head = retry.call(f"reading {job.repo_id}", lambda: api.repo_info(job.repo_id).sha)
    remote = _remote_files(api, job.repo_id, retry)
    existing = _remote_card(api, job.repo_id, remote, stage_root / ".hub-cache", retry)
    if existing is None:
        existing = _local_card(job)
    folder = stage_root / _staging_name(job.repo_id)
    staged = _stage(job, folder, existing)
    # every other file was scanned before the first request (_stage_all): the card merged with the Hub's is new
    _check_no_secret(job, folder, token, [CARD])
    changed = [rel for rel in staged if not same_as_remote(folder / rel, remote.get(rel))]
    if not changed:
        return RepoOutcome(job.repo_id, "up to date")

    def commit():
        # exactly once: the commit names the head it was computed against, so a retry after a commit the Hub applied
        # but whose answer was lost is refused (412) instead of committed again; then the repo is read again
        try:
            return api.upload_folder(
                repo_id=job.repo_id, folder_path=folder, allow_patterns=[glob.escape(rel) for rel in changed],
                commit_message=f"elastoformer push: {job.label} ({len(changed)} file{'s' if len(changed) > 1 else ''})",
                commit_description="Published with `elastoformer push` (elastoformer-hf).", parent_commit=head)
        except Exception as err:
            if status_of(err) != 412:
                raise
            now = _remote_files(api, job.repo_id, retry)
            if all(same_as_remote(folder / rel, now.get(rel)) for rel in changed):
                return SimpleNamespace(oid=api.repo_info(job.repo_id).sha)  # an earlier attempt was applied
            raise ElastoformerError(f"{job.repo_id} changed while it was being pushed (its head is no longer "
                                    f"{(head or '')[:10]}); re-run the push") from None

    info = retry.call(f"uploading to {job.repo_id}", commit)
    return RepoOutcome(job.repo_id, "pushed", changed, getattr(info, "oid", None))


def _collection(api: HfApi, repo_prefix: str, jobs: list[_Job], private: bool, retry: RetryPolicy) -> str:
    namespace, name = repo_prefix.split("/", 1)
    title = f"{name} elastic family"[:60]
    collection = retry.call("creating the collection", api.create_collection, title, namespace=namespace,
                            description="Nested descendant networks of one pre-trained model (elastoformer-hf)",
                            private=private, exists_ok=True)
    for job in jobs:
        retry.call(f"adding {job.repo_id} to the collection", api.add_collection_item, collection.slug, job.repo_id,
                   "model", note=job.note[:500], exists_ok=True)
    return collection.slug


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "<token>") if token else text


def push_run(run_dir: str | Path, repo_prefix: str, *, private: bool = False, token: str | None = None,
             include_family: bool = False, dataset: str | None = None, license: str | None = None,
             base_model: str | None = None, endpoint: str | None = None, stage_dir: str | Path | None = None,
             collection: bool = True, dry_run: bool = False, retry: RetryPolicy | None = None,
             latency_profile: str | None = DEFAULT_LATENCY_PROFILE, levels: Iterable[int] | None = None,
             log: Callable[[str], None] = print) -> PushResult:
    """Publish the run in ``run_dir``: repos ``{repo_prefix}-dn{k}`` (and ``{repo_prefix}`` itself with
    ``include_family``), grouped in a collection.

    Each repo gets at most one commit, with only the files that differ from the Hub's; the repos are pushed in
    order (the family repo first) and a failure stops the push.

    Args:
        run_dir (`str` or `Path`): the run folder (``dn1/`` .. ``dn{N+1}/``).
        repo_prefix (`str`): ``org/name``; the levels go to ``{repo_prefix}-dn{k}``.
        private (`bool`, *optional*, defaults to `False`): create the repos and the collection private.
        token (`str`, *optional*): a Hub token (default: ``HF_TOKEN`` or the saved login).
        include_family (`bool`, *optional*, defaults to `False`): also push ``{repo_prefix}`` itself: the
            ``family/`` artifact (when the run has one), ``elastic_plan.json``, ``elastic_summary.json`` and a
            card.
        dataset (`str`, *optional*): goes to the cards.
        license (`str`, *optional*): goes to the cards.
        base_model (`str`, *optional*): goes to the cards.
        endpoint (`str`, *optional*): another Hub (default: ``HF_ENDPOINT``).
        stage_dir (`str` or `Path`, *optional*): keeps the staging folders there (default: a temporary folder,
            removed).
        collection (`bool`, *optional*, defaults to `True`): group the repos in a collection.
        dry_run (`bool`, *optional*, defaults to `False`): stage the folders (cards included), check them as a
            push does (the token scan included) and contact no server.
        retry (`RetryPolicy`, *optional*): how transient failures are retried (default: ``RetryPolicy()``).
        latency_profile (`str`, *optional*, defaults to the Jetson Orin Nano): a level with no latency for this
            device profile (:data:`~elastoformer_hf.latency.profiles.PROFILES` or a JSON file) gets its roofline
            estimate recorded in the run folder first (dry run too: the staged cards are what the push sends),
            labelled "estimated"; measured entries always win. ``None`` or ``"none"`` skips it.
        levels (`Iterable[int]`, *optional*): push only these levels' repos (default: every level of the run);
            the trainer pushes each level as it finishes, then everything once the family is complete.
        log (`Callable[[str], None]`, *optional*, defaults to `print`): receives one line per repo and event.

    Returns:
        `PushResult`: what happened per repo (and the collection's slug).

    Raises:
        ElastoformerError: ``repo_prefix`` is not ``org/name`` or one of the repo ids it makes breaks a rule of
            the Hub (:func:`~elastoformer_hf.hub.repo_ids.check_repo_prefix`), ``HF_HUB_OFFLINE`` is set (unless
            ``dry_run``), ``run_dir`` is not a run folder or holds a corrupt record, or a file to upload contains
            the token (checked before anything is sent, with ``dry_run`` too).
        PushError: when a repo finally fails (also when the card merged with the Hub's contains the token), or the
            collection fails; its ``result`` holds what was done before.
    """
    import huggingface_hub.constants as hub_constants
    from huggingface_hub import get_token

    check_repo_prefix(repo_prefix, 0)  # the prefix itself, before the run is read
    if not dry_run and hub_constants.HF_HUB_OFFLINE:
        raise ElastoformerError("HF_HUB_OFFLINE is set: unset it (HF_HUB_OFFLINE=0) to push to the Hub")
    # the token the Hub calls will use (HF_TOKEN or the saved login when none is given): the one to keep out
    token = token or get_token()
    record = load_run(run_dir)
    # every repo the push creates, the longest ({prefix}-dn{N+1}) included, before anything is staged or sent
    check_repo_prefix(repo_prefix, max(record.levels), include_family=include_family)
    if latency_profile not in (None, "none"):
        load_profile(latency_profile)  # a bad profile fails before anything is recorded
        if estimate_missing_latency(run_dir, latency_profile, log=log):
            record = load_run(run_dir)  # the records it wrote
    retry = retry or RetryPolicy()
    card_kwargs = {"dataset": dataset, "license": license, "base_model": base_model}
    jobs = _jobs(record, repo_prefix, include_family=include_family, card_kwargs=card_kwargs, log=log,
                 levels=None if levels is None else set(levels))
    keep = stage_dir is not None
    stage_root = Path(stage_dir) if keep else Path(tempfile.mkdtemp(prefix="elastoformer-push-"))
    stage_root.mkdir(parents=True, exist_ok=True)
    result = PushResult(stage_dir=stage_root if keep else None)
    try:
        staged = _stage_all(jobs, stage_root, token)  # the same checks with and without dry_run, nothing sent yet
        if dry_run:
            for outcome in staged:
                result.repos.append(outcome)
                log(f"{outcome.repo_id}: staged {len(outcome.files)} files in "
                    f"{stage_root / _staging_name(outcome.repo_id)} (dry run)")
            return result
        api = HfApi(endpoint=endpoint, token=token)
        for i, job in enumerate(jobs):
            try:
                outcome = _push_repo(api, job, private=private, retry=retry, stage_root=stage_root, token=token)
            except Exception as err:
                raise PushError(_failure(job, jobs[i + 1:], result, _redact(describe(err), token), status_of(err)),
                                result) from None
            result.repos.append(outcome)
            if outcome.status == "pushed":
                log(f"{job.repo_id}: pushed {len(outcome.files)} file(s) in one commit "
                    f"({(outcome.commit or '')[:10]}): {', '.join(outcome.files)}")
            else:
                log(f"{job.repo_id}: up to date, nothing to commit")
        if collection:
            try:
                result.collection = _collection(api, repo_prefix, jobs, private, retry)
            except Exception as err:
                done = ", ".join(r.repo_id for r in result.repos)
                raise PushError(f"every repo is up to date ({done}) but the collection failed: "
                                f"{_redact(describe(err), token)}; re-run to finish", result) from None
            log(f"collection: {api.endpoint}/collections/{result.collection}")
        return result
    finally:
        if not keep:
            shutil.rmtree(stage_root, ignore_errors=True)


def _failure(job: _Job, left: list[_Job], result: PushResult, reason: str, status: int | None) -> str:
    done = ", ".join(f"{r.repo_id} ({r.status})" for r in result.repos) or "none"
    rest = ", ".join(j.repo_id for j in left) or "none"
    hint = ""
    if status in (401, 403):
        hint = " (check the token: --token, HF_TOKEN or `hf auth login`, with write access to the namespace)"
    return (f"{job.repo_id} failed: {reason}{hint}. Done: {done}. Not attempted: {rest}. "
            "Re-run the same command to push the rest")
