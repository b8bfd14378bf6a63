"""`train(config)`: read records, build the dataset, fine-tune with HF Trainer, save a judge.

One process or many: under ``torchrun`` or ``accelerate launch`` HF Trainer sets up DDP (gloo on
CPU, NCCL on GPU), FSDP (``fsdp="full_shard auto_wrap"``) or DeepSpeed (``deepspeed=<json>``);
nothing here branches on it except that only the main process writes the final files.

The output folder is a judge: safetensors weights, the tokenizer and ``judge.json`` (format
names, score grammar, how it was trained), so ``Judge.from_pretrained(output_dir)`` loads it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from judgelm.config import JudgeConfig
from judgelm.data.records import JudgeRecord, read_records
from judgelm.errors import InvalidSampleError
from judgelm.train.config import TrainConfig, TrainResult
from judgelm.train.dataset import JudgeDataset
from judgelm.version import __version__

__all__ = ["load_records", "train"]

log = logging.getLogger(__name__)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _say(message: str) -> None:
    """One line on stderr from the main process (also under ``quiet``, which only silences
    progress): bad records, the data report, where the judge went."""
    if _is_main():
        print(f"judgelm train: {message}", file=sys.stderr, flush=True)


def load_records(
    paths: Iterable[str], *, mode: str | None = None
) -> tuple[list[JudgeRecord], list[InvalidSampleError]]:
    """All good records of the JSONL files, and the errors of the bad lines."""
    records: list[JudgeRecord] = []
    errors: list[InvalidSampleError] = []
    for path in paths:
        for item in read_records(path, mode=mode):
            (errors if isinstance(item, InvalidSampleError) else records).append(item)  # type: ignore[arg-type]
    return records, errors


def _training_arguments(cfg: TrainConfig) -> Any:
    from transformers import TrainingArguments

    bf16 = cfg.bf16 if cfg.bf16 is not None else bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    kwargs: dict[str, Any] = {
        "output_dir": cfg.output_dir,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "weight_decay": cfg.weight_decay,
        "warmup_ratio": cfg.warmup_ratio,
        "lr_scheduler_type": cfg.lr_scheduler,
        "max_grad_norm": cfg.max_grad_norm,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "bf16": bf16,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps" if cfg.save_steps > 0 else "epoch",
        "save_total_limit": cfg.save_total_limit,
        "save_safetensors": True,
        "report_to": "none",
        "remove_unused_columns": False,  # packed batches carry varlen kwargs, not in the signature
        "dataloader_num_workers": cfg.dataloader_workers,
        "disable_tqdm": cfg.quiet,
        "use_cpu": cfg.use_cpu,
    }
    if cfg.save_steps > 0:
        kwargs["save_steps"] = cfg.save_steps
    import inspect

    known = set(inspect.signature(TrainingArguments.__init__).parameters)
    if cfg.gradient_checkpointing:
        # transformers >= 5 renamed it (the old name warns); non-reentrant checkpointing works
        # with frozen inputs (LoRA) and with the packed batches' extra kwargs.
        name = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
        kwargs[name] = True
        kwargs[f"{name}_kwargs"] = {"use_reentrant": False}
    if cfg.fsdp:
        kwargs["fsdp"] = cfg.fsdp
        if cfg.fsdp_config is not None:
            kwargs["fsdp_config"] = dict(cfg.fsdp_config) if not isinstance(cfg.fsdp_config, str) else cfg.fsdp_config
    if cfg.deepspeed:
        kwargs["deepspeed"] = cfg.deepspeed
    if cfg.ddp_backend:
        kwargs["ddp_backend"] = cfg.ddp_backend
    kwargs = {k: v for k, v in kwargs.items() if k in known or k in cfg.training_args}
    kwargs.update(cfg.training_args)
    return TrainingArguments(**kwargs)


def _base_judge_config(cfg: TrainConfig) -> JudgeConfig:
    """The judge.json to start from: the base model's (score grammar, vision) when it has one,
    without its calibration, which the new weights invalidate."""
    base = JudgeConfig.load(cfg.model) if Path(cfg.model).is_dir() else None
    return base.replace(calibration=None) if base else JudgeConfig()


def train(cfg: TrainConfig) -> TrainResult:
    """Fine-tune a judge as ``cfg`` says and save it to ``cfg.output_dir``."""
    from judgelm.engine.attention import register_transformers_attention
    from judgelm.train.collate import PackedCollator, PaddedCollator
    from judgelm.train.model import add_lora, load_for_training
    from judgelm.train.trainer import DatasetEpochCallback, JsonlLogCallback, JudgeTrainer

    if cfg.lora_r and (cfg.fsdp or cfg.deepspeed):
        raise ValueError("LoRA with FSDP/DeepSpeed is not supported by this recipe: train full weights there")
    start = time.perf_counter()
    args = _training_arguments(cfg)  # first: under torchrun this sets up the process group
    model, tokenizer = load_for_training(cfg)
    records, errors = load_records(cfg.data, mode=cfg.mode)
    for e in errors[:5]:
        _say(f"skipping bad record: {e}")
    if errors:
        _say(f"{len(errors)} bad record(s) skipped")
    dataset = JudgeDataset(
        records,
        tokenizer,
        max_length=cfg.max_length,
        p_swap=cfg.p_swap,
        p_reference=cfg.p_reference,
        seed=cfg.seed,
        mode=cfg.mode,
        truncation=cfg.truncation,  # type: ignore[arg-type]
    )
    report = dataset.report
    assert report is not None
    _say(report.summary())
    for example in report.examples:
        _say(f"  dropped: {example}")
    if len(dataset) == 0:
        raise ValueError(f"no trainable records in {', '.join(cfg.data)} ({len(errors)} bad, {report.summary()})")

    original_attention = model.config._attn_implementation
    if cfg.packing:
        model.set_attn_implementation(register_transformers_attention())
        collator: Any = PackedCollator()
    else:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        collator = PaddedCollator(pad)
    if cfg.lora_r:
        model = add_lora(model, cfg)

    trainer = JudgeTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[
            DatasetEpochCallback(dataset),
            JsonlLogCallback(Path(cfg.output_dir) / "train_log.jsonl", echo=not cfg.quiet),
        ],
    )
    if cfg.quiet:  # no per-log dict printing either; the JSONL log still gets every row
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    resume: str | bool | None = cfg.resume_from
    if resume == "latest":
        resume = True
    output = trainer.train(resume_from_checkpoint=resume)

    # ---- save the judge ----------------------------------------------------------------------
    out = Path(cfg.output_dir)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    base = unwrapped.get_base_model() if cfg.lora_r else unwrapped
    base.set_attn_implementation(original_attention)  # a saved judge must load anywhere
    base.config.use_cache = True
    if cfg.lora_r:
        if trainer.is_world_process_zero():
            unwrapped.save_pretrained(out / "adapter")  # adapters apart: the root is a full model
            unwrapped.merge_and_unload().save_pretrained(out, safe_serialization=True)
    else:
        trainer.save_model(str(out))
    metrics = {k: float(v) for k, v in output.metrics.items() if isinstance(v, int | float)}
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
        training = {
            "recipe": "judgelm.train",
            "judgelm_version": __version__,
            "base_model": cfg.model,
            "from_scratch": cfg.from_scratch,
            "formats": sorted(report.formats),
            "config": cfg.to_dict(),
            "data_report": report.to_dict(),
            "global_step": output.global_step,
            "train_loss": output.training_loss,
        }
        _base_judge_config(cfg).replace(training=training).save(out)
    runtime = time.perf_counter() - start
    _say(
        f"saved the judge to {out} ({output.global_step} steps, loss {output.training_loss:.4f}, {runtime:.0f} s)",
    )
    return TrainResult(str(out), output.global_step, output.training_loss, runtime, report.to_dict(), metrics)
