"""The flags several commands share, each declared once with one default: the model to load
(``--model --device --dtype --trust-remote-code``), how prompts are fitted (``--truncation``),
how verdicts are read (``--scoring``, ``--official-parser``) and the judging options of
`JudgeOptions` (``--mode --swap --explain --max-new-tokens``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from judgelm.options import SCORINGS, TRUNCATIONS, JudgeOptions

if TYPE_CHECKING:
    from judgelm.judge import Judge

__all__ = [
    "add_judging_flags",
    "add_mode_flag",
    "add_model_flags",
    "add_scoring_flags",
    "add_swap_flag",
    "add_truncation_flag",
    "add_trust_remote_code_flag",
    "judge_options",
    "load_judge",
    "load_kwargs",
]

Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def add_model_flags(p: Parser, *, device: bool = True) -> None:
    """``--model`` (default: the demo judge), ``--device``, ``--dtype``, ``--trust-remote-code``."""
    p.add_argument("--model", help="HF model id or folder, a .gguf file, or 'demo' (default: the SmolLM2 demo judge)")
    if device:
        p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
        p.add_argument(
            "--dtype",
            help="bf16, fp16, fp32 (default: bf16 on GPU; on CPU fp32, or bf16 for 16-bit checkpoints and the demo "
            "where the CPU multiplies bf16 natively: AMX, AVX512-BF16)",
        )
    add_trust_remote_code_flag(p)


def add_trust_remote_code_flag(p: Parser) -> None:
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code to run")


def add_truncation_flag(
    p: Parser,
    *,
    choices: tuple[str, ...] = TRUNCATIONS,
    help: str = "over-long prompts: shorten the answers (default), refuse them, or pass them as they are",
) -> None:
    p.add_argument("--truncation", choices=list(choices), default="answers", help=help)


def add_scoring_flags(p: Parser, *, flag: str = "--scoring", official_parser: bool = True) -> None:
    """``--scoring`` (default ``auto``: logits when the judge's engine can read them, else text)
    and ``--official-parser``."""
    p.add_argument(
        flag,
        choices=list(SCORINGS),
        default="auto",
        help="read verdicts from the logits, or parse generated text (default: logits when the judge can)",
    )
    if official_parser:
        p.add_argument(
            "--official-parser", action="store_true", help="(text scoring) parse scores exactly like the reference"
        )


def add_mode_flag(p: Parser) -> None:
    p.add_argument("--mode", help="format for every sample (default: each record's mode, or inferred)")


def add_swap_flag(p: Parser, *, help: str = "judge both orders and average; report consistency") -> None:
    p.add_argument("--swap", action="store_true", help=help)


def add_judging_flags(p: Parser) -> None:
    """Every `JudgeOptions` field a command line sets: mode, swap, explain, scoring, parser,
    generation budget, truncation."""
    add_mode_flag(p)
    add_swap_flag(p)
    p.add_argument("--explain", action="store_true", help="let the judge write its explanation")
    add_scoring_flags(p)
    p.add_argument("--max-new-tokens", type=int, help="generation budget (default: score line, or 512 with --explain)")
    add_truncation_flag(p)


def judge_options(args: argparse.Namespace) -> JudgeOptions:
    """The `JudgeOptions` that `add_judging_flags`' flags ask for (truncation stays the judge's)."""
    return JudgeOptions(
        mode=args.mode,
        swap=args.swap,
        explain=args.explain,
        scoring=args.scoring,
        max_new_tokens=args.max_new_tokens,
        official_parser=args.official_parser,
    )


def load_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """`Judge.from_pretrained` keywords from `add_model_flags` (+ ``--truncation`` when declared)."""
    kwargs: dict[str, Any] = {
        "device": getattr(args, "device", None),
        "dtype": getattr(args, "dtype", None),
        "trust_remote_code": args.trust_remote_code,
    }
    if getattr(args, "truncation", None) is not None:
        kwargs["truncation"] = args.truncation
    return kwargs


def load_judge(args: argparse.Namespace, **extra: Any) -> Judge:
    """The judge `add_model_flags` names (the demo notice names ``--model``)."""
    from judgelm.engine import loading
    from judgelm.judge import Judge

    library, loading.DEMO_SWITCH = loading.DEMO_SWITCH, "--model BAAI/JudgeLM-7B-v1.0"
    try:
        return Judge.from_pretrained(args.model, **load_kwargs(args), **extra)
    finally:
        loading.DEMO_SWITCH = library
