"""MM-Vet: grading a multimodal model's answers against the ground truth, in the reference code's
text-only mode (spec §1.5; the judge never sees the image).

Conversion: the ground-truth file is a JSON object keyed ``v1_0``, ``v1_1``, ... with
``imagename``, ``capability`` (a list such as ``["rec", "ocr"]``), ``question`` and ``answer``; the
predictions file is a JSON object with the same keys holding the model's answer strings. Each key
becomes an ``mmvet``-mode `Sample`: ``reference`` = the ground truth (``<OR>``/``<AND>`` kept; the
format derives the gold answer), ``answers`` = (prediction,), ``meta`` = capability and image name.
A key without a prediction is an error: a partial run would inflate the score.

Optional ``grades``: a JSON object keyed the same, a truth grade in [0, 1] per key (a number, or
an object with ``score``), e.g. the official GPT-4 grader's; `run_benchmark` then reports how far
the judge's grades are from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.eval.benchmarks._files import read_json
from judgelm.eval.labelled import Benchmark, Labelled
from judgelm.types import Sample

__all__ = ["load_mmvet"]


def _object(path: str | os.PathLike[str], what: str) -> Mapping[str, Any]:
    data = read_json(path)
    if not isinstance(data, Mapping):
        raise InvalidSampleError(f"the MM-Vet {what} file is a JSON object keyed by id (v1_0, ...)")
    return data


def _grade(value: Any, key: str) -> float:
    if isinstance(value, Mapping):
        value = value.get("score")
    try:
        grade = float(value)
    except (TypeError, ValueError):
        raise InvalidSampleError(
            f"a grade must be a number in [0, 1], got {value!r}", record=key
        ) from None
    if not 0.0 <= grade <= 1.0:
        raise InvalidSampleError(f"a grade must be in [0, 1], got {grade}", record=key)
    return grade


def load_mmvet(
    ground_truth: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    *,
    grades: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> Benchmark:
    """Read MM-Vet ground truth + one model's predictions (+ optional truth grades)."""
    gt = _object(ground_truth, "ground-truth")
    preds = _object(predictions, "predictions")
    truth = None if grades is None else _object(grades, "grades")
    keys = list(gt)[:limit] if limit is not None else list(gt)
    missing = [k for k in keys if not isinstance(preds.get(k), str)]
    if missing:
        raise InvalidSampleError(
            f"{len(missing)} ground-truth keys have no prediction string (first: {missing[0]!r})",
            field="predictions",
        )
    items = []
    for key in keys:
        rec = gt[key]
        try:
            if not isinstance(rec, Mapping):
                raise InvalidSampleError("must be an object")
            for f in ("question", "answer"):
                if not isinstance(rec.get(f), str):
                    raise InvalidSampleError("must be a string", field=f)
            caps = rec.get("capability") or []
            caps = [caps] if isinstance(caps, str) else list(caps)
            sample = Sample(
                question=rec["question"],
                answers=(preds[key],),
                reference=rec["answer"],
                id=str(key),
                mode="mmvet",
                meta={"capability": tuple(caps), "imagename": rec.get("imagename")},
            )
            grade = None if truth is None or key not in truth else _grade(truth[key], key)
        except InvalidSampleError as e:
            raise e.located(str(key)) from None
        items.append(Labelled(sample, grade=grade))
    notes = ["text-only grading (the judge does not see the image), as in the reference code"]
    if truth is not None:
        notes.append(
            f"truth grades for {sum(1 for i in items if i.grade is not None)} of {len(items)} items"
        )
    return Benchmark("mmvet", tuple(items), task="grading", notes=tuple(notes))
