"""Training-step overhead of ``ElasticTrainer`` on a rebuild level against a plain ``transformers.Trainer``.

The elastic side trains level 2 (DN2) of a CR 0.4 / 5-step plan the way the pipeline does: the level is grown
from level 1 (``grow_level``), its ``FrozenBlocks`` gradient masks are installed and the frozen entries are
restored after every optimizer step, through ``ElasticTrainer._train_level``. Distillation, EMA, Mixup and
stochastic depth are off, so both sides do the same work. The plain side is ``transformers.Trainer`` on an
identically shaped model (every entry trainable), same arguments and data. A ``TrainerCallback`` timestamps
``on_step_begin``/``on_step_end`` on both (forward, backward, clipping, optimizer step, restore, scheduler,
zero_grad; data loading is outside the window). Runs are interleaved (plain, elastic, elastic+distillation, ...)
(the order alternates between repeats) after a warm-up run per side; the first step of every run (AdamW state
creation) is dropped; medians. The masks' and ``restore()``'s work is also timed alone, as a cross-check.
Goal: elastic / plain <= 1.05. The cost of distillation (a teacher forward) is reported as information.

    python benchmarks/trainer_overhead.py                  # ViT 384-wide at 64 px, batch 32; ~10 min
    python benchmarks/trainer_overhead.py --model tiny     # smoke test
    python benchmarks/trainer_overhead.py --model deit-s-224 --batch-size 16 --threads 2
    python benchmarks/trainer_overhead.py --model deit-s-224 --batch-size 64 --steps 20 --device cuda --bf16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments

from elastoformer_hf.data import ImageCollator
from elastoformer_hf.latency.device import cpu_model
from elastoformer_hf.nesting.levels import grow_level, nested_positions, original_indices
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels
from elastoformer_hf.pruning.replay import apply_level
from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments

GOAL = 1.05  # elastic rebuild step / plain Trainer step, medians
LEVEL = 2
MODELS = {  # ViTConfig keyword arguments
    # ViT-S width (384, 6 heads, MLP 1536) at 64 px / patch 8 (64 patches): ~1.1 GMACs per image for DN2,
    # a step of about a second on one busy core, yet few enough rows (65 tokens x batch) that per-parameter
    # work (masks, restore, AdamW) weighs more than at 224 px: a conservative setting for the overhead
    "vit-s-64": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                 "intermediate_size": 1536, "image_size": 64, "patch_size": 8},
    "deit-s-224": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                   "intermediate_size": 1536, "image_size": 224, "patch_size": 16},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
             "image_size": 32, "patch_size": 8},
}
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "trainer_overhead.json"


def synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step, ``on_step_begin`` to ``on_step_end`` (on CUDA the queue is drained at
    both ends, so the GPU's work is inside the window)."""

    def __init__(self):
        self.times: list[float] = []
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        synchronize()
        self.times.append(time.perf_counter() - self._start)


