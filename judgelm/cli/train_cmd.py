"""``judgelm train DATA.jsonl [...] -o OUT --model M``: fine-tune a causal LM into a judge.

Records are JudgeLM-100K (``text`` / ``text_w_reference`` teacher judgments) or native
(``judgment`` / ``judgment_w_reference``). Swap augmentation (``--p-swap``) and reference
support / drop (``--p-reference``) are drawn per sample per epoch. The output folder loads with
``Judge.from_pretrained(OUT)`` and ``judgelm judge --model OUT``.

Many processes: ``torchrun --nproc_per_node 8 -m judgelm.train ...`` or
``accelerate launch -m judgelm.train ...`` (add ``--fsdp "full_shard auto_wrap"`` or
``--deepspeed ds.json``). Resume: the same command with ``--resume latest``.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from judgelm.cli.flags import add_mode_flag, add_model_flags, add_truncation_flag

if TYPE_CHECKING:
    from judgelm.train.config import TrainConfig


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="fine-tune a causal LM into a judge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(p)
    return p


def configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    d = p.add_argument_group("data and recipe")
    d.add_argument("data", nargs="+", help="JSONL training records")
    d.add_argument("-o", "--output", required=True, help="output folder (checkpoints, then the judge)")
    add_mode_flag(d)
    d.add_argument("--p-swap", type=float, default=0.5, help="swap augmentation probability (default 0.5)")
    d.add_argument(
        "--p-reference",
        type=float,
        default=0.5,
        help="P(with-reference prompt + judgment) (default 0.5; 0 = never, 1 = always)",
    )
    d.add_argument(
        "--max-length",
        type=int,
        default=2048,
        help="tokens per example (answers are shortened to fit)",
    )
    add_truncation_flag(
        d, choices=("answers", "error"), help="over-long prompts: shorten the answers (default) or drop the sample"
    )
    m = p.add_argument_group("model")
    add_model_flags(m, device=False)  # training places the model itself (--cpu, --load-dtype)
    m.add_argument("--tokenizer", help="tokenizer folder when not beside the model")
    m.add_argument(
        "--from-scratch",
        action="store_true",
        help="random weights from the model folder's config.json",
    )
    m.add_argument(
        "--load-dtype",
        help="dtype of the loaded weights (default fp32; bf16 for pure-bf16 training)",
    )
    m.add_argument("--lora-r", type=int, default=0, help="LoRA rank (0 = full fine-tune)")
    m.add_argument("--lora-alpha", type=int, default=16)
    m.add_argument("--lora-dropout", type=float, default=0.05)
    m.add_argument("--lora-targets", default="all-linear", help="'all-linear' or comma-separated module names")
    o = p.add_argument_group("optimisation")
    o.add_argument("--lr", type=float, default=2e-5)
    o.add_argument("--epochs", type=float, default=3.0)
    o.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    o.add_argument("--batch-size", type=int, default=8, help="samples per device per step")
    o.add_argument("--grad-accum", type=int, default=1)
    o.add_argument("--weight-decay", type=float, default=0.0)
    o.add_argument("--warmup-ratio", type=float, default=0.03)
    o.add_argument("--scheduler", default="cosine")
    o.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("runtime")
    r.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 mixed precision (default: on if the GPU supports it)",
    )
    r.add_argument("--gradient-checkpointing", action="store_true")
    r.add_argument("--packing", action="store_true", help="pack each batch into one row (varlen attention)")
    r.add_argument("--fsdp", default="", help='e.g. "full_shard auto_wrap"')
    r.add_argument("--fsdp-config", help="FSDP config (JSON file or inline JSON)")
    r.add_argument("--deepspeed", help="DeepSpeed config JSON")
    r.add_argument("--ddp-backend", help="gloo, nccl, ... (default: HF Trainer's choice)")
    r.add_argument("--cpu", action="store_true", help="train on CPU even if a GPU is present")
    r.add_argument("--save-steps", type=int, default=0, help="checkpoint every N steps (default: every epoch)")
    r.add_argument("--save-total-limit", type=int, default=2)
    r.add_argument("--resume", help="a checkpoint folder, or 'latest' (the newest in --output)")
    r.add_argument("--logging-steps", type=int, default=10)
    r.add_argument("--workers", type=int, default=0, help="dataloader workers")
    r.add_argument(
        "--training-arg",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="any other TrainingArguments field, e.g. --training-arg 'optim=\"adamw_torch_fused\"'",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar or step lines")
    return p


def _json_or_text(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` the parsed command line asks for."""
    from judgelm.train.config import TrainConfig

    extra: dict[str, object] = {}
    for item in args.training_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--training-arg needs KEY=VALUE, got {item!r}")
        extra[key] = _json_or_text(value)
    fsdp_config = None
    if args.fsdp_config:
        fsdp_config = _json_or_text(args.fsdp_config) if args.fsdp_config.lstrip().startswith("{") else args.fsdp_config
    targets = args.lora_targets if args.lora_targets == "all-linear" else tuple(args.lora_targets.split(","))
    return TrainConfig(
        data=tuple(args.data),
        output_dir=args.output,
        model=args.model or "demo",
        tokenizer=args.tokenizer,
        from_scratch=args.from_scratch,
        mode=args.mode,
        p_swap=args.p_swap,
        p_reference=args.p_reference,
        max_length=args.max_length,
        truncation=args.truncation,
        learning_rate=args.lr,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        lr_scheduler=args.scheduler,
        seed=args.seed,
        bf16=args.bf16,
        load_dtype=args.load_dtype,
        gradient_checkpointing=args.gradient_checkpointing,
        packing=args.packing,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_target_modules=targets,
        fsdp=args.fsdp,
        fsdp_config=fsdp_config,
        deepspeed=args.deepspeed,
        ddp_backend=args.ddp_backend,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        resume_from=args.resume,
        logging_steps=args.logging_steps,
        dataloader_workers=args.workers,
        use_cpu=args.cpu,
        quiet=args.quiet,
        trust_remote_code=args.trust_remote_code,
        training_args=extra,
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from judgelm.train.run import train

    try:
        cfg = config_from_args(args)
        train(cfg)
    except ValueError as e:  # bad options, no trainable records, unusable judgments (JudgeLMError too)
        print(f"judgelm train: error: {e}", file=sys.stderr)
        return 2
    return 0
