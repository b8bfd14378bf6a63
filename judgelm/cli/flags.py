"""The flags several commands share, each declared once with one default: the model to load
(``--model --device --dtype --trust-remote-code``; or ``--endpoint`` and its client flags), how
prompts are fitted (``--truncation``), how verdicts are read (``--scoring``,
``--official-parser``) and the judging options of `JudgeOptions` (``--mode --swap --explain
--max-new-tokens``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgelm.io import JobStamp
from judgelm.options import SCORINGS, TRUNCATIONS, JudgeOptions

if TYPE_CHECKING:
    from judgelm.judge import Judge

__all__ = [
    "add_endpoint_flags",
    "add_judging_flags",
    "add_mode_flag",
    "add_model_flags",
    "add_scoring_flags",
    "add_swap_flag",
    "add_truncation_flag",
    "add_trust_remote_code_flag",
    "endpoint_kwargs",
    "job_stamp",
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


def add_endpoint_flags(p: Parser) -> None:
    """``--endpoint URL`` (a judge served by any OpenAI-compatible server, `Judge.from_endpoint`;
    ``--model`` then names the served model), ``--endpoint-api-key`` (default $OPENAI_API_KEY),
    ``--tokenizer``, ``--endpoint-logprobs``, ``--concurrency``, ``--timeout``."""
    p.add_argument(
        "--endpoint",
        metavar="URL",
        help="judge through an OpenAI-compatible server at URL (vLLM, judgelm serve, ...); --model: its name",
    )
    p.add_argument("--endpoint-api-key", help="the endpoint's API key (default: $OPENAI_API_KEY if set)")
    p.add_argument("--tokenizer", help="the model's tokenizer (folder or hub id) when --model has no local files")
    p.add_argument(
        "--endpoint-logprobs",
        choices=["auto", "echo", "top_k", "none"],
        default="auto",
        help="how verdicts are read from the server: prompt log-probs (exact), top-k log-probs, or text "
        "(default: probe the server)",
    )
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default: 8)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: 120)")


def endpoint_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """`Judge.from_endpoint` keywords from `add_endpoint_flags`."""
    return {
        "api_key": args.endpoint_api_key or os.environ.get("OPENAI_API_KEY") or None,
        "tokenizer": args.tokenizer,
        "logprobs": args.endpoint_logprobs,
        "concurrency": args.concurrency,
        "timeout": args.timeout,
    }


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


def job_stamp(args: argparse.Namespace) -> JobStamp:
    """What a batch job's output file belongs to (``judgelm judge -o``, either engine): the judge
    and every flag that changes verdicts (`add_judging_flags`, ``--no-reference``,
    ``--abstain-threshold``)."""
    model = args.model
    if getattr(args, "endpoint", None):
        model = f"{args.endpoint.rstrip('/')} {model}"  # the same name on another server is another judge
    elif model and Path(model).exists():
        model = str(Path(model).resolve())
    options: dict[str, Any] = {**judge_options(args).to_dict(), "truncation": args.truncation}
    if args.no_reference:
        options["no_reference"] = True
    if args.abstain_threshold is not None:
        options["abstain_threshold"] = args.abstain_threshold
    return JobStamp(judge=model or "demo", options=options)


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
    """The judge `add_model_flags` names (through ``--endpoint`` when `add_endpoint_flags` gave one;
    the demo notice names ``--model``)."""
    from judgelm.engine import loading
    from judgelm.judge import Judge

    if getattr(args, "endpoint", None):
        if not args.model:
            from judgelm.errors import JudgeLMError

            raise JudgeLMError("--endpoint needs --model (the served model name)")
        kwargs = {k: v for k, v in extra.items() if v is not None}
        if getattr(args, "truncation", None) is not None:
            kwargs["truncation"] = args.truncation
        return Judge.from_endpoint(args.endpoint, args.model, **endpoint_kwargs(args), **kwargs)
    library, loading.DEMO_SWITCH = loading.DEMO_SWITCH, "--model BAAI/JudgeLM-7B-v1.0"
    try:
        with _quiet_loading(getattr(args, "quiet", False)):
            return Judge.from_pretrained(args.model, **load_kwargs(args), **extra)
    finally:
        loading.DEMO_SWITCH = library


@contextmanager
def _quiet_loading(quiet: bool) -> Iterator[None]:
    """``--quiet``: no transformers "Loading weights" bar either (restored after the load)."""
    if not quiet:
        yield
        return
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()
