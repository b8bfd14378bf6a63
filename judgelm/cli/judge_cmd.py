"""``judgelm judge IN.jsonl [-o OUT.jsonl]``: judge a JSONL file of samples.

``--endpoint URL --model NAME`` judges through an OpenAI-compatible server (vLLM, ``judgelm
serve``, ...) instead of a local model: prompts are rendered here (``--tokenizer`` when NAME has no
local files), verdicts read from the server's log-probabilities where it returns them.

With ``-o`` every verdict is appended to OUT as it is made, and running the same command again
resumes (ids already in OUT are skipped). A bad record becomes an error line naming its line and
field; the job goes on. Without ``-o`` the verdicts are printed as a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from judgelm.cli.flags import add_endpoint_flags, add_judging_flags, add_model_flags, judge_options, load_judge
from judgelm.io import Record, ResultWriter, error_record, output_record
from judgelm.types import Verdict


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="judge a JSONL file of samples", description=__doc__)
    p.add_argument("input", help="JSONL samples (native or JudgeLM format)")
    p.add_argument("-o", "--output", help="output JSONL (appended; re-run to resume)")
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
    p.add_argument("--batch-size", type=int, default=32, help="samples judged (and written) per step")
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
                out = judge.judge([r.sample for r in chunk], options)  # type: ignore[misc]
                for rec, v in zip(chunk, out, strict=True):
                    verdicts.append(v)
                    if writer:
                        writer.write(output_record(rec, v, model=judge.name))
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
    return 0
