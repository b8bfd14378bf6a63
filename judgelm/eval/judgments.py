"""Reading judgment files for ``judgelm eval`` and pairing their records.

A *judgment* is one record's score pair, read from either kind of file:

- judgelm's own output (a ``verdict`` object, see `judgelm.io.output_record`): scores in the
  original answer order. The normal-order scores are ``order_scores[0]`` (the verdict's
  ``scores`` are an average when it was judged with ``--swap``); with two orders,
  ``order_scores[1]`` is the swapped judgment, turned back into the slot order of its prompt so it
  can stand in for a reference ``--swapped`` file. An abstained verdict is a failure with its
  ``reason_code``; an error line (a record judgelm could not judge) is an ``invalid_input`` failure.
- reference format: ``pred_text`` (predictions) or ``text`` (teacher judgments, "s1 s2\\n...")
  read with the reference parser; ``score`` ([s1, s2]) when there is no text. A reference-format
  ``--swapped`` file holds the scores as written for the swapped prompt (slot order).

Records pair by id (``id``, else ``question_id``) or, as the reference does, by line position.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from judgelm.errors import InvalidSampleError
from judgelm.eval.evaluate import EvalResult, evaluate
from judgelm.formats.parsing import parse_scores

__all__ = [
    "Aligned",
    "Judgment",
    "align",
    "evaluate_files",
    "judgment_from_record",
    "read_judgments",
]

Role = Literal["truth", "pred"]
Alignment = Literal["id", "position"]


@dataclass(frozen=True)
class Judgment:
    """One record of a judgment file.

    ``scores``: the normal-order pair (original answer order), ``None`` when there is none to read.
    ``swapped``: for judgelm output judged in both orders, the swapped-order pair in slot order.
    ``reason``: why ``scores`` is missing (an abstain reason code, or ``"unparseable"``).
    """

    key: str
    line: int
    scores: tuple[float, ...] | None
    swapped: tuple[float, ...] | None = None
    has_swapped: bool = False
    reason: str | None = None


def _tuple(x: Any) -> tuple[float, ...] | None:
    return None if x is None else tuple(float(v) for v in x)


def _from_verdict(
    v: Mapping[str, Any],
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None, bool, str | None]:
    orders = v.get("order_scores") or []
    normal = (
        _tuple(orders[0]) if orders else (None if v.get("abstained") else _tuple(v.get("scores")))
    )
    swapped, has = None, len(orders) >= 2
    if has and orders[1] is not None:
        # original answer order -> slot order of the swapped prompt (pairs: reversed)
        swapped = tuple(reversed(_tuple(orders[1])))  # type: ignore[arg-type]
    reason = None
    if normal is None:
        reason = v.get("reason_code") or "unparseable"
    return normal, swapped, has, reason


def judgment_from_record(
    obj: Mapping[str, Any], *, role: Role, field: str | None = None, key: str, line: int
) -> Judgment:
    """Read one JSON record (see the module docstring for the fields looked at)."""
    if "error" in obj and "verdict" not in obj and field is None:
        return Judgment(key, line, None, reason="invalid_input")
    if field is None:
        order = ("text", "score", "verdict") if role == "truth" else ("verdict", "pred_text")
        field = next((f for f in order if f in obj), None)
        if field is None:
            raise InvalidSampleError(
                f"no judgment field; looked for {', '.join(order)}", record=f"line {line}"
            )
    value = obj.get(field)
    if isinstance(value, Mapping):
        normal, swapped, has, reason = _from_verdict(value)
        return Judgment(key, line, normal, swapped, has, reason)
    if isinstance(value, str):
        scores = parse_scores(value, 2, official=True)  # exactly the reference parse_score
        return Judgment(key, line, scores, reason=None if scores is not None else "unparseable")
    if isinstance(value, list | tuple):
        try:
            return Judgment(key, line, _tuple(value))
        except (TypeError, ValueError):
            return Judgment(key, line, None, reason="unparseable")
    if value is None:
        return Judgment(key, line, None, reason="unparseable")
    raise InvalidSampleError(
        f"cannot read a judgment from a {type(value).__name__}", field=field, record=f"line {line}"
    )


def _key(obj: Mapping[str, Any], line: int) -> str:
    for name in ("id", "question_id"):
        if obj.get(name) is not None:
            return str(obj[name])
    return f"line-{line}"


def read_judgments(
    path: str | os.PathLike[str], *, role: Role, field: str | None = None
) -> list[Judgment]:
    """All judgments of a JSONL file, in file order (blank lines skipped)."""
    path = Path(path)
    out: list[Judgment] = []
    with path.open("r", encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise InvalidSampleError(
                    f"not valid JSON ({e.msg})", record=f"{path.name}:{n}"
                ) from None
            if not isinstance(obj, Mapping):
                raise InvalidSampleError(
                    "a record must be a JSON object", record=f"{path.name}:{n}"
                )
            out.append(judgment_from_record(obj, role=role, field=field, key=_key(obj, n), line=n))
    return out


@dataclass(frozen=True)
class Aligned:
    """Judgments paired record by record; the counts say what could not be paired."""

    truth: tuple[Judgment, ...]
    pred: tuple[Judgment, ...]
    swapped: tuple[Judgment, ...] | None
    unmatched: Mapping[str, int]


def _by_key(items: Sequence[Judgment], what: str) -> dict[str, Judgment]:
    out: dict[str, Judgment] = {}
    for j in items:
        if j.key in out:
            raise InvalidSampleError(
                f"duplicate id {j.key!r} in the {what} file (lines {out[j.key].line} and "
                f"{j.line}); use --align position",
                record=f"line {j.line}",
            )
        out[j.key] = j
    return out


def align(
    truth: Sequence[Judgment],
    pred: Sequence[Judgment],
    swapped: Sequence[Judgment] | None = None,
    *,
    by: Alignment = "id",
) -> Aligned:
    """Pair the files. ``id``: the records whose id is in every file, in truth-file order.
    ``position``: line by line, cut to the shortest file (the reference zips the lists)."""
    files = {"truth": truth, "pred": pred, **({"swapped": swapped} if swapped is not None else {})}
    if by == "position":
        n = min(len(v) for v in files.values())
        cut = {k: tuple(v[:n]) for k, v in files.items()}
        unmatched = {k: len(v) - n for k, v in files.items()}
        return Aligned(cut["truth"], cut["pred"], cut.get("swapped"), unmatched)
    if by != "id":
        raise ValueError(f"align must be 'id' or 'position', got {by!r}")
    maps = {k: _by_key(v, k) for k, v in files.items()}
    common = [j.key for j in truth if all(j.key in m for m in maps.values())]
    unmatched = {k: len(m) - len(common) for k, m in maps.items()}
    pick = {k: tuple(m[key] for key in common) for k, m in maps.items()}
    return Aligned(pick["truth"], pick["pred"], pick.get("swapped"), unmatched)


def evaluate_files(
    truth: str | os.PathLike[str],
    pred: str | os.PathLike[str],
    swapped: str | os.PathLike[str] | None = None,
    *,
    align_by: Alignment = "id",
    truth_field: str | None = None,
    pred_field: str | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[EvalResult, Aligned]:
    """``judgelm eval`` as a function: read, pair, evaluate.

    Without ``swapped``, a prediction file of judgelm output judged in both orders supplies its
    own swapped judgments."""
    t = read_judgments(truth, role="truth", field=truth_field)
    p = read_judgments(pred, role="pred", field=pred_field)
    s = None if swapped is None else read_judgments(swapped, role="pred", field=pred_field)
    pairs = align(t, p, s, by=align_by)
    if pairs.swapped is not None:
        swapped_scores = [j.scores for j in pairs.swapped]
    elif any(j.has_swapped for j in pairs.pred):
        # a record judged in one order only (or not at all: an error line) has no swapped
        # judgment: a failure, counted as a tie like any unreadable judgment
        swapped_scores = [j.swapped for j in pairs.pred]
    else:
        swapped_scores = None
    result = evaluate(
        [j.scores for j in pairs.truth],
        [j.scores for j in pairs.pred],
        swapped_scores,
        reasons=[j.reason for j in pairs.pred],
        resamples=resamples,
        level=level,
        seed=seed,
    )
    return result, pairs
