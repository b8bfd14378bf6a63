"""Reward adapters called the way their trainers call them: TRL, veRL, OpenRLHF."""

from __future__ import annotations

import asyncio

import pytest
from test_serve_support import CountingJudge, grading_judge

from judgelm.integrations import (
    JudgeReward,
    RewardMapping,
    reward_response,
    samples_from_reward_request,
    split_query,
    trl_async_reward_func,
    trl_reward_func,
    verl_compute_score,
)
from judgelm.options import JudgeOptions


class FakeTrainerState:
    global_step = 3


def call_like_trl(func, prompts, completions, **columns):
    """What TRL's GRPOTrainer does: keyword prompts/completions/completion_ids/trainer_state plus
    every other dataset column as an aligned list; async functions run on an event loop."""
    kwargs = {
        "prompts": prompts,
        "completions": completions,
        "completion_ids": [[1, 2, 3] for _ in completions],
        "trainer_state": FakeTrainerState(),
        **columns,
    }
    if asyncio.iscoroutinefunction(func):
        return asyncio.run(func(**kwargs))
    return func(**kwargs)


PROMPTS = ["What is 2+2?"] * 3 + ["Capital of France?"] * 3
COMPLETIONS = ["good: 4", "bad: 5", "maybe 4", "good: Paris", "bad: Lyon", "garbage"]


def test_trl_single_grading_scores_each_completion():
    judge = CountingJudge(grading_judge())
    reward = trl_reward_func(judge, name="judge_reward")
    assert reward.__name__ == "judge_reward"
    out = call_like_trl(reward, PROMPTS, COMPLETIONS)
    assert out == [9.0, 2.0, 5.0, 9.0, 2.0, None]  # None: the judge abstained
    assert [n for n, _ in judge.calls] == [6]  # the whole batch in one judge call
    assert all(isinstance(x, float) for x in out if x is not None)


def test_trl_reference_column_becomes_the_gold_answer():
    judge = CountingJudge(grading_judge())
    reward = JudgeReward(judge, reference_column="solution")
    out = call_like_trl(reward, PROMPTS[:2], COMPLETIONS[:2], solution=["4", 4])
    assert out == [9.0, 2.0]
    prompts = judge.inner.engine.prompts
    assert prompts[0].endswith("### Response:10")  # single grading anchored on the gold answer
    assert "[Reference Answer]\n4\n" in prompts[1]


def test_trl_conversational_prompts_and_completions():
    judge = CountingJudge(grading_judge())
    prompts = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
        ],
    ]
    completions = [[{"role": "assistant", "content": "good: 4"}], [{"role": "assistant", "content": "bad: Lyon"}]]
    out = call_like_trl(JudgeReward(judge), prompts, completions)
    assert out == [9.0, 2.0]
    first, second = judge.inner.engine.prompts
    assert "[Question]\nWhat is 2+2?\n\n" in first and "Be brief" not in first
    assert "[Question]\nUser: Hi\n\nAssistant: Hello!\n\nUser: Capital of France?\n\n" in second


def test_trl_group_mode_judges_each_grpo_group_in_one_prompt():
    judge = CountingJudge(grading_judge())
    reward = JudgeReward(judge, mode="group")
    out = call_like_trl(reward, PROMPTS, [*COMPLETIONS[:5], "so-so"])
    assert out == [9.0, 2.0, 5.0, 9.0, 2.0, 5.0]
    prompts = judge.inner.engine.prompts
    assert len(prompts) == 2  # one prompt per group of 3, question shown once
    assert prompts[0].count("[Question]") == 1 and "Assistant 3's Answer" in prompts[0]
    assert [n for n, _ in judge.calls] == [2]
    # An abstain in a group leaves the whole group without reward (no partial guesses).
    assert call_like_trl(reward, PROMPTS, COMPLETIONS)[3:] == [None, None, None]


def test_trl_group_mode_splits_large_groups_and_changing_prompts():
    judge = CountingJudge(grading_judge())
    reward = JudgeReward(judge, mode="group", max_group_size=2)
    out = call_like_trl(reward, [*PROMPTS[:3], "Other?"], ["good", "bad", "good", "bad"])
    assert out == [9.0, 2.0, 9.0, 2.0]
    assert len(judge.inner.engine.prompts) == 3  # [good,bad] [good] [bad]: size cap and new prompt


