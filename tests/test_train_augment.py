"""Swap augmentation and reference support / drop: the views a record is trained in."""

from __future__ import annotations

import re
from collections import Counter

from judgelm.data.records import JudgeRecord, record_from_dict
from judgelm.data.synthetic import SyntheticConfig, generate
from judgelm.formats import get_format
from judgelm.swap import inverse
from judgelm.train.augment import draw_order, draw_view, swap_view, view_rng
from judgelm.train.encode import target_text
from judgelm.types import Sample

PAIRWISE = get_format("pairwise")
MULTI = get_format("multi")
RECORDS = [record_from_dict(r) for r in generate(40, seed=11, config=SyntheticConfig(position_bias=0.8))]
RECORDS3 = [record_from_dict(r) for r in generate(20, seed=11, config=SyntheticConfig(n_answers=3))]


def shown(record: JudgeRecord, order, fmt=PAIRWISE, with_ref=False) -> tuple[str, str]:
    """(prompt text, target text) of a record shown in ``order``."""
    sample = record.sample_for(with_ref)
    prompt = fmt.render(sample, order)
    return prompt.text, target_text(record.judgment_for(with_ref), prompt.spec, order)


def test_swap_twice_is_the_identity_on_prompt_and_target():
    for record in RECORDS:
        for with_ref in (False, True):
            sample, judgment = record.sample_for(with_ref), record.judgment_for(with_ref)
            once = swap_view(sample, judgment, (1, 0))
            assert once != (sample, judgment)
            twice = swap_view(*once, (1, 0))
            assert twice == (sample, judgment)
            # ... and what the judge reads and writes, rendered from the twice-swapped pair:
            s2, j2 = twice
            assert PAIRWISE.render(s2).text == PAIRWISE.render(sample).text
            assert target_text(j2, PAIRWISE.render(s2).spec, (0, 1)) == judgment


def test_a_permutation_and_its_inverse_are_the_identity_for_n_answers():
    for record in RECORDS3:
        sample, judgment = record.sample_for(True), record.judgment_for(True)
        for order in ((1, 2, 0), (2, 0, 1), (0, 2, 1)):
            back = swap_view(*swap_view(sample, judgment, order), inverse(order))
            assert back == (sample, judgment)


def _claims(explanation: str) -> dict[int, str]:
    """The sentence about each assistant alone ('Assistant k ...'), keyed by k."""
    found = re.findall(r"(?:^|\. )Assistant (\d)(?! and)((?:'s)?[^.]*)", explanation)
    assert len(found) == len({k for k, _ in found}), explanation
    return {int(k): s for k, s in found}


def test_scores_and_assistant_mentions_move_with_their_answers():
    for record in RECORDS + RECORDS3:
        n = len(record.sample.answers)
        fmt = PAIRWISE if n == 2 else MULTI
        kinds = [
            m.removeprefix("synthetic-") for m in (record.sample.meta[f"answer{k}_model_id"] for k in range(1, n + 1))
        ]
        original = record.judgment_for(False)
        scores = original.partition("\n")[0].split(" ")
        claims = _claims(original.partition("\n")[2])
        for order in ((1, 0),) if n == 2 else ((1, 2, 0), (2, 1, 0)):
            prompt, target = shown(record, order, fmt)
            head, _, expl = target.partition("\n")
            moved = _claims(expl)
            for slot, cand in enumerate(order):
                # the answer in this slot, its score on line one, and what is said about it
                assert f"Assistant {slot + 1}'s Answer]\n{record.sample.answers[cand]}\n" in prompt
                assert head.split(" ")[slot] == scores[cand]
                assert moved[slot + 1] == claims[cand + 1], (kinds, order)


def test_reference_prompt_and_reference_judgment_always_travel_together():
    both = Counter()
    for epoch in range(6):
        for i, record in enumerate(RECORDS):
            view = draw_view(record, PAIRWISE, seed=0, epoch=epoch, index=i, p_swap=0.5, p_reference=0.5)
            prompt = PAIRWISE.render(view.sample, view.order)
            target = target_text(view.judgment, prompt.spec, view.order)
            has_ref_prompt = "[Reference Answer]" in prompt.text
            has_ref_judgment = "reference" in target.partition("\n")[2]
            assert has_ref_prompt == has_ref_judgment == view.with_reference == prompt.with_reference
            assert view.judgment == record.judgment_for(view.with_reference)
            both[(view.with_reference, view.swapped)] += 1
    assert len(both) == 4 and min(both.values()) > 25  # all four combinations occur


def test_probabilities_zero_and_one_and_missing_views():
    for i, record in enumerate(RECORDS):
        v = draw_view(record, PAIRWISE, seed=0, epoch=0, index=i, p_swap=0.0, p_reference=1.0)
        assert v.with_reference and not v.swapped
        v = draw_view(record, PAIRWISE, seed=0, epoch=0, index=i, p_swap=1.0, p_reference=0.0)
        assert not v.with_reference and v.swapped and v.sample.reference is None
    plain_only = JudgeRecord(RECORDS[0].sample.replace(reference=None), RECORDS[0].judgment)
    for epoch in range(5):
        assert not draw_view(
            plain_only, PAIRWISE, seed=0, epoch=epoch, index=0, p_swap=0.5, p_reference=1.0
        ).with_reference


def test_draws_are_per_sample_per_epoch_deterministic_and_never_mutate_records():
    def snapshot():  # (Sample holds a mappingproxy, which deepcopy cannot copy)
        return [(r.sample.to_dict(), dict(r.sample.meta), r.judgment, r.judgment_w_reference) for r in RECORDS]

    frozen = snapshot()
    a = [draw_view(r, PAIRWISE, seed=1, epoch=0, index=i, p_swap=0.5, p_reference=0.5) for i, r in enumerate(RECORDS)]
    b = [draw_view(r, PAIRWISE, seed=1, epoch=0, index=i, p_swap=0.5, p_reference=0.5) for i, r in enumerate(RECORDS)]
    c = [draw_view(r, PAIRWISE, seed=1, epoch=1, index=i, p_swap=0.5, p_reference=0.5) for i, r in enumerate(RECORDS)]
    assert a == b and a != c
    swaps = sum(
        v.swapped
        for e in range(10)
        for v in (
            draw_view(r, PAIRWISE, seed=1, epoch=e, index=i, p_swap=0.5, p_reference=0.5) for i, r in enumerate(RECORDS)
        )
    )
    assert 150 < swaps < 250  # about half of 400 draws
    assert snapshot() == frozen  # the stored records are untouched, epoch after epoch
    for v, r in zip(a, RECORDS, strict=True):  # views keep the record's own order and text
        assert v.sample.answers == r.sample.answers


def test_draw_order():
    rng = view_rng(0, 0, 0)
    orders = Counter(draw_order(3, rng, 1.0, "cyclic") for _ in range(600))
    assert (0, 1, 2) not in orders and len(orders) == 5  # every non-identity permutation
    assert all(draw_order(2, rng, 1.0, "none") == (0, 1) for _ in range(20))  # single: never
    assert draw_order(1, rng, 1.0) == (0,)
    single = get_format("single")
    s = Sample("Q?", ("a",), gold="g")
    assert single.swap_kind == "none" and single.n_candidates(s) == 1
