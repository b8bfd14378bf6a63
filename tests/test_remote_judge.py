"""`Judge.from_endpoint`: a judge whose model runs behind an OpenAI-compatible server, tested
over loopback against ``judgelm serve``: the exact path (prompt log-probabilities through
``echo``) gives the local judge's distributions, the top-k path reports what it could not see,
a server without log-probabilities gives text verdicts, and failed requests abstain alone
(retries with backoff honouring Retry-After; 4xx not retried)."""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager

import pytest
from test_serve_support import grading_judge

from judgelm import Judge, Sample
from judgelm.cli import main
from judgelm.engine.openai_http import EndpointError, OpenAIHTTP, retry_after_seconds
from judgelm.engine.remote import OpenAIEngine
from judgelm.errors import ModelLoadError
from judgelm.serve import BackgroundServer, ServeConfig
from judgelm.serve.app import create_app
from judgelm.testing import BigramLM

SAMPLES = [
    Sample("What is 2+2?", ("4", "five"), reference="4", id="pair"),
    Sample("Convert 5 km to m.", ("500 m",), gold="5,000 m", id="single"),
    Sample("Pick a prime.", ("4", "7", "9"), id="multi"),
]


@contextmanager
def serving(judge_or_app, **config):
    srv = BackgroundServer(judge_or_app, ServeConfig(**config), graceful_timeout_s=10).start()
    try:
        yield srv
    finally:
        srv.stop()


def assert_same_verdicts(remote, local, tol):
    for r, lo in zip(remote, local, strict=True):
        assert r.abstained == lo.abstained and r.reason_code == lo.reason_code
        assert r.scores == pytest.approx(lo.scores, abs=tol)
        for dr, dl in zip(r.distributions, lo.distributions, strict=True):
            assert dr.probs == pytest.approx(dl.probs, abs=tol)
            assert dr.outside_mass == pytest.approx(dl.outside_mass, abs=tol)
        for a, b in zip(r.order_scores, lo.order_scores, strict=True):
            assert a == pytest.approx(b, abs=tol)


def test_exact_scoring_gives_the_local_judges_verdicts(tiny_model, llama_tokenizer):
    local = Judge(tiny_model, llama_tokenizer, name="tiny-llama", abstain_threshold=1.0)
    with serving(local) as srv:
        remote = Judge.from_endpoint(srv.url + "/v1", "tiny-llama", tokenizer=llama_tokenizer, abstain_threshold=1.0)
        assert remote.engine.logprob_mode == "echo" and remote.engine.facts.context_length == 2048
        got = remote.judge(SAMPLES, swap=True)
        greedy = remote.judge(SAMPLES[:1], slots="greedy")
    assert_same_verdicts(got, local.judge(SAMPLES, swap=True), 1e-3)
    assert_same_verdicts(greedy, local.judge(SAMPLES[:1], slots="greedy"), 1e-3)
    assert all(v.provenance.unseen_mass is None and v.provenance.scoring == "logits" for v in got)
    assert got[0].provenance.model == "tiny-llama"


@pytest.fixture(scope="module")
def bigram(llama_tokenizer):
    from test_scoring import bigram_rules

    digits = {str(i): llama_tokenizer.convert_tokens_to_ids(str(i)) for i in range(10)}
    return Judge(
        BigramLM(len(llama_tokenizer), bigram_rules(digits)), llama_tokenizer, name="bigram", abstain_threshold=1.0
    )


