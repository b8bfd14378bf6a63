"""judgelm under OpenRLHF's own reward calling code.

Pinned to OpenRLHF 0.11 (git tag v0.11.0 = 3c3be6234e0cb353e76bb8019947db9dfe99fca7; PyPI openrlhf
0.11.2 ships the same calls), ``openrlhf/utils/agent.py``, ``SingleTurnAgentExecutor``:

- ``__init__``: a ``--reward.remote_url`` ending in ``.py`` is imported with
  ``importlib.util.spec_from_file_location("reward_func", path)`` and its ``reward_func`` is used;
- ``execute``: the prompt is tokenized with ``add_special_tokens=False``; an over-long one keeps
  ``prompt_token_ids[-max_prompt_length:]``; the query is
  ``hf_tokenizer.decode(prompt_token_ids + action_token_ids, skip_special_tokens=False)``; the
  reward of ``([query], [prompt], [label])`` is ``rewards_info_list[0]`` and an exception only logs
  (the reward stays None and training fails later);
- ``_fetch_rewards_via_func``: ``asyncio.to_thread(reward_func, queries, prompts, labels)``;
- ``_fetch_rewards_via_http``: ``aiohttp`` POST of the JSON body with NO headers,
  ``raise_for_status()``, 5 tries 1 s apart (``Retry-After`` ignored), then ``RuntimeError``.

OpenRLHF does not install on a CPU-only machine (vLLM, DeepSpeed), so `OpenRLHFRewardCaller`
below is that code, copied with the generation left out (``action_text`` stands for vLLM's output).
The flag is ``--reward.remote_url`` since v0.10.2 (``openrlhf/cli/train_ppo_ray.py``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging

import httpx
import pytest
import torch
from test_serve_support import CountingJudge, grading_judge

from judgelm.integrations import OpenRLHFReward, RewardMapping, read_reward_request, split_query
from judgelm.integrations.openrlhf import MIN_SUFFIX_OVERLAP
from judgelm.serve import BackgroundServer, ServeConfig
from judgelm.testing import byte_tokenizer

aiohttp = pytest.importorskip("aiohttp")


class OpenRLHFRewardCaller:
    """The reward half of OpenRLHF 0.11.2's ``SingleTurnAgentExecutor`` (see the module doc)."""

    def __init__(self, remote_rm_url: str):
        self.reward_endpoints = [remote_rm_url]
        self.reward_func = None
        if self.reward_endpoints[0].endswith(".py"):
            spec = importlib.util.spec_from_file_location("reward_func", self.reward_endpoints[0])
            reward_module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(reward_module)
            self.reward_func = reward_module.reward_func

    async def reward(self, prompt, label, action_text, hf_tokenizer, max_prompt_length):
        prompt_token_ids = hf_tokenizer(text=prompt, add_special_tokens=False, return_tensors="pt")["input_ids"][
            0
        ].tolist()
        if len(prompt_token_ids) > max_prompt_length:
            prompt_token_ids = prompt_token_ids[-max_prompt_length:]
        action_token_ids = hf_tokenizer(text=action_text, add_special_tokens=False)["input_ids"]
        action_token_ids = [*action_token_ids, hf_tokenizer.eos_token_id]  # vLLM stops on EOS
        output = {"reward": None, "scores": None, "extra_logs": {}}
        try:
            query = hf_tokenizer.decode(prompt_token_ids + action_token_ids, skip_special_tokens=False)
            if self.reward_func:
                rewards_info_list = await self._fetch_rewards_via_func([query], [prompt], [label])
            else:
                rewards_info_list = await self._fetch_rewards_via_http([query], [prompt], [label])
            rewards_info = rewards_info_list[0] if rewards_info_list else None
            if rewards_info:
                score_value = rewards_info.get("scores")
                if score_value is None:
                    score_value = rewards_info.get("rewards")
                output.update(
                    reward=rewards_info.get("rewards"),
                    scores=score_value,
                    extra_logs=rewards_info.get("extra_logs") or {},
                )
        except Exception as e:
            output["error"] = str(e)  # upstream: logger.info(...) and the reward stays None
        return output

    async def _fetch_rewards_via_func(self, queries_list, prompts_list, labels_list):
        return await asyncio.gather(asyncio.to_thread(self.reward_func, queries_list, prompts_list, labels_list))

    async def _fetch_rewards_via_http(self, queries_list, prompts_list, labels_list, try_max_times=5):
        timeout = aiohttp.ClientTimeout(total=180)
        payload = {"query": queries_list, "prompts": prompts_list, "labels": labels_list}
        for _ in range(try_max_times):
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session:  # noqa: SIM117 (as upstream)
                    async with session.post(self.reward_endpoints[0], json=payload) as response:
                        response.raise_for_status()
                        return [await response.json()]
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
        raise RuntimeError(f"Request error for {try_max_times} times, returning None. Please check the API server.")


