"""``elastoformer push``: publish a run's descendant networks (and the family) to the Hub, with model cards.

One repo per level (``{repo_prefix}-dn{k}``), the family repo (``{repo_prefix}``) with --include_family, and a
collection grouping them. Each repo gets at most one commit, and none when nothing changed; a failed push names
the repos that made it, and re-running the same command finishes the rest.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import ElastoformerError
from ..hub import RetryPolicy, push_run
from ..latency.profiles import PROFILES
from ..refresh import DEFAULT_LATENCY_PROFILE
from .options import command_description


def add_parser(sub) -> None:
    p = sub.add_parser("push", help="publish dn1..dnN (and the family) to the Hub with model cards",
                       description=command_description(__doc__))
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (dn1/ .. dnN/, elastic_plan.json, ...)")
    p.add_argument("--repo_prefix", required=True,
                   help="org/name: the levels go to org/name-dn1 .. org/name-dnN, the family to org/name")
    p.add_argument("--private", action="store_true", help="create the repos and the collection private")
    p.add_argument("--token", help="Hub token with write access (default: HF_TOKEN or `hf auth login`); on the "
                                   "command line it shows in the process list and shell history")
    p.add_argument("--include_family", action="store_true",
                   help="also push the family repo org/name: RUN_DIR/family/ when it exists, else the plan, the "
                        "summary and a family card")
    p.add_argument("--dataset", help="dataset of the run for the cards (cifar10, imagenet, ... or a Hub dataset id), "
                                     "when the run did not record it")
    p.add_argument("--license", help="license for the cards (e.g. apache-2.0; default: the base model's where its "
                                     "metadata records one, else 'unknown'); a license already on a card stays")
    p.add_argument("--latency_profile", default=DEFAULT_LATENCY_PROFILE,
                   help=f"a level without latency for this device ({', '.join(PROFILES)} or a JSON profile) gets "
                        f"the roofline estimate recorded first, labelled 'estimated'; measured entries win; "
                        f"'none' skips (default: {DEFAULT_LATENCY_PROFILE})")
    p.add_argument("--base_model", help="Hub id of the base model for the cards (default: from the run)")
    p.add_argument("--no_collection", action="store_true", help="do not create or update the collection")
    p.add_argument("--stage_dir", help="keep the staging folders (what each repo receives) here")
    p.add_argument("--dry_run", action="store_true",
                   help="stage the folders and cards (into --stage_dir) without contacting the Hub")
    p.add_argument("--retries", type=int, default=5, help="attempts per Hub call on 5xx/connection errors")


def run(args: argparse.Namespace) -> int:
    if args.dry_run and not args.stage_dir:
        raise ElastoformerError("--dry_run writes the staging folders: pass --stage_dir DIR to see them")
    if args.retries < 1:
        raise ElastoformerError(f"--retries must be >= 1, got {args.retries}")
    # HF_ENDPOINT as it is now (huggingface_hub read it once, when it was imported)
    endpoint = os.environ.get("HF_ENDPOINT") or None
    result = push_run(
        args.run_dir, args.repo_prefix, private=args.private, token=args.token or None,
        include_family=args.include_family, dataset=args.dataset, license=args.license, base_model=args.base_model,
        endpoint=endpoint, stage_dir=args.stage_dir, collection=not args.no_collection, dry_run=args.dry_run,
        retry=RetryPolicy(attempts=args.retries), latency_profile=args.latency_profile,
        log=lambda line: print(line, flush=True),
    )
    pushed = sum(r.status == "pushed" for r in result.repos)
    if not args.dry_run:
        print(f"done: {pushed} repo(s) pushed, {len(result.repos) - pushed} already up to date", file=sys.stderr)
    return 0
