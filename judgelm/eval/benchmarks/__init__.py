"""Readers for the benchmarks the paper reports on, plus the user's own labelled JSONL. Nothing
downloads: each reader takes the files the user points at and documents its conversion."""

from __future__ import annotations

import os
from typing import Any

from judgelm.eval.benchmarks.judgelm_val import DEFAULT_FILES, load_judgelm_val
from judgelm.eval.benchmarks.mmvet import load_mmvet
from judgelm.eval.benchmarks.mtbench import load_mtbench
from judgelm.eval.benchmarks.pandalm import load_pandalm
from judgelm.eval.labelled import Benchmark, read_labelled

__all__ = [
    "BENCHMARKS",
    "DEFAULT_FILES",
    "load_benchmark",
    "load_judgelm_val",
    "load_mmvet",
    "load_mtbench",
    "load_pandalm",
]

# name -> what ``data`` (and the extra files) are, for the CLI's help.
BENCHMARKS = {
    "judgelm-val": "judgelm_val_5k.jsonl or its folder (+ references, truth, truth-with-reference)",
    "pandalm": "the PandaLM test set JSON array (testset-v1.json)",
    "mtbench": "MT-Bench human judgments as JSON array or JSONL",
    "mmvet": "MM-Vet ground truth JSON (+ predictions, optional grades)",
    "labelled": "your own JSONL: samples plus label / text / score (see judgelm.eval.labelled)",
}

PathLike = str | os.PathLike[str]


def load_benchmark(
    name: str,
    data: PathLike,
    *,
    references: PathLike | None = None,
    truth: PathLike | None = None,
    truth_with_reference: PathLike | None = None,
    predictions: PathLike | None = None,
    grades: PathLike | None = None,
    limit: int | None = None,
    **options: Any,
) -> Benchmark:
    """Read benchmark ``name`` (a key of `BENCHMARKS`) from the user's files."""
    if name == "judgelm-val":
        return load_judgelm_val(data, references, truth, truth_with_reference, limit=limit)
    if name == "pandalm":
        return load_pandalm(data, limit=limit, **options)
    if name == "mtbench":
        return load_mtbench(data, limit=limit, **options)
    if name == "mmvet":
        if predictions is None:
            raise ValueError("mmvet needs the model's predictions file (--predictions)")
        return load_mmvet(data, predictions, grades=grades, limit=limit)
    if name == "labelled":
        return read_labelled(data, limit=limit)
    raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
