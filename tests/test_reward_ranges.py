"""Rewards normalise a verdict against its own format's scale (``Provenance.score_range``), not
the judge's JudgeLM 1-10 default: a Prometheus 5 of 5 is a full reward, a won choice a full
margin, and a JudgeLM 9 of 10 stays where it was."""

from __future__ import annotations

import pytest
from test_judge_other_families import respond, scripted

from judgelm import Sample
from judgelm.integrations.openrlhf import RewardMapping, reward_response
from judgelm.integrations.rewards import score_range_of, to_unit
from judgelm.integrations.verl import VerlScorer
from judgelm.types import verdict_from_dict


def _family_judge():
    def reply(prompt: str) -> str:
        return respond(prompt) if prompt.startswith(("[INST] ", "Below are two")) else " 9\ngood"

    return scripted(reply)


def test_rewards_use_the_verdicts_own_scale():
    judge = _family_judge()
    grades = judge.judge(
        [
            Sample("q", ("good",), mode="prometheus_absolute", reference="r"),  # 5 on 1-5
            Sample("q", ("bad",), mode="prometheus_absolute", reference="r"),  # 2 on 1-5
            Sample("q", ("x",), gold="g", mode="single"),  # 9 on 1-10
        ],
        scoring="text",
    )
    assert [v.provenance.score_range for v in grades] == [(1.0, 5.0), (1.0, 5.0), (1.0, 10.0)]
    body = reward_response(grades, RewardMapping(mode="single"))
    assert body["rewards"] == [5.0, 2.0, 9.0]
    assert body["scores"] == pytest.approx([1.0, 0.25, 8 / 9])  # with the 1-10 default: 0.44, 0.11, 0.89
    choice = judge.judge([Sample("q", ("good", "bad"), mode="prometheus_relative")], scoring="text")
    assert choice[0].provenance.score_range == (0.0, 1.0)
    won = reward_response(choice, RewardMapping(mode="pairwise"))
    assert won["rewards"] == [1.0] and won["scores"] == [1.0]  # the 1-10 default made it 0.56


def test_verl_normalises_with_the_verdicts_scale():
    judge = _family_judge()
    reward = VerlScorer(judge, mode="single", normalize=True)
    (v,) = judge.judge([Sample("q", ("good",), mode="prometheus_absolute", reference="r")], scoring="text")
    assert reward._result(v)["score"] == pytest.approx(1.0)


def test_the_scale_survives_serialisation_and_falls_back():
    (v,) = _family_judge().judge([Sample("q", ("good",), mode="prometheus_absolute", reference="r")], scoring="text")
    back = verdict_from_dict(v.to_dict())
    assert back.provenance.score_range == (1.0, 5.0) and score_range_of(back, (0.0, 9.0)) == (1.0, 5.0)
    assert score_range_of(None, (1.0, 10.0)) == (1.0, 10.0)
    assert to_unit(3.0, (1.0, 5.0)) == 0.5
