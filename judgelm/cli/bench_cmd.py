"""``judgelm bench --model M --benchmark NAME --data PATH``: run a judge over a benchmark in both
answer orders (and with references where the set has them) and print the paper-style table.

Nothing downloads: point ``--data`` (and the extra files) at your copy of the benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from judgelm.cli.flags import add_model_flags, add_scoring_flags, load_judge


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    from judgelm.eval.benchmarks import BENCHMARKS

    names = "; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items())
    p = sub.add_parser(name, help="score a judge on a benchmark (paper-style table)", description=__doc__)
    add_model_flags(p)
    p.add_argument("--benchmark", required=True, choices=list(BENCHMARKS), help=names)
    p.add_argument("--data", required=True, help="the benchmark's main file (judgelm-val: file or folder)")
    p.add_argument("--references", help="judgelm-val: judgelm_val_5k_references.jsonl")
    p.add_argument("--truth", help="judgelm-val: judgelm_val_5k_gpt4.jsonl")
    p.add_argument("--truth-with-reference", help="judgelm-val: judgelm_val_5k_gpt4_with_reference.jsonl")
    p.add_argument("--predictions", help="mmvet: the model's predictions JSON (keyed like the ground truth)")
    p.add_argument("--grades", help="mmvet: truth grades JSON in [0, 1] (optional)")
    p.add_argument(
        "--reference",
        choices=["auto", "with", "without"],
        default="auto",
        help="judge with references, without, or both where the set has them (default)",
    )
    p.add_argument("--limit", type=int, help="only the first N items")
    p.add_argument("--mode", help="judge every item in this format (e.g. pandalm, prometheus_relative)")
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table", help="output format")
    p.add_argument("-o", "--output", help="also write the result as JSON to this file")
    add_scoring_flags(p)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from judgelm.eval.bench import run_benchmark
    from judgelm.eval.benchmarks import load_benchmark

    if args.benchmark == "mmvet" and not args.predictions:
        print("judgelm bench: error: mmvet needs --predictions", file=sys.stderr)
        return 2
    bench = load_benchmark(
        args.benchmark,
        args.data,
        references=args.references,
        truth=args.truth,
        truth_with_reference=args.truth_with_reference,
        predictions=args.predictions,
        grades=args.grades,
        limit=args.limit,
    )
    if bench.task == "pairwise" and not any(i.label is not None or i.has_truth_with_reference for i in bench.items):
        print(
            f"judgelm bench: error: {args.benchmark} has no ground truth here (--truth?)",
            file=sys.stderr,
        )
        return 2
    judge = load_judge(args)
    with_reference = {"auto": None, "with": True, "without": False}[args.reference]
    result = run_benchmark(
        judge,
        bench,
        with_reference=with_reference,
        resamples=args.bootstrap,
        official_parser=args.official_parser,
        scoring=args.scoring,
        mode=args.mode,
    )
    sys.stdout.write(result.render(args.format))
    if args.output:
        Path(args.output).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0
