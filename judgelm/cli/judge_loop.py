"""The judging loop of `judgelm judge`: verdicts stream out as they are made (`Judge.stream`:
the first after one sample, then chunks of about two seconds' work), each written to the output
file and printed as a table row at once, with a progress bar counting samples. An interrupted
run keeps every verdict it wrote; re-running the command resumes after them."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from judgelm.cli.verdict_table import VerdictTable
from judgelm.io import Record, ResultWriter, output_record
from judgelm.judge import Judge
from judgelm.options import JudgeOptions
from judgelm.types import Verdict

__all__ = ["judge_records", "table_for"]


def table_for(records: Sequence[Record], options: JudgeOptions) -> VerdictTable:
    """A table whose columns fit ``records`` (ids, formats and answer counts known up front)."""
    from judgelm.formats import infer_mode

    samples = [r.sample for r in records if r.sample is not None]
    return VerdictTable(
        [r.key for r in records],
        [options.mode or infer_mode(s) for s in samples],
        max((s.n_candidates for s in samples), default=1),
        swap=options.swap,
    )


def judge_records(
    judge: Judge,
    records: Sequence[Record],
    options: JudgeOptions,
    *,
    writer: ResultWriter | None = None,
    table: VerdictTable | None = None,
    max_chunk: int = 32,
    progress: bool = True,
) -> list[Verdict]:
    """Judge ``records`` (valid samples), writing and printing each verdict as it is made."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), unit="sample", desc="judging", file=sys.stderr, dynamic_ncols=True)
        if table is not None:  # rows above the bar, not through it
            table.write = lambda line: bar.write(line, file=sys.stdout)
    verdicts: list[Verdict] = []
    try:
        for index, verdict in judge.stream([r.sample for r in records], options, max_chunk=max_chunk):  # type: ignore[misc]
            record = records[index]
            verdicts.append(verdict)
            if writer is not None:
                writer.write(output_record(record, verdict, model=judge.name))
            if table is not None:
                table.add(record.key, verdict)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return verdicts
