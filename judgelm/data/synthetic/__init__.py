"""A synthetic, verifiable judge-data generator.

Questions whose answer is computable (arithmetic, unit conversion, sorting, letter counting,
table look-ups, weekdays), candidate answers made by systematic edits of the true answer
(correct, rambling, partly right, wrong, off-topic, refusal), a reference answer, and teacher
judgments in the JudgeLM format with a plain and a with-reference variant. Records use the
JudgeLM-100K layout, so they train with `judgelm.train` (and with the reference code), plus
``true_score`` (the unbiased, fully informed scores), ``kinds`` and ``family``.

Seeded and deterministic: record ``i`` depends only on ``(seed, i)``, so a larger set extends a
smaller one. Knobs (`SyntheticConfig`) give the teacher a position bias or a knowledge gap, so
the effect of swap augmentation and reference support can be shown.

>>> recs = generate(2, seed=1)
>>> recs[0]["text"].split("\\n")[0] == " ".join(map(str, recs[0]["score"]))
True
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgelm.data.synthetic.answers import KINDS, Candidate, make_candidate
from judgelm.data.synthetic.tasks import FAMILIES, Problem, draw_problem
from judgelm.data.synthetic.teacher import teacher_judgment

__all__ = ["DEFAULT_KIND_WEIGHTS", "SyntheticConfig", "generate", "iter_records", "write_jsonl"]

# Correct-vs-wrong pairs dominate: telling them apart needs knowledge (or the reference), which
# is what reference support is about. Same-kind pairs are the close calls position bias acts on.
DEFAULT_KIND_WEIGHTS: Mapping[str, float] = {
    "correct": 0.30,
    "wrong": 0.25,
    "rambling": 0.12,
    "partial": 0.13,
    "off_topic": 0.10,
    "refusal": 0.10,
}


@dataclass(frozen=True)
class SyntheticConfig:
    """What the generated data looks like.

    - ``n_answers``: candidates per question (2: pairwise; 3+: the N-answer format).
    - ``position_bias``: probability that the teacher, on a close call (Assistant 1 within
      ``bias_margin`` points of the best), makes Assistant 1 the winner.
    - ``plain_teacher_error``: probability that the teacher, without the reference, scores a
      wrong answer as correct (its with-reference judgment is always informed).
    - ``score_noise``: probability of a +-1 offset on each teacher score (both variants).
    - ``kind_weights``: how often each answer kind is drawn, per slot.
    - ``families``: the question families to draw from.
    - ``brief``: one short clause per assistant instead of full explanations.
    """

    n_answers: int = 2
    position_bias: float = 0.0
    bias_margin: int = 1
    plain_teacher_error: float = 0.0
    score_noise: float = 0.0
    kind_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    families: tuple[str, ...] = tuple(FAMILIES)
    brief: bool = False

    def __post_init__(self) -> None:
        if self.n_answers < 2:
            raise ValueError("n_answers must be >= 2")
        for name in ("position_bias", "plain_teacher_error", "score_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        unknown = set(self.kind_weights) - set(KINDS) or set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown answer kinds or families: {sorted(unknown)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_answers": self.n_answers,
            "position_bias": self.position_bias,
            "bias_margin": self.bias_margin,
            "plain_teacher_error": self.plain_teacher_error,
            "score_noise": self.score_noise,
            "kind_weights": dict(self.kind_weights),
            "families": list(self.families),
            "brief": self.brief,
        }


def _record(i: int, seed: int, cfg: SyntheticConfig) -> dict[str, Any]:
    rng = random.Random(f"judgelm-synthetic\0{seed}\0{i}")
    problem: Problem = draw_problem(rng, cfg.families)
    kinds = list(cfg.kind_weights)
    weights = [cfg.kind_weights[k] for k in kinds]
    cands: list[Candidate] = []
    for _ in range(cfg.n_answers):
        kind = rng.choices(kinds, weights)[0]
        cands.append(make_candidate(kind, problem, rng, avoid=tuple(c.text for c in cands)))
    # One draw per record for each bias, shared by both variants: they differ only in what the
    # teacher knows (the reference), as GPT-4's plain and with-reference judgments do.
    favour_first = rng.random() < cfg.position_bias
    fooled = tuple(rng.random() < cfg.plain_teacher_error for _ in cands)
    noise = tuple(rng.choice((-1, 1)) if rng.random() < cfg.score_noise else 0 for _ in cands)
    knobs = {"favour_first": favour_first, "noise": noise, "margin": cfg.bias_margin, "brief": cfg.brief}
    score, text, biased = teacher_judgment(problem, cands, with_reference=False, fooled=fooled, **knobs)
    score_ref, text_ref, biased_ref = teacher_judgment(problem, cands, with_reference=True, **knobs)
    record: dict[str, Any] = {"question_id": f"syn-{seed}-{i}", "question_body": problem.question}
    for k, c in enumerate(cands, start=1):
        record[f"answer{k}_body"] = c.text
        record[f"answer{k}_model_id"] = f"synthetic-{c.kind}"
    record.update(
        {
            "reference": {"text": problem.reference},
            "text": text,
            "score": list(score),
            "text_w_reference": text_ref,
            "score_w_reference": list(score_ref),
            "true_score": [c.quality for c in cands],
            "kinds": [c.kind for c in cands],
            "family": problem.family,
            # Whether the teacher's position bias changed its scores (plain, with reference).
            "position_biased": [biased, biased_ref],
        }
    )
    return record


def iter_records(
    n: int, *, seed: int = 0, config: SyntheticConfig | None = None, start: int = 0
) -> Iterator[dict[str, Any]]:
    """Records ``start .. start+n-1`` of the stream defined by ``(seed, config)``."""
    cfg = config or SyntheticConfig()
    for i in range(start, start + n):
        yield _record(i, seed, cfg)


def generate(n: int, *, seed: int = 0, config: SyntheticConfig | None = None, start: int = 0) -> list[dict[str, Any]]:
    """``n`` records as a list (see `iter_records`)."""
    return list(iter_records(n, seed=seed, config=config, start=start))


def write_jsonl(path: str | os.PathLike[str], records: Iterator[Mapping[str, Any]] | list[dict[str, Any]]) -> int:
    """Write records as JSONL; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n
