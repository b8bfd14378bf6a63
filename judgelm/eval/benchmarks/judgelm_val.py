"""The JudgeLM validation set (``judgelm_val_5k*.jsonl``), the paper's main benchmark (spec §4, §6).

Conversion:

- ``judgelm_val_5k.jsonl``: one JudgeLM-dialect record per line (``question_id``,
  ``question_body``, ``answer1_body``, ``answer2_body``, ...) -> a pairwise `Sample` whose id is
  ``question_id``.
- ``judgelm_val_5k_references.jsonl``: aligned **by position** (line k is the reference of
  question k, as the reference code pairs them); ``reference`` is ``{"text": ...}`` or a string.
- ``judgelm_val_5k_gpt4.jsonl`` / ``judgelm_val_5k_gpt4_with_reference.jsonl``: the teacher's
  judgments without / with the reference, by position, read from ``text`` with the reference
  parser (``score`` when there is no ``text``); a judgment that fails to parse drops the item
  from that condition's numbers, as in the reference.

Where a truth or reference line carries a ``question_id`` it must match the question's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.eval.benchmarks._files import read_records
from judgelm.eval.labelled import Benchmark, Labelled, truth_scores
from judgelm.eval.metrics import truth_label
from judgelm.io import sample_from_record

__all__ = ["DEFAULT_FILES", "load_judgelm_val"]

# The file names the set is published under, used when a folder is given.
DEFAULT_FILES = {
    "questions": "judgelm_val_5k.jsonl",
    "references": "judgelm_val_5k_references.jsonl",
    "truth": "judgelm_val_5k_gpt4.jsonl",
    "truth_with_reference": "judgelm_val_5k_gpt4_with_reference.jsonl",
}

PathLike = str | os.PathLike[str]


def _reference_text(obj: Mapping[str, Any], where: str) -> str:
    ref = obj.get("reference", obj.get("text"))
    if isinstance(ref, Mapping):
        ref = ref.get("text")
    if not isinstance(ref, str):
        raise InvalidSampleError(
            "needs reference.text (or a reference string)", field="reference", record=where
        )
    return ref


def _aligned(name: str, records: list[dict[str, Any]], questions: list[dict[str, Any]]) -> None:
    if len(records) != len(questions):
        raise InvalidSampleError(
            f"{name} has {len(records)} records for {len(questions)} questions "
            "(they pair by position)"
        )
    for n, (r, q) in enumerate(zip(records, questions, strict=True), start=1):
        if (
            "question_id" in r
            and "question_id" in q
            and str(r["question_id"]) != str(q["question_id"])
        ):
            raise InvalidSampleError(
                f"question_id {r['question_id']!r} where the questions file has "
                f"{q['question_id']!r}",
                field="question_id",
                record=f"{name}:{n}",
            )


def load_judgelm_val(
    questions: PathLike,
    references: PathLike | None = None,
    truth: PathLike | None = None,
    truth_with_reference: PathLike | None = None,
    *,
    limit: int | None = None,
) -> Benchmark:
    """Read the JudgeLM val set. ``questions`` may be the folder holding the `DEFAULT_FILES`;
    then the other files are taken from it when present (explicit paths win)."""
    folder = Path(questions)
    if folder.is_dir():
        found = {k: folder / f for k, f in DEFAULT_FILES.items() if (folder / f).is_file()}
        if "questions" not in found:
            raise InvalidSampleError(f"no {DEFAULT_FILES['questions']} in {folder}")
        questions = found["questions"]
        references = references or found.get("references")
        truth = truth or found.get("truth")
        truth_with_reference = truth_with_reference or found.get("truth_with_reference")
    qs = read_records(questions)
    if limit is not None:
        qs = qs[:limit]
    n = len(qs)
    refs = truths = truths_ref = None
    if references is not None:
        refs = read_records(references)[:n]
        _aligned(Path(references).name, refs, qs)
    if truth is not None:
        truths = read_records(truth)[:n]
        _aligned(Path(truth).name, truths, qs)
    if truth_with_reference is not None:
        truths_ref = read_records(truth_with_reference)[:n]
        _aligned(Path(truth_with_reference).name, truths_ref, qs)
    items = []
    for k, q in enumerate(qs):
        where = f"{Path(questions).name}:{k + 1}"
        try:
            sample = sample_from_record(q, mode="pairwise")
        except InvalidSampleError as e:
            raise e.located(where) from None
        if sample.id is None:
            sample = sample.replace(id=str(k))
        if refs is not None:
            sample = sample.replace(
                reference=_reference_text(refs[k], f"{Path(references).name}:{k + 1}")
            )  # type: ignore[arg-type]
        scores = scores_ref = None
        if truths is not None:
            _, scores = truth_scores(truths[k], "text", "score")
        has_ref = False
        if truths_ref is not None:
            has_ref = True
            found, scores_ref = truth_scores(truths_ref[k], "text", "score")
            if not found:
                _, scores_ref = truth_scores(truths_ref[k], "text_w_reference", "score_w_reference")
        items.append(
            Labelled(
                sample,
                label=truth_label(scores),
                scores=scores,
                label_with_reference=truth_label(scores_ref),
                scores_with_reference=scores_ref,
                has_truth_with_reference=has_ref,
            )
        )
    notes = []
    if refs is not None:
        notes.append("references attached by position")
    if truths is None:
        notes.append("no teacher judgments given: no agreement numbers")
    dropped = sum(1 for i in items if truths is not None and i.label is None)
    if dropped:
        notes.append(
            f"{dropped} teacher judgments (no reference) unreadable: dropped as in the reference"
        )
    dropped_ref = sum(1 for i in items if truths_ref is not None and i.label_with_reference is None)
    if dropped_ref:
        notes.append(f"{dropped_ref} teacher judgments (with reference) unreadable: dropped")
    return Benchmark("judgelm-val", tuple(items), notes=tuple(notes))
