"""Accuracy of an elastic family on Fashion-MNIST: the reference procedure against this project's defaults, and
the price of nesting (every level against the same structure fine-tuned on its own).

A small transformers ViT parent (random init) is trained on Fashion-MNIST with a plain ``transformers.Trainer``
and cached; the elastic pipeline (``ElasticTrainer``, CR 0.4, 5 steps = 6 levels, l1) then runs from that parent
and the same plan, with the same budget per level:

* ``reference``: the original Elastoformer's procedure, ``mixed_init="random"``, no distillation;
* ``defaults``: this project's defaults, ``mixed_init="pretrained"``, logit distillation from the dense parent.

The price of nesting (issue #21): every level of the same plan as a model of its own, its kept channels sliced
from the parent (``apply_level``, as ElasticTrainer builds a level) and fine-tuned with every weight free through
ElasticTrainer's own level training (no frozen block: the core's path; the defaults' loss and distillation, a fresh
optimizer and cosine schedule, the core's weight decay at DN1 and --weight-decay above, the same test images):

* ``independent``: for the epochs the nested level gets (DN1: --core-epochs; DNk: --epochs);
* ``independent_cumulative``: for the epochs of DN1..DNk together, all that the nested level's weights saw
  (DNk: --core-epochs + (k-1) x --epochs).

DN1 is the same model in all three (the nested core is trained on its own too): its differences are seed noise
(the data order). The table adds defaults minus each, per level, with the paired t over seeds, and the storage
and level switching of the nested family against keeping the independent models.

Goals: with the defaults every DN is within 1 point of the parent's accuracy, and better than the reference at
every level; nesting costs at most 0.3 points at every level against ``independent``. A benchmark, not a test:
it exits 0 whether or not a goal is met.

    python benchmarks/elastic_fashion_mnist.py                      # one seed: ~22 min on 1 thread, plus ~18 min
                                                                    # to train the parent the first time
    python benchmarks/elastic_fashion_mnist.py --seeds 1 --no-control &   # more seeds in parallel processes,
    python benchmarks/elastic_fashion_mnist.py --seeds 2 --no-control &   # then combine the finished runs:
    python benchmarks/elastic_fashion_mnist.py --seeds 0,1,2,3,4 --no-control  # (the README's table)
    python benchmarks/elastic_fashion_mnist.py --smoke              # a couple of minutes: plumbing only
    python benchmarks/elastic_fashion_mnist.py --train-samples 60000 --epochs 5 --patch-size 4  # scale up

The price of nesting, three seeds (docs/training.md; cost per seed there): the parent once, the seeds as parallel
processes, then the table from the finished runs:

    python benchmarks/elastic_fashion_mnist.py --parent-only
    for s in 0 1 2; do python benchmarks/elastic_fashion_mnist.py --seeds $s --no-control --threads 1 \\
        --procedures defaults,independent,independent_cumulative \\
        --output benchmarks/results/nesting-seed$s.json > nesting-seed$s.log 2>&1 & done; wait
    python benchmarks/elastic_fashion_mnist.py --seeds 0,1,2 --no-control \\
        --procedures defaults,independent,independent_cumulative --output benchmarks/results/elastic_fashion_mnist_nesting.json
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import transformers

from elastoformer_hf import ElasticFamily
from elastoformer_hf.data import ImageCollator, build_transforms, load_image_datasets
from elastoformer_hf.descendant import load_descendant
from elastoformer_hf.latency.device import cpu_model
from elastoformer_hf.metrics import compute_accuracy
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.record import PLAN_FILE, ElasticPlan
from elastoformer_hf.pruning.replay import apply_level
from elastoformer_hf.run_folder import LEVEL_FILE, level_dir, read_level_info
from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments

GOAL_GAP = 1.0  # points: every DN trained with the defaults within this of the parent's accuracy
RESULTS = Path(__file__).parent / "results"
PROCEDURES = {  # name -> ElasticTrainingArguments overrides (everything else is shared)
    "reference": {"mixed_init": "random", "distillation_teacher": "none"},
    "defaults": {"mixed_init": "pretrained", "distillation_teacher": "dense"},
    # ablations: one of the two changes at a time
    "pretrained_only": {"mixed_init": "pretrained", "distillation_teacher": "none"},
    "distill_only": {"mixed_init": "random", "distillation_teacher": "dense"},
    # the defaults with one classifier weight for the whole family (nested like every other layer)
    "defaults_shared": {"mixed_init": "pretrained", "distillation_teacher": "dense", "share_classifier": True},
}
# the price of nesting: every level of the plan as a model of its own, pruned from the parent like the defaults'
# levels and fine-tuned with every weight free; name -> the epochs of level k: "level", the budget a rebuilt level
# gets (DN1 the core's), or "cumulative", the budget of DN1..DNk together (all the nested level's weights saw)
INDEPENDENT = {"independent": "level", "independent_cumulative": "cumulative"}
PROCEDURES.update({name: PROCEDURES["defaults"] for name in INDEPENDENT})  # the defaults' loss and settings
NESTED = "defaults"  # the nested family the independent levels are compared with
NESTING_GOAL = 0.3  # points: the nested level at most this below the independent level with its own budget
SMOKE = {  # --smoke: tiny everything, to check the plumbing in a couple of minutes
    "parent_train_samples": 1024, "parent_epochs": 1, "train_samples": 512, "eval_samples": 512,
    "hidden_size": 64, "num_layers": 2, "num_heads": 2, "mlp_size": 128, "epochs": 1.0, "tag": "smoke",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("parent ViT (trained once, cached under --work-dir/parent-<hash>)")
    g.add_argument("--hidden-size", type=int, default=192)
    g.add_argument("--num-layers", type=int, default=6)
    g.add_argument("--num-heads", type=int, default=3)
    g.add_argument("--mlp-size", type=int, default=768)
    g.add_argument("--image-size", type=int, default=28, help="Fashion-MNIST is 28x28; other sizes resize")
    g.add_argument("--patch-size", type=int, default=7, help="7: 16 patches; 4: 49 patches (about 3x the cost)")
    g.add_argument("--parent-train-samples", type=int, default=None,
                   help="training images of the parent; default: --train-samples (the same images)")
    g.add_argument("--parent-epochs", type=float, default=10.0,
                   help="10 epochs: 84.7 %% on the test set; 4 epochs (81 %%) is a weak, under-trained teacher")
    g.add_argument("--parent-lr", type=float, default=5e-4, help="peak AdamW lr (1e-3 and 2e-3 learn slower)")
    g.add_argument("--parent-batch-size", type=int, default=32)
    g = p.add_argument_group("elastic pipeline (the same for both procedures)")
    g.add_argument("--train-samples", type=int, default=10000, help="training images (60000 = all)")
    g.add_argument("--eval-samples", type=int, default=10000, help="test images (10000 = all)")
    g.add_argument("--epochs", type=float, default=1.0, help="epochs of every rebuilt level (DN2..DN6)")
    g.add_argument("--core-epochs", type=float, default=3.0,
                   help="epochs of the core (DN1): it loses the most and starts every later level")
    g.add_argument("--lr", type=float, default=5e-4, help="peak learning rate of every level")
    g.add_argument("--warmup", type=float, default=0.1, help="warmup, a ratio of each level's steps")
    g.add_argument("--weight-decay", type=float, default=0.0, help="rebuilt levels (the reference: 0)")
    g.add_argument("--core-weight-decay", type=float, default=0.05)
    g.add_argument("--label-smoothing", type=float, default=0.1, help="parent and levels")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--pruning-ratio", type=float, default=0.4)
    g.add_argument("--pruning-steps", type=int, default=5)
    g.add_argument("--prune-heads", action="store_true",
                   help="ViT: remove whole heads instead of head dims (try with --num-heads 12); the same as "
                        "--head-pruning heads")
    g.add_argument("--head-pruning", choices=("auto", "heads", "head_dims"), default="head_dims",
                   help="ViT: head_dims (default here: the setting of the measured runs in docs/training.md), heads, "
                        "or auto (the project's default: whole heads when every level keeps a distinct head count)")
    g.add_argument("--distillation-alpha", type=float, default=None,
                   help="procedures that distil; default: the library's default")
    g.add_argument("--distillation-temperature", type=float, default=None,
                   help="procedures that distil; default: the library's default")
    g.add_argument("--procedures", default="reference,defaults", help=f"comma list of {', '.join(PROCEDURES)}")
    g.add_argument("--no-control", dest="control", action="store_false",
                   help="skip the control: the parent itself trained for one more level budget (plain Trainer, "
                        "the levels' settings); it shows how much a level gains from the extra training alone")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="data subsets and the parent")
    g.add_argument("--seeds", default=None,
                   help="comma list of seeds of the elastic stage, one run per seed and procedure; the table shows "
                        "the mean (default: --seed). Finished runs are reused: run seeds in parallel processes, "
                        "then once more with all of them to combine")
    g.add_argument("--fresh", action="store_true", help="retrain runs that already finished")
    g.add_argument("--parent-only", action="store_true",
                   help="train (or load) the cached parent and stop: run it once before seeds in parallel processes")
    g.add_argument("--threads", type=int, default=1,
                   help="torch threads; on busy shared cores 1 is ~3x faster than 2 (no spinning)")
    g.add_argument("--work-dir", type=Path, default=RESULTS / "elastic_fashion_mnist",
                   help="the cached parent and the runs' dn1..dn6 folders")
    g.add_argument("--tag", default="", help="suffix of the run folders and output files (for experiments)")
    g.add_argument("--output", type=Path, default=None, help="JSON results file (default results/<name>.json)")
    g.add_argument("--smoke", action="store_true", help=f"tiny settings: {SMOKE}")
    args = p.parse_args(argv)
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    if args.parent_train_samples is None:
        args.parent_train_samples = args.train_samples
    args.procedures = [s.strip() for s in args.procedures.split(",") if s.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    unknown = set(args.procedures) - set(PROCEDURES)
    if unknown:
        p.error(f"unknown procedures {sorted(unknown)}; choose from {sorted(PROCEDURES)}")
    name = "elastic_fashion_mnist" + (f"_{args.tag}" if args.tag else "")
    args.output = args.output or RESULTS / f"{name}.json"
    args.plot = args.output.with_suffix(".png")
    return args


# -- data and parent ----------------------------------------------------------------------------------


class TensorImages(torch.utils.data.Dataset):
    """Images transformed once (``build_transforms``, evaluation mode: resize + normalise) and kept as tensors;
    ``hflip`` flips at random on access (the only augmentation: Fashion-MNIST items are centred, budgets short).
    Per-image PIL work would otherwise cost ~10 % of a step of these small models."""

    def __init__(self, dataset, transform, hflip: float = 0.0):
        self.pixels = torch.stack([transform(image) for image in dataset["image"]])
        self.labels = torch.tensor(dataset["label"], dtype=torch.long)
        self.hflip = hflip

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.pixels[i]
        if self.hflip and torch.rand(()) < self.hflip:
            x = x.flip(-1)
        return {"pixel_values": x, "labels": int(self.labels[i])}


def load_data(args):
    train, evaluation, names = load_image_datasets("fashion_mnist", max_eval_samples=args.eval_samples,
                                                   seed=args.seed)
    transform = build_transforms(args.image_size, is_training=False, interpolation="bicubic", crop_pct=1.0)
    # nested random subsets of one permutation: the parent's images do not depend on --train-samples
    order = np.random.default_rng(args.seed).permutation(len(train))
    parent_train = train.select(np.sort(order[: args.parent_train_samples]).tolist())
    elastic_train = train.select(np.sort(order[: args.train_samples]).tolist())
    return (TensorImages(parent_train, transform, hflip=0.5), TensorImages(elastic_train, transform, hflip=0.5),
            TensorImages(evaluation, transform), names)


def parent_config(args, names) -> dict:
    return dict(hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
                num_attention_heads=args.num_heads, intermediate_size=args.mlp_size, image_size=args.image_size,
                patch_size=args.patch_size, num_labels=len(names), hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)


def get_parent(args, parent_train, evaluation, names):
    """The trained parent (from the cache when its training settings match) and its record; its accuracy is
    always measured on this run's test images."""
    settings = {"config": parent_config(args, names), "train_samples": len(parent_train),
                "epochs": args.parent_epochs, "lr": args.parent_lr, "batch_size": args.parent_batch_size,
                "label_smoothing": args.label_smoothing, "seed": args.seed}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    folder = args.work_dir / f"parent-{key}"
    info_file = folder / "parent_info.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        model = transformers.ViTForImageClassification.from_pretrained(folder).eval()
        info["accuracy"] = evaluate_model(model, evaluation, args.seed)
        print(f"parent: cached in {folder} (accuracy {100 * info['accuracy']:.2f} % on {len(evaluation)} "
              "test images)", flush=True)
        return model, info
    config = transformers.ViTConfig(**settings["config"], id2label=dict(enumerate(names)),
                                    label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(args.seed)
    model = transformers.ViTForImageClassification(config)
    targs = transformers.TrainingArguments(
        output_dir=str(folder / "trainer"), per_device_train_batch_size=args.parent_batch_size,
        per_device_eval_batch_size=256, num_train_epochs=args.parent_epochs, learning_rate=args.parent_lr,
        weight_decay=0.05, warmup_steps=0.05, lr_scheduler_type="cosine",
        label_smoothing_factor=args.label_smoothing, save_strategy="no", eval_strategy="no", logging_steps=50,
        report_to="none", remove_unused_columns=False, use_cpu=True, disable_tqdm=True, seed=args.seed,
        dataloader_drop_last=True,
    )
    trainer = transformers.Trainer(model=model, args=targs, train_dataset=parent_train,
                                   data_collator=ImageCollator(), compute_metrics=compute_accuracy)
    print(f"parent: training {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters on "
          f"{len(parent_train)} images for {args.parent_epochs:g} epochs ...", flush=True)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    accuracy = trainer.evaluate(evaluation)["eval_accuracy"]
    model = trainer.model.cpu().eval()
    shutil.rmtree(folder / "trainer", ignore_errors=True)
    model.save_pretrained(folder)
    info = {"settings": settings, "accuracy": accuracy, "train_seconds": round(seconds, 1)}
    info_file.write_text(json.dumps(info, indent=2) + "\n")  # last: the folder is complete
    print(f"parent: accuracy {100 * accuracy:.2f} % after {seconds:.0f} s -> {folder}", flush=True)
    return model, info


def evaluate_model(model, evaluation, seed: int) -> float:
    targs = transformers.TrainingArguments(output_dir="/tmp/elastic_fashion_mnist_eval", per_device_eval_batch_size=256,
                                           report_to="none", remove_unused_columns=False, use_cpu=True,
                                           disable_tqdm=True, seed=seed)
    trainer = transformers.Trainer(model=model, args=targs, data_collator=ImageCollator(),
                                   compute_metrics=compute_accuracy)
    return trainer.evaluate(evaluation)["eval_accuracy"]


# -- the two procedures -------------------------------------------------------------------------------


def elastic_arguments(args, procedure: str, output_dir: Path, seed: int) -> ElasticTrainingArguments:
    settings = dict(
        output_dir=str(output_dir), pruning_type="l1", pruning_ratio=args.pruning_ratio,
        head_pruning="heads" if args.prune_heads else args.head_pruning,
        pruning_steps=args.pruning_steps, round_to=8, num_train_epochs=args.epochs, core_epochs=args.core_epochs,
        learning_rate=args.lr, warmup_steps=args.warmup, lr_scheduler_type="cosine",
        weight_decay=args.weight_decay, core_weight_decay=args.core_weight_decay,
        label_smoothing=args.label_smoothing, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=256, dataloader_drop_last=True, save_strategy="no", logging_steps=50,
        report_to="none", disable_tqdm=True, use_cpu=True, seed=seed, **PROCEDURES[procedure],
    )
    if settings["distillation_teacher"] == "dense":
        if args.distillation_alpha is not None:
            settings["distillation_alpha"] = args.distillation_alpha
        if args.distillation_temperature is not None:
            settings["distillation_temperature"] = args.distillation_temperature
    return ElasticTrainingArguments(**settings)


def run_folder(args, procedure: str, seed: int) -> Path:
    return args.work_dir / (f"run_{args.tag}" if args.tag else "run") / (
        procedure if seed == args.seed else f"{procedure}-seed{seed}")


def run_procedure(args, procedure, parent, train, evaluation, names, plan_file: Path | None, seed: int) -> dict:
    if procedure in INDEPENDENT:
        return run_independent(args, procedure, parent, train, evaluation, names, plan_file, seed)
    out = run_folder(args, procedure, seed)
    if args.fresh or not (out / "elastic_summary.json").is_file():
        shutil.rmtree(out, ignore_errors=True)  # a fresh run; a finished one is loaded (ElasticTrainer resumes)
    out.mkdir(parents=True, exist_ok=True)
    if plan_file is not None:  # the same plan for every run: ElasticTrainer loads an existing plan
        shutil.copy(plan_file, out / PLAN_FILE)
    targs = elastic_arguments(args, procedure, out, seed)
    trainer = ElasticTrainer(model=copy.deepcopy(parent), args=targs, train_dataset=train, eval_dataset=evaluation,
                             label_names=names, model_name="fashion-mnist-vit")
    start = time.perf_counter()
    summary = trainer.train()
    seconds = time.perf_counter() - start
    return {"procedure": procedure, "seed": seed, "seconds": round(seconds, 1), "output_dir": str(out),
            "settings": {k: getattr(targs, k) for k in ("mixed_init", "distillation_teacher", "distillation_alpha",
                                                          "distillation_temperature", "share_classifier")},
            "levels": [{"level": lv["level"], "params": lv["params"], "macs": lv["macs"],
                        "accuracy": lv["metrics"].get("eval_accuracy")} for lv in summary["levels"]]}


class IndependentLevels(ElasticTrainer):
    """``ElasticTrainer`` training levels of a plan one at a time as models of their own.

    Level ``k`` is the plan's structure sliced from the parent (``apply_level``, as the trainer builds every level)
    and goes through the trainer's own level training with no frozen block, the path of the core: the same loss
    (distillation from the dense parent), a fresh optimizer and schedule of ``epochs[k]`` epochs, the core's weight
    decay at DN1 and the rebuilt levels' above it, the same evaluation; then it is saved as ``dn{k}/``."""

    def __init__(self, *args, plan: ElasticPlan, epochs: dict[int, float], **kwargs):
        super().__init__(*args, **kwargs)
        self._plan, self.epochs = plan, epochs

    def _level_epochs(self, k: int) -> float:
        return self.epochs[k]

    def train_level(self, k: int) -> None:
        transformers.set_seed(self.args.seed)  # each model depends on the seed, not on the levels trained before it
        model = apply_level(copy.deepcopy(self.dense), self._plan, k)
        metrics = self._train_level(k, model, None, None)
        self._save_level(level_dir(Path(self.args.output_dir), k), model, k, metrics)


def independent_epochs(args, procedure: str, num_levels: int) -> dict[int, float]:
    """Level -> epochs: what the nested level gets (``level``), or DN1..DNk's together (``cumulative``)."""
    core = args.core_epochs if args.core_epochs is not None else args.epochs
    own = {k: core if k == 1 else args.epochs for k in range(1, num_levels + 1)}
    if INDEPENDENT[procedure] == "level":
        return own
    return {k: sum(own[i] for i in range(1, k + 1)) for k in own}


def run_independent(args, procedure, parent, train, evaluation, names, plan_file: Path | None, seed: int) -> dict:
    """Every level of the plan pruned from the parent and fine-tuned on its own (:class:`IndependentLevels`);
    finished levels are kept: a killed run restarts the level it was training."""
    out = run_folder(args, procedure, seed)
    summary_file = out / "independent_summary.json"
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    if summary_file.is_file():
        return json.loads(summary_file.read_text())
    out.mkdir(parents=True, exist_ok=True)
    targs = elastic_arguments(args, procedure, out, seed)
    if plan_file is not None:
        shutil.copy(plan_file, out / PLAN_FILE)
    elif not (out / PLAN_FILE).is_file():  # no nested run before this one: the plan made as ElasticTrainer makes it
        plan_levels(parent, targs.pruning_config, model_name="fashion-mnist-vit",
                    image_size=args.image_size).save(out / PLAN_FILE)
    plan = ElasticPlan.load(out / PLAN_FILE)
    epochs = independent_epochs(args, procedure, plan.num_levels)
    trainer = IndependentLevels(model=copy.deepcopy(parent), args=targs, train_dataset=train, eval_dataset=evaluation,
                                label_names=names, model_name="fashion-mnist-vit", plan=plan, epochs=epochs)
    seconds_file = out / "independent_seconds.json"
    seconds = json.loads(seconds_file.read_text()) if seconds_file.is_file() else {}
    levels = []
    for k in range(1, plan.num_levels + 1):
        folder = level_dir(out, k)
        if not (folder / LEVEL_FILE).is_file():
            print(f"--- {procedure}, seed {seed}: DN{k} on its own, {epochs[k]:g} epoch(s) ---", flush=True)
            start = time.perf_counter()
            trainer.train_level(k)
            seconds[str(k)] = round(time.perf_counter() - start, 1)
            seconds_file.write_text(json.dumps(seconds) + "\n")
        info = read_level_info(folder)
        levels.append({"level": k, "params": info["params"], "macs": info["macs"],
                       "accuracy": info["metrics"].get("eval_accuracy"), "epochs": epochs[k],
                       "seconds": seconds.get(str(k))})
    run = {"procedure": procedure, "seed": seed, "seconds": round(sum(lv["seconds"] or 0 for lv in levels), 1),
           "output_dir": str(out),
           "settings": {"budget": INDEPENDENT[procedure],
                        **{k: getattr(targs, k) for k in ("distillation_teacher", "distillation_alpha",
                                                           "distillation_temperature")}},
           "levels": levels}
    summary_file.write_text(json.dumps(run, indent=2) + "\n")  # last: the run is complete
    return run


def run_control(args, parent, train, evaluation) -> dict:
    """The dense parent trained for one more level budget with the levels' settings (no distillation)."""
    model = copy.deepcopy(parent).train()
    targs = transformers.TrainingArguments(
        output_dir=str(args.work_dir / "control"), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=256, num_train_epochs=args.epochs, learning_rate=args.lr,
        warmup_steps=args.warmup, lr_scheduler_type="cosine", weight_decay=args.weight_decay,
        label_smoothing_factor=args.label_smoothing, save_strategy="no", eval_strategy="no", logging_steps=50,
        report_to="none", remove_unused_columns=False, use_cpu=True, disable_tqdm=True, seed=args.seed,
        dataloader_drop_last=True,
    )
    trainer = transformers.Trainer(model=model, args=targs, train_dataset=train, data_collator=ImageCollator(),
                                   compute_metrics=compute_accuracy)
    start = time.perf_counter()
    trainer.train()
    accuracy = trainer.evaluate(evaluation)["eval_accuracy"]
    shutil.rmtree(args.work_dir / "control", ignore_errors=True)
    return {"accuracy": accuracy, "seconds": round(time.perf_counter() - start, 1)}


def mean_run(runs: list[dict]) -> dict:
    """Runs of one procedure over seeds -> the mean accuracy per level (each seed's kept under ``seeds``)."""
    levels = [dict(lv, accuracy=statistics.mean(r["levels"][i]["accuracy"] for r in runs),
                   accuracy_per_seed=[r["levels"][i]["accuracy"] for r in runs])
              for i, lv in enumerate(runs[0]["levels"])]
    return {"procedure": runs[0]["procedure"], "seconds": round(sum(r["seconds"] for r in runs), 1),
            "settings": runs[0]["settings"], "levels": levels, "seeds": runs}


# -- report -------------------------------------------------------------------------------------------


def paired(runs: dict, a: str, b: str) -> dict:
    """Procedure ``a`` minus ``b`` per level, in points: the mean over the seeds, each seed's, and the paired t of
    the per-seed differences (how far the mean stands out of the seed noise; None with one seed)."""
    per_seed = [[100 * (x - y) for x, y in zip(la["accuracy_per_seed"], lb["accuracy_per_seed"])]
                for la, lb in zip(runs[a]["levels"], runs[b]["levels"])]
    t_stats = None
    if len(per_seed[0]) > 1:
        t_stats = [statistics.mean(d) / (statistics.stdev(d) / len(d) ** 0.5) if statistics.stdev(d) > 0
                   else float("inf") for d in per_seed]
    return {"points": [statistics.mean(d) for d in per_seed], "per_seed": per_seed, "paired_t": t_stats}


def print_paired(diff: dict, seeds: list[int]) -> None:
    if diff["paired_t"] is None:
        return
    for seed_i, seed in enumerate(seeds):
        print(f"  seed {seed}: " + ", ".join(f"{lv[seed_i]:+.2f}" for lv in diff["per_seed"]))
    print(f"  paired t ({len(seeds) - 1} degrees of freedom): " + ", ".join(f"{t:.2f}" for t in diff["paired_t"]))


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def storage_and_switching(seeded: dict) -> dict | None:
    """What the family saves against keeping the independent models, measured on the first seed's runs: the bytes
    of the nested run's family artifact against the independent levels' weight files, and changing level
    (``ElasticFamily.set_level``) against opening a saved independent level (``load_descendant``)."""
    nested = seeded.get(NESTED) or []
    independent = [rs[0] for name, rs in seeded.items() if name in INDEPENDENT and rs]
    family_dir = Path(nested[0]["output_dir"]) / "family" if nested else None
    if not independent or family_dir is None or not (family_dir / "family.safetensors").is_file():
        return None
    own_dir = Path(independent[0]["output_dir"])
    levels = [level_dir(own_dir, lv["level"]) for lv in independent[0]["levels"]]
    family = ElasticFamily.from_pretrained(family_dir)
    switches = itertools.cycle(range(1, family.num_levels + 1))
    switch_s = median_seconds(lambda: family.set_level(next(switches)), 2000)
    load_s = statistics.median(median_seconds(lambda f=f: load_descendant(f), 3) for f in levels)
    independent_bytes = sum(f.stat().st_size for folder in levels for f in folder.glob("*.safetensors"))
    return {"family_bytes": (family_dir / "family.safetensors").stat().st_size,
            "independent_bytes": independent_bytes,
            "dense_level_bytes": sum(f.stat().st_size for f in levels[-1].glob("*.safetensors")),
            "set_level_us": round(1e6 * switch_s, 2), "load_level_ms": round(1e3 * load_s, 1),
            "from": {"family": str(family_dir), "independent": str(own_dir)}}


def table(runs: dict, parent_acc: float) -> tuple[list[dict], str]:
    names = list(runs)
    first = runs[names[0]]["levels"]
    widths = {n: max(12, len(n) + 5) for n in names}
    rows, lines = [], []
    head = f"{'level':<6}{'params (M)':>11}{'MACs (M)':>10}" + "".join(f"{n + ' %':>{widths[n]}}" for n in names)
    head += f"{'parent %':>10}" + "".join(f"{'gap ' + n:>{widths[n]}}" for n in names)
    against = [n for n in names if n in INDEPENDENT] if NESTED in runs else []  # nested minus independent columns
    head += "".join(f"{NESTED + ' - ' + n:>{len(NESTED + n) + 5}}" for n in against)
    lines += [head, "-" * len(head)]
    for i, lv in enumerate(first):
        row = {"level": lv["level"], "params": lv["params"], "macs": lv["macs"], "parent_accuracy": parent_acc}
        line = f"DN{lv['level']:<4}{lv['params'] / 1e6:11.3f}{lv['macs'] / 1e6:10.2f}"
        for n in names:
            acc = runs[n]["levels"][i]["accuracy"]
            row[f"{n}_accuracy"] = acc
            row[f"{n}_gap_points"] = 100 * (acc - parent_acc)
            line += f"{100 * acc:{widths[n]}.2f}"
        line += f"{100 * parent_acc:10.2f}" + "".join(f"{row[f'{n}_gap_points']:+{widths[n]}.2f}" for n in names)
        for n in against:
            row[f"{NESTED}_minus_{n}_points"] = row[f"{NESTED}_gap_points"] - row[f"{n}_gap_points"]
            line += f"{row[f'{NESTED}_minus_{n}_points']:+{len(NESTED + n) + 5}.2f}"
        rows.append(row)
        lines.append(line)
    return rows, "\n".join(lines)


def plot(path: Path, runs: dict, parent_acc: float, parent_macs: int, title: str, control: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {"reference": ("o--", "tab:gray"), "defaults": ("s-", "tab:blue"),
              "independent": ("v:", "tab:green"), "independent_cumulative": ("D:", "tab:orange")}
    for name, run in runs.items():
        marker, color = styles.get(name, ("^-", None))
        xs = [lv["macs"] / 1e6 for lv in run["levels"]]
        ys = [100 * lv["accuracy"] for lv in run["levels"]]
        label = {"independent": "independent (each level alone, its epochs)",
                 "independent_cumulative": "independent (alone, DN1..DNk's epochs)"}.get(name, name)
        ax.plot(xs, ys, marker, color=color, label=label)
        for lv, x, y in zip(run["levels"], xs, ys):
            if name == "defaults":
                ax.annotate(f"DN{lv['level']}", (x, y), textcoords="offset points", xytext=(0, 6), fontsize=7,
                            ha="center")
    ax.plot([parent_macs / 1e6], [100 * parent_acc], "*", color="tab:red", markersize=14, label="parent")
    if control is not None:
        ax.plot([parent_macs / 1e6], [100 * control["accuracy"]], "x", color="tab:red", markersize=9,
                label="parent + 1 level of training")
    ax.axhline(100 * parent_acc - GOAL_GAP, color="tab:red", lw=0.8, ls=":", label=f"parent - {GOAL_GAP:g} pt")
    ax.set_xlabel("MACs per image (M, torch-pruning count)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    env = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "transformers": transformers.__version__, "torch_pruning": version("torch-pruning"),
           "python": platform.python_version(), "loadavg_1min_at_start": round(os.getloadavg()[0], 2)}
    print("env  " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    start = time.perf_counter()
    loads = [os.getloadavg()[0]]
    parent_train, train, evaluation, names = load_data(args)
    parent, parent_info = get_parent(args, parent_train, evaluation, names)
    parent_acc = parent_info["accuracy"]
    loads.append(os.getloadavg()[0])
    if args.parent_only:
        return

    seeded, plan_file = {p: [] for p in args.procedures}, None
    for seed in args.seeds:
        for procedure in args.procedures:
            alone = f", every level on its own ({INDEPENDENT[procedure]} budget)" if procedure in INDEPENDENT else ""
            print(f"\n=== {procedure}, seed {seed}: {PROCEDURES[procedure]}{alone} ===", flush=True)
            run = run_procedure(args, procedure, parent, train, evaluation, names, plan_file, seed)
            seeded[procedure].append(run)
            plan_file = plan_file or Path(run["output_dir"]) / PLAN_FILE
            loads.append(os.getloadavg()[0])
            print(f"{procedure}, seed {seed}: {run['seconds']:.0f} s", flush=True)
    runs = {p: mean_run(rs) for p, rs in seeded.items()}
    control = None
    if args.control:
        print(f"\n=== control: the parent trained {args.epochs:g} more epoch(s) like a level ===", flush=True)
        control = run_control(args, parent, train, evaluation)
        loads.append(os.getloadavg()[0])
        print(f"control: {100 * control['accuracy']:.2f} % ({control['seconds']:.0f} s)", flush=True)
    plans = {json.dumps(json.loads((Path(r["output_dir"]) / PLAN_FILE).read_text()), sort_keys=True)
             for rs in seeded.values() for r in rs}
    if len(plans) != 1:
        raise RuntimeError("the procedures did not use the same plan")

    rows, text = table(runs, parent_acc)
    macs_full = runs[args.procedures[0]]["levels"][-1]["macs"]
    print(f"\nparent {100 * parent_acc:.2f} % on {len(evaluation)} test images; levels trained on "
          f"{len(train)} images, {args.epochs:g} epoch(s) per level"
          + (f", core {args.core_epochs:g}" if args.core_epochs is not None else "") + f", lr {args.lr:g}"
          + (f"; mean of seeds {', '.join(map(str, args.seeds))}" if len(args.seeds) > 1 else ""))
    print(text)
    if control is not None:
        print(f"control: the parent trained like one more level (no distillation) reaches "
              f"{100 * control['accuracy']:.2f} % ({100 * (control['accuracy'] - parent_acc):+.2f} pt): what extra "
              "training alone buys the dense model")
    verdict = {}
    if "defaults" in runs:
        gaps = [r["defaults_gap_points"] for r in rows]
        verdict["within_gap_of_parent"] = all(g >= -GOAL_GAP for g in gaps)
        verdict["worst_gap_points"] = min(gaps)
        print(f"every DN (defaults) within {GOAL_GAP:g} pt of the parent: "
              f"{'PASS' if verdict['within_gap_of_parent'] else 'FAIL'} (worst {min(gaps):+.2f} pt)")
    if {"defaults", "reference"} <= set(runs):
        diffs = [100 * (r["defaults_accuracy"] - r["reference_accuracy"]) for r in rows]
        verdict["better_than_reference_everywhere"] = all(d > 0 for d in diffs)
        verdict["defaults_minus_reference_points"] = diffs
        print(f"defaults better than the reference at every level: "
              f"{'PASS' if verdict['better_than_reference_everywhere'] else 'FAIL'} "
              f"(differences {', '.join(f'{d:+.2f}' for d in diffs)} pt"
              + (f", means of {len(args.seeds)} seeds)" if len(args.seeds) > 1 else ")"))
        diff = paired(runs, "defaults", "reference")
        if diff["paired_t"] is not None:
            verdict["defaults_minus_reference_points_per_seed"] = diff["per_seed"]
            verdict["paired_t"] = diff["paired_t"]
            print_paired(diff, args.seeds)
    for name in [n for n in runs if n in INDEPENDENT] if NESTED in runs else []:
        diff = paired(runs, NESTED, name)
        verdict[f"{NESTED}_minus_{name}"] = diff
        budget = "the nested level's epochs" if INDEPENDENT[name] == "level" else "DN1..DNk's epochs together"
        print(f"the price of nesting: {NESTED} - {name} (each level alone, {budget}): "
              f"{', '.join(f'{d:+.2f}' for d in diff['points'])} pt"
              + (f", means of {len(args.seeds)} seeds" if len(args.seeds) > 1 else ""))
        print_paired(diff, args.seeds)
        if INDEPENDENT[name] == "level":
            over = [f"DN{lv['level']} ({d:+.2f})" for lv, d in zip(runs[name]["levels"], diff["points"])
                    if d < -NESTING_GOAL]
            verdict["nesting_within_goal"] = not over
            print(f"nesting costs at most {NESTING_GOAL:g} pt at every level against {name}: "
                  f"{'PASS' if not over else 'FAIL (' + ', '.join(over) + ')'}")
    saving = storage_and_switching(seeded)
    if saving is not None:
        print(f"storage: the family artifact {saving['family_bytes'] / 1e6:.2f} MB against "
              f"{saving['independent_bytes'] / 1e6:.2f} MB for the {len(runs[NESTED]['levels'])} independent levels "
              f"({saving['independent_bytes'] / saving['family_bytes']:.2f}x; the dense level alone "
              f"{saving['dense_level_bytes'] / 1e6:.2f} MB). Switching: set_level {saving['set_level_us']:.2f} us "
              f"(median of 2000) against {saving['load_level_ms']:.1f} ms to open an independent level "
              f"(load_descendant, median over the levels); with all independent levels in memory a switch is also a "
              f"pointer change, at the storage's sum in memory")
    total = time.perf_counter() - start
    print(f"total {total / 60:.1f} min; load average (1 min) during the run: "
          f"{', '.join(f'{x:.1f}' for x in loads)}")

    record = {"benchmark": "elastic_fashion_mnist", "args": {k: str(v) if isinstance(v, Path) else v
                                                             for k, v in vars(args).items()},
              "env": env, "load_averages": [round(x, 2) for x in loads],
              "median_load": round(statistics.median(loads), 2), "total_seconds": round(total, 1),
              "parent": {"accuracy": parent_acc, "params": runs[args.procedures[0]]["levels"][-1]["params"],
                         "macs": macs_full, **{k: v for k, v in parent_info.items() if k != "accuracy"}},
              "eval_images": len(evaluation), "train_images": len(train), "control": control, "runs": runs, "table": rows,
              "storage_and_switching": saving,
              "goal": {"max_gap_points": GOAL_GAP, "max_nesting_cost_points": NESTING_GOAL, **verdict}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    title = (f"Fashion-MNIST ViT h{args.hidden_size} L{args.num_layers} p{args.patch_size}, CR "
             f"{args.pruning_ratio:g}, {args.epochs:g} ep/level on {len(train)} imgs")
    plot(args.plot, runs, parent_acc, macs_full, title, control)
    print(f"results written to {args.output} and {args.plot}")



if __name__ == "__main__":
    sys.exit(main())
