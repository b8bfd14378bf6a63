"""Self-consistency: does the judge say the same thing when asked again?

Each run judges the whole set in both orders (``swap=True``); runs after the first send the
samples in a different seeded order, so every sample meets different batch neighbours and padding
(greedy decoding is deterministic only up to those numerics). Every (run, order) gives one label
per item in answer order; an unreadable order is its own outcome, never a tie.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from judgelm.eval.labelled import Labelled
from judgelm.eval.metrics import label_of
from judgelm.types import Verdict

__all__ = ["ConsistencyAudit", "consistency_audit"]


@dataclass(frozen=True)
class ConsistencyAudit:
    """- ``unanimous``: share of items where all ``judgments`` (runs x orders) agree.
    - ``run_agreement``: share where the averaged verdicts of all runs agree (the seed effect
      alone; 1.0 with a single run).
    - ``pairwise_agreement``: mean over items of the share of agreeing judgment pairs.
    - ``score_std``: mean over items and answers of the standard deviation of the scores across
      judgments (``None`` when no answer was read twice).
    - ``majority_agreement``: agreement of the per-item majority label with the truth.
    """

    runs: int
    judgments: int
    n: int
    unanimous: float
    run_agreement: float
    pairwise_agreement: float
    score_std: float | None
    majority_agreement: float | None


def consistency_audit(
    items: Sequence[Labelled], runs: Sequence[Sequence[Verdict]]
) -> ConsistencyAudit:
    """``runs``: one list of ``swap=True`` verdicts per run, each aligned with ``items``."""
    if not runs or any(len(r) != len(items) for r in runs):
        raise ValueError("each run needs one verdict per item")
    n = len(items)
    unanimous = run_same = 0
    pair_shares: list[float] = []
    stds: list[float] = []
    majority_hits, labelled = 0, 0
    per_item = 0
    for k, item in enumerate(items):
        scores = [s for run in runs for s in (run[k].order_scores or (run[k].scores,))]
        labels = [None if s is None else label_of(s) for s in scores]
        per_item = max(per_item, len(labels))
        unanimous += len(set(labels)) == 1
        final = {None if run[k].abstained else (run[k].label or 0) for run in runs}
        run_same += len(final) == 1
        pairs = list(combinations(labels, 2))
        pair_shares.append(sum(a == b for a, b in pairs) / len(pairs) if pairs else 1.0)
        read = [s for s in scores if s is not None]
        if len(read) >= 2:
            stds += [statistics.pstdev(col) for col in zip(*read, strict=True)]
        if item.label is not None:
            labelled += 1
            top = Counter(lab for lab in labels if lab is not None).most_common()
            majority = top[0][0] if top and (len(top) == 1 or top[0][1] > top[1][1]) else None
            majority_hits += majority == item.label
    return ConsistencyAudit(
        runs=len(runs),
        judgments=per_item,
        n=n,
        unanimous=unanimous / n if n else float("nan"),
        run_agreement=run_same / n if n else float("nan"),
        pairwise_agreement=sum(pair_shares) / n if n else float("nan"),
        score_std=sum(stds) / len(stds) if stds else None,
        majority_agreement=majority_hits / labelled if labelled else None,
    )
