"""``judgelm judge IN.jsonl [-o OUT.jsonl]``: judge a JSONL file of samples.

``--endpoint URL --model NAME`` judges through an OpenAI-compatible server (vLLM, ``judgelm
serve``, ...) instead of a local model: prompts are rendered here (``--tokenizer`` when NAME has no
local files), verdicts read from the server's log-probabilities where it returns them.

With ``-o`` every verdict is appended to OUT as it is made, and running the same command again
resumes (ids already in OUT are skipped). OUT belongs to its job (judge, options, input records):
another job's file, the input itself or a file that is not judgelm output is refused, and
``--restart`` starts OUT over. A bad record becomes an error line naming its line, id and field;
the job goes on. Without ``-o`` the verdicts are printed as a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from judgelm.cli import EXIT_BAD_RECORDS, EXIT_CODES_HELP, EXIT_OK
from judgelm.cli.flags import (
    add_endpoint_flags,
    add_judging_flags,
    add_model_flags,
    job_stamp,
    judge_options,
    load_judge,
)
from judgelm.errors import InvalidSampleError
from judgelm.io import Record, ResultWriter, error_record, output_record
from judgelm.types import Sample, Verdict


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
    p.add_argument("--batch-size", type=_positive, default=32, help="samples judged (and written) per step")
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


def _judge_alone(judge: Any, samples: list[Sample], options: Any) -> list[Verdict | InvalidSampleError]:
    """`Judge.judge` on a batch; if the call raises, each sample alone, so a sample that breaks the
    judge (a bug) becomes its record's error line instead of stopping the job at the same record on
    every re-run. When every sample fails alone, the judge itself is failing (a device error, ...):
    that stops the job (a re-run resumes) rather than writing an error line for each record."""
    try:
        return list(judge.judge(samples, options))
    except Exception:
        if len(samples) == 1:
            raise
    out: list[Verdict | InvalidSampleError] = []
    failure: Exception | None = None
    for sample in samples:
        try:
            out.extend(judge.judge([sample], options))
        except Exception as e:
            failure = e
            out.append(InvalidSampleError(f"judging failed ({type(e).__name__}: {e}); a judgelm bug, please report it"))
    if failure is not None and all(isinstance(v, InvalidSampleError) for v in out):
        raise failure
    return out


def verdict_row(key: str, v: Verdict) -> tuple[str, ...]:
    scores = "-" if v.scores is None else " ".join(f"{s:.2f}".rstrip("0").rstrip(".") for s in v.scores)
    if v.abstained:
        result = f"abstain ({v.reason_code})"
    elif len(v.scores or ()) < 2:
        result = "graded"
    elif v.winner is None:
        result = "tie"
    else:
        result = f"answer {v.winner + 1}"
    confidence = "-" if v.confidence is None else f"{v.confidence:.2f}"
    grammar = "-" if not v.distributions else f"{1 - v.distributions[0].outside_mass:.2g}"
    swap = "" if v.consistent is None else ("consistent" if v.consistent else "order-dependent")
    note = v.reason if v.abstained else (v.explanation or "")
    return key, v.format, scores, result, confidence, grammar, swap, " ".join(note.split())[:50]


def print_table(rows: Sequence[tuple[str, ...]], file: TextIO | None = None) -> None:
    header = ("id", "format", "scores", "result", "conf", "p(grammar)", "swap", "note")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=file or sys.stdout)


def summarize(verdicts: Sequence[Verdict], errors: int, skipped: int, seconds: float) -> str:
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
    rows: list[tuple[str, ...]] = []
    verdicts: list[Verdict] = []
    start = time.perf_counter()
    if good:
        judge = load_judge(args, abstain_threshold=args.abstain_threshold)
        options = judge_options(args)
        bar = None
        if not args.quiet:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(good), unit="sample", desc="judging", file=sys.stderr)
        try:
            for i in range(0, len(good), args.batch_size):
                chunk = good[i : i + args.batch_size]
                out = _judge_alone(judge, [r.sample for r in chunk], options)  # type: ignore[misc]
                for rec, v in zip(chunk, out, strict=True):
                    if isinstance(v, InvalidSampleError):
                        bad.append(rec := replace(rec, sample=None, error=rec.locate(v)))
                        _report_bad(rec, writer)
                        continue
                    verdicts.append(v)
                    if writer:
                        writer.write(output_record(rec, v, model=judge.name), digest=rec.digest)
                    else:
                        rows.append(verdict_row(rec.key, v))
                if bar:
                    bar.update(len(chunk))
        finally:
            if bar:
                bar.close()
            if writer:
                writer.close()
    elif writer:
        writer.close()
    if rows:
        print_table(rows)
    print(summarize(verdicts, len(bad), skipped, time.perf_counter() - start), file=sys.stderr)
    failed_before = sum(r.key in writer.failed for r in records) if writer else len(bad)
    return EXIT_BAD_RECORDS if bad or failed_before else EXIT_OK


def _report_bad(rec: Record, writer: ResultWriter | None) -> None:
    """A record that cannot be judged: one line on stderr, one error line in the output."""
    print(f"judgelm: {rec.error}", file=sys.stderr)
    if writer:
        writer.write(error_record(rec), digest=rec.digest)