def experience_tensors(output):
    """What ``samples_generator._process_response_into_experience`` makes of the reward."""
    info = {"reward": torch.tensor([output["reward"]]), "score": torch.tensor([output["scores"]])}
    for key, value in output["extra_logs"].items():
        info[key] = torch.tensor([value])
    return info


# A prompt long enough to be cut, with multi-byte characters where the cut falls.
QUESTION = "Translate 日本の首都は東京です into English, then say what 2+2 is."
PROMPT = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def keyed_server():
    judge = CountingJudge(grading_judge())
    with BackgroundServer(judge, ServeConfig(api_key="k3y-s3cret-42"), log_level="debug") as srv:
        srv.judge = judge  # type: ignore[attr-defined]
        yield srv


@pytest.mark.parametrize("max_prompt_length", [10_000, 40, 41, 42])
def test_openrlhf_http_call_with_the_key_in_the_url_path(keyed_server, max_prompt_length):
    """Whole and truncated prompts (cut inside 日/本/の: 0-2 garbled characters) split right."""
    tok = byte_tokenizer()
    caller = OpenRLHFRewardCaller(f"{keyed_server.url}/k/k3y-s3cret-42/get_reward")
    before = len(keyed_server.judge.inner.engine.prompts)
    output = asyncio.run(caller.reward(PROMPT, "4", "good: 4", tok, max_prompt_length))
    assert "error" not in output
    assert output["reward"] == [9.0]
    assert output["extra_logs"] == {"judge_abstained": [0.0], "judge_invalid_input": [0.0]}
    info = experience_tensors(output)
    assert info["reward"].shape == (1, 1) and info["judge_abstained"].item() == 0.0
    # The judge saw the WHOLE prompt as the question (even when the policy saw only its end) and
    # the response without its EOS.
    [judged] = keyed_server.judge.inner.engine.prompts[before:]
    assert f"[Question]\n{PROMPT}\n\n" in judged
    assert "[The Start of Assistant 2's Answer]\ngood: 4\n\n" in judged


def test_openrlhf_without_the_key_gets_401_and_no_reward(keyed_server):
    caller = OpenRLHFRewardCaller(f"{keyed_server.url}/get_reward")  # OpenRLHF sends no header

    async def one_try():
        return await caller._fetch_rewards_via_http(["q"], ["q"], [None], try_max_times=1)

    with pytest.raises(RuntimeError):
        asyncio.run(one_try())
    r = httpx.post(f"{keyed_server.url}/k/wrong-key/get_reward", json={"query": ["q"]})
    assert r.status_code == 401 and "wrong-key" not in r.text
    assert httpx.post(f"{keyed_server.url}/k//get_reward", json={"query": ["q"]}).status_code == 401


