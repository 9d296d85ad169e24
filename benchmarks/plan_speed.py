"""Planning speed: elastoformer's ``plan_levels`` against the same torch-pruning steps written by hand.

Both sides prune the same randomly initialised DeiT (built from a local config folder) into
``pruning_steps + 1`` levels on CPU and count params/MACs at every level; runs are interleaved
(baseline, engine, baseline, engine, ...) at a fixed torch thread count. Goal: the engine takes at most
1.2x the plain torch-pruning time. A benchmark, not a test: it exits 0 whether or not the goal is met.

    python benchmarks/plan_speed.py                  # DeiT-B, 3 repeats per side, all cores
    python benchmarks/plan_speed.py --model tiny     # smoke test in seconds
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
from importlib.metadata import version
from pathlib import Path

import torch
import torch_pruning as tp
import transformers

from elastoformer_hf.base_model import load_base_model
from elastoformer_hf.latency.device import cpu_model
from elastoformer_hf.pruning.config import PruningConfig
from elastoformer_hf.pruning.planner import plan_levels

GOAL = 1.2  # engine / plain torch-pruning, medians
MODELS = {  # DeiTConfig() defaults are DeiT-B (hidden 768, 12 layers, 12 heads, MLP 3072, 224/16)
    "deit-b": {},
    "deit-s": {"hidden_size": 384, "num_attention_heads": 6, "intermediate_size": 1536},
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "image_size": 32,
        "patch_size": 8,
    },
}
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "plan_speed.json"


def build_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.DeiTConfig(
        **MODELS[name], num_labels=1000, architectures=["DeiTForImageClassification"]
    )
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        return load_base_model(folder, random_init=True).model


def plain_torch_pruning(model: torch.nn.Module, config: PruningConfig) -> list[tuple[int, int]]:
    """What a user writes without elastoformer: (params, MACs) of the dense model and after every step."""
    model = copy.deepcopy(model).eval()  # plan_levels leaves the caller's model intact: copy here too
    size = model.config.image_size
    example = torch.randn(1, model.config.num_channels, size, size)
    attentions = [layer.attention for layer in model.deit.layers]
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        tp.importance.GroupMagnitudeImportance(p=1),
        pruning_ratio=config.pruning_ratio,
        iterative_steps=config.pruning_steps,
        ignored_layers=[model.classifier],
        round_to=config.round_to,
        num_heads={
            proj: a.num_attention_heads for a in attentions for proj in (a.q_proj, a.k_proj, a.v_proj)
        },
        prune_num_heads=False,
        prune_head_dims=True,
        head_pruning_ratio=0.0,
        unwrapped_parameters=[(p, p.dim() - 1) for p in model.deit.embeddings.parameters(recurse=False)],
        output_transform=lambda output: output.logits,
    )

    def count() -> tuple[int, int]:
        with torch.no_grad():
            macs, params = tp.utils.count_ops_and_params(model, example)
        return int(params), int(macs)

    costs = [count()]
    for _ in range(config.pruning_steps):
        pruner.step()
        for (
            attn
        ) in attentions:  # stale after pruning; the forward pass needs them (torch-pruning's HF ViT example)
            attn.num_attention_heads = pruner.num_heads[attn.q_proj]
            attn.head_dim = attn.q_proj.out_features // attn.num_attention_heads
            attn.scaling = attn.head_dim**-0.5
        costs.append(count())
    return costs


def engine(model: torch.nn.Module, config: PruningConfig) -> list[tuple[int, int]]:
    plan = plan_levels(model, config)
    return [(lvl.params, lvl.macs) for lvl in reversed(plan.levels)]  # dense first, like the baseline


def timed(fn, *args):
    """Wall seconds, process CPU seconds (all threads) and the result of ``fn(*args)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result



def summary(times: list[float], cpu_times: list[float]) -> dict:
    return {
        "times_s": [round(t, 3) for t in times],
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_times_s": [round(t, 3) for t in cpu_times],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="deit-b")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (interleaved)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument("--threads", type=int, default=cores, help="torch threads (default: all cores)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    config = PruningConfig(pruning_type="l1", pruning_ratio=0.4, pruning_steps=5, round_to=8)
    model = build_model(args.model)
    env = {
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_pruning": version("torch-pruning"),
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "loadavg_1min_at_start": round(os.getloadavg()[0], 2),  # other work makes the times noisy
    }
    print(f"model {args.model} (random init), {config.num_levels} levels: {config.to_dict()}")
    print("env  " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print(
        "note the baseline deep-copies the model first, as plan_levels does (it leaves the caller's model intact)"
    )

    times = {"baseline": [], "engine": []}
    cpu_times = {"baseline": [], "engine": []}
    results = {}
    for i in range(args.repeats):
        for side, fn in (("baseline", plain_torch_pruning), ("engine", engine)):
            seconds, cpu, results[side] = timed(fn, model, config)
            times[side].append(seconds)
            cpu_times[side].append(cpu)
            print(f"  run {i + 1}/{args.repeats} {side:<8} {seconds:8.2f} s  (CPU {cpu:.2f} s)")

    base, eng = results["baseline"], results["engine"]  # (params, MACs), dense first
    if base[-1] != eng[-1]:
        raise RuntimeError(f"not like-for-like: core (params, MACs) baseline {base[-1]} vs engine {eng[-1]}")
    if base != eng:
        raise RuntimeError(f"not like-for-like: levels (params, MACs) baseline {base} vs engine {eng}")

    print("\nlevel  params (M)  MACs (G)")
    for level, (params, macs) in zip(range(config.num_levels, 0, -1), eng):
        print(f"{level:>5}  {params / 1e6:9.2f}  {macs / 1e9:8.3f}")

    stats = {side: summary(times[side], cpu_times[side]) for side in times}
    ratio = stats["engine"]["median_s"] / stats["baseline"]["median_s"]
    passed = ratio <= GOAL
    print(f"\n{'side':<26}{'median s':>10}{'min s':>10}")
    for side, label in (("baseline", "plain torch-pruning"), ("engine", "elastoformer plan_levels")):
        print(f"{label:<26}{stats[side]['median_s']:10.2f}{stats[side]['min_s']:10.2f}")
    print(f"ratio (engine / baseline, medians) {ratio:.3f}  goal <= {GOAL}: {'PASS' if passed else 'FAIL'}")

    record = {
        "benchmark": "plan_speed",
        "model": args.model,
        "config": config.to_dict(),
        "repeats": args.repeats,
        "env": env,
        "baseline": stats["baseline"],
        "engine": stats["engine"],
        "ratio_of_medians": ratio,
        "goal": GOAL,
        "passed": passed,
        "levels": [
            {"level": lvl, "params": p, "macs": m}
            for lvl, (p, m) in zip(range(config.num_levels, 0, -1), eng)
        ],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results written to {args.output}")


if __name__ == "__main__":
    main()
