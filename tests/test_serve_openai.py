"""The OpenAI API of ``judgelm serve``, through the official ``openai`` client over loopback.

Wire formats pinned here, from the OpenAI API reference (as the ``openai`` Python client types
them: openai 3.x ``types/completion_choice.py`` ``Logprobs(tokens, token_logprobs, top_logprobs,
text_offset)``, ``types/chat/chat_completion_token_logprob.py``) and vLLM's OpenAI server
(vllm-project/vllm ``vllm/entrypoints/openai/completion/serving.py`` at 030ea52e:
``echo`` + ``max_tokens`` 0 returns the prompt with its log-probabilities, the first token's
null; a stream is ``data: {chunk}`` events ending ``data: [DONE]``; ``completion/protocol.py``
at 002032ee: ``logprobs`` in 0..20, ``return_tokens_as_token_ids`` writes ``token_id:N``).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import httpx
import openai
import pytest
import torch

from judgelm import Judge
from judgelm.engine import GenerationOptions
from judgelm.modalities.text import load_tokenizer
from judgelm.serve import BackgroundServer, ServeConfig

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")
def chat_tokenizer():
    from conftest import LLAMA_TOKENIZER

    tok = load_tokenizer(str(LLAMA_TOKENIZER))
    tok.chat_template = TEMPLATE
    return tok


@pytest.fixture(scope="module")
def judge(tiny_model, chat_tokenizer):
    return Judge(tiny_model, chat_tokenizer, name="tiny-llama")


@contextmanager
def serving(judge, **config):
    srv = BackgroundServer(judge, ServeConfig(**config), graceful_timeout_s=10).start()
    try:
        yield srv, openai.OpenAI(base_url=srv.url + "/v1", api_key=config.get("api_key") or "none", max_retries=0)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def server(judge):
    with serving(judge) as (srv, client):
        yield srv, client


def local_greedy(judge, ids, n):
    return judge.engine.generate([ids], GenerationOptions(n))[0]


def model_logprobs(model, ids):
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)  # [L, V]: next-token


def test_models_lists_the_served_name(judge, server):
    _, client = server
    assert [m.id for m in client.models.list()] == ["tiny-llama"]
    with serving(judge, served_model_name="judge-7b") as (_, other):
        assert [m.id for m in other.models.list()] == ["judge-7b"]
        with pytest.raises(openai.NotFoundError):
            other.completions.create(model="tiny-llama", prompt="x", max_tokens=1)


def test_greedy_completion_is_local_greedy_generation(judge, server):
    _, client = server
    prompt = "The capital of France is"
    ids = judge.tokenizer(prompt)["input_ids"]
    want = local_greedy(judge, ids, 12)
    r = client.completions.create(
        model="tiny-llama", prompt=prompt, max_tokens=12, temperature=0, extra_body={"return_token_ids": True}
    )
    choice = r.choices[0]
    assert choice.model_extra["token_ids"] == want
    assert (
        choice.text
        == judge.tokenizer.decode(ids[-8:] + want, skip_special_tokens=True)[
            len(judge.tokenizer.decode(ids[-8:], skip_special_tokens=True)) :
        ]
    )
    assert choice.finish_reason == ("stop" if want[-1] == judge.tokenizer.eos_token_id else "length")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (len(ids), len(want))
    assert r.object == "text_completion" and r.model == "tiny-llama"


def test_token_id_prompts_and_prompt_lists(judge, server):
    _, client = server
    prompts = [[1, 450, 4996], [1, 3681, 338, 263], [1, 29871, 29906]]
    r = client.completions.create(model="tiny-llama", prompt=prompts, max_tokens=5, temperature=0)
    assert [c.index for c in r.choices] == [0, 1, 2]
    for c, p in zip(r.choices, prompts, strict=True):
        want = local_greedy(judge, p, 5)
        assert (
            c.text
            == "".join(judge.tokenizer.decode(p[-8:] + want, skip_special_tokens=True))[
                len(judge.tokenizer.decode(p[-8:], skip_special_tokens=True)) :
            ]
        )
    texts = client.completions.create(model="tiny-llama", prompt=["a b", "c d"], max_tokens=3, temperature=0)
    assert len(texts.choices) == 2 and texts.usage.completion_tokens == 6


def test_completion_logprobs_are_the_models(judge, tiny_model, server):
    """``logprobs`` = k: each token's log-probability and a dict of the chosen + k most likely
    (vLLM's layout), text offsets adding up."""
    _, client = server
    ids = judge.tokenizer("Once upon a time")["input_ids"]
    r = client.completions.create(model="tiny-llama", prompt=ids, max_tokens=6, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    gen = local_greedy(judge, ids, 6)
    ref = model_logprobs(tiny_model, ids + gen)
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(gen)
    for k, (tok, value, top) in enumerate(zip(gen, lp.token_logprobs, lp.top_logprobs, strict=True)):
        assert value == pytest.approx(float(ref[len(ids) - 1 + k, tok]), abs=1e-4)
        assert 1 <= len(top) <= 4 and max(top.values()) == pytest.approx(value, abs=1e-6)  # greedy: the best
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:k]) for k in range(len(lp.tokens))]
    as_ids = client.completions.create(
        model="tiny-llama",
        prompt=ids,
        max_tokens=3,
        temperature=0,
        logprobs=2,
        extra_body={"return_tokens_as_token_ids": True},
    ).choices[0]
    assert as_ids.logprobs.tokens == [f"token_id:{t}" for t in gen[:3]]
    assert all(k.startswith("token_id:") for top in as_ids.logprobs.top_logprobs for k in top)


