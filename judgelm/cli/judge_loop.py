"""The judging loop of `judgelm judge`: verdicts stream out as they are made (`Judge.stream`:
the first after one sample, then chunks of about two seconds' work), each written to the output
file and printed as a table row at once, with a progress bar counting samples. An interrupted
run keeps every verdict it wrote; re-running the command resumes after them.

A sample that breaks the judge (a bug, not a bad record: those are refused before) becomes its
record's error line, so the job never stops at the same record on every re-run; a judge that
fails on every sample alone stops the job (a re-run resumes)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from judgelm.cli.verdict_table import VerdictTable
from judgelm.errors import InvalidSampleError
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
    on_failure: Callable[[Record, InvalidSampleError], None] | None = None,
) -> list[Verdict]:
    """Judge ``records`` (valid samples), writing and printing each verdict as it is made.

    When judging raises, the records not yet judged go one at a time until one succeeds (then
    streaming resumes after it); each that fails alone goes to ``on_failure`` (re-raised without
    one). If the next ``max_chunk`` all fail alone, the judge itself is failing: that is raised."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), unit="sample", desc="judging", file=sys.stderr, dynamic_ncols=True)
        if table is not None:  # rows above the bar, not through it
            table.write = lambda line: bar.write(line, file=sys.stdout)
    verdicts: list[Verdict] = []

    def emit(record: Record, verdict: Verdict) -> None:
        verdicts.append(verdict)
        if writer is not None:
            writer.write(output_record(record, verdict, model=judge.name), digest=record.digest)
        if table is not None:
            table.add(record.key, verdict)
        if bar is not None:
            bar.update(1)

    done = 0  # records[:done] are written (the stream yields in input order)
    try:
        while done < len(records):
            rest = records[done:]
            stream = judge.stream([r.sample for r in rest], options, max_chunk=max_chunk)  # type: ignore[misc]
            while True:
                try:  # only judging is retried; writing and printing errors stop the job
                    index, verdict = next(stream)
                except StopIteration:
                    break
                except Exception:
                    done += _one_at_a_time(judge, records[done:], options, max_chunk, emit, on_failure)
                    break
                emit(rest[index], verdict)
                done += 1
    finally:
        if bar is not None:
            bar.close()
    return verdicts


def _one_at_a_time(
    judge: Judge,
    records: Sequence[Record],
    options: JudgeOptions,
    limit: int,
    emit: Callable[[Record, Verdict], None],
    on_failure: Callable[[Record, InvalidSampleError], None] | None,
) -> int:
    """Judge ``records`` alone until one succeeds; how many were handled. Raises the failure when
    the first ``limit`` (or all) fail alone, or when there is no ``on_failure``."""
    failures: list[tuple[Record, Exception]] = []
    for record in records:
        try:
            (verdict,) = judge.judge([record.sample], options)  # type: ignore[list-item]
        except Exception as e:
            failures.append((record, e))
            if on_failure is None or len(failures) >= min(limit, len(records)):
                raise
            continue
        for bad, e in failures:
            on_failure(bad, _as_record_error(e))
        emit(record, verdict)
        return len(failures) + 1
    raise AssertionError("unreachable: the last failure raised")


def _as_record_error(e: Exception) -> InvalidSampleError:
    return InvalidSampleError(f"judging failed ({type(e).__name__}: {e}); a judgelm bug, please report it")
