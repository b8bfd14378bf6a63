"""The real HTTP server (uvicorn on a free loopback port) with scripted and tiny-model judges."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from test_serve_support import CountingJudge, assert_close, grading_judge

from judgelm import Sample
from judgelm.io import Record, output_record
from judgelm.options import JudgeOptions
from judgelm.serve import BackgroundServer, ServeConfig


@contextmanager
def running(judge, **config):
    srv = BackgroundServer(judge, ServeConfig(**config), graceful_timeout_s=10).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            yield srv, client
    finally:
        srv.stop()


NATIVE = {"id": "n1", "question": "What is 2+2?", "answers": ["good: 4", "bad: 5"], "extra": "kept"}
JUDGELM = {
    "question_id": 7,
    "question_body": "Capital of France?",
    "answer1_body": "bad guess",
    "answer2_body": "good: Paris",
}
GRADE = {"question": "Name a prime.", "answers": ["good: 7"], "reference": "2"}


def expected_lines(judge, records, options=JudgeOptions()):  # noqa: B008
    from judgelm.io import sample_from_record

    recs = []
    for i, raw in enumerate(records):
        s = sample_from_record(raw)
        key = s.id if s.id is not None else str(i)
        recs.append(Record(i, key, raw, s.replace(id=key)))
    verdicts = judge.judge([r.sample for r in recs], **options.as_kwargs())
    return [output_record(r, v, model=judge.name) for r, v in zip(recs, verdicts, strict=True)]


def strip_time(lines):
    """Lines as they look after JSON (tuples become lists), without the time stamp."""
    return [{k: v for k, v in json.loads(json.dumps(line)).items() if k != "tstamp"} for line in lines]


def test_judge_endpoint_returns_the_jsonl_output_records():
    judge = grading_judge()
    with running(judge) as (srv, c):
        assert srv.host == "127.0.0.1"
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["model"] == "grader"
        r = c.post("/v1/judge", json={"samples": [NATIVE, JUDGELM, GRADE]})
        assert r.status_code == 200, r.text
        body = r.json()
    results = body["results"]
    assert [x["id"] for x in results] == ["n1", "7", "2"]
    assert strip_time(results) == strip_time(expected_lines(judge, [NATIVE, JUDGELM, GRADE]))
    assert results[0]["extra"] == "kept" and results[0]["pred_model_id"] == "grader"
    assert results[0]["verdict"]["winner"] == 0 and results[1]["verdict"]["winner"] == 1
    assert results[2]["verdict"]["scores"] == [9.0] and results[2]["verdict"]["format"] == "single"


def test_judge_options_reach_the_judge():
    with running(grading_judge()) as (_, c):
        r = c.post("/v1/judge", json={"samples": [NATIVE], "options": {"swap": True, "explain": True}})
        v = r.json()["results"][0]["verdict"]
    assert len(v["provenance"]["orders"]) == 2 and v["consistent"] is True
    assert v["explanation"] == "ok"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"samples": [{"question": "Q", "answers": "ab"}]}, "samples[0].answers"),
        ({"samples": [NATIVE, {"question": "Q", "answers": ["a", 3]}]}, "samples[1].answers[1]"),
        ({"samples": [{"answers": ["a"]}]}, "samples[0].question"),
        ({"samples": [{"question": "Q", "answers": ["a", "b"], "mode": "nope"}]}, "samples[0].mode"),
        ({"samples": [{"question": "Q", "answers": ["a", "b"], "mode": "single"}]}, "samples[0].answers"),
        ({"samples": [{"question": "Q", "answers": ["a"], "images": ["/etc/passwd"]}]}, "samples[0].images"),
        ({"samples": [NATIVE], "options": {"swap": "yes"}}, "options.swap"),
        ({"samples": [NATIVE], "options": {"max_new_tokens": 10**6}}, "options.max_new_tokens"),
        ({"samples": []}, "samples"),
        ({"samples": {"question": "Q"}}, "samples"),
        ({"sample": [NATIVE]}, "sample"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(body, field):
    with running(grading_judge()) as (_, c):
        r = c.post("/v1/judge", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field


def test_an_option_the_judge_cannot_honour_is_a_400():
    # The scripted judge has no logits to read.
    with running(grading_judge()) as (_, c):
        r = c.post("/v1/judge", json={"samples": [NATIVE], "options": {"scoring": "logits"}})
        assert r.status_code == 400 and "logits" in r.json()["error"]["message"]
        assert c.post("/v1/judge", json={"samples": [NATIVE]}).status_code == 200


def test_malformed_json_and_wrong_methods():
    with running(grading_judge()) as (_, c):
        r = c.post("/v1/judge", content=b'{"samples": [', headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
        assert c.post("/v1/judge", content=b"[1, 2]").status_code == 400
        assert c.get("/v1/judge").status_code == 405
        assert c.get("/nope").status_code == 404


def test_oversize_requests_are_413():
    with running(grading_judge(), max_body_bytes=2000, max_request_samples=3, max_queue=8) as (_, c):
        big = {"samples": [{"question": "Q" * 5000, "answers": ["a", "b"]}]}
        r = c.post("/v1/judge", json=big)
        assert r.status_code == 413
        # Without Content-Length (chunked upload) the limit still holds.
        payload = json.dumps(big).encode()
        r = c.post("/v1/judge", content=iter([payload[:1000], payload[1000:]]))
        assert r.status_code == 413
        r = c.post("/v1/judge", json={"samples": [NATIVE] * 4})
        assert r.status_code == 413 and r.json()["error"]["field"] == "samples"
        r = c.post("/get_reward", json={"query": ["q"] * 4})
        assert r.status_code == 413 and r.json()["error"]["field"] == "query"
        assert c.post("/v1/judge", json={"samples": [NATIVE] * 3}).status_code == 200


def test_api_key_guards_everything_but_health():
    with running(grading_judge(), api_key="s3cret") as (_, c):
        assert c.get("/health").status_code == 200
        for method, path, body in [
            ("POST", "/v1/judge", {"samples": [NATIVE]}),
            ("POST", "/get_reward", {"query": []}),
            ("GET", "/metrics", None),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            r = c.request(method, path, json=body, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
            r = c.request(method, path, json=body, headers={"Authorization": "Bearer s3cret"})
            assert r.status_code == 200, (path, r.text)


def test_overload_answers_503_with_retry_after_and_loses_nothing():
    judge = CountingJudge(grading_judge(), gated=True)
    n = 12
    with running(judge, max_batch_size=2, max_wait_ms=0, max_queue=4, max_request_samples=2) as (srv, _):

        async def flood():
            async with httpx.AsyncClient(base_url=srv.url, timeout=30) as ac:
                first = asyncio.create_task(ac.post("/v1/judge", json={"samples": [{"id": "first", **NATIVE}]}))
                while not judge.entered.is_set():  # the model is busy from here on
                    await asyncio.sleep(0.005)
                rest = [
                    asyncio.create_task(ac.post("/v1/judge", json={"samples": [{**NATIVE, "id": f"r{i}"}]}))
                    for i in range(n)
                ]
                # Wait (bounded) until every request beyond the queue's 4 samples was refused.
                for _ in range(400):
                    if sum(t.done() for t in rest) >= n - 4:
                        break
                    await asyncio.sleep(0.025)
                metrics_mid = (await ac.get("/metrics")).text
                judge.gate.set()
                return await first, await asyncio.gather(*rest), metrics_mid

        first, rest, metrics_mid = asyncio.run(flood())
    assert first.status_code == 200
    codes = [r.status_code for r in rest]
    assert set(codes) == {200, 503}
    assert codes.count(200) == 4  # exactly the queue's capacity was accepted
    for r in rest:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1
        else:
            [line] = r.json()["results"]
            assert line["verdict"]["winner"] == 0
    ok_ids = sorted(r.json()["results"][0]["id"] for r in rest if r.status_code == 200)
    assert len(set(ok_ids)) == 4
    assert "judgelm_queue_depth 4" in metrics_mid
    assert sum(k for k, _ in judge.calls) == 5


def test_metrics_report_queue_batches_latency_and_abstains():
    with running(grading_judge()) as (_, c):
        c.post("/v1/judge", json={"samples": [NATIVE, {"question": "Q", "answers": ["garbage", "x"]}]})
        c.post("/v1/judge", json={"samples": [{"question": "Q", "answers": "x"}]})
        r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'judgelm_requests_total{endpoint="judge",status="200"} 1' in text
    assert 'judgelm_requests_total{endpoint="judge",status="400"} 1' in text
    assert 'judgelm_abstains_total{reason_code="unparseable"} 1' in text
    assert "judgelm_verdicts_total 2" in text
    assert "judgelm_batch_size_count 1" in text and "judgelm_batch_size_sum 2" in text
    assert 'judgelm_request_latency_seconds_count{endpoint="judge"} 2' in text
    assert "judgelm_queue_depth 0" in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))


def test_get_reward_speaks_openrlhf():
    prompts = ["<s>User: 2+2?\nAssistant:", "User: capital?\nAssistant:", "User: hi\nAssistant:"]
    responses = [" good: 4</s>", " bad: Lyon<|im_end|>", " garbage"]
    body = {
        "query": [p + r for p, r in zip(prompts, responses, strict=True)],
        "prompts": prompts,
        "labels": ["4", "", None],
    }
    judge = CountingJudge(grading_judge())
    with running(judge) as (_, c):
        r = c.post("/get_reward", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert out["rewards"] == [9.0, 2.0, 0.0]
    assert out["scores"] == pytest.approx([8 / 9, 1 / 9, 0.0])
    assert out["extra_logs"] == {"judge_abstained": [0.0, 0.0, 1.0], "judge_invalid_input": [0.0, 0.0, 0.0]}
    [(n, _)] = judge.calls
    assert n == 3  # one model call for the whole request


def test_get_reward_splits_labels_and_modes():
    from judgelm.integrations.openrlhf import RewardMapping

    sep = "<|im_start|>assistant\n"
    query = [f"<|im_start|>user\nQ1{sep}good one<|im_end|>", f"<|im_start|>user\nQ2{sep}bad one"]
    pairwise = RewardMapping(mode="pairwise", separator=sep, abstain_reward=-1.0)
    judge = CountingJudge(grading_judge())
    with running(judge, reward=pairwise) as (srv, c):
        r = c.post("/get_reward", json={"query": query, "labels": ["bad ref", "good ref"]})
        assert r.status_code == 200, r.text
        assert r.json()["rewards"] == [7.0, -7.0]  # score(answer) - score(label)
        assert r.json()["scores"] == pytest.approx([(7 + 9) / 18, (-7 + 9) / 18])
        # A query that cannot be judged (no label to compare with, no separator) is a flagged
        # stand-in reward: OpenRLHF cannot survive an HTTP error for one query.
        r = c.post("/get_reward", json={"query": query, "labels": ["bad", ""]})
        assert r.status_code == 200 and r.json()["rewards"] == [7.0, -1.0]
        assert r.json()["extra_logs"] == {"judge_abstained": [0.0, 1.0], "judge_invalid_input": [0.0, 1.0]}
        r = c.post("/get_reward", json={"query": [query[0], "no separator here"], "labels": ["bad", "b"]})
        assert r.status_code == 200 and r.json()["rewards"] == [7.0, -1.0]
        assert r.json()["extra_logs"]["judge_invalid_input"] == [0.0, 1.0]
        assert srv.app.state.metrics.abstains.get(reason_code="invalid_input") == 2
        # A malformed body is still an error naming the field.
        r = c.post("/get_reward", json={"query": query, "labels": ["x"]})
        assert r.status_code == 400 and r.json()["error"]["field"] == "labels"
        r = c.post("/get_reward", json={"query": "one string"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "query"
    sample_prompts = [p for p in judge.inner.engine.prompts]
    assert "[The Start of Assistant 1's Answer]\ngood one\n\n" in sample_prompts[0]  # marker cut
    assert "<|im_start|>user\nQ1" in sample_prompts[0]


def test_get_reward_without_prompts_or_separator_is_a_counted_stand_in(caplog):
    judge = CountingJudge(grading_judge())
    with running(judge) as (srv, c):
        for _ in range(2):
            r = c.post("/get_reward", json={"query": ["just text"]})
            assert r.status_code == 200
            assert r.json() == {
                "rewards": [0.0],
                "scores": [0.0],
                "extra_logs": {"judge_abstained": [1.0], "judge_invalid_input": [1.0]},
            }
        assert srv.app.state.metrics.abstains.get(reason_code="invalid_input") == 2
    assert judge.calls == []  # nothing reached the model
    warned = [r for r in caplog.records if "could not be judged" in r.getMessage()]
    assert len(warned) == 1 and "send 'prompts' or configure a separator" in warned[0].getMessage()


def test_graceful_shutdown_finishes_in_flight_requests():
    judge = CountingJudge(grading_judge(), gated=True)
    srv = BackgroundServer(judge, ServeConfig(), graceful_timeout_s=10).start()
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        result["r"] = httpx.post(f"{srv.url}/v1/judge", json={"samples": [NATIVE]}, timeout=30)

    t = threading.Thread(target=call)
    t.start()
    assert judge.entered.wait(10)
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    time.sleep(0.3)
    assert stopper.is_alive()  # shutdown waits for the in-flight request
    judge.gate.set()
    t.join(10)
    stopper.join(15)
    assert not stopper.is_alive()
    assert result["r"].status_code == 200
    assert result["r"].json()["results"][0]["verdict"]["winner"] == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.url}/health", timeout=2)


def test_real_tiny_model_behind_the_server(tiny_judge):
    samples = [NATIVE, JUDGELM, GRADE]
    with running(tiny_judge, max_batch_size=4) as (_, c):
        r = c.post("/v1/judge", json={"samples": samples})
        reward = c.post("/get_reward", json={"query": ["Q: hi A: there"], "prompts": ["Q: hi A:"], "labels": ["hello"]})
    assert r.status_code == 200
    assert strip_time(r.json()["results"]) == strip_time(expected_lines(tiny_judge, samples))
    assert reward.status_code == 200
    out = reward.json()
    assert len(out["rewards"]) == 1 and isinstance(out["rewards"][0], float)
    # A random model rarely writes a score line; whatever it did is flagged, never hidden.
    assert out["extra_logs"]["judge_abstained"][0] in (0.0, 1.0)


def test_direct_sample_dicts_roundtrip_through_client(tiny_judge):
    from judgelm.serve import JudgeClient

    samples = [Sample("Q?", ("a", "b"), id="x"), Sample("Grade", ("answer",), reference="ref", id="y")]
    with running(tiny_judge) as (srv, _), JudgeClient(srv.url) as client:
        remote = client.judge(samples, JudgeOptions(swap=True))
    local = tiny_judge.judge(samples, swap=True)
    # Scores cross the wire exactly; the JSON form of distributions is rounded to 6 digits, so
    # values derived from them again (expected) may differ in the 7th.
    assert [v.scores for v in remote] == [v.scores for v in local]
    assert_close([v.to_dict() for v in remote], strip_time([v.to_dict() for v in local]))
