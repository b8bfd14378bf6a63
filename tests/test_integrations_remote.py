"""The reward adapters against a running judge server give what they give in-process."""

from __future__ import annotations

import asyncio
import sys

import pytest
from test_serve_support import CountingJudge, grading_judge

from judgelm.errors import InvalidSampleError, MissingDependencyError
from judgelm.integrations import JudgeReward, RemoteBackend, as_backend, verl_compute_score
from judgelm.serve import BackgroundServer, JudgeClient, ServeConfig
from judgelm.serve.client import RemoteJudgeError

PROMPTS = ["What is 2+2?"] * 3 + ["Capital?"] * 3
COMPLETIONS = ["good: 4", "bad: 5", "maybe", "good: Paris", "bad: Lyon", "garbage"]


@pytest.fixture(scope="module")
def server():
    judge = CountingJudge(grading_judge())
    with BackgroundServer(judge, ServeConfig(api_key="k", max_wait_ms=20)) as srv:
        srv.judge = judge  # type: ignore[attr-defined]
        yield srv


@pytest.mark.parametrize("mode", ["single", "group", "pairwise"])
def test_trl_reward_remote_equals_local(server, mode):
    cols = {"reference": ["4", "4", "4", "Paris", "Paris", "Paris"]}
    local = JudgeReward(grading_judge(), mode=mode)(prompts=PROMPTS, completions=COMPLETIONS, **cols)
    remote = JudgeReward(server.url, mode=mode, api_key="k")
    assert isinstance(remote.backend, RemoteBackend)
    assert remote(prompts=PROMPTS, completions=COMPLETIONS, **cols) == local
    async_remote = remote.as_async()
    assert asyncio.run(async_remote(prompts=PROMPTS, completions=COMPLETIONS, **cols)) == local


def test_concurrent_async_rewards_are_micro_batched(server):
    reward = JudgeReward(server.url, api_key="k").as_async()

    async def many():
        return await asyncio.gather(*(reward(prompts=["q"], completions=[f"good {i}"]) for i in range(8)))

    before = len(server.judge.calls)
    assert asyncio.run(many()) == [[9.0]] * 8
    calls = server.judge.calls[before:]
    assert sum(n for n, _ in calls) == 8 and len(calls) < 8


def test_verl_remote_and_wrong_key(server):
    score = verl_compute_score(server.url, api_key="k")
    assert score("ds", "good", "4", {"question": "q"})["score"] == 9.0
    with pytest.raises(RemoteJudgeError) as e:
        verl_compute_score(server.url, api_key="nope")("ds", "good", "4", {"question": "q"})
    assert e.value.status == 401


def test_client_surfaces_field_errors_and_openrlhf_call(server):
    from judgelm import Sample

    client = JudgeClient(server.url, api_key="k")
    with pytest.raises(InvalidSampleError) as e:
        client.judge([Sample("Q", ("a", "b"), mode="single")])
    assert e.value.field == "samples[0].answers"
    out = client.get_reward(["Q: x A: good"], prompts=["Q: x A:"], labels=["ref"])
    assert out["rewards"] == [9.0]
    assert asyncio.run(client.aget_reward(["Q: x A: bad"], prompts=["Q: x A:"]))["rewards"] == [2.0]
    assert client.health()["status"] == "ok"
    client.close()


def test_client_retries_after_503():
    judge = CountingJudge(grading_judge(), delay=0.3)
    config = ServeConfig(max_batch_size=1, max_wait_ms=0, max_queue=1, max_request_samples=1)
    with BackgroundServer(judge, config) as srv:
        client = JudgeClient(srv.url, max_retries=5)
        reward = JudgeReward(RemoteBackend(srv.url)).as_async()

        async def burst():
            return await asyncio.gather(*(reward(prompts=["q"], completions=[f"good {i}"]) for i in range(3)))

        assert asyncio.run(burst()) == [[9.0]] * 3  # some were refused with 503, then retried
        assert srv.app.state.metrics.rejected.get(reason="overload") >= 1
        client.close()


def test_as_backend_dispatch():
    with pytest.raises(ValueError, match="http"):
        as_backend("localhost:8000")
    with pytest.raises(TypeError):
        as_backend(42)


def test_missing_optional_dependencies_name_the_extra(monkeypatch):
    from judgelm.integrations import ray_data
    from judgelm.serve import app, client

    for mod in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(MissingDependencyError) as e:
        ray_data.judge_file("in.jsonl", "out.jsonl")
    assert e.value.extra == "ray" and "judgelm[ray]" in str(e.value) and "Ray batch judging" in str(e.value)
    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(MissingDependencyError) as e:
        app.create_app(grading_judge())
    assert e.value.extra == "serve"
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError) as e:
        client.JudgeClient().health()
    assert e.value.extra == "serve"
