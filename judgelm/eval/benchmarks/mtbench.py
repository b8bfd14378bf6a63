"""MT-Bench human judgments (``lmsys/mt_bench_human_judgments``, split ``human``), exported as a
JSON array or JSONL (from the published parquet:
``pandas.read_parquet(f).to_json(out, orient="records", lines=True)``).

Conversion: each record is one vote ``{"question_id", "model_a", "model_b", "winner", "judge",
"conversation_a", "conversation_b", "turn"}`` ->

- a ``chat``-mode `Sample` with the two conversations cut to the judged turn (the first
  ``2 * turn`` messages: a turn-1 vote is about the first answer only), id
  ``"{question_id}/{model_a}/{model_b}/turn{turn}"``; votes of several judges on the same pair share
  that sample (it is judged once) and each counts as one record in the numbers, as in MT-Bench's
  agreement tables;
- the label: ``model_a`` -> 1, ``model_b`` -> -1, ``tie`` (and ``tie (bothbad)``) -> 0.
"""

from __future__ import annotations

import os
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.eval.benchmarks._files import read_records
from judgelm.eval.labelled import Benchmark, Labelled, label_from_value
from judgelm.types import Sample

__all__ = ["load_mtbench"]


def _conversation(value: Any, turn: int, field: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise InvalidSampleError("must be a list of {role, content} messages", field=field)
    return value[: 2 * turn]


def load_mtbench(
    path: str | os.PathLike[str],
    *,
    turn: int | None = None,
    judge_prefix: str | None = None,
    limit: int | None = None,
) -> Benchmark:
    """Read MT-Bench pairwise votes; ``turn`` keeps only votes on that turn, ``judge_prefix``
    only votes whose ``judge`` starts with it (e.g. ``"expert"``)."""
    records = read_records(path)
    items = []
    for n, obj in enumerate(records, start=1):
        if turn is not None and int(obj.get("turn", 1)) != turn:
            continue
        if judge_prefix is not None and not str(obj.get("judge", "")).startswith(judge_prefix):
            continue
        if limit is not None and len(items) >= limit:
            break
        where = f"{os.path.basename(path)}:{n}"
        try:
            t = int(obj.get("turn", 1))
            if t < 1:
                raise InvalidSampleError(f"must be >= 1, got {t}", field="turn")
            winner = obj.get("winner")
            if winner in ("model_a", "model_b") or (
                isinstance(winner, str) and winner.startswith("tie")
            ):
                label = label_from_value(winner)
            else:
                raise InvalidSampleError(
                    f"must be model_a, model_b or tie, got {winner!r}", field="winner"
                )
            qid, a, b = obj.get("question_id"), obj.get("model_a"), obj.get("model_b")
            sample = Sample(
                conversations=(
                    _conversation(obj.get("conversation_a"), t, "conversation_a"),
                    _conversation(obj.get("conversation_b"), t, "conversation_b"),
                ),
                id=f"{qid}/{a}/{b}/turn{t}",
                mode="chat",
                meta={
                    "question_id": qid,
                    "model_a": a,
                    "model_b": b,
                    "judge": obj.get("judge"),
                    "turn": t,
                },
            )
        except InvalidSampleError as e:
            raise e.located(where) from None
        items.append(Labelled(sample, label=label))
    notes = (
        "chat mode: conversations cut to the judged turn; each vote is one record",
        f"{len({i.sample.id for i in items})} unique pairs judged for {len(items)} votes",
    )
    return Benchmark("mtbench", tuple(items), notes=notes)
