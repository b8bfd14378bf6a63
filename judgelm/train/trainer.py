"""`JudgeTrainer`: HF Trainer with the judge loss, plus a JSONL log callback.

The loss is the token-level cross-entropy on the judgment and EOS only. The LM head runs only
where a prediction is scored (``logits_to_keep`` = the positions before a labelled token): a
judge prompt is ~90% of its tokens, so this skips most of the vocabulary projection and its
[tokens x vocabulary] logits — the biggest cost of small models and a large memory saving for
big ones. It goes through the model's own ``forward``, so FSDP, DeepSpeed and peft wrappers
see an ordinary call.

Normalisation follows HF Trainer: with ``num_items_in_batch`` (the labelled tokens of the whole
accumulated step, summed over processes) the loss is a sum divided by it, scaled by the process
count because DDP averages gradients; otherwise a per-batch mean.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback

from judgelm.train.encode import IGNORE_INDEX

__all__ = ["DatasetEpochCallback", "JsonlLogCallback", "JudgeTrainer", "judge_loss"]


def judge_loss(model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(summed loss, number of scored tokens, model outputs) for one batch."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    shifted = labels[:, 1:]  # the prediction at position p is scored against label p + 1
    keep = (shifted != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
    logits = outputs.logits  # [B, K, V]
    target = shifted[:, keep]
    loss_sum = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss_sum, (target != IGNORE_INDEX).sum(), outputs


class JudgeTrainer(Trainer):
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        loss_sum, count, outputs = judge_loss(model, inputs)
        if num_items_in_batch is not None:
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes
            self.loss_is_scaled_for_ga = True
        else:
            loss = loss_sum / count.clamp(min=1)
            self.loss_is_scaled_for_ga = False
        return (loss, outputs) if return_outputs else loss


class DatasetEpochCallback(TrainerCallback):
    """Tells the dataset which epoch begins, so its views (swap, reference) are redrawn.

    accelerate forwards ``set_epoch`` to the dataset only for some sampler layouts (under DDP,
    with a sharded seedable sampler, it does not), so this does it for every run, before the
    epoch's dataloader iterator (and its workers) exist. On resume mid-epoch ``state.epoch`` is
    fractional and its floor is the epoch being resumed."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))


class JsonlLogCallback(TrainerCallback):
    """Appends every log dict (step, epoch, loss, learning rate, seconds) to a JSONL file and
    prints a one-line progress summary, on the main process only."""

    def __init__(self, path: str | Path, *, echo: bool = True) -> None:
        self.path = Path(path)
        self.echo = echo
        self.start = time.perf_counter()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "world_size": args.world_size,  # processes taking part (DDP / FSDP / DeepSpeed)
            "elapsed_s": round(time.perf_counter() - self.start, 2),
            **logs,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.echo and "loss" in logs:
            print(
                f"step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.2f} "
                f"loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e} "
                f"({row['elapsed_s']:.0f} s)",
                flush=True,
            )
