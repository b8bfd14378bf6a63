"""Shared-prefix detection and prefix-aware batch planning (pure Python)."""

from __future__ import annotations

import random

import pytest

from judgelm.engine.batching import restore_order
from judgelm.engine.shared_prefix import common_prefix_length, plan_prefix_batches, shared_prefix_groups


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_groups_of_candidates_sharing_a_question():
    q1, q2 = list(range(100, 160)), list(range(500, 540))
    prompts = [[*q1, 1, 2], [*q2, 7], [*q1, 3], [*q1, 4, 5, 6], list(range(900, 950)), [*q2, 8, 9]]
    groups = shared_prefix_groups(prompts, min_length=32)
    assert [(g.members, g.length) for g in groups] == [((0, 2, 3), 60), ((1, 5), 40)]


def test_every_member_keeps_a_token_and_short_prefixes_are_ignored():
    base = list(range(40))
    groups = shared_prefix_groups([base, [*base, 1], [*base[:35], 9]], min_length=32)
    assert [(g.members, g.length) for g in groups] == [((0, 1, 2), 35)]
    assert shared_prefix_groups([[*base[:20], 1], [*base[:20], 2]], min_length=32) == []
    # identical prompts: the prefix stops one short so each still computes its last position
    assert shared_prefix_groups([base, base], min_length=32)[0].length == 39


def test_a_weak_newcomer_does_not_dilute_a_strong_group():
    strong = list(range(200))
    prompts = [[*strong, 1], [*strong, 2], [*strong, 3], strong[:40] + [99] * 50]
    groups = shared_prefix_groups(prompts, min_length=32)
    assert [(g.members, g.length) for g in groups] == [((0, 1, 2), 200)]


@pytest.mark.parametrize("seed", range(5))
def test_prefix_batches_place_every_prompt_once_and_keep_groups(seed):
    rng = random.Random(seed)
    stems = [[rng.randrange(1000) for _ in range(rng.randint(40, 120))] for _ in range(6)]
    prompts = []
    for _ in range(60):
        stem = rng.choice(stems) if rng.random() < 0.7 else []
        prompts.append(stem + [rng.randrange(1000) for _ in range(rng.randint(1, 80))])
    batches = plan_prefix_batches(prompts, max_tokens=900, max_size=16, extra_per_item=10)
    assert restore_order(batches, [[i for i in b] for b in batches]) == list(range(len(prompts)))
    where = {i: k for k, b in enumerate(batches) for i in b}
    for g in shared_prefix_groups(prompts):
        cost = g.length + sum(len(prompts[m]) - g.length + 10 for m in g.members)
        if cost <= 900 and len(g.members) <= 16:
            assert len({where[m] for m in g.members}) == 1  # a group that fits stays together
    for b in batches:
        assert len(b) <= 16