def test_top_k_scoring_reports_the_mass_it_could_not_see(bigram, llama_tokenizer):
    """The bigram judge puts its verdict mass on a few tokens: with the top 20 the candidates that
    matter are all shown (the verdicts equal the exact ones, the unseen mass is the tiny uniform
    rest); with the top 2 some are not, and the verdict says how much it could not see."""
    sample = [Sample("q", ("a", "b"))]
    exact = bigram.judge(sample)
    with serving(bigram) as srv:
        top20 = Judge.from_endpoint(
            srv.url, "bigram", tokenizer=llama_tokenizer, logprobs="top_k", abstain_threshold=1.0
        )
        got = top20.judge(sample)
        assert top20.engine.logprob_mode == "top_k"
        top2 = Judge.from_endpoint(
            srv.url, "bigram", tokenizer=llama_tokenizer, logprobs="top_k", abstain_threshold=1.0
        )
        top2.engine.top_k = 2
        rough = top2.judge(sample)
    assert_same_verdicts(got, exact, 1e-4)
    assert 0 <= got[0].provenance.unseen_mass < 1e-3
    # after ":" the bigram gives 8 (.6), 9 (.3), 1 (.1): the top 2 hide "1" and 10 % of the mass
    assert rough[0].provenance.unseen_mass == pytest.approx(0.1, abs=1e-3)
    assert rough[0].scores != pytest.approx(exact[0].scores, abs=1e-3)


def test_a_server_without_logprobs_gives_text_verdicts(caplog):
    """A scripted judge's engine writes text only: its OpenAI routes refuse log-probabilities,
    so the remote judge scores text, says so once, and reads what the local judge reads."""
    local = grading_judge()
    samples = [Sample("q", ("good: yes", "bad: no")), Sample("q", ("bad", "good")), Sample("g?", ("good",), gold="x")]
    with serving(local) as srv, caplog.at_level(logging.WARNING, logger="judgelm.engine.remote"):
        remote = Judge.from_endpoint(srv.url, "grader", tokenizer=local.tokenizer)
        got = remote.judge(samples, swap=True)
        remote.judge(samples)
    want = local.judge(samples, swap=True)
    assert [v.scores for v in got] == [v.scores for v in want] and [v.winner for v in got] == [0, 1, None]
    assert all(v.provenance.scoring == "text" for v in got)
    assert sum("no log-probabilities" in r.message for r in caplog.records) == 1


class _Faults:
    """ASGI middleware over a judgelm app: answers some /v1/completions requests with errors."""

    def __init__(self, app, rule):
        self.app, self.rule, self.seen = app, rule, []
        self.router = app.router  # BackgroundServer takes an object with a router as an app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/v1/completions":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.seen.append(json.loads(body))
        fault = self.rule(self.seen[-1], len(self.seen))
        if fault is None:
            sent = False

            async def replay():
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            return await self.app(scope, replay, send)
        status, headers = fault
        payload = json.dumps({"error": {"message": f"injected {status}"}}).encode()
        raw = [(b"content-type", b"application/json"), *((k.encode(), v.encode()) for k, v in headers.items())]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})


def _prompt_holds(payload, word, tokenizer):
    prompt = payload["prompt"]
    rows = prompt if prompt and isinstance(prompt[0], list) else [prompt]
    return any(word in tokenizer.decode(row) for row in rows)