def test_echo_with_zero_tokens_returns_the_prompt_logprobs(judge, tiny_model, server):
    """The scoring contract remote judges use: every prompt token's log-probability, the first
    one null, nothing generated."""
    _, client = server
    prompts = [[1, 450, 4996, 17354, 1701, 975], [1, 450, 4996, 17354, 3681], [1, 29871, 29906]]
    r = client.completions.create(model="tiny-llama", prompt=prompts, max_tokens=0, echo=True, logprobs=0)
    assert r.usage.completion_tokens == 0 and r.usage.prompt_tokens == sum(map(len, prompts))
    for c, p in zip(r.choices, prompts, strict=True):
        ref = model_logprobs(tiny_model, p)
        assert c.logprobs.token_logprobs[0] is None and c.logprobs.top_logprobs[0] is None
        got = c.logprobs.token_logprobs[1:]
        want = [float(ref[i, p[i + 1]]) for i in range(len(p) - 1)]
        assert got == pytest.approx(want, abs=1e-4)
        assert c.text == judge.tokenizer.decode(p, skip_special_tokens=True) and c.finish_reason == "length"
    top = client.completions.create(model="tiny-llama", prompt=prompts[0], max_tokens=0, echo=True, logprobs=2).choices[
        0
    ]
    best = model_logprobs(tiny_model, prompts[0])[0].topk(2).values.tolist()
    assert sorted(top.logprobs.top_logprobs[1].values(), reverse=True)[:2] == pytest.approx(best, abs=1e-4)


