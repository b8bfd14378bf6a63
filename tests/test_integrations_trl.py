"""judgelm rewards inside TRL itself (TRL 1.16.0 from PyPI, the ``dev`` extra).

- ``trl/trainer/grpo_trainer.py`` (``GRPOTrainer._calculate_rewards``): one real training step on
  CPU with a tiny model; sync rewards are called with ``prompts``, ``completions``,
  ``completion_ids``, ``trainer_state``, ``log_extra``, ``log_metric`` and the dataset columns;
  async ones (``trl/trainer/utils.py``: ``is_async_callable``) are awaited on TRL's loop; ``None``
  becomes NaN; ``log_metric`` values are averaged into the step's logs.
- ``trl/experimental/async_grpo/async_rollout_worker.py``: ``AsyncRolloutWorker.start`` checks
  ``pickle.dumps(loop_kwargs)`` (reward functions included) before spawning its child, and the
  child's ``_AsyncRolloutLoop._score_group`` calls every reward once per prompt group. The worker
  itself needs vLLM, so the test runs TRL's ``_score_group`` on unpickled rewards and a spawned
  process of its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import pickle
import types
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import pytest
from test_serve_support import CountingJudge, grading_judge, respond

from judgelm import Sample
from judgelm.integrations import JudgeReward, LocalBackend
from judgelm.options import JudgeOptions
from judgelm.serve import BackgroundServer, ServeConfig
from judgelm.testing import byte_tokenizer, scripted_judge, tiny_llama

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")


def first_prompt_abstains(prompt, seen=None):
    """The grading judge, except that the first prompt it sees gets no readable verdict."""
    seen.append(prompt)
    return "I cannot say\n" if len(seen) == 1 else respond(prompt)


def test_one_real_grpo_step_sync_group_and_async_single(tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    tok = byte_tokenizer()
    group_seen: list[str] = []
    single_seen: list[str] = []
    group = JudgeReward(
        scripted_judge(partial(first_prompt_abstains, seen=group_seen), tok),
        mode="group",
        num_generations=2,
        name="judge_group",
    )
    single = JudgeReward(scripted_judge(partial(first_prompt_abstains, seen=single_seen), tok), name="judge_single")
    # Two rows with the same prompt: a batch of 4 completions is 2 GRPO groups of the same prompt.
    dataset = datasets.Dataset.from_dict({"prompt": ["Same question?"] * 2, "reference": ["42"] * 2})
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=4,
        max_steps=1,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        bf16=False,
    )
    trainer = GRPOTrainer(
        model=tiny_llama(tok),
        reward_funcs=[group, single.as_async()],
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    trainer.train()
    logs = trainer.state.log_history[0]
    # num_generations kept the two neighbouring groups apart: two pairwise prompts, not one of 4.
    assert len(group_seen) == 2
    assert all("Assistant 2's Answer" in p and "Assistant 3" not in p for p in group_seen)
    assert all("[Question]\nSame question?\n\n" in p and "42" in p for p in group_seen)
    assert len(single_seen) == 4  # the async reward was awaited: one prompt per completion
    # Abstentions reach TRL's logs through log_metric; the rewards that exist are the scores.
    assert logs["judge_group/abstain_rate"] == pytest.approx(0.5)
    assert logs["judge_single/abstain_rate"] == pytest.approx(0.25)
    assert logs["rewards/judge_group/mean"] == pytest.approx(5.0)
    assert logs["rewards/judge_single/mean"] == pytest.approx(5.0)


PROMPTS = ["What is 2+2?"] * 2 + ["Capital?"] * 2
COMPLETIONS = ["good: 4", "bad: 5", "good: Paris", "garbage"]


@pytest.fixture(scope="module")
def server():
    judge = CountingJudge(grading_judge())
    with BackgroundServer(judge, ServeConfig(api_key="k")) as srv:
        yield srv


def test_async_grpo_pickles_rewards_and_scores_groups_in_its_loop(server):
    from accelerate.state import PartialState
    from trl.experimental.async_grpo.async_rollout_worker import RolloutGroup, TrainingSequence, _AsyncRolloutLoop
    from trl.trainer.utils import get_callable_name

    rewards = [
        JudgeReward(server.url, mode="group", api_key="k", name="remote_group"),
        JudgeReward(server.url, api_key="k", name="remote_single").as_async(),
        JudgeReward(LocalBackend(grading_judge), mode="group", name="local_group").as_async(),
    ]
    loop_kwargs = {"reward_funcs": rewards, "num_generations": 2}
    shipped = pickle.loads(pickle.dumps(loop_kwargs))["reward_funcs"]  # AsyncRolloutWorker.start's check
    assert [get_callable_name(f) for f in shipped] == ["remote_group", "remote_single", "local_group"]
    PartialState()  # what the child does before building its loop (accelerate's logger needs it)
    loop = types.SimpleNamespace(
        reward_funcs=shipped,
        reward_func_names=[get_callable_name(f) for f in shipped],
        _env_reward_types=[],
        _provides_rollout_reward=False,
    )
    sequence = TrainingSequence(input_ids=[1, 2], completion_mask=[0, 1], old_log_probs=[0.0, 0.0], rollout_id="r")
    group = RolloutGroup(
        prompts=PROMPTS[:2],
        reward_kwargs={"reference": ["4", "4"]},
        completions=COMPLETIONS[:2],
        completions_ids=[[1], [2]],
        completions_sequences=[[sequence], [sequence]],
        tool_call_counts=[0, 0],
        tool_failure_counts=[0, 0],
        model_version=0,
        group_id=0,
        env_rewards=[None, None],
        rollout_rewards=[None, None],
    )
    samples = asyncio.run(_AsyncRolloutLoop._score_group(loop, group))
    assert [s.metrics["rewards/remote_group"] for s in samples] == [9.0, 2.0]
    assert [s.metrics["rewards/remote_single"] for s in samples] == [9.0, 2.0]
    assert [s.metrics["rewards/local_group"] for s in samples] == [9.0, 2.0]
    assert [s.metrics["reward"] for s in samples] == [27.0, 6.0]


def test_a_local_judge_loads_lazily_in_a_spawned_child():
    reward = JudgeReward(LocalBackend(grading_judge), mode="group", num_generations=2)
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:  # how TRL starts its child
        got = pool.submit(reward, prompts=PROMPTS, completions=COMPLETIONS, reference=["4", "4", "P", "P"]).result(300)
    assert got == [9.0, 2.0, None, None]
    assert reward.backend._judge is None  # nothing was loaded in this process


def test_a_loaded_judge_refuses_to_pickle_naming_the_way_out():
    with pytest.raises(TypeError, match=r"LocalBackend\.from_pretrained.*judgelm serve"):
        pickle.dumps(JudgeReward(grading_judge()).as_async())


def test_group_size_from_num_generations():
    judge = CountingJudge(grading_judge())
    prompts = ["Same?"] * 6
    completions = ["good", "bad", "good", "bad", "good", "bad"]
    assert JudgeReward(judge, mode="group")(prompts, completions) == [9.0, 2.0, 9.0, 2.0, 9.0, 2.0]
    assert len(judge.inner.engine.prompts) == 1  # without a group size: one run of 6
    judge.inner.engine.prompts.clear()
    JudgeReward(judge, mode="group", num_generations=2)(prompts, completions)
    assert len(judge.inner.engine.prompts) == 3
    judge.inner.engine.prompts.clear()
    # A caller's num_generations wins; a slice that starts mid-group keeps its first part apart.
    JudgeReward(judge, mode="group", num_generations=2)(["A?", *prompts[:5]], completions, num_generations=3)
    assert [p.count("[The Start of Assistant") for p in judge.inner.engine.prompts] == [1, 3, 2]
    with pytest.raises(ValueError, match="num_generations"):
        JudgeReward(judge, mode="group", num_generations=0)


def test_local_backend_from_pretrained_travels_as_its_loader(tiny_model_dir, tiny_judge):
    backend = pickle.loads(pickle.dumps(LocalBackend.from_pretrained(str(tiny_model_dir), device="cpu")))
    assert backend._judge is None
    sample = Sample("Q?", ("a", "b"), mode="pairwise")
    [got] = backend.judge([sample], JudgeOptions(scoring="text"))
    [want] = tiny_judge.judge([sample], scoring="text")
    assert (got.scores, got.abstained, got.text) == (want.scores, want.abstained, want.text)
