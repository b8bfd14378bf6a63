"""Answer pairs drawn across sources, as the JudgeLM paper built its data: for each seed task, two
answers from two different models, which one is shown first drawn at random.

Draws are seeded per task (``(seed, question_id)``), so a re-run draws the same pairs, and a pair's
id names its two models (stable when answers from new models are added). Duplicates are removed:
the same question (whitespace-normalised) with the same two answer texts is judged once, and a
pair of identical answers is not judged at all (both counted in the summary).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from judgelm.distill.seeds import Seed

__all__ = ["Pair", "draw_pairs"]


@dataclass(frozen=True)
class Pair:
    pair_id: str
    seed: Seed
    models: tuple[str, str]  # shown in this order in the pair's first judgment

    def answers(self, order: int) -> tuple[tuple[str, str], tuple[str, str]]:
        """((model 1, answer 1), (model 2, answer 2)) as shown in ``order`` (0 drawn, 1 swapped)."""
        first, second = self.models if order == 0 else self.models[::-1]
        return (first, self.seed.answers[first]), (second, self.seed.answers[second])


def _norm(text: str) -> str:
    return " ".join(text.split())


def draw_pairs(seeds: Sequence[Seed], per_question: int = 1, seed: int = 0) -> tuple[list[Pair], Counter[str]]:
    """Up to ``per_question`` pairs per task, and counts of what was skipped."""
    stats: Counter[str] = Counter()
    seen: set[tuple[str, frozenset[str]]] = set()
    pairs = []
    for task in seeds:
        models = list(task.answers)
        if len(models) < 2:
            stats["tasks with fewer than two answers"] += 1
            continue
        rng = random.Random(f"{seed}:{task.question_id}")
        combos = list(combinations(models, 2))
        rng.shuffle(combos)
        taken = 0
        for a, b in combos:
            if taken == per_question:
                break
            texts = (_norm(task.answers[a]), _norm(task.answers[b]))
            if texts[0] == texts[1]:
                stats["identical answers"] += 1
                continue
            key = (_norm(task.question), frozenset(texts))
            if key in seen:
                stats["duplicate pairs"] += 1
                continue
            seen.add(key)
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            pairs.append(Pair(f"{task.question_id}:{'|'.join(sorted((a, b)))}", task, (first, second)))
            taken += 1
    return pairs, stats
