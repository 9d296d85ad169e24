"""Bad input and kill -9, as a hostile or careless user would: every input gets a clear error, nothing is lost, and a
run killed at any point resumes to the weights an uninterrupted run ends with.

    HF_HUB_OFFLINE=1 python benchmarks/robustness.py                 # both parts (about 3 min on 2 cores)
    HF_HUB_OFFLINE=1 python benchmarks/robustness.py --part inputs   # the bad-input catalogue only (about 2 min)
    HF_HUB_OFFLINE=1 python benchmarks/robustness.py --part kills    # the kill points only

**inputs**: each case of the catalogue (the command line's subcommands, the recipes' flags, the Python API, damaged
run folders) is run in this process against a workspace of real files (a tiny ViT config folder, a planned run
folder, a trained one, an imagefolder dataset). A case is

* ``clear``: status 2 (or an :class:`~elastoformer_hf.errors.ElastoformerError` from the API) with its message on one
  line (argparse's own errors, a usage line and one error line, count as clear);
* ``traceback``: any other exception;
* ``silent``: the input was accepted;
* ``lost``: a file of the workspace that existed before the case changed or vanished (counted on top of the above).

**kills**: ``tests/scripts/tiny_elastic_run.py`` (a 3-level ViT on sklearn digits, model EMA on, a checkpoint every
step) is killed with SIGKILL as soon as a given file appears (a checkpoint's Trainer state, its EMA weights, its
completion marker, a level being staged, a finished level, the family being staged, ...), then run again to the end.
A point passes when every level's weights are bit-identical to an uninterrupted run's, the levels finished before
the kill are untouched, and no temporary or stale checkpoint folder is left.

Goal: 0 tracebacks, 0 silent, 0 lost, every kill point bit-exact. Prints a table; writes
``benchmarks/results/robustness.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = ROOT / "tests" / "scripts" / "tiny_elastic_run.py"
RESULTS = ROOT / "benchmarks" / "results" / "robustness.json"


# ----------------------------------------------------------------------------------------------------------- inputs
@dataclass
class Case:
    """One bad input: ``argv`` for ``elastoformer`` (placeholders ``{vit}``, ``{run}``, ``{data}``, ``{file}``,
    ``{trained}``, ``{ws}`` name workspace paths) or a Python callable; ``damage`` prepares a fresh copy of the run first."""

    name: str
    argv: list[str] | None = None
    call: Callable[[dict], object] | None = None
    damage: Callable[[Path], None] | None = None


def _plan(*flags: str) -> list[str]:
    return ["plan", "--model_name_or_path", "{vit}", "--random_init", *flags]


def _train(*flags: str) -> list[str]:
    base = ["train", "--model_name_or_path", "{vit}", "--random_init", "--dataset_name", "digits",
            "--max_train_samples", "32", "--max_eval_samples", "16", "--max_steps", "1", "--image_size", "32",
            "--pruning_steps", "1", "--use_cpu", "--report_to", "none", "--save_strategy", "no",
            "--output_dir", "{ws}/train-out"]
    return base + list(flags)


def _bad_numbers(prefix: Callable[..., list[str]], flag: str, values: list[str]) -> list[Case]:
    return [Case(f"{prefix.__name__[1:]} {flag} {v}", prefix(flag, v)) for v in values]


def _flip_a_bit(run: Path) -> None:
    weights = run / "dn1" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x40
    weights.write_bytes(bytes(data))


def _truncate(run: Path) -> None:
    weights = run / "dn2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _corrupt_json(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_text("{not json")
    damage.__name__ = f"corrupt {name}"
    return damage


def _remove(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        target = run / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return damage


def _edit_plan(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        plan = json.loads((run / "elastic_plan.json").read_text())
        change(plan)
        (run / "elastic_plan.json").write_text(json.dumps(plan))
    return damage


def _first_kept(plan: dict) -> list:
    kept = plan["levels"][0]["kept"]
    return kept[next(iter(kept))]


def _shorten_kept(plan: dict) -> None:
    _first_kept(plan).pop()


def _out_of_range(plan: dict) -> None:
    _first_kept(plan)[-1] = 10_000


def _symlink(run: Path) -> None:
    (run / "dn1" / "notes.txt").symlink_to("/etc/hostname")


def _token_in_file(run: Path) -> None:
    (run / "dn1" / "notes.txt").write_text("hf_canaryTOKENcanaryTOKENcanary00")


def _api_cases() -> list[Case]:
    def pruning_config(**kw):
        from elastoformer_hf.pruning.config import PruningConfig
        return lambda ws: PruningConfig(**kw)

    def training_args(**kw):
        from elastoformer_hf.training import ElasticTrainingArguments
        return lambda ws: ElasticTrainingArguments(output_dir=str(ws["ws"] / "api-out"), **kw)

    def family(ws):
        from elastoformer_hf.family import ElasticFamily
        return ElasticFamily.from_pretrained(ws["run"] / "family")

    def level(ws):
        from elastoformer_hf.descendant import load_descendant
        return load_descendant(ws["run"] / "dn1")

    def build(ws):
        from elastoformer_hf.nesting import build_family
        return build_family(ws["run"])

    cases = [Case(f"api PruningConfig {k}={v!r}", call=pruning_config(**{k: v})) for k, v in (
        ("pruning_ratio", 0.0), ("pruning_ratio", 1.0), ("pruning_ratio", -0.2), ("pruning_ratio", float("nan")),
        ("pruning_steps", 0), ("pruning_steps", -3), ("round_to", 0), ("pruning_type", "l3"), ("taylor_batches", 0),
    )]
    cases += [Case(f"api ElasticTrainingArguments {k}={v!r}", call=training_args(**{k: v})) for k, v in (
        ("pruning_ratio", 1.5), ("per_device_train_batch_size", 0), ("learning_rate", -1.0), ("core_epochs", -1),
        ("model_ema_decay", 1.0), ("mixup_alpha", -1.0), ("stochastic_depth", 1.5),
    )]
    cases.append(Case("api ElasticTrainingArguments push_to_hub hub_model_id='a/b\\n'",
                      call=training_args(push_to_hub=True, hub_model_id="a/b\n")))
    cases += [
        Case("api load_descendant flipped bit", call=level, damage=_flip_a_bit),
        Case("api build_family flipped bit", call=build, damage=_flip_a_bit),
        Case("api build_family truncated level", call=build, damage=_truncate),
        Case("api build_family no dn2", call=build, damage=_remove("dn2")),
        Case("api build_family corrupt plan", call=build, damage=_corrupt_json("elastic_plan.json")),
        Case("api build_family shortened kept list", call=build, damage=_edit_plan(_shorten_kept)),
        Case("api build_family kept index out of range", call=build, damage=_edit_plan(_out_of_range)),
        Case("api ElasticFamily.from_pretrained no family", call=family),
    ]
    return cases


def catalogue() -> list[Case]:
    """The bad inputs: at least 100, by command."""
    cases = []
    cases += _bad_numbers(_plan, "--pruning_ratio", ["0", "1", "-0.5", "1.5", "nan", "inf", "abc", ""])
    cases += _bad_numbers(_plan, "--pruning_steps", ["0", "-1", "2.5", "abc"])
    cases += _bad_numbers(_plan, "--round_to", ["0", "-8", "abc"])
    cases += _bad_numbers(_plan, "--image_size", ["0", "-5", "abc"])
    cases += _bad_numbers(_plan, "--batch_size", ["0", "-1"])
    cases += _bad_numbers(_plan, "--num_labels", ["0", "-1"])
    cases += _bad_numbers(_plan, "--pruning_type", ["l3", ""])
    cases += _bad_numbers(_plan, "--taylor_batches", ["0", "-1"])
    cases += [
        Case("plan ratio 0.999 x 50 steps (levels collapse)", _plan("--pruning_ratio", "0.999", "--pruning_steps", "50")),
        Case("plan unknown model", ["plan", "--model_name_or_path", "no-such-model-xyz"]),
        Case("plan missing local folder", ["plan", "--model_name_or_path", "{ws}/nowhere"]),
        Case("plan folder without config", ["plan", "--model_name_or_path", "{data}"]),
        Case("plan taylor without data", _plan("--pruning_type", "taylor")),
        Case("plan unknown dataset", _plan("--pruning_type", "taylor", "--dataset_name", "no-such-set")),
        Case("plan imagefolder missing path", _plan("--pruning_type", "taylor", "--dataset_name", "imagefolder",
                                                    "--data_path", "{ws}/nowhere")),
        Case("plan imagefolder with a non-image .jpg", _plan("--pruning_type", "taylor", "--dataset_name",
                                                             "imagefolder", "--data_path", "{data}",
                                                             "--num_labels", "2")),
        Case("plan output_dir is a file", _plan("--output_dir", "{file}")),
        Case("plan output_dir holds a run (no --overwrite)", _plan("--output_dir", "{run}")),
        Case("plan --overwrite over trained levels", _plan("--output_dir", "{trained}", "--overwrite")),
        Case("plan weights file missing", ["plan", "--model_name_or_path", "{vit}", "--weights",
                                           "{ws}/none.safetensors"]),
        Case("plan weights file corrupt", ["plan", "--model_name_or_path", "{vit}", "--weights", "{file}"]),
    ]
    cases += _bad_numbers(_train, "--pruning_ratio", ["0", "1.5"])
    cases += _bad_numbers(_train, "--per_device_train_batch_size", ["0", "-4"])
    cases += _bad_numbers(_train, "--learning_rate", ["-1"])
    cases += _bad_numbers(_train, "--core_epochs", ["-1"])
    cases += _bad_numbers(_train, "--image_size", ["0", "-5"])
    cases += _bad_numbers(_train, "--num_labels", ["0"])
    cases += _bad_numbers(_train, "--max_train_samples", ["0", "-1"])
    cases += _bad_numbers(_train, "--model_ema_decay", ["1.5"])
    cases += _bad_numbers(_train, "--dataset_name", ["no-such-set"])
    cases += _bad_numbers(_train, "--output_dir", ["{file}"])
    cases += [Case(f"train --push_to_hub --hub_model_id {v}", _train("--push_to_hub", "--hub_model_id", v))
              for v in ("org/name/extra", "org/na..me")]
    cases += [
        Case("train unknown flag", _train("--no_such_flag", "1")),
        Case("train missing config file", ["train", "--config", "{ws}/nowhere.yaml"]),
        Case("train config not YAML", ["train", "--config", "{file}"]),
        Case("train imagefolder with a non-image .jpg", _train("--dataset_name", "imagefolder", "--data_path",
                                                               "{data}")),
        Case("train resume with other data", _train("--output_dir", "{trained}", "--max_train_samples", "24")),
        Case("train resume with other settings", _train("--output_dir", "{trained}", "--pruning_ratio", "0.3")),
        Case("train --streaming without max_steps", _train("--streaming", "--max_steps", "-1")),
        Case("train --streaming with --ra_sampler", _train("--streaming", "--ra_sampler", "true")),
        Case("train --core_max_steps without --max_steps", _train("--max_steps", "-1", "--core_max_steps", "3")),
    ]
    for flag, values in (("--repeats", ["0", "-1"]), ("--warmup", ["-1"]), ("--threads", ["0"]),
                         ("--batch_sizes", ["0", "a,b"]), ("--levels", ["0", "9", "x"]), ("--runtime", ["jax"]),
                         ("--device", ["tpu"]), ("--image_size", ["0"])):
        cases += [Case(f"bench {flag} {v}", ["bench", "{run}", flag, v, "--no_write"]) for v in values]
    cases += [Case("bench missing folder", ["bench", "{ws}/nowhere"]),
              Case("bench --memory_format rows", ["bench", "{run}", "--memory_format", "rows", "--no_write"]),
              Case("bench --memory_format on onnxruntime",
                   ["bench", "{run}", "--runtime", "onnxruntime", "--memory_format", "channels_last", "--no_write"])]
    for flag, values in (("--opset", ["0", "7", "99"]), ("--levels", ["0", "9"]), ("--atol", ["-1"]),
                         ("--exporter", ["tflite"]), ("--image_size", ["-5"])):
        cases += [Case(f"export {flag} {v}", ["export", "{run}", flag, v]) for v in values]
    cases += [Case("export missing folder", ["export", "{ws}/nowhere"])]
    cases += [Case(f"estimate --profile {v}", ["estimate", "{run}", "--profile", v, "--no_write"])
              for v in ("no-such-device", "")]
    cases += [Case("estimate --batch_size 0", ["estimate", "{run}", "--profile", "jetson-nano", "--batch_size", "0",
                                               "--no_write"]),
              Case("estimate --calibrate missing", ["estimate", "{run}", "--profile", "jetson-nano", "--calibrate",
                                                    "{ws}/nowhere.json", "--no_write"])]
    push = ["push", "{run}", "--dry_run", "--stage_dir", "{ws}/stage"]
    for prefix in ("org/name\n", "org/na..me", "org/--name", "org/" + "x" * 95, "no-namespace/", "/name", "a/b/c",
                   "org/name with space"):
        cases.append(Case(f"push --repo_prefix {prefix!r:.30}", [*push, "--repo_prefix", prefix]))
    cases += [
        Case("push --retries -1", [*push, "--repo_prefix", "org/x", "--retries", "-1"]),
        Case("push missing run", ["push", "{ws}/nowhere", "--repo_prefix", "org/x", "--dry_run", "--stage_dir",
                                   "{ws}/stage"]),
        Case("push flipped bit", [*push, "--repo_prefix", "org/x"], damage=_flip_a_bit),
        Case("push truncated level", [*push, "--repo_prefix", "org/x"], damage=_truncate),
        Case("push symlink in a level", [*push, "--repo_prefix", "org/x"], damage=_symlink),
        Case("push token in a file (HF_TOKEN)", [*push, "--repo_prefix", "org/x"], damage=_token_in_file),
        Case("push corrupt level record", [*push, "--repo_prefix", "org/x"],
             damage=_corrupt_json("dn1/elastic_level.json")),
        Case("bench corrupt level config", ["bench", "{run}", "--no_write"], damage=_corrupt_json("dn1/config.json")),
        Case("export flipped bit", ["export", "{run}", "--levels", "1"], damage=_flip_a_bit),
    ]
    return cases + _api_cases()


def _workspace(root: Path) -> dict[str, Path]:
    """A tiny ViT config folder, a planned 3-level run of it, a trained 2-level run, an imagefolder with one non-image .jpg, a plain file."""
    from transformers import ViTConfig

    from elastoformer_hf.cli import main

    vit = root / "vit"
    ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
              patch_size=8, num_labels=10).save_pretrained(vit)
    run = root / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["plan", "--model_name_or_path", str(vit), "--random_init", "--pruning_ratio", "0.5",
                     "--pruning_steps", "2", "--round_to", "4", "--output_dir", str(run)]) == 0
    trained = root / "trained"  # a finished (1 step a level) run: what a careless command must not destroy
    argv = [a.format(vit=vit, ws=root) for a in _train()]
    argv[argv.index(str(root / "train-out"))] = str(trained)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    data = root / "images"
    from PIL import Image
    for split in ("train", "validation"):
        for label in ("a", "b"):
            (data / split / label).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (40 * i, 80, 120)).save(data / split / label / f"{i}.jpg")
    (data / "train" / "a" / "broken.jpg").write_text("this is not an image")
    file = root / "a-file.txt"
    file.write_text("not a folder, not YAML: [")
    return {"vit": vit, "run": run, "trained": trained, "data": data, "file": file, "ws": root}


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _run_case(case: Case, paths: dict[str, Path]) -> dict:
    from elastoformer_hf.cli import main
    from elastoformer_hf.errors import ElastoformerError

    if case.damage is not None:
        shutil.rmtree(paths["ws"] / "damaged", ignore_errors=True)
        damaged = shutil.copytree(paths["run"], paths["ws"] / "damaged", symlinks=True)
        case.damage(damaged)
        paths = {**paths, "run": damaged}
    before = _snapshot(paths["ws"])
    err, outcome, message = io.StringIO(), None, ""
    env = {"HF_TOKEN": "hf_canaryTOKENcanaryTOKENcanary00"} if "token" in case.name else {}
    with _environ(env), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            if case.argv is not None:
                argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in case.argv]
                code = main(argv)
            else:
                case.call(paths)
                code = 0
        except SystemExit as exit_:
            code = exit_.code
        except ElastoformerError as e:
            code, message = 2, str(e)
        except Exception:  # noqa: BLE001 (what the catalogue counts)
            outcome, message = "traceback", traceback.format_exc(limit=-2).strip().splitlines()[-1]
    if outcome is None:
        lines = [ln for ln in err.getvalue().splitlines() if "error" in ln.lower()]
        message = message or (lines[-1] if lines else err.getvalue().strip()[-200:])
        outcome = "clear" if code == 2 and "\n" not in message.strip() else "silent" if code == 0 else "traceback"
    after = _snapshot(paths["ws"])
    lost = sorted(k for k, digest in before.items() if after.get(k) != digest)
    for leftover in ("train-out", "stage", "api-out", "damaged"):
        shutil.rmtree(paths["ws"] / leftover, ignore_errors=True)
    return {"case": case.name, "outcome": outcome, "lost": lost, "message": message.strip()[:160]}


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def run_inputs() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="robustness-") as tmp:
        paths = _workspace(Path(tmp))
        rows = []
        for case in catalogue():
            row = _run_case(case, paths)
            rows.append(row)
            print(f"{row['outcome']:9} {'LOST ' if row['lost'] else ''}{row['case']:50.50} {row['message'][:90]}",
                  flush=True)
        return rows


# ------------------------------------------------------------------------------------------------------------ kills
#: where the run is killed: the first path (relative to the run folder; a glob) that appears
KILL_POINTS = [
    ("core: first checkpoint's trainer state", "checkpoints/dn1/checkpoint-1/trainer_state.json"),
    ("core: a checkpoint's weights", "checkpoints/dn1/checkpoint-2/model.safetensors"),
    ("core: a checkpoint's EMA weights", "checkpoints/dn1/checkpoint-2/ema.safetensors"),
    ("core: a checkpoint's completion marker", "checkpoints/dn1/checkpoint-3/elastoformer_complete.json"),
    ("core: the level being staged", ".dn1.tmp-*"),
    ("core: finished", "dn1/elastic_level.json"),
    ("dn2: its optimizer state", "checkpoints/dn2/checkpoint-1/optimizer.pt"),
    ("dn2: a later checkpoint", "checkpoints/dn2/checkpoint-3/trainer_state.json"),
    ("dn3: being staged", ".dn3.tmp-*"),
    ("the family written, cards not yet", "family/family_config.json"),
]
SETTINGS = ["max_steps=4", "model_ema=true", "model_ema_decay=0.5"]


def _tiny_run(out: Path, kill_when: str | None = None, timeout: float = 300) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(TINY_RUN), str(out), *SETTINGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    if kill_when is None:
        _, stderr = proc.communicate(timeout=timeout)
        if proc.returncode:
            raise RuntimeError(stderr[-2000:])
        return "finished"
    deadline = time.time() + timeout
    while not (out.is_dir() and any(out.glob(kill_when))):
        if proc.poll() is not None:
            return "ended before the kill point"
        if time.time() > deadline:
            proc.kill()
            return "never reached the kill point"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return "killed"


def _weights(out: Path) -> dict[str, dict]:
    from safetensors.torch import load_file
    return {p.parent.name: load_file(p) for p in sorted(out.glob("dn*/model.safetensors"))}


def _same(a: dict, b: dict) -> bool:
    import torch
    return a.keys() == b.keys() and all(a[k].keys() == b[k].keys() and all(torch.equal(a[k][n], b[k][n]) for n in a[k])
                                        for k in a)


def _finished_levels(out: Path) -> dict[str, str]:
    """The files of the level folders, by digest; a level record by its content without ``consistency``: the
    measurement the run adds to every level's record once all levels exist (the weights never change)."""
    if not out.is_dir():
        return {}
    files = {k: v for k, v in _snapshot(out).items() if k.startswith("dn") and "/" in k}
    for name in [k for k in files if k.endswith("/elastic_level.json")]:
        record = json.loads((out / name).read_text())
        record.pop("consistency", None)
        files[name] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    return files