def test_failed_requests_abstain_alone_and_retries_follow_the_rules(tiny_model, llama_tokenizer):
    """Per sample: a 500 is retried (max_retries + 1 attempts) and then abstains with
    ``engine_error``; a 400 is not retried; a 429 with Retry-After is waited out and succeeds.
    The other samples' verdicts equal the local judge's."""
    local = Judge(tiny_model, llama_tokenizer, name="tiny-llama", abstain_threshold=1.0)
    state = {"throttled": 0}

    def holds(payload, word):
        return payload.get("max_tokens") == 0 and _prompt_holds(payload, word, llama_tokenizer)

    def rule(payload, n):
        if holds(payload, "zebra"):
            return 500, {}
        if holds(payload, "giraffe"):
            return 400, {}
        if holds(payload, "walrus") and state["throttled"] < 2:
            state["throttled"] += 1
            return 429, {"Retry-After": "7"}
        return None

    app = _Faults(create_app(local, ServeConfig()), rule)
    samples = [
        Sample("zebra?", ("a", "b"), id="poisoned"),
        Sample("giraffe?", ("a", "b"), id="refused"),
        Sample("walrus?", ("a", "b"), id="throttled"),
        Sample("fine?", ("a", "b"), id="fine"),
    ]
    sleeps = []
    with serving(app) as srv:
        http = OpenAIHTTP(srv.url, max_retries=3, concurrency=4, sleep=sleeps.append)
        engine = OpenAIEngine("tiny-llama", llama_tokenizer, http=http, logprobs="echo")
        remote = Judge(None, llama_tokenizer, name="tiny-llama", engine=engine, abstain_threshold=1.0)
        got = {v.sample_id: v for v in remote.judge(samples)}
    assert got["poisoned"].abstained and got["poisoned"].reason_code == "engine_error"
    assert "HTTP 500" in got["poisoned"].reason and "4 attempts" in got["poisoned"].reason
    assert (
        got["refused"].abstained
        and got["refused"].reason_code == "engine_error"
        and "HTTP 400" in got["refused"].reason
    )
    assert sleeps.count(7.0) == 2  # Retry-After honoured twice, then the request went through
    want = {v.sample_id: v for v in local.judge(samples)}
    assert_same_verdicts([got["throttled"], got["fine"]], [want["throttled"], want["fine"]], 1e-3)
    assert sum(holds(p, "giraffe") for p in app.seen) == 1  # a 400 is the request's fault: not retried
    assert sum(holds(p, "zebra") for p in app.seen) == 4  # 1 + 3 retries, then the row fails


def test_retry_after_and_backoff():
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert (
        retry_after_seconds("Wed, 21 Oct 2037 07:28:00 GMT") > 0
        and retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    )
    sleeps = []
    http = OpenAIHTTP("http://127.0.0.1:9", max_retries=3, backoff=0.5, sleep=sleeps.append, timeout=2)
    with pytest.raises(EndpointError) as e:
        http.get("/models")
    assert e.value.status is None and len(sleeps) == 3
    assert all(0.5 * 2**k <= s <= 1.0 * 2**k for k, s in enumerate(sleeps))  # exponential, with jitter
    assert http.usage.requests == 4 and http.usage.failures == 1


def test_an_unreachable_server_is_one_clear_error(llama_tokenizer):
    with pytest.raises(EndpointError, match="failed after"):
        Judge.from_endpoint("http://127.0.0.1:9", "x", tokenizer=llama_tokenizer, max_retries=0, timeout=2)


def test_the_tokenizer_comes_from_local_files_or_is_asked_for(tiny_model, llama_tokenizer, tiny_model_dir):
    with serving(Judge(tiny_model, llama_tokenizer, name=str(tiny_model_dir))) as srv:
        remote = Judge.from_endpoint(srv.url, str(tiny_model_dir))  # the served name is a local folder
        assert remote.tokenizer("hi")["input_ids"] == llama_tokenizer("hi")["input_ids"]
        with pytest.raises(ModelLoadError, match="pass tokenizer="):
            Judge.from_endpoint(srv.url, "no-such-model-anywhere")


