"""judgelm under veRL's own reward-loop calling code.

Pinned to veRL 0.9.1 (PyPI wheel; the same files as git tag v0.9.0 = 483b8a009ba3a97563edee3a19887e4862b8094a):

- ``verl/utils/import_utils.py``: ``load_module`` imports ``custom_reward_function.path`` with
  ``spec_from_file_location``; ``load_extern_object`` takes ``custom_reward_function.name``.
- ``verl/trainer/ppo/reward.py``: ``get_custom_reward_fn`` wraps it in
  ``partial(_call_with_kwargs_async, raw_fn, reward_kwargs)`` when ``inspect.iscoroutinefunction``
  says async, else ``partial(_call_with_kwargs, ...)``.
- ``verl/experimental/reward_loop/reward_manager/naive.py`` (``dapo``, ``gdpo``, ``rate_limited``
  the same): ``inspect.iscoroutinefunction(compute_score)`` -> ``await compute_score(data_source=,
  solution_str=, ground_truth=, extra_info=)``, else ``loop.run_in_executor(None, lambda: ...)``;
  a dict result gives ``score`` and every key to ``reward_extra_info``; ``extra_info`` gains
  ``num_turns`` and ``rollout_reward_scores``.
- ``verl/experimental/reward_loop/reward_loop.py``: ``RewardLoopWorker.compute_score_batch`` makes
  one task per sample and gathers them (so async scores run concurrently).
- ``remote.py``: ``assert not is_async_reward_score``; the sync function is pickled into Ray actors.

veRL 0.9.1 pins transformers < 5.11 (this project runs 5.x newer), so it is not installed here:
`VerlRewardLoop` below is that code, copied without the DataProto/tokenizer plumbing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import pickle
import sys
import types
from functools import partial

import numpy as np
import pytest
from test_serve_support import CountingJudge, grading_judge

from judgelm.integrations import LocalBackend, verl_compute_score
from judgelm.serve import BackgroundServer, ServeConfig


def load_extern_object(module_path, object_name):
    spec_name = f"custom_module_{hash(os.path.abspath(module_path))}"
    spec = importlib.util.spec_from_file_location(spec_name, module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, object_name)


def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):
    merged_kwargs = {**kwargs, **extra_kwargs}
    return raw_fn(*args, **merged_kwargs)


async def _call_with_kwargs_async(raw_fn, extra_kwargs, *args, **kwargs):
    merged_kwargs = {**kwargs, **extra_kwargs}
    return await raw_fn(*args, **merged_kwargs)


def get_custom_reward_fn(path, name="compute_score", reward_kwargs=None):
    raw_fn = load_extern_object(module_path=path, object_name=name)
    reward_kwargs = dict(reward_kwargs or {})
    if not inspect.iscoroutinefunction(raw_fn):
        return partial(_call_with_kwargs, raw_fn, reward_kwargs)
    return partial(_call_with_kwargs_async, raw_fn, reward_kwargs)


class VerlRewardLoop:
    """veRL 0.9.1's reward loop around one ``compute_score`` (see the module doc)."""

    def __init__(self, compute_score, manager="naive"):
        self.compute_score = compute_score
        self.is_async_reward_score = inspect.iscoroutinefunction(self.compute_score)
        if manager == "remote":
            assert not self.is_async_reward_score, "Async reward score is not supported in remote reward manager. "

    async def run_single(self, item):
        loop = asyncio.get_running_loop()
        extra_info = dict(item.get("extra_info", {}))
        extra_info["num_turns"] = None
        extra_info["rollout_reward_scores"] = {}
        kwargs = dict(
            data_source=item["data_source"],
            solution_str=item["response_str"],
            ground_truth=item["reward_model"]["ground_truth"],
            extra_info=extra_info,
        )
        if self.is_async_reward_score:
            result = await self.compute_score(**kwargs)
        else:
            result = await loop.run_in_executor(None, lambda: self.compute_score(**kwargs))
        reward_extra_info = {}
        if isinstance(result, dict):
            score = result["score"]
            for key, value in result.items():
                reward_extra_info[key] = value
        else:
            score = result
            reward_extra_info["acc"] = score
        return {"reward_score": score, "reward_extra_info": reward_extra_info}

    async def compute_score_batch(self, items):
        tasks = [asyncio.create_task(self.run_single(item)) for item in items]
        return await asyncio.gather(*tasks)


