"""The PandaLM test set (``testset-v1.json``): one JSON array of human-annotated pairs.

Conversion:

- question: ``instruction``; ``input`` becomes `Sample.input` unless it is missing, ``null``,
  ``NaN`` (some copies of the file have NaN literals) or blank. The ``pandalm`` format shows it
  as ``### Input``; JudgeLM formats read ``instruction + "\\n" + input`` (the Alpaca convention
  the set's instructions were written for, `pandalm_question`). Answers: ``response1``,
  ``response2``. No reference. ``mode`` (default ``pairwise``) is the samples' format.
- truth: the majority vote of ``annotator1..3`` (0 tie, 1 first better, 2 second better) mapped to
  labels 0, 1, -1. With no majority (three different votes, or two that disagree when one is
  missing) ``no_majority="tie"`` (the default) makes the item a tie — the annotators did not agree
  that either answer is better — and ``"drop"`` leaves it out of the numbers; the count is noted.
- id: the record's ``idx`` or ``id`` when present, else its position (0-based).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any, Literal

from judgelm.errors import InvalidSampleError
from judgelm.eval.benchmarks._files import read_json
from judgelm.eval.labelled import Benchmark, Labelled
from judgelm.types import Sample

__all__ = ["load_pandalm", "majority_label", "pandalm_question"]

_VOTE_LABEL = {0: 0, 1: 1, 2: -1}


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def pandalm_question(instruction: str, input_: Any) -> str:
    """The question a judge sees for a PandaLM record (see the module docstring)."""
    if _blank(input_):
        return instruction
    return f"{instruction}\n{input_}"


def majority_label(votes: list[Any]) -> int | None:
    """The label of the strict majority of the (non-missing) votes, ``None`` without one."""
    cast = []
    for v in votes:
        if _blank(v):
            continue
        try:
            vote = int(v)
        except (TypeError, ValueError):
            raise InvalidSampleError(
                f"an annotation must be 0, 1 or 2, got {v!r}", field="annotator"
            ) from None
        if vote not in _VOTE_LABEL:
            raise InvalidSampleError(
                f"an annotation must be 0, 1 or 2, got {v!r}", field="annotator"
            )
        cast.append(vote)
    if not cast:
        return None
    vote, count = Counter(cast).most_common(1)[0]
    return _VOTE_LABEL[vote] if 2 * count > len(cast) else None


def load_pandalm(
    path: str | os.PathLike[str],
    *,
    no_majority: Literal["tie", "drop"] = "tie",
    limit: int | None = None,
    mode: str = "pairwise",
) -> Benchmark:
    """Read the PandaLM test set (see the module docstring for the conversion)."""
    if no_majority not in ("tie", "drop"):
        raise ValueError(f"no_majority must be 'tie' or 'drop', got {no_majority!r}")
    data = read_json(path)
    if not isinstance(data, list):
        raise InvalidSampleError("the PandaLM test set is a JSON array of records")
    data = data[:limit] if limit is not None else data
    items, undecided = [], 0
    for k, obj in enumerate(data):
        where = f"{os.path.basename(path)}[{k}]"
        try:
            if not isinstance(obj, dict):
                raise InvalidSampleError("a record must be a JSON object")
            for f in ("instruction", "response1", "response2"):
                if not isinstance(obj.get(f), str):
                    raise InvalidSampleError("must be a string", field=f)
            rid = obj.get("idx", obj.get("id", k))
            input_ = obj.get("input")
            if not _blank(input_) and not isinstance(input_, str):
                raise InvalidSampleError(f"must be a string, got {type(input_).__name__}", field="input")
            sample = Sample(
                question=obj["instruction"],
                answers=(obj["response1"], obj["response2"]),
                id=str(rid),
                mode=mode,
                meta={"source": "pandalm"},
                input=None if _blank(input_) else input_,
            )
            votes = [obj.get(f"annotator{a}") for a in (1, 2, 3)]
            label = majority_label(votes)
        except InvalidSampleError as e:
            raise e.located(where) from None
        if label is None and any(not _blank(v) for v in votes):
            undecided += 1
            label = 0 if no_majority == "tie" else None
        items.append(Labelled(sample, label=label))
    notes = ["question = instruction, or instruction + '\\n' + input when input is not empty/NaN"]
    if undecided:
        action = "counted as ties" if no_majority == "tie" else "dropped"
        notes.append(f"{undecided} items without an annotator majority: {action}")
    return Benchmark("pandalm", tuple(items), notes=tuple(notes))
