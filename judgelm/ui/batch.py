"""The batch tab: an uploaded JSONL (native or JudgeLM records, as ``judgelm judge`` reads them)
judged through the server's micro-batcher, progress as each model call finishes, the results
file ``judgelm judge -o`` would write, and the ``judgelm eval`` report when records carry labels.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.eval.evaluate import evaluate_labels
from judgelm.eval.judging import order_pair
from judgelm.eval.labelled import labelled_from_record
from judgelm.eval.render import render_eval
from judgelm.integrations.records import check_sample
from judgelm.io import Record, error_record, output_record, read_samples
from judgelm.options import JudgeOptions
from judgelm.serve.batcher import MicroBatcher
from judgelm.types import Verdict

__all__ = ["TRUTH_FIELDS", "BatchJob", "eval_report", "read_upload", "run_batch"]

# Fields that carry a ground truth (`judgelm.eval.labelled.labelled_from_record` reads them).
TRUTH_FIELDS = ("label", "text", "score", "label_w_reference", "text_w_reference", "score_w_reference")


@dataclass(frozen=True)
class BatchJob:
    """A finished batch, kept for download: its results file (the lines ``judgelm judge -o``
    writes, in input order) and its report."""

    id: str
    name: str
    results: bytes
    report: str | None


def _safe_name(name: str) -> str:
    """The upload's name as a bare file name (it only labels messages and downloads)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "").name).strip("._")[:80]
    return stem or "upload.jsonl"


def _checked(rec: Record, name: str, mode: str | None) -> Record:
    """``rec``, or an error record when it names images (file paths on the server's side) or does
    not fit its format: named by line and field before any model time is spent."""
    if rec.sample is None:
        return rec
    try:
        if isinstance(rec.raw, Mapping) and rec.raw.get("images"):
            raise InvalidSampleError(
                "image records name files, which the page may not read: judge images in the Judge tab",
                field="images",
            )
        check_sample(rec.sample, mode)
    except InvalidSampleError as e:
        return Record(rec.line, rec.key, rec.raw, error=e.located(f"{name}:{rec.line}"))
    return rec


def read_upload(text: str, name: str, mode: str | None) -> list[Record]:
    """Every non-blank line of an uploaded JSONL as a `Record` (errors included), read by
    `judgelm.io.read_samples` itself (keys, duplicate ids, dialects)."""
    name = _safe_name(name)
    with tempfile.TemporaryDirectory(prefix="judgelm-ui-") as folder:
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8")
        return [_checked(r, name, mode) for r in read_samples(path, mode=mode)]


def eval_report(
    judged: Sequence[tuple[Record, Verdict | None]], *, swap: bool, title: str, resamples: int = 1000
) -> str | None:
    """The ``judgelm eval`` Markdown report of the pairwise records that carry a truth, or None.

    A record the judge abstained on, or that could not be judged (bad input), counts as
    ``judgelm eval`` counts it: a failed prediction, a tie in the reference numbers."""
    truth, pred, swapped, reasons = [], [], [], []
    for rec, verdict in judged:
        if not isinstance(rec.raw, Mapping) or not any(k in rec.raw for k in TRUTH_FIELDS):
            continue
        if verdict is not None and verdict.scores is not None and len(verdict.scores) != 2:
            continue  # graded or ranked: no pairwise label to agree with
        try:
            item = labelled_from_record(rec.raw)
        except InvalidSampleError:
            continue
        with_reference = verdict.provenance.with_reference if verdict is not None else False
        truth.append(item.truth(with_reference=with_reference))
        normal, other = order_pair(verdict) if verdict is not None else (None, None)
        pred.append(normal)
        swapped.append(other)
        reasons.append(None if normal is not None else (verdict.reason_code if verdict else "invalid_input"))
    if not truth:
        return None
    result = evaluate_labels(truth, pred, swapped if swap else None, reasons=reasons, resamples=resamples)
    return render_eval(result, "markdown", title=title)


def _row(rec: Record, verdict: Verdict | None) -> dict[str, Any]:
    if verdict is None:
        return {"key": rec.key, "line": rec.line, "error": error_record(rec)["error"]}
    return {"key": rec.key, "line": rec.line, "verdict": verdict.to_dict()}


async def run_batch(
    records: Sequence[Record],
    options: JudgeOptions,
    batcher: MicroBatcher,
    *,
    job_id: str,
    name: str,
    model: str,
    chunk: int,
) -> AsyncIterator[dict[str, Any] | BatchJob]:
    """Judge ``records`` ``chunk`` samples per `MicroBatcher.submit` (other requests share the
    model meanwhile), yielding progress events; the last item is the finished `BatchJob`."""
    good = [r for r in records if r.sample is not None]
    verdicts: dict[int, Verdict] = {}
    bad_rows = [_row(r, None) for r in records if r.sample is None]
    yield {"event": "start", "total": len(records), "bad": len(bad_rows), "rows": bad_rows}
    done = len(bad_rows)
    for i in range(0, len(good), chunk):
        part = good[i : i + chunk]
        out = await batcher.submit([r.sample for r in part], options)  # type: ignore[misc]
        for rec, v in zip(part, out, strict=True):
            verdicts[rec.line] = v
        done += len(part)
        yield {"event": "rows", "done": done, "total": len(records), "rows": [_row(r, verdicts[r.line]) for r in part]}
    judged = [(r, verdicts.get(r.line)) for r in records]
    lines = (error_record(r) if v is None else output_record(r, v, model=model) for r, v in judged)
    results = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
    report = eval_report(judged, swap=options.swap, title=f"judgelm eval: {_safe_name(name)} judged by {model}")
    yield BatchJob(job_id, _safe_name(name), results, report)