def test_trl_pairwise_against_reference_is_a_margin_and_normalizes():
    judge = CountingJudge(grading_judge())
    reward = JudgeReward(judge, mode="pairwise", normalize=True, options=JudgeOptions(swap=True))
    out = call_like_trl(reward, PROMPTS[:2], ["good: 4", "bad: 5"], reference=["bad ref", "good ref"])
    assert out == pytest.approx([(7 + 9) / 18, (-7 + 9) / 18])
    assert all(kw["swap"] for _, kw in judge.calls)
    with pytest.raises(ValueError, match="reference"):
        call_like_trl(reward, PROMPTS[:1], ["x"])
    with pytest.raises(ValueError, match="row 1"):
        call_like_trl(reward, PROMPTS[:2], ["x", "y"], reference=["r", None])


def test_trl_async_reward_is_a_coroutine_function_with_the_same_numbers():
    judge = grading_judge()
    func = trl_async_reward_func(judge, mode="group", name="judgelm_group")
    assert asyncio.iscoroutinefunction(func) and func.__name__ == "judgelm_group"
    assert call_like_trl(func, PROMPTS, [*COMPLETIONS[:5], "ok"]) == call_like_trl(
        JudgeReward(judge, mode="group"), PROMPTS, [*COMPLETIONS[:5], "ok"]
    )


def test_trl_rejects_misaligned_inputs():
    reward = JudgeReward(grading_judge(), reference_column="solution")
    with pytest.raises(ValueError, match="prompts"):
        reward(prompts=["a"], completions=["x", "y"])
    with pytest.raises(ValueError, match="solution"):
        reward(prompts=["a", "b"], completions=["x", "y"], solution=["only one"])
    with pytest.raises(ValueError, match="mode"):
        JudgeReward(grading_judge(), mode="vibes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"options\.mode"):
        JudgeReward(grading_judge(), options=JudgeOptions(mode="multi"))


def test_verl_compute_score_per_item_and_batch():
    judge = CountingJudge(grading_judge())
    score = verl_compute_score(judge)
    out = score(data_source="gsm8k", solution_str="good: 4", ground_truth="4", extra_info={"question": "2+2?"})
    assert out == {"score": 9.0, "judge_score": 9.0, "abstained": 0.0}
    out = score("gsm8k", "garbage", "4", {"question": "2+2?"}, sandbox_fusion_url=None)
    assert out == {"score": 0.0, "judge_score": 0.0, "abstained": 1.0}
    judge.calls.clear()
    batch = score.batch(["a", "b"], ["good", "bad"], ["4", None], [{"question": "q1"}, {"question": "q2"}])
    assert [b["score"] for b in batch] == [9.0, 2.0]
    assert [n for n, _ in judge.calls] == [2]
    with pytest.raises(ValueError, match="question"):
        score("x", "good", "4", {})
    pair = verl_compute_score(judge, mode="pairwise", normalize=True, abstain_score=-1.0)
    assert pair("x", "good", "bad ref", {"question": "q"})["score"] == pytest.approx(16 / 18)
    assert pair("x", "garbage", "ref", {"question": "q"})["score"] == -1.0


def test_openrlhf_query_split_rules():
    assert split_query("PROMPT answer", "PROMPT") == ("PROMPT", " answer")
    assert split_query("<s> PROMPT answer", "PROMPT") == ("PROMPT", " answer")  # decoding prefix
    assert split_query("u1 A: x u2 A: final", None, " A: ") == ("u1 A: x u2", "final")  # last one
    with pytest.raises(ValueError, match="separator"):
        split_query("no sep", None, "###")
    with pytest.raises(ValueError, match="prompts"):
        split_query("text")
    with pytest.raises(ValueError, match="not part"):
        split_query("text", "other")


def test_openrlhf_mapping_roundtrip():
    mapping = RewardMapping(label_as="gold", question_fn=lambda q: q.removeprefix("User: ").strip())
    body = {
        "query": ["User: 2+2? good: 4<|eot_id|>", "User: 3+3? bad"],
        "prompts": ["User: 2+2?", "User: 3+3?"],
        "labels": ["4", None],
    }
    samples = samples_from_reward_request(body, mapping)
    assert [s.question for s in samples] == ["2+2?", "3+3?"]
    assert [s.answers for s in samples] == [(" good: 4",), (" bad",)]
    assert samples[0].gold == "4" and samples[0].reference is None and samples[1].gold is None
    verdicts = grading_judge().judge(samples)
    out = reward_response(verdicts, mapping)
    assert out["rewards"] == [9.0, 2.0] and len(out["scores"]) == len(out["extra_logs"]["judge_abstained"]) == 2