def rows(n):
    """Rows as veRL's parquet gives them (NumPy values; the question in extra_info)."""
    answers = ["good: 4", "bad: 5", "garbage"]
    return [
        {
            "data_source": "gsm8k",
            "response_str": answers[i % 3],
            "reward_model": {"ground_truth": np.int64(4)},
            "extra_info": {"split": "train", "index": i, "question": "What is 2+2?"},
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def server():
    judge = CountingJudge(grading_judge())
    with BackgroundServer(judge, ServeConfig(api_key="k", max_wait_ms=50)) as srv:
        srv.judge = judge  # type: ignore[attr-defined]
        yield srv


def reward_file(tmp_path, body):
    path = tmp_path / "my_reward.py"
    path.write_text(f"from judgelm.integrations import verl_compute_score\n{body}\n")
    return str(path)


EXPECTED = [9.0, 2.0, 0.0] * 3


def test_async_compute_score_is_awaited_directly_and_batched_by_the_server(server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_URL", server.url)
    path = reward_file(
        tmp_path, "import os\ncompute_score = verl_compute_score(os.environ['JUDGE_URL'], api_key='k').as_async()"
    )
    fn = get_custom_reward_fn(path, reward_kwargs={"max_resp_len": 512})  # reward_kwargs reach the call
    loop = VerlRewardLoop(fn)
    assert loop.is_async_reward_score  # veRL awaits it on its own loop, no executor thread
    before = len(server.judge.calls)
    out = asyncio.run(loop.compute_score_batch(rows(9)))
    assert [o["reward_score"] for o in out] == EXPECTED
    assert [o["reward_extra_info"]["abstained"] for o in out] == [0.0, 0.0, 1.0] * 3
    assert set(out[0]["reward_extra_info"]) == {"score", "judge_score", "abstained"}
    calls = server.judge.calls[before:]
    assert sum(n for n, _ in calls) == 9 and len(calls) < 9  # concurrent calls merged into batches


def test_sync_compute_score_runs_in_the_executor_and_pickles_for_the_remote_manager(server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_URL", server.url)
    path = reward_file(tmp_path, "import os\ncompute_score = verl_compute_score(os.environ['JUDGE_URL'], api_key='k')")
    fn = get_custom_reward_fn(path)
    assert not VerlRewardLoop(fn).is_async_reward_score
    out = asyncio.run(VerlRewardLoop(fn).compute_score_batch(rows(3)))
    assert [o["reward_score"] for o in out] == EXPECTED[:3]
    # The `remote` manager sends the function to its own Ray actors (cloudpickle).
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    shipped = cloudpickle.loads(cloudpickle.dumps(fn))
    out = asyncio.run(VerlRewardLoop(shipped, manager="remote").compute_score_batch(rows(3)))
    assert [o["reward_score"] for o in out] == EXPECTED[:3]
    with pytest.raises(AssertionError, match="Async reward score"):
        VerlRewardLoop(partial(_call_with_kwargs_async, verl_compute_score(server.url).as_async(), {}), "remote")


def test_local_judge_scores_the_same(server):
    local = verl_compute_score(grading_judge(), mode="pairwise", normalize=True)
    remote = verl_compute_score(server.url, mode="pairwise", normalize=True, api_key="k")
    items = [{**r, "reward_model": {"ground_truth": "bad ref"}} for r in rows(3)]
    got = [asyncio.run(VerlRewardLoop(f).compute_score_batch(items)) for f in (local.as_async(), remote.as_async())]
    assert got[0] == got[1]
    assert [o["reward_score"] for o in got[0]] == pytest.approx([16 / 18, 9 / 18, 0.0])


def test_local_judge_loaded_in_a_ray_actor_warns(monkeypatch):
    fake_ray = types.SimpleNamespace(
        is_initialized=lambda: True,
        get_runtime_context=lambda: types.SimpleNamespace(get_actor_id=lambda: "a1b2"),
    )
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    with pytest.warns(RuntimeWarning, match=r"inside Ray actor a1b2.*reward\.num_workers.*judgelm serve"):
        verl_compute_score(grading_judge())
    lazy = LocalBackend(grading_judge)  # a loader: the warning comes when it loads
    with pytest.warns(RuntimeWarning, match="a1b2"):
        lazy.judge_  # noqa: B018
    monkeypatch.setitem(sys.modules, "ray", None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verl_compute_score(grading_judge())  # not in an actor: no warning


def test_a_loaded_judge_refuses_to_pickle_clearly():
    with pytest.raises(TypeError, match=r"copy the\s+model.*from_pretrained.*judgelm serve"):
        pickle.dumps(verl_compute_score(grading_judge()))
