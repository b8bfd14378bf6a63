"""Training records: a sample plus its teacher judgments, read from JSONL in either dialect.

- JudgeLM-100K: ``question_body``, ``answer1_body``, ``answer2_body``, ``reference`` and the
  teacher's ``text`` (plain prompt) and ``text_w_reference`` (with-reference prompt); a judgment
  equal to ``"error"`` is treated as missing, like the reference code skips it.
- native (``question``, ``answers``, ...; see `judgelm.io`): the judgments in ``judgment`` and
  ``judgment_w_reference`` (``text`` / ``text_w_reference`` are accepted too).

A judgment is the teacher's text exactly as the judge should write it after ``### Response:``:
``"s1 s2\\n<explanation>"`` (N scores for N answers; for single-answer grading either
``"10 7\\n..."`` with the forced gold score or ``"7\\n..."``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.io import read_samples, sample_from_record
from judgelm.types import Sample

__all__ = ["JUDGMENT_KEYS", "JudgeRecord", "read_records", "record_from_dict"]

# (plain, with reference) judgment field names, first match wins.
JUDGMENT_KEYS: tuple[tuple[str, str], ...] = (
    ("judgment", "judgment_w_reference"),
    ("text", "text_w_reference"),
)
_ALL_KEYS = frozenset(k for pair in JUDGMENT_KEYS for k in pair)


@dataclass(frozen=True)
class JudgeRecord:
    """One training record.

    ``sample`` keeps its reference (if any) whichever judgment is used; the training view
    decides whether the prompt shows it. ``judgment`` goes with the plain prompt,
    ``judgment_w_reference`` with the with-reference prompt: never the other way round.
    """

    sample: Sample
    judgment: str | None = None
    judgment_w_reference: str | None = None

    def __post_init__(self) -> None:
        if self.judgment is None and self.judgment_w_reference is None:
            raise InvalidSampleError("no usable teacher judgment", field="text", record=self.sample.id)
        if self.judgment_w_reference is not None and self.sample.reference is None:
            raise InvalidSampleError(
                "a with-reference judgment needs the reference answer",
                field="reference",
                record=self.sample.id,
            )

    @property
    def views(self) -> tuple[bool, ...]:
        """The ``with_reference`` values this record can be trained in."""
        return tuple(flag for flag, j in ((False, self.judgment), (True, self.judgment_w_reference)) if j is not None)

    def judgment_for(self, with_reference: bool) -> str:
        j = self.judgment_w_reference if with_reference else self.judgment
        if j is None:
            view = "with-reference" if with_reference else "plain"
            raise ValueError(f"record {self.sample.id!r} has no {view} judgment")
        return j

    def sample_for(self, with_reference: bool) -> Sample:
        """The sample as the view's prompt shows it: the plain view drops the reference."""
        return self.sample if with_reference else self.sample.replace(reference=None)


def _judgment(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "error":
        return None
    if not isinstance(value, str):
        raise InvalidSampleError(f"must be a string, got {type(value).__name__}", field=key)
    return value


def record_from_dict(obj: Any, *, mode: str | None = None) -> JudgeRecord:
    """A `JudgeRecord` from one JSON record of either dialect (raises `InvalidSampleError`)."""
    sample = sample_from_record(obj, mode=mode)
    plain = ref = None
    try:
        for plain_key, ref_key in JUDGMENT_KEYS:
            if plain_key in obj or ref_key in obj:
                plain, ref = _judgment(obj, plain_key), _judgment(obj, ref_key)
                break
        if ref is not None and sample.reference is None:
            ref = None  # a with-reference judgment whose reference is missing cannot be trained on
        if sample.meta and _ALL_KEYS & set(sample.meta):
            sample = sample.replace(meta={k: v for k, v in sample.meta.items() if k not in _ALL_KEYS})
        return JudgeRecord(sample, plain, ref)
    except InvalidSampleError as e:
        if e.record is None and sample.id is not None:
            raise e.located(str(sample.id)) from None
        raise


def read_records(
    path: str | os.PathLike[str], *, mode: str | None = None
) -> Iterator[JudgeRecord | InvalidSampleError]:
    """Read a JSONL file of training records; yields a `JudgeRecord` per good line and the
    `InvalidSampleError` per bad one, naming the record (``file.jsonl:LINE (id ...)``) and the
    field, so callers can count and go on."""
    for rec in read_samples(path, mode=mode):
        if rec.error is not None:
            yield rec.error
            continue
        try:
            record = record_from_dict(rec.raw, mode=mode)
            sample = record.sample if record.sample.id is not None else record.sample.replace(id=rec.key)
            yield JudgeRecord(sample, record.judgment, record.judgment_w_reference)
        except InvalidSampleError as e:
            yield rec.locate(e)
