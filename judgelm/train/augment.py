"""Training views: how a stored record is shown in one epoch (swap augmentation and reference
support / drop), drawn per sample per epoch without ever touching the stored record.

Everything re-ordering candidates goes through `judgelm.swap` — the same functions inference
(``swap=True``) and evaluation (consistency) use: `permute_sample` moves the answers,
`permute_judgment` moves the first-line scores and renumbers "Assistant k" in one pass.

The draw is a pure function of ``(seed, epoch, index)``, so every process of a distributed run,
every dataloader worker and a resumed run see the same views.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from judgelm.data.records import JudgeRecord
from judgelm.formats.base import Formatter
from judgelm.swap import identity, permute_judgment, permute_sample, swap_orders
from judgelm.types import Sample

__all__ = ["TrainingView", "draw_order", "draw_view", "swap_view", "view_rng"]


@dataclass(frozen=True)
class TrainingView:
    """One record as shown in one epoch.

    ``sample`` is in the record's candidate order, with its reference iff ``with_reference``;
    ``judgment`` is the teacher judgment matching that prompt, also in the record's order;
    ``order[k]`` is the candidate shown in slot k. `swap_view` gives what the judge sees.
    """

    sample: Sample
    judgment: str
    order: tuple[int, ...]
    with_reference: bool

    @property
    def swapped(self) -> bool:
        return self.order != identity(len(self.order))


def swap_view(sample: Sample, judgment: str, order: Sequence[int], *, n_forced: int = 0) -> tuple[Sample, str]:
    """The sample and the judgment as shown in ``order``: answers permuted, first-line scores
    moved with their answers, "Assistant k" mentions renumbered. ``n_forced`` leading scores
    (the forced gold ``10`` of single-answer grading) stay put."""
    return permute_sample(sample, order), permute_judgment(judgment, order, n_forced=n_forced)


def view_rng(seed: int, epoch: int, index: int) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`, so it does not depend on PYTHONHASHSEED.
    return random.Random(f"judgelm-train\0{seed}\0{epoch}\0{index}")


def draw_order(n: int, rng: random.Random, p_swap: float, swap_kind: str = "reverse") -> tuple[int, ...]:
    """Identity, or with probability ``p_swap`` a swapped order: the reversal for two
    candidates, a uniformly random non-identity permutation for more. Formats whose
    ``swap_kind`` is ``"none"`` (single-answer grading) are never swapped."""
    ident = identity(n)
    if n < 2 or swap_kind == "none" or rng.random() >= p_swap:
        return ident
    if n == 2:
        return swap_orders(2)[1]
    while True:
        order = tuple(rng.sample(range(n), n))
        if order != ident:
            return order


def draw_view(
    record: JudgeRecord,
    formatter: Formatter,
    *,
    seed: int,
    epoch: int,
    index: int,
    p_swap: float,
    p_reference: float,
) -> TrainingView:
    """Draw this epoch's view of ``record``: with probability ``p_reference`` the
    with-reference prompt *and* judgment (when the record has both), and with probability
    ``p_swap`` a swapped order."""
    rng = view_rng(seed, epoch, index)
    views = record.views
    with_ref = (rng.random() < p_reference) if len(views) == 2 else views[0]
    sample = record.sample_for(with_ref)
    order = draw_order(formatter.n_candidates(sample), rng, p_swap, formatter.swap_kind)
    return TrainingView(sample, record.judgment_for(with_ref), order, with_ref)
