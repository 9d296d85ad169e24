"""A tiny elastic run on real data (sklearn digits), used by the kill-and-resume and two-process tests.

usage: tiny_elastic_run.py OUTPUT_DIR [key=value ...]   (values are ElasticTrainingArguments overrides)

``report_ranks=true`` (not an argument) makes every rank print a JSON line: its rank, the epoch the last level
reached and a digest of that level's weights in its memory (DDP replicas must agree). ``ema_pause=SECONDS`` (not an
argument either) pauses that long before and after the EMA file of every ``checkpoint-3`` is written: a window in
which the kill tests stop the run between Trainer's files, the EMA and the completion marker.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import ViTConfig, ViTForImageClassification

from elastoformer_hf.data import build_transforms, load_image_datasets, with_transforms
from elastoformer_hf.training import ElasticTrainer, ElasticTrainingArguments


def tiny_vit(num_labels: int) -> ViTForImageClassification:
    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8, num_labels=num_labels)
    return ViTForImageClassification(config).eval()


def main(argv: list[str]) -> None:
    out, overrides = argv[0], dict(a.split("=", 1) for a in argv[1:])
    report_ranks = json.loads(overrides.pop("report_ranks", "false"))
    ema_pause = json.loads(overrides.pop("ema_pause", "0"))
    if ema_pause:
        _pause_around_ema(ema_pause)
    train, evaluation, names = load_image_datasets("digits", max_train_samples=256, max_eval_samples=128)
    transform = build_transforms(32, is_training=False, crop_pct=1.0)
    settings = dict(output_dir=out, pruning_ratio=0.5, pruning_steps=2, round_to=1, max_steps=4,
                    per_device_train_batch_size=16, per_device_eval_batch_size=64, learning_rate=1e-3,
                    save_steps=1, logging_steps=1, report_to="none", disable_tqdm=True, use_cpu=True)
    settings.update({k: json.loads(v) for k, v in overrides.items()})
    args = ElasticTrainingArguments(**settings)
    trainer = ElasticTrainer(model=tiny_vit(len(names)), args=args, train_dataset=with_transforms(train, transform),
                             eval_dataset=with_transforms(evaluation, transform), label_names=names)
    summary = trainer.train()
    if report_ranks:
        digest = hashlib.sha256()
        for name, tensor in sorted(trainer.accelerator.unwrap_model(trainer.model).state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        _line({"rank": args.process_index, "world_size": args.world_size, "epoch": trainer.state.epoch,
               "weights": digest.hexdigest()})
    if trainer.is_world_process_zero():
        _line({"world_size": args.world_size, "levels": len(summary["levels"])})


def _pause_around_ema(seconds: float) -> None:
    from elastoformer_hf.training import trainer as trainer_module

    save_file = trainer_module.save_file

    def paused(tensors, filename, *args, **kwargs):
        if Path(filename).parent.name != "checkpoint-3":
            return save_file(tensors, filename, *args, **kwargs)
        time.sleep(seconds)  # Trainer's files are there, the EMA is not
        save_file(tensors, filename, *args, **kwargs)
        time.sleep(seconds)  # the EMA is there, the marker is not

    trainer_module.save_file = paused


def _line(record: dict) -> None:
    """One write() per line: the ranks share stdout, and a single short write to a pipe is never interleaved."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), (json.dumps(record) + "\n").encode())


if __name__ == "__main__":
    main(sys.argv[1:])
