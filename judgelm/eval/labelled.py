"""Samples with their ground truth: what benchmarks are made of and what audits consume.

The truth of a pairwise item is a label, 1 (answer 1 better), 0 (tie) or -1 (answer 2 better),
read from teacher scores with the reference rules (`truth_label`) or given directly (human votes).
``None`` means no usable truth: such items are judged but left out of every agreement number,
as the reference drops ground-truth failures.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from judgelm.errors import InvalidSampleError
from judgelm.eval.metrics import truth_label
from judgelm.formats.parsing import parse_scores
from judgelm.io import sample_from_record
from judgelm.types import Sample

__all__ = ["Benchmark", "Labelled", "label_from_value", "read_labelled", "truth_scores"]

_WINNER = {
    "model_a": 1,
    "a": 1,
    "answer1": 1,
    "answer_1": 1,
    "model_b": -1,
    "b": -1,
    "answer2": -1,
    "answer_2": -1,
}


@dataclass(frozen=True)
class Labelled:
    """A sample and its ground truth.

    - ``label`` / ``scores``: the truth for the prompt without a reference (``scores`` when it is a
      teacher judgment; ``label`` is derived from them when not given).
    - ``label_with_reference`` / ``scores_with_reference``: the truth of a teacher that saw the
      reference (JudgeLM val); ``has_truth_with_reference`` says one was supplied, even if it failed
      to parse (then the item is dropped from with-reference numbers, not given the other truth).
    - ``grade``: a truth grade in [0, 1] for single-answer sets (MM-Vet).
    """

    sample: Sample
    label: int | None = None
    scores: tuple[float, ...] | None = None
    label_with_reference: int | None = None
    scores_with_reference: tuple[float, ...] | None = None
    has_truth_with_reference: bool = False
    grade: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("scores", "scores_with_reference"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, tuple(float(v) for v in value))
        if self.label is None and self.scores is not None:
            set_(self, "label", truth_label(self.scores))
        if self.label_with_reference is None and self.scores_with_reference is not None:
            set_(self, "label_with_reference", truth_label(self.scores_with_reference))
        if self.label_with_reference is not None or self.scores_with_reference is not None:
            set_(self, "has_truth_with_reference", True)
        for name in ("label", "label_with_reference"):
            if getattr(self, name) not in (None, 1, 0, -1):
                raise InvalidSampleError(
                    f"must be 1, 0, -1 or null, got {getattr(self, name)!r}",
                    field=name,
                    record=self.id,
                )

    @property
    def id(self) -> str | None:
        return self.sample.id

    def truth(self, with_reference: bool = False) -> int | None:
        """The label to score a verdict against: the with-reference truth for a with-reference
        prompt when one was supplied, else the plain one."""
        if with_reference and self.has_truth_with_reference:
            return self.label_with_reference
        return self.label


@dataclass(frozen=True)
class Benchmark:
    """A labelled set, read from the user's files by one of `judgelm.eval.benchmarks`.

    ``task``: ``pairwise`` (agreement with truth labels) or ``grading`` (one answer graded, MM-Vet).
    ``notes``: what the conversion did that a reader of the numbers should know.
    """

    name: str
    items: tuple[Labelled, ...]
    task: Literal["pairwise", "grading"] = "pairwise"
    notes: tuple[str, ...] = field(default=())

    @property
    def has_reference(self) -> bool:
        return any(i.sample.reference is not None for i in self.items)

    def __len__(self) -> int:
        return len(self.items)


def label_from_value(value: Any) -> int | None:
    """A truth label from 1 / 0 / -1, or a winner string (``model_a``/``a``/``answer1``,
    ``model_b``/``b``/``answer2``, anything starting with ``tie``); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidSampleError(
            f"a label must be 1, 0, -1 or a winner name, got {value!r}", field="label"
        )
    if isinstance(value, int | float) and value in (1, 0, -1):
        return int(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v.startswith("tie"):
            return 0
        if v in _WINNER:
            return _WINNER[v]
    raise InvalidSampleError(
        f"a label must be 1, 0, -1 or a winner name, got {value!r}", field="label"
    )


def truth_scores(
    obj: Mapping[str, Any], text_field: str, score_field: str
) -> tuple[bool, tuple[float, ...] | None]:
    """(present, scores) of a teacher judgment: ``text_field`` read with the reference parser
    (the reference scores its truth from the text), else ``score_field`` (a pair)."""
    if isinstance(obj.get(text_field), str):
        return True, parse_scores(obj[text_field], 2, official=True)
    value = obj.get(score_field)
    if value is None:
        return False, None
    try:
        scores = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return True, None
    return True, scores if len(scores) == 2 else None


def labelled_from_record(obj: Mapping[str, Any], *, base_dir: Path | None = None) -> Labelled:
    """One labelled record: a sample (native or JudgeLM dialect, `judgelm.io`) plus its truth:
    ``label`` (1/0/-1 or a winner name), else a teacher judgment (``text``/``score``), and
    optionally ``text_w_reference``/``score_w_reference``."""
    sample = sample_from_record(obj, base_dir=base_dir)
    has, scores = truth_scores(obj, "text", "score")
    has_ref, scores_ref = truth_scores(obj, "text_w_reference", "score_w_reference")
    label = (
        label_from_value(obj.get("label"))
        if "label" in obj
        else (truth_label(scores) if has else None)
    )
    label_ref = (
        label_from_value(obj["label_w_reference"])
        if "label_w_reference" in obj
        else (truth_label(scores_ref) if has_ref else None)
    )
    return Labelled(
        sample,
        label=label,
        scores=scores if "label" not in obj else None,
        label_with_reference=label_ref,
        scores_with_reference=scores_ref,
        has_truth_with_reference=has_ref or "label_w_reference" in obj,
    )


def read_labelled(path: str | os.PathLike[str], *, limit: int | None = None) -> Benchmark:
    """A user's labelled JSONL (see `labelled_from_record`) as a `Benchmark` named after the file.
    A bad record raises `InvalidSampleError` naming its line: audits need the whole set."""
    path = Path(path)
    items: list[Labelled] = []
    seen: set[str] = set()
    with path.open("r", encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            if limit is not None and len(items) >= limit:
                break
            where = f"{path.name}:{n}"
            try:
                obj = json.loads(text)
                item = labelled_from_record(obj, base_dir=path.parent)
            except json.JSONDecodeError as e:
                raise InvalidSampleError(f"not valid JSON ({e.msg})", record=where) from None
            except InvalidSampleError as e:
                raise e.located(where) from None
            key = item.id or f"line-{n}"
            if key in seen:
                raise InvalidSampleError(f"duplicate id {key!r}", field="id", record=where)
            seen.add(key)
            if item.id is None:
                item = dataclasses.replace(item, sample=item.sample.replace(id=key))
            items.append(item)
    return Benchmark(path.stem, tuple(items))
