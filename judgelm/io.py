"""JSONL in and out, built so that a batch job never loses or repeats work.

Input records are read in two dialects, detected per record:

- native: ``{"id", "mode", "question", "answers": [...], "reference", "gold", "conversations",
  "images", "rubric", "input", "scale"}`` (image paths relative to the JSONL file);
- JudgeLM: ``question_id``, ``question_body``, ``answer1_body``, ``answer2_body``, ...,
  ``reference`` (``{"text": ...}`` or a string);
- Prometheus / PandaLM: ``instruction`` with ``response`` (absolute grading), ``response_A`` and
  ``response_B`` (relative), or ``response1`` and ``response2`` (PandaLM); ``reference_answer``,
  ``rubric``, ``input`` as upstream names them.

A bad line becomes a `Record` with an ``error`` naming its line and field; the others go on.
Output is appended one whole line per ``write`` call (``O_APPEND``), so a killed job leaves at
worst one torn last line, which `ResultWriter` drops on reopening; ids already written are
skipped, so re-running the same command resumes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.types import Sample, Verdict

__all__ = [
    "Record",
    "ResultWriter",
    "output_record",
    "read_samples",
    "sample_from_record",
    "write_results",
]

_NATIVE_FIELDS = (
    "id",
    "mode",
    "question",
    "answers",
    "reference",
    "gold",
    "conversations",
    "images",
    "rubric",
    "input",
    "scale",
)
# upstream Prometheus / PandaLM field names: answers in these keys, in this order
_UPSTREAM_ANSWERS = (("response",), ("response_A", "response_B"), ("response1", "response2"))
_UPSTREAM_FIELDS = ("instruction", "reference_answer", *(k for keys in _UPSTREAM_ANSWERS for k in keys))


@dataclass(frozen=True)
class Record:
    """One input line: its sample, or the error that kept it from becoming one."""

    line: int
    key: str
    raw: Any
    sample: Sample | None = None
    error: InvalidSampleError | None = None


def _reference(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return value["text"]
    raise InvalidSampleError("must be a string or {'text': ...}", field="reference")


def _judgelm_answers(obj: Mapping[str, Any]) -> tuple[str, ...]:
    answers, k = [], 1
    while f"answer{k}_body" in obj:
        answers.append(obj[f"answer{k}_body"])
        k += 1
    if not answers:
        raise InvalidSampleError("a JudgeLM record needs answer1_body, answer2_body, ...", field="answer1_body")
    for i, a in enumerate(answers, start=1):
        if not isinstance(a, str):
            raise InvalidSampleError(f"must be a string, got {type(a).__name__}", field=f"answer{i}_body")
    return tuple(answers)


def sample_from_record(obj: Any, *, mode: str | None = None, base_dir: Path | None = None) -> Sample:
    """A `Sample` from one JSON record of either dialect (raises `InvalidSampleError`)."""
    if not isinstance(obj, Mapping):
        raise InvalidSampleError(f"a record must be a JSON object, got {type(obj).__name__}")
    if "question_body" in obj:  # JudgeLM dialect
        rid = obj.get("question_id", obj.get("id"))
        return Sample(
            question=obj["question_body"],
            answers=_judgelm_answers(obj),
            reference=_reference(obj.get("reference")),
            id=None if rid is None else str(rid),
            mode=mode or obj.get("mode"),
            meta={k: v for k, v in obj.items() if k.endswith("_model_id")},
        )
    if "instruction" in obj and "question" not in obj:  # Prometheus / PandaLM field names
        return _upstream_sample(obj, mode)
    if "question" not in obj and "conversations" not in obj:
        raise InvalidSampleError(
            "needs 'question' (native), 'question_body' (JudgeLM) or 'instruction' (Prometheus, PandaLM)",
            field="question",
        )
    answers = obj.get("answers", [])
    if isinstance(answers, str):
        raise InvalidSampleError("must be a list of strings, not a string", field="answers")
    images = obj.get("images") or ()
    if isinstance(images, str):
        images = (images,)
    if base_dir is not None:
        images = tuple(str(base_dir / p) if isinstance(p, str) and not os.path.isabs(p) else p for p in images)
    return Sample(
        question=obj.get("question", ""),
        answers=answers,
        reference=_reference(obj.get("reference")),
        gold=obj.get("gold"),
        conversations=obj.get("conversations") or (),
        images=images,
        id=None if obj.get("id") is None else str(obj["id"]),
        mode=mode or obj.get("mode"),
        meta={k: v for k, v in obj.items() if k not in _NATIVE_FIELDS},
        rubric=obj.get("rubric"),
        input=obj.get("input"),
        scale=obj.get("scale"),
    )


def _upstream_sample(obj: Mapping[str, Any], mode: str | None) -> Sample:
    for keys in _UPSTREAM_ANSWERS:
        if all(k in obj for k in keys):
            answers = tuple(obj[k] for k in keys)
            break
    else:
        raise InvalidSampleError(
            "needs 'response', 'response_A'/'response_B' or 'response1'/'response2'", field="response"
        )
    rid = obj.get("id", obj.get("idx"))
    return Sample(
        question=obj["instruction"],
        answers=answers,
        reference=_reference(obj.get("reference_answer", obj.get("reference"))),
        id=None if rid is None else str(rid),
        mode=mode or obj.get("mode"),
        meta={k: v for k, v in obj.items() if k not in _NATIVE_FIELDS + _UPSTREAM_FIELDS},
        rubric=obj.get("rubric"),
        input=obj.get("input") or None,
        scale=obj.get("scale"),
    )


def read_samples(path: str | os.PathLike[str], *, mode: str | None = None) -> Iterator[Record]:
    """Read a JSONL file of samples; yields one `Record` per non-blank line, errors included.

    Each record's ``key`` is its id (``id``, ``question_id`` or ``idx``), else ``line-N``; a repeated key
    is an error on the later line."""
    path = Path(path)
    seen: set[str] = set()
    with path.open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{n}"
            raw: Any = None
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                yield Record(n, f"line-{n}", None, error=InvalidSampleError(f"not valid JSON ({e.msg})", record=where))
                continue
            rid = raw.get("id", raw.get("question_id", raw.get("idx"))) if isinstance(raw, Mapping) else None
            key = f"line-{n}" if rid is None or isinstance(rid, dict | list) else str(rid)
            try:
                sample = sample_from_record(raw, mode=mode, base_dir=path.parent)
                if key in seen:
                    raise InvalidSampleError(f"duplicate id {key!r}", field="id")
                seen.add(key)
                if sample.id is None:
                    sample = sample.replace(id=key)
                yield Record(n, key, raw, sample=sample)
            except InvalidSampleError as e:
                yield Record(n, key if key not in seen else f"{key}#line-{n}", raw, error=e.located(where))


def output_record(record: Record, verdict: Verdict, *, model: str | None = None) -> dict[str, Any]:
    """The output line for a judged record: the input record, plus the verdict and the reference
    code's ``pred_*`` fields (``pred_text`` is the judge's raw text)."""
    base = dict(record.raw) if isinstance(record.raw, Mapping) else {}
    base.update(
        {
            "id": record.key,
            "verdict": verdict.to_dict(),
            "pred_id": record.key,
            "pred_text": verdict.text,
            "pred_model_id": model or verdict.provenance.model,
            "tstamp": time.time(),
        }
    )
    return base


def error_record(record: Record) -> dict[str, Any]:
    """The output line for a record that could not be judged (it keeps the input)."""
    err = record.error
    return {
        "id": record.key,
        "line": record.line,
        "error": {
            "message": err.detail if err else "unknown",
            "field": err.field if err else None,
            "record": err.record if err else None,
        },
        "input": record.raw,
    }


class ResultWriter:
    """Append-only JSONL output that resumes: `done` holds the keys already written."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.done: set[str] = set()
        self.counts = {"written": 0, "errors": 0}
        if self.path.exists():
            self._recover()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self) -> None:
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1  # a torn last line (no newline) is dropped
        if keep < len(data):
            with self.path.open("r+b") as f:
                f.truncate(keep)
        for line in data[:keep].splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "id" in obj:
                self.done.add(str(obj["id"]))

    def write(self, obj: Mapping[str, Any]) -> None:
        line = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:  # one write on an O_APPEND fd (a loop only if the OS writes partially)
            view = view[os.write(self._fd, view) :]
        self.done.add(str(obj["id"]))
        self.counts["errors" if "error" in obj else "written"] += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_results(path: str | os.PathLike[str], records: Iterable[Record], verdicts: Iterable[Verdict]) -> None:
    """Write judged records (skipping keys already in the file)."""
    with ResultWriter(path) as w:
        for rec, v in zip(records, verdicts, strict=True):
            if rec.key not in w.done:
                w.write(output_record(rec, v))