def run_kills() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="kills-") as tmp:
        reference = Path(tmp) / "reference"
        _tiny_run(reference)
        expected = _weights(reference)
        for name, point in KILL_POINTS:
            out = Path(tmp) / f"killed-{len(rows)}"
            state = _tiny_run(out, kill_when=point)
            finished = _finished_levels(out)
            _tiny_run(out)
            after = _finished_levels(out)
            untouched = all(after.get(k) == v for k, v in finished.items())
            leftovers = sorted(p.name for p in out.iterdir() if ".tmp-" in p.name)
            stale = sorted(str(p.relative_to(out)) for p in (out / "checkpoints").glob("dn*") if p.is_dir()) \
                if (out / "checkpoints").is_dir() else []
            exact = _same(_weights(out), expected)
            ok = state == "killed" and exact and untouched and not leftovers and not stale
            rows.append({"point": name, "path": point, "kill": state, "bit_exact": exact,
                         "finished_levels_untouched": untouched, "leftovers": leftovers + stale, "pass": ok})
            print(f"{'PASS' if ok else 'FAIL'}  {name:42} {state:30} bit-exact={exact} untouched={untouched} "
                  f"leftovers={leftovers + stale}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("inputs", "kills", "both"), default="both")
    args = parser.parse_args()
    report = {"machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}
    if args.part in ("inputs", "both"):
        rows = run_inputs()
        totals = Counter(r["outcome"] for r in rows)
        totals["lost"] = sum(bool(r["lost"]) for r in rows)
        report["inputs"] = {"rows": rows, "totals": {"tried": len(rows), **totals}}
        print(f"\ninputs: tried {len(rows)}, clear {totals['clear']}, traceback {totals['traceback']}, "
              f"silent {totals['silent']}, lost {totals['lost']}  (goal: 0 traceback, 0 silent, 0 lost)")
    if args.part in ("kills", "both"):
        rows = run_kills()
        report["kills"] = {"rows": rows, "passed": sum(r["pass"] for r in rows), "points": len(rows)}
        print(f"kill points: {report['kills']['passed']}/{len(rows)} bit-exact, untouched and clean")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