def test_the_key_in_the_url_is_never_logged_or_exported(keyed_server):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            if not record.name.startswith(("httpx", "httpcore")):  # this test's own client
                records.append(record)

    handler = Keep(level=logging.DEBUG)
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "judgelm"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        base = f"{keyed_server.url}/k/k3y-s3cret-42/get_reward"
        assert httpx.post(base, json={"query": ["x"]}).status_code == 200  # unsplittable: a stand-in
        assert httpx.post(base, json={"query": "not a list"}).status_code == 400
        assert httpx.post(base, content=b"{").status_code == 400
        assert httpx.post(base.replace("42", "43"), json={"query": ["x"]}).status_code == 401
        typo = httpx.post(base + "/", json={"query": ["x"]})  # redacted too (Starlette redirects it)
        assert typo.status_code == 307 and typo.headers["location"].endswith("/k/***/get_reward")
        metrics = httpx.get(f"{keyed_server.url}/metrics", headers={"Authorization": "Bearer k3y-s3cret-42"})
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    # The capture works: the stand-in reward logs a warning, and adding a handler to uvicorn's
    # access logger turned its access log on (the request line is logged, with the key taken out).
    access = [r.getMessage() for r in records if r.name == "uvicorn.access"]
    assert any('"POST /k/***/get_reward HTTP/1.1" 200' in line for line in access), access
    assert any("could not be judged" in r.getMessage() for r in records)
    for record in records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        assert "s3cret" not in text, text
    assert metrics.status_code == 200 and "s3cret" not in metrics.text


def test_no_key_route_without_an_api_key():
    with BackgroundServer(grading_judge()) as srv:
        assert httpx.post(f"{srv.url}/k/anything/get_reward", json={"query": []}).status_code == 404


def test_openrlhf_reward_func_file_sends_the_key_in_a_header(keyed_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_URL", keyed_server.url)
    path = tmp_path / "judge_reward.py"
    path.write_text(
        "import os\n"
        "from judgelm.integrations import OpenRLHFReward\n"
        "reward_func = OpenRLHFReward(os.environ['JUDGE_URL'], api_key='k3y-s3cret-42')\n"
    )
    caller = OpenRLHFRewardCaller(str(path))
    output = asyncio.run(caller.reward(PROMPT, None, "bad: 5", byte_tokenizer(), 30))
    assert "error" not in output
    assert output["reward"] == [2.0] and output["scores"] == pytest.approx([1 / 9])
    assert experience_tensors(output)["judge_invalid_input"].item() == 0.0


def test_openrlhf_reward_func_in_process_equals_the_server(keyed_server):
    body = {"query": [f"{PROMPT}good: 4</s>", "no way to split"], "prompts": [PROMPT, None], "labels": [4, None]}
    local = OpenRLHFReward(grading_judge())(body["query"], body["prompts"], body["labels"])
    served = httpx.post(f"{keyed_server.url}/k/k3y-s3cret-42/get_reward", json={**body, "labels": ["4", None]})
    assert local == served.json()
    assert local["rewards"] == [9.0, 0.0] and local["extra_logs"]["judge_invalid_input"] == [0.0, 1.0]


def test_split_query_finds_a_truncated_prompt_by_its_end():
    prompt = "System: be brief.\nUser: what is the capital of France?\nAssistant:"
    for keep in (len(prompt), 40, MIN_SUFFIX_OVERLAP):
        assert split_query(prompt[-keep:] + " Paris", prompt) == (prompt, " Paris")
    # Up to 4 garbled characters where a token boundary split a character.
    assert split_query("\ufffd\ufffd" + prompt[-30:] + " Paris", prompt) == (prompt, " Paris")
    # Too short an overlap could be chance: the separator decides, or nothing does.
    short = prompt[-(MIN_SUFFIX_OVERLAP - 1) :] + " Paris"
    with pytest.raises(ValueError, match="not part of the query"):
        split_query(short, prompt)
    assert split_query(short, prompt, "Assistant:") == (short[: short.rindex("Assistant:")], " Paris")
    # The longest suffix wins when the prompt's end repeats itself.
    looping = "ab " * 20 + "Answer:"
    assert split_query(looping[-25:] + " x", looping) == (looping, " x")
    # A pathological prompt costs bounded work and falls back to the separator.
    assert split_query("a" * 50 + " B: y", "a" * 100_000 + " B:", " B: ") == ("a" * 50, "y")


def test_read_reward_request_keeps_every_query():
    mapping = RewardMapping(mode="pairwise", separator="A:")
    items = read_reward_request({"query": ["Q A: x", "no split", "Q A: y"], "labels": ["r", "r", None]}, mapping)
    assert [type(i).__name__ for i in items] == ["Sample", "InvalidSampleError", "InvalidSampleError"]
    assert items[1].field == "query[1]" and items[2].field == "labels[2]"
