"""``judgelm eval --truth T.jsonl --pred P.jsonl [--swapped R.jsonl]``: agreement of a judge with a
ground truth, exactly as the JudgeLM reference computes it, plus what it leaves out.

Files may be reference format (truth ``text``/``score``, predictions ``pred_text``, "s1 s2\\n...")
or judgelm's own output (``verdict``). Records pair by id, or by line (``--align position``) as
the reference does. A prediction file judged with ``--swap`` carries its own swapped order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="agreement, P/R/F1, consistency of judgments vs ground truth",
        description=__doc__,
    )
    p.add_argument(
        "--truth", required=True, help="ground-truth JSONL (teacher text/score, or judgelm output)"
    )
    p.add_argument("--pred", required=True, help="the judge's JSONL (pred_text, or judgelm output)")
    p.add_argument("--swapped", help="the judge's JSONL on the answer-swapped inputs (slot order)")
    p.add_argument(
        "--align",
        choices=["id", "position"],
        default="id",
        help="pair records by id (default) or line",
    )
    p.add_argument(
        "--format", choices=["table", "json", "markdown"], default="table", help="output format"
    )
    p.add_argument("--truth-field", help="read the truth from this field (e.g. text_w_reference)")
    p.add_argument("--pred-field", help="read predictions from this field")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for intervals (0: none)"
    )
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("-o", "--output", help="also write the result to this file")
    return p


def run(args: argparse.Namespace) -> int:
    from judgelm.errors import JudgeLMError
    from judgelm.eval.judgments import evaluate_files
    from judgelm.eval.render import render_eval

    try:
        result, pairs = evaluate_files(
            args.truth,
            args.pred,
            args.swapped,
            align_by=args.align,
            truth_field=args.truth_field,
            pred_field=args.pred_field,
            resamples=args.bootstrap,
            level=args.level,
            seed=args.seed,
        )
    except ValueError as e:  # judgelm's own errors are reported by judgelm.cli.main
        if isinstance(e, JudgeLMError):
            raise
        print(f"judgelm eval: error: {e}", file=sys.stderr)
        return 2
    text = render_eval(result, args.format)
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    lost = {k: v for k, v in pairs.unmatched.items() if v}
    if lost:
        how = "without a partner" if args.align == "id" else "past the shortest file"
        detail = ", ".join(f"{k}: {v}" for k, v in lost.items())
        print(f"judgelm eval: records {how}, left out: {detail}", file=sys.stderr)
    return 0