def test_judge_command_with_an_endpoint(tiny_model, llama_tokenizer, tmp_path, capsys):
    local = Judge(tiny_model, llama_tokenizer, name="tiny-llama", abstain_threshold=1.0)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in SAMPLES[:2]))
    out = tmp_path / "out.jsonl"
    with serving(local) as srv:
        from conftest import LLAMA_TOKENIZER

        args = ["judge", str(src), "-o", str(out), "--quiet", "--endpoint", srv.url, "--model", "tiny-llama"]
        assert main([*args, "--tokenizer", str(LLAMA_TOKENIZER), "--abstain-threshold", "1"]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    want = local.judge(SAMPLES[:2])
    for line, v in zip(lines, want, strict=True):
        assert line["verdict"]["scores"] == pytest.approx(list(v.scores), abs=1e-3)
        assert line["pred_model_id"] == "tiny-llama"
    assert main(["judge", str(src), "--endpoint", "http://127.0.0.1:9"]) == 2  # --model missing
    assert "--endpoint needs --model" in capsys.readouterr().err


def test_sampling_options_reach_the_server(tiny_model, llama_tokenizer):
    """Remote generation passes temperature, top-p and seed: a seeded sample equals the local
    engine's sample for the same prompt."""
    from judgelm.engine import GenerationOptions

    local = Judge(tiny_model, llama_tokenizer, name="tiny-llama")
    prompts = [[1, 450, 4996, 17354], [1, 3681, 338]]
    options = GenerationOptions(8, temperature=1.2, top_p=0.9, seed=3)
    with serving(local) as srv:
        remote = Judge.from_endpoint(srv.url, "tiny-llama", tokenizer=llama_tokenizer)
        got = remote.engine.generate(prompts, options)
    assert got == local.engine.generate(prompts, options)
    assert not math.isnan(sum(map(len, got)))


def test_stop_strings_reach_the_server_and_end_the_row_where_a_local_engine_does(tiny_model, llama_tokenizer):
    """A format's stop strings (`GenerationOptions.stop_strings`) go to the server as ``stop``; the
    remote row ends with the token that completes the string, as the local engine's does."""
    from judgelm.engine import GenerationOptions

    local = Judge(tiny_model, llama_tokenizer, name="tiny-llama")
    prompt = [1, 450, 4996, 17354]
    free = local.engine.generate([prompt], GenerationOptions(16))[0]
    stop = next(t for t in (llama_tokenizer.decode([i]).strip() for i in free[5:]) if len(t) >= 2)
    options = GenerationOptions(16, stop_strings=(stop,))
    want = local.engine.generate([prompt], options)[0]
    assert len(want) < len(free)  # the stop string ended the local row early
    app = _Faults(create_app(local, ServeConfig()), lambda p, n: None)
    with serving(app) as srv:
        remote = Judge.from_endpoint(srv.url, "tiny-llama", tokenizer=llama_tokenizer)
        got = remote.engine.generate([prompt], options)[0]
    assert app.seen[-1]["stop"] == [stop]
    assert got[: len(want)] == want and len(got) <= len(want) + 1  # (+ the EOS a finished text gets)


def test_a_server_that_refuses_unknown_fields_gets_plain_requests():
    """OpenAI's own API answers 400 to vLLM's extra fields: the remote judge drops them after the
    first refusal (and only when the plain request goes through) and reads text verdicts."""
    local = grading_judge()
    extras = ("return_token_ids", "return_tokens_as_token_ids", "stop_token_ids")
    app = _Faults(create_app(local, ServeConfig()), lambda p, n: (400, {}) if any(k in p for k in extras) else None)
    samples = [Sample("q", ("good: yes", "bad: no")), Sample("q", ("bad", "good"))]
    with serving(app) as srv:
        remote = Judge.from_endpoint(srv.url, "grader", tokenizer=local.tokenizer)
        got = remote.judge(samples)
        first = len(app.seen)
        again = remote.judge(samples)
    assert [v.scores for v in got] == [v.scores for v in again] == [v.scores for v in local.judge(samples)]
    assert remote.engine._token_ids is False
    refused = [p for p in app.seen[:first] if p.get("max_tokens", 0) > 1 and any(k in p for k in extras)]
    assert 1 <= len(refused) <= len(samples)  # each request already in flight tries once
    assert not any(any(k in p for k in extras) for p in app.seen[first:])  # then plain requests only


def test_the_request_rate_limit_spaces_requests():
    with serving(grading_judge()) as srv:
        http = OpenAIHTTP(srv.url, requests_per_minute=600, concurrency=4)  # one request per 0.1 s
        start = time.monotonic()
        results = http.map(lambda _: http.get("/models"), list(range(5)))
        elapsed = time.monotonic() - start
    assert all(r["data"][0]["id"] == "grader" for r in results)
    assert elapsed >= 0.4 and http.usage.requests == 5