class RandomImages(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int, classes: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.y = torch.randint(0, classes, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": int(self.y[i])}


def bookkeeping_ms(frozen, repeats: int = 20) -> dict:
    """Median ms of the per-step work FrozenBlocks adds, measured alone: ``mask_gradients()`` (what
    ``ElasticTrainer.training_step`` calls after backward) and ``restore()`` (the optimizer's post-step hook), each
    a few fused multi-tensor kernels over every partly frozen tensor."""
    for p, _, _ in frozen.entries:
        p.grad = torch.randn_like(p)
    masks, restores = [], []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        frozen.mask_gradients()
        synchronize()
        masks.append(time.perf_counter() - start)
        start = time.perf_counter()
        frozen.restore()
        synchronize()
        restores.append(time.perf_counter() - start)
    for p, _, _ in frozen.entries:
        p.grad = None
    return {"masks_ms": 1000 * statistics.median(masks), "restore_ms": 1000 * statistics.median(restores)}


def common_arguments(args, out: str) -> dict:
    return dict(output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
                learning_rate=1e-4, weight_decay=0.05, lr_scheduler_type="cosine", max_grad_norm=1.0,
                save_strategy="no", eval_strategy="no", logging_steps=10_000, report_to="none",
                use_cpu=args.device == "cpu", bf16=args.bf16, disable_tqdm=True, dataloader_drop_last=True, remove_unused_columns=False, seed=0)


def build(args):
    torch.manual_seed(0)
    config = transformers.ViTConfig(**MODELS[args.model], num_labels=100, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0)
    dense = transformers.ViTForImageClassification(config).eval()
    pruning = PruningConfig(pruning_type="l1", pruning_ratio=0.4, pruning_steps=5, round_to=8)
    plan = plan_levels(dense, pruning)
    small = apply_level(copy.deepcopy(dense), plan, LEVEL - 1)
    big = apply_level(copy.deepcopy(dense), plan, LEVEL)
    positions = nested_positions(original_indices(dense, plan, LEVEL - 1, small),
                                 original_indices(dense, plan, LEVEL, big))
    return dense, plan, pruning, small, big, positions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="vit-s-64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run (the first is dropped)")
    parser.add_argument("--repeats", type=int, default=4, help="timed runs per side (interleaved)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on busy cores)")
    parser.add_argument("--no-distillation", action="store_true", help="skip the distillation side")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both sides train")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (Trainer's --bf16) on both sides")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    torch.set_num_threads(args.threads)
    dense, plan, pruning, small, big, positions = build(args)
    size = MODELS[args.model]["image_size"]
    data = RandomImages(args.batch_size * args.steps, size, 100)
    lv = plan.level(LEVEL)
    env = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "device": args.device, "bf16": args.bf16,
           "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None, "torch": torch.__version__,
           "transformers": transformers.__version__, "python": platform.python_version(),
           "loadavg_1min_at_start": round(os.getloadavg()[0], 2)}
    print(f"model {args.model} {MODELS[args.model]}; DN{LEVEL} of {plan.num_levels}: {lv.params / 1e6:.2f} M "
          f"params, {lv.macs / 1e9:.3f} GMACs/image; batch {args.batch_size}")
    print("env  " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    tmp = tempfile.TemporaryDirectory()

    def plain_run() -> list[float]:
        timer = StepTimer()
        model = copy.deepcopy(big).train()  # the same shape as DN2, every entry trainable
        trainer = Trainer(model=model, args=TrainingArguments(**common_arguments(args, f"{tmp.name}/plain")),
                          train_dataset=data, data_collator=ImageCollator(), callbacks=[timer])
        trainer.train()
        return timer.times

    def elastic_run(distill: bool) -> tuple[list[float], object]:
        timer = StepTimer()
        eargs = ElasticTrainingArguments(
            **common_arguments(args, f"{tmp.name}/elastic"), pruning_type="l1", pruning_ratio=0.4,
            pruning_steps=5, round_to=8, mixed_init="pretrained", model_ema=False, mixup_alpha=0.0,
            cutmix_alpha=0.0, stochastic_depth=0.0, distillation_teacher="dense" if distill else "none")
        trainer = ElasticTrainer(model=dense, args=eargs, train_dataset=data, callbacks=[timer],
                                 model_name=f"bench-{args.model}")
        trainer._plan = plan  # what train() sets before training a level
        model = copy.deepcopy(big)
        frozen = grow_level(small, model, positions, mixed_init="pretrained")
        trainer._train_level(LEVEL, model, frozen, None)  # install masks, restore post-hook, Trainer.train
        return timer.times, frozen

    sides = ["plain", "elastic"] + ([] if args.no_distillation else ["elastic+distillation"])
    run = {"plain": plain_run, "elastic": lambda: elastic_run(False)[0],
           "elastic+distillation": lambda: elastic_run(True)[0]}
    frozen = None
    for side in sides:  # warm-up (allocator, lazy imports, first-call paths)
        if side == "elastic":
            frozen = elastic_run(False)[1]
        else:
            run[side]()
    num_frozen = frozen.num_frozen
    bookkeeping = bookkeeping_ms(frozen)
    times = {s: [] for s in sides}
    per_repeat = {s: [] for s in sides}
    loads = [os.getloadavg()[0]]
    for i in range(args.repeats):
        for side in sides if i % 2 == 0 else sides[::-1]:  # alternate the order: no side always goes first
            steps = run[side]()[1:]  # the first step creates AdamW's state
            times[side] += steps
            per_repeat[side].append(statistics.median(steps))
            print(f"  run {i + 1}/{args.repeats} {side:<21} median step {1000 * per_repeat[side][-1]:8.1f} ms",
                  flush=True)
        loads.append(os.getloadavg()[0])
    tmp.cleanup()

    stats = {s: {"median_ms": 1000 * statistics.median(t), "min_ms": 1000 * min(t), "steps": len(t),
                 "per_repeat_median_ms": [round(1000 * x, 1) for x in per_repeat[s]]} for s, t in times.items()}
    ratio = stats["elastic"]["median_ms"] / stats["plain"]["median_ms"]
    repeat_ratios = [e / p for e, p in zip(per_repeat["elastic"], per_repeat["plain"])]
    passed = ratio <= GOAL
    print(f"\n{'side':<34}{'median ms':>11}{'min ms':>10}")
    labels = {"plain": "plain Trainer (same shape)", "elastic": f"ElasticTrainer DN{LEVEL} rebuild",
              "elastic+distillation": f"ElasticTrainer DN{LEVEL} + distillation"}
    for s in sides:
        print(f"{labels[s]:<34}{stats[s]['median_ms']:11.1f}{stats[s]['min_ms']:10.1f}")
    total = sum(p.numel() for p in big.parameters())
    print(f"frozen entries: {num_frozen / 1e6:.2f} M of {total / 1e6:.2f} M in {len(frozen.entries)} tensors; "
          f"measured alone, the masks take {bookkeeping['masks_ms']:.1f} ms and restore() "
          f"{bookkeeping['restore_ms']:.1f} ms per step "
          f"({100 * (bookkeeping['masks_ms'] + bookkeeping['restore_ms']) / stats['plain']['median_ms']:.2f} % "
          "of the plain step)")
    print(f"ratio elastic / plain (medians) {ratio:.3f}  (per repeat {', '.join(f'{r:.3f}' for r in repeat_ratios)})"
          f"  goal <= {GOAL}: {'PASS' if passed else 'FAIL'}")
    record = {"benchmark": "trainer_overhead", "model": args.model, "config": MODELS[args.model],
              "level": LEVEL, "level_params": lv.params, "level_macs": lv.macs, "frozen_entries": num_frozen,
              "bookkeeping_alone": bookkeeping,
              "batch_size": args.batch_size, "steps_per_run": args.steps, "repeats": args.repeats, "env": env,
              "load_averages": [round(x, 2) for x in loads], "sides": stats, "ratio_of_medians": ratio,
              "per_repeat_ratios": repeat_ratios, "goal": GOAL, "passed": passed}
    if "elastic+distillation" in stats:
        extra = stats["elastic+distillation"]["median_ms"] / stats["elastic"]["median_ms"]
        record["distillation_ratio"] = extra
        print(f"information: distillation (teacher = the dense model, {plan.level(plan.num_levels).macs / 1e9:.3f} "
              f"GMACs/image) makes the step {extra:.3f}x")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"load average (1 min) during the runs: {', '.join(f'{x:.1f}' for x in loads)}")
    print(f"results written to {args.output}")



if __name__ == "__main__":
    main()
