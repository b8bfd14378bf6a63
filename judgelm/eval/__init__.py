"""Evaluation and bias audits: how far a judge agrees with people, and where it is biased.

- `reference_metrics` / `label_of`: the JudgeLM reference ``calculate_metrics``, exactly.
- `evaluate` / `evaluate_files`: those numbers plus abstains, kappa, confusion matrix and
  bootstrap intervals (``judgelm eval``).
- `judgelm.eval.benchmarks`: readers for JudgeLM val, PandaLM, MT-Bench, MM-Vet and your own
  labelled JSONL; `run_benchmark` scores a judge on one (``judgelm bench``).
- `judgelm.eval.audits`: position, knowledge, format, length, self-consistency and calibration
  audits; `run_audits` + `write_audit` (``judgelm audit``).

matplotlib (the ``eval`` extra) is needed only to draw the audit's plots.
"""

from judgelm.eval.audits import AUDITS, AuditReport, run_audits, write_audit
from judgelm.eval.bench import BenchResult, BenchRow, GradingResult, run_benchmark
from judgelm.eval.benchmarks import (
    BENCHMARKS,
    load_benchmark,
    load_judgelm_val,
    load_mmvet,
    load_mtbench,
    load_pandalm,
)
from judgelm.eval.evaluate import EvalResult, evaluate, evaluate_labels
from judgelm.eval.judgments import Aligned, Judgment, align, evaluate_files, read_judgments
from judgelm.eval.labelled import Benchmark, Labelled, read_labelled
from judgelm.eval.metrics import (
    LABELS,
    REFERENCE_KEYS,
    label_metrics,
    label_of,
    reference_metrics,
    truth_label,
)
from judgelm.eval.render import render_eval
from judgelm.eval.stats import bootstrap_intervals, cohen_kappa, confusion_matrix

__all__ = [
    "AUDITS",
    "BENCHMARKS",
    "LABELS",
    "REFERENCE_KEYS",
    "Aligned",
    "AuditReport",
    "BenchResult",
    "BenchRow",
    "Benchmark",
    "EvalResult",
    "GradingResult",
    "Judgment",
    "Labelled",
    "align",
    "bootstrap_intervals",
    "cohen_kappa",
    "confusion_matrix",
    "evaluate",
    "evaluate_files",
    "evaluate_labels",
    "label_metrics",
    "label_of",
    "load_benchmark",
    "load_judgelm_val",
    "load_mmvet",
    "load_mtbench",
    "load_pandalm",
    "read_judgments",
    "read_labelled",
    "reference_metrics",
    "render_eval",
    "run_audits",
    "run_benchmark",
    "truth_label",
    "write_audit",
]
