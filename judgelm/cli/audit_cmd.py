"""``judgelm audit --data LABELLED.jsonl --out DIR``: bias audits of a judge on a labelled set —
position, knowledge, format, length, self-consistency and calibration — written as
``DIR/audit.md`` with its PNG plots beside it, and ``DIR/audit.json``.

A labelled JSONL record is a sample (native or JudgeLM fields) plus its truth: ``label`` (1, 0,
-1, or ``model_a``/``model_b``/``tie``) or a teacher judgment (``text``/``score``, optionally
``text_w_reference``/``score_w_reference``). ``--benchmark`` reads a benchmark's files instead.
"""

from __future__ import annotations

import argparse
import sys

from judgelm.cli.flags import add_model_flags, add_scoring_flags, load_judge


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    from judgelm.eval.audits import AUDITS
    from judgelm.eval.benchmarks import BENCHMARKS

    p = sub.add_parser(name, help="bias audits with a Markdown report and plots", description=__doc__)
    p.add_argument("--data", required=True, help="labelled JSONL, or the benchmark's main file")
    p.add_argument("--out", required=True, help="folder for audit.md, audit.json and the PNGs")
    add_model_flags(p)
    p.add_argument("--benchmark", choices=list(BENCHMARKS), default="labelled", help="how to read --data")
    p.add_argument("--references", help="judgelm-val: references file")
    p.add_argument("--truth", help="judgelm-val: teacher judgments without reference")
    p.add_argument("--truth-with-reference", help="judgelm-val: teacher judgments with reference")
    p.add_argument("--audits", default=",".join(AUDITS), help=f"comma-separated subset of: {', '.join(AUDITS)}")
    p.add_argument("--seeds", type=int, default=2, help="self-consistency runs (each judges both orders)")
    p.add_argument(
        "--trained-with",
        choices=["reference", "no_reference", "both"],
        help="the prompt format the judge was trained in (JudgeLM: both)",
    )
    p.add_argument("--limit", type=int, help="only the first N items")
    p.add_argument("--mode", help="judge every item in this format (e.g. pandalm, prometheus_relative)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs (no matplotlib needed)")
    add_scoring_flags(p)  # logits also give the reliability diagram
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    return p


def run(args: argparse.Namespace) -> int:
    from judgelm.eval.audits import run_audits, write_audit
    from judgelm.eval.benchmarks import load_benchmark

    audits = [a.strip() for a in args.audits.split(",") if a.strip()]
    data = load_benchmark(
        args.benchmark,
        args.data,
        references=args.references,
        truth=args.truth,
        truth_with_reference=args.truth_with_reference,
        limit=args.limit,
    )
    if not args.no_plots:
        from judgelm.eval.audits.plots import require_matplotlib

        require_matplotlib()  # fail before judging, not after, when matplotlib is missing
    judge = load_judge(args)
    report = run_audits(
        judge,
        data,
        audits=audits,
        seeds=args.seeds,
        trained_with=args.trained_with,
        resamples=args.bootstrap,
        official_parser=args.official_parser,
        scoring=args.scoring,
        mode=args.mode,
    )
    md = write_audit(report, args.out, plots=not args.no_plots)
    print(f"judgelm audit: report written to {md}", file=sys.stderr)
    return 0