def test_stop_strings_cut_the_text(judge, server):
    _, client = server
    prompt = "The capital of France is"
    full = client.completions.create(model="tiny-llama", prompt=prompt, max_tokens=12, temperature=0).choices[0]
    stop = full.text[5:9]  # spans tokens somewhere in the middle
    cut = client.completions.create(model="tiny-llama", prompt=prompt, max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].text == full.text[: full.text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 12


def test_streamed_completions_equal_the_whole_answer(server):
    _, client = server
    kw = {"model": "tiny-llama", "prompt": ["a b c", "d e f g"], "max_tokens": 7, "temperature": 0, "logprobs": 1}
    whole = client.completions.create(**kw)
    texts, tokens, finish, usage = {0: "", 1: ""}, {0: [], 1: []}, {}, None
    for chunk in client.completions.create(stream=True, **kw):
        if not chunk.choices:
            usage = chunk.usage
            continue
        c = chunk.choices[0]
        texts[c.index] += c.text
        if c.logprobs is not None:
            tokens[c.index] += c.logprobs.tokens
        if c.finish_reason:
            finish[c.index] = c.finish_reason
    for c in whole.choices:
        assert texts[c.index] == c.text and tokens[c.index] == c.logprobs.tokens
        assert finish[c.index] == c.finish_reason
    assert usage is not None and usage.total_tokens == whole.usage.total_tokens


def test_chat_uses_the_template_and_streams(judge, server):
    _, client = server
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime."}]
    ids = judge.tokenizer(
        judge.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
        add_special_tokens=False,
    )["input_ids"]
    want = local_greedy(judge, ids, 8)
    r = client.chat.completions.create(
        model="tiny-llama", messages=messages, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2
    )
    choice = r.choices[0]
    assert r.object == "chat.completion" and choice.message.role == "assistant"
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == len(want)
    content = choice.logprobs.content
    assert len(content) == len(want) and all(len(t.top_logprobs) == 2 for t in content)
    assert "".join(t.token for t in content) == choice.message.content
    assert all(t.bytes == list(t.token.encode()) for t in content)
    streamed, roles = "", []
    for chunk in client.chat.completions.create(
        model="tiny-llama", messages=messages, max_tokens=8, temperature=0, stream=True
    ):
        for c in chunk.choices:
            roles.append(c.delta.role)
            streamed += c.delta.content or ""
    assert streamed == choice.message.content and roles[0] == "assistant"


def test_chat_without_a_template_is_refused(tiny_model, llama_tokenizer):
    with (
        serving(Judge(tiny_model, llama_tokenizer, name="plain")) as (_, client),
        pytest.raises(openai.BadRequestError, match="chat template"),
    ):
        client.chat.completions.create(model="plain", messages=[{"role": "user", "content": "hi"}])


def test_seeded_sampling_is_reproducible(server):
    _, client = server
    kw = {"model": "tiny-llama", "prompt": "Once", "max_tokens": 10, "temperature": 1.5, "top_p": 0.95}
    a = client.completions.create(seed=4, **kw).choices[0].text
    assert a == client.completions.create(seed=4, **kw).choices[0].text
    assert a != client.completions.create(seed=5, **kw).choices[0].text


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": 21}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"temperature": -1}, "temperature"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"prompt": [1, -3]}, "prompt"),
        ({"prompt": [1, 10**7]}, "prompt"),
        ({"stop": 3}, "stop"),
    ],
)
def test_bad_requests_name_the_field(server, kw, field):
    srv, _ = server
    body = {"model": "tiny-llama", "prompt": "hi", "max_tokens": 2, **kw}
    r = httpx.post(srv.url + "/v1/completions", json=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


def test_too_long_prompts_and_the_api_key(judge):
    with serving(judge, api_key="sekrit") as (srv, client):
        with pytest.raises(openai.BadRequestError, match="maximum context length"):
            client.completions.create(model="tiny-llama", prompt=[1] * 2040, max_tokens=16)
        anonymous = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            anonymous.models.list()


class _GatedEngine:
    """The judge's engine, holding every `generate` until ``gate`` is set; counts calls."""

    def __init__(self, engine):
        self.inner, self.facts, self.capabilities, self.reason = engine, engine.facts, engine.capabilities, "gated"
        self.gate, self.entered, self.calls = threading.Event(), threading.Event(), []

    def generate(self, prompts, options, **kw):
        self.entered.set()
        self.gate.wait(30)
        self.calls.append(len(prompts))
        return self.inner.generate(prompts, options, **kw)


def test_requests_share_model_calls_and_overload_is_503(tiny_model, chat_tokenizer):
    """Same micro-batcher as /v1/judge: queued requests with the same settings become one
    generate call; past the queue limit a request (streamed or not) gets 503 + Retry-After."""
    engine = _GatedEngine(Judge(tiny_model, chat_tokenizer).engine)
    judge = Judge(tiny_model, chat_tokenizer, name="gated", engine=engine)
    with serving(judge, max_queue=4, max_request_samples=4, max_wait_ms=50) as (srv, _):
        body = {"model": "gated", "prompt": "x y", "max_tokens": 2, "temperature": 0}
        results = []
        first = threading.Thread(target=lambda: results.append(httpx.post(srv.url + "/v1/completions", json=body)))
        first.start()
        assert engine.entered.wait(10)  # the model thread is busy with the first request
        waiting = [
            threading.Thread(target=lambda: results.append(httpx.post(srv.url + "/v1/completions", json=body)))
            for _ in range(4)
        ]
        for t in waiting:
            t.start()
        deadline = 0
        while srv.app.state.batcher.queued_samples < 4 and deadline < 200:
            threading.Event().wait(0.02)
            deadline += 1
        over = httpx.post(srv.url + "/v1/completions", json=body)
        streamed = httpx.post(srv.url + "/v1/completions", json={**body, "stream": True})
        assert over.status_code == 503 and int(over.headers["retry-after"]) >= 1
        assert streamed.status_code == 503
        engine.gate.set()
        for t in [first, *waiting]:
            t.join(30)
    assert [r.status_code for r in results] == [200] * 5
    assert engine.calls == [1, 4]  # the four queued requests shared one call


def test_serve_command_names_the_served_model():
    import argparse

    from judgelm.cli import serve_cmd

    p = argparse.ArgumentParser()
    serve_cmd._add_arguments(p)
    assert serve_cmd.build_config(p.parse_args(["--model", "BAAI/JudgeLM-7B-v1.0"])).served_model_name == (
        "BAAI/JudgeLM-7B-v1.0"
    )
    named = p.parse_args(["--model", "/models/judge", "--served-model-name", "judge-7b"])
    assert serve_cmd.build_config(named).served_model_name == "judge-7b"
