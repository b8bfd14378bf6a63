"""judgelm judge IN.jsonl [-o OUT.jsonl]: judge a JSONL file of samples.

--endpoint URL --model NAME judges through an OpenAI-compatible server (vLLM, judgelm serve, ...)
instead of a local model: prompts are rendered here (--tokenizer when NAME has no local files),
verdicts read from the server's log-probabilities where it returns them.

Verdicts come out as they are made: with -o each is appended to OUT at once, and running the same
command again resumes (ids already in OUT are skipped); without -o each is printed as a table row,
and a legend under the table explains every column. OUT belongs to its job (judge, options, input
records): another job's file, the input itself or a file that is not judgelm output is refused,
and --restart starts OUT over. A bad record becomes an error line naming its line, id and field;
the job goes on.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from judgelm.cli import EXIT_BAD_RECORDS, EXIT_CODES_HELP, EXIT_OK
from judgelm.cli.flags import (
    add_endpoint_flags,
    add_judging_flags,
    add_model_flags,
    job_stamp,
    judge_options,
    load_judge,
)
from judgelm.cli.judge_loop import judge_records, table_for
from judgelm.errors import InvalidSampleError
from judgelm.io import Record, ResultWriter, error_record
from judgelm.types import Verdict


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="judge a JSONL file of samples",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="JSONL samples (native or JudgeLM format)")
    p.add_argument("-o", "--output", help="output JSONL (appended; re-run to resume)")
    p.add_argument("--restart", action="store_true", help="empty OUT first and judge everything again")
    add_model_flags(p)
    add_endpoint_flags(p)
    add_judging_flags(p)
    p.add_argument(
        "--abstain-threshold",
        type=float,
        help="(logit scoring) abstain when more probability than this lies outside the verdict grammar "
        "(default 0.5; 1.0 for the untrained demo judge)",
    )
    p.add_argument("--no-reference", action="store_true", help="ignore references in the input")
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=32,
        help="most samples judged at once (default 32); verdicts stream out from the first sample on",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="local or ray (an actor pool; needs -o)")
    p.add_argument("--num-actors", type=int, help="--engine ray: judges in the pool (default: one per GPU, else 1)")
    return p


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _check(rec: Record, no_reference: bool = False) -> Record:
    """Validate a record against its format now, so its error names the line, id and field."""
    from judgelm.integrations.records import check_sample

    if rec.sample is None:
        return rec
    sample = rec.sample.replace(reference=None) if no_reference else rec.sample
    try:
        check_sample(sample)
    except InvalidSampleError as e:
        return replace(rec, sample=None, error=rec.locate(e))
    return replace(rec, sample=sample)


def summarize(
    verdicts: Sequence[Verdict], errors: int, skipped: int, seconds: float, load_seconds: float | None = None
) -> str:
    """The closing line: outcomes, bad and skipped records, judging time (and the model load's)."""
    outcomes: Counter[str] = Counter()
    for v in verdicts:
        if v.abstained:
            outcomes[f"abstain:{v.reason_code}"] += 1
        elif v.tie:
            outcomes["tie"] += 1
        elif v.winner is not None:
            outcomes[f"answer {v.winner + 1} wins"] += 1
        else:
            outcomes["graded"] += 1
    parts = [f"{k}: {n}" for k, n in sorted(outcomes.items())]
    rate = len(verdicts) / seconds if seconds > 0 else 0.0
    return (
        f"judged {len(verdicts)} ({', '.join(parts) or 'none'}); bad records: {errors}; "
        f"already done: {skipped}; {seconds:.1f} s, {rate:.2f} samples/s"
        + ("" if load_seconds is None else f" (model loaded in {load_seconds:.1f} s before)")
    )


def run(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        from judgelm.integrations.ray_data import run_judge_command

        return run_judge_command(args)
    from judgelm.io import read_samples

    records = [_check(r, args.no_reference) for r in read_samples(args.input, mode=args.mode)]
    writer = None
    if args.output:
        writer = ResultWriter(args.output, job_stamp(args), restart=args.restart, input_path=args.input)
        writer.claim(records, Path(args.input).name)
    done = writer.done if writer else {}
    todo = [r for r in records if r.key not in done]
    skipped = len(records) - len(todo)
    bad = [r for r in todo if r.sample is None]
    good = [r for r in todo if r.sample is not None]
    for r in bad:
        _report_bad(r, writer)
    verdicts: list[Verdict] = []
    start, load_seconds = time.perf_counter(), None
    try:
        if good:
            judge = load_judge(args, abstain_threshold=args.abstain_threshold)
            load_seconds, start = time.perf_counter() - start, time.perf_counter()
            options = judge_options(args)
            table = None if writer else table_for(good, options)

            def failed(rec: Record, error: InvalidSampleError) -> None:
                bad.append(rec := replace(rec, sample=None, error=rec.locate(error)))
                _report_bad(rec, writer)

            verdicts = judge_records(
                judge,
                good,
                options,
                writer=writer,
                table=table,
                max_chunk=args.batch_size,
                progress=not args.quiet,
                on_failure=failed,
            )
            if table is not None:
                table.legend()
        elif not records:
            print(f"judgelm: {args.input} is empty: no records to judge", file=sys.stderr)
    finally:
        if writer:
            writer.close()
    print(summarize(verdicts, len(bad), skipped, time.perf_counter() - start, load_seconds), file=sys.stderr)
    failed_before = sum(r.key in writer.failed for r in records) if writer else len(bad)
    return EXIT_BAD_RECORDS if bad or failed_before else EXIT_OK


def _report_bad(rec: Record, writer: ResultWriter | None) -> None:
    """A record that cannot be judged: one line on stderr, one error line in the output."""
    print(f"judgelm: {rec.error}", file=sys.stderr)
    if writer:
        writer.write(error_record(rec), digest=rec.digest)
