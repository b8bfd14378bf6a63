"""judgelm judge IN.jsonl [-o OUT.jsonl]: judge a JSONL file of samples.

Verdicts come out as they are made: with -o each is appended to OUT at once, and running the same
command again resumes (ids already in OUT are skipped); without -o each is printed as a table row,
and a legend under the table explains every column. A bad record becomes an error line naming its
line and field; the job goes on.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence

from judgelm.cli.flags import add_judging_flags, add_model_flags, judge_options, load_judge
from judgelm.cli.judge_loop import judge_records, table_for
from judgelm.io import Record, ResultWriter, error_record
from judgelm.types import Verdict


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="judge a JSONL file of samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="JSONL samples (native or JudgeLM format)")
    p.add_argument("-o", "--output", help="output JSONL (appended; re-run to resume)")
    add_model_flags(p)
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
        type=int,
        default=32,
        help="most samples judged at once (default 32); verdicts stream out from the first sample on",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="local or ray (an actor pool; needs -o)")
    p.add_argument("--num-actors", type=int, help="--engine ray: judges in the pool (default: one per GPU, else 1)")
    return p


def _check(rec: Record) -> Record:
    """Validate a record against its format now, so its error names the line and field."""
    from judgelm.errors import JudgeLMError
    from judgelm.formats import get_format, infer_mode

    if rec.sample is None:
        return rec
    try:
        fmt = get_format(infer_mode(rec.sample))
        fmt.validate(fmt.prepare(rec.sample))
    except JudgeLMError as e:
        from judgelm.errors import InvalidSampleError

        err = e if isinstance(e, InvalidSampleError) else InvalidSampleError(str(e), field="mode")
        return Record(rec.line, rec.key, rec.raw, error=err.located(f"line {rec.line}"))
    return rec


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

    records = [_check(r) for r in read_samples(args.input, mode=args.mode)]
    if args.no_reference:
        records = [
            r if r.sample is None else Record(r.line, r.key, r.raw, r.sample.replace(reference=None)) for r in records
        ]
    writer = ResultWriter(args.output) if args.output else None
    done = writer.done if writer else set()
    todo = [r for r in records if r.key not in done]
    skipped = len(records) - len(todo)
    bad = [r for r in todo if r.sample is None]
    good = [r for r in todo if r.sample is not None]
    for r in bad:
        print(f"judgelm: {r.error}", file=sys.stderr)
        if writer:
            writer.write(error_record(r))
    verdicts: list[Verdict] = []
    start, load_seconds = time.perf_counter(), None
    try:
        if good:
            judge = load_judge(args, abstain_threshold=args.abstain_threshold)
            load_seconds, start = time.perf_counter() - start, time.perf_counter()
            options = judge_options(args)
            table = None if writer else table_for(good, options)
            verdicts = judge_records(
                judge, good, options, writer=writer, table=table, max_chunk=args.batch_size, progress=not args.quiet
            )
            if table is not None:
                table.legend()
        elif not records:
            print(f"judgelm: {args.input} is empty: no records to judge", file=sys.stderr)
    finally:
        if writer:
            writer.close()
    print(summarize(verdicts, len(bad), skipped, time.perf_counter() - start, load_seconds), file=sys.stderr)
    return 0
