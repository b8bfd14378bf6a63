"""The judge page's HTTP side (``judgelm ui``), on a real loopback server: the page and its
policy, the judge / ask-why streams against `Judge.judge` / `Judge.discuss`, forms that name
their bad field, the server's safety (API key, size limit, foreign hosts and origins), the batch
upload with its downloads and report (against ``judgelm eval`` on the same files), and the
command line. The browser drives the same routes in test_ui_browser.py."""

from __future__ import annotations

import base64
import io
import json
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image
from test_serve import strip_time
from test_serve_cli import running_command, stop
from test_serve_support import assert_close, respond

from judgelm import Judge, Sample
from judgelm.cli import main
from judgelm.eval import evaluate_files, render_eval
from judgelm.io import Record, output_record
from judgelm.serve import BackgroundServer, ServeConfig
from judgelm.testing import scripted_judge
from judgelm.ui import create_ui_app

ROOT = Path(__file__).resolve().parents[1]


def chatty(prompt: str) -> str:
    """`respond`'s grades for judge prompts; numbered replies in follow-up chats."""
    return (
        f"Reply {prompt.count('USER:')}: the good answer is right."
        if prompt.endswith("ASSISTANT:")
        else respond(prompt)
    )


@pytest.fixture(scope="module")
def grader():
    return scripted_judge(chatty, name="grader")


@contextmanager
def serving(app):
    srv = BackgroundServer(app, graceful_timeout_s=10).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            yield client
    finally:
        srv.stop()


def page(judge, **config):
    return serving(create_ui_app(judge, ServeConfig(**config)))


def events(client, path, body, **kw) -> list[dict]:
    r = client.post(path, json=body, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in r.text.splitlines()]


def jsonish(value):
    return json.loads(json.dumps(value))


def tokens(evs, order=None) -> str:
    return "".join(e["text"] for e in evs if e["event"] == "token" and (order is None or e["order"] == order))


def png(color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, format="PNG")
    return buf.getvalue()


def test_the_page_is_static_and_locked_down(grader):
    with page(grader) as c:
        r = c.get("/")
        assert r.status_code == 200 and 'data-testid="question"' in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert c.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/missing.js").status_code == 404
        info = c.get("/ui/api/info").json()
        assert info["model"] == "grader" and info["logits"] is False and info["images"] is False
        assert c.get("/health").status_code == 200  # the server's own routes are there too


def test_judging_streams_the_text_then_the_verdict_of_judge_judge(grader):
    sample = {"question": "2+2?", "answers": ["good: 4", "bad: 5"], "reference": "4"}
    with page(grader) as c:
        evs = events(c, "/ui/api/judge", {"sample": sample, "options": {"swap": True, "explain": True}})
    direct = grader.judge(Sample("2+2?", ("good: 4", "bad: 5"), reference="4", id="page"), swap=True, explain=True)[0]
    assert [e["event"] for e in evs][-1] == "verdict"
    assert tokens(evs, 0) == "9 2\nok" and tokens(evs, 1) == "2 9\nok"  # both orders, as written
    verdict = evs[-1]
    assert verdict["verdict"] == jsonish(direct.to_dict())
    assert verdict["conversation"] and verdict["most_likely"] is None  # text scoring: no distributions


def test_a_logit_verdict_on_the_page_is_judge_judge(tiny_judge):
    form = {"sample": {"question": "Capital of Australia?", "answers": ["Canberra.", "Sydney."]}}
    with page(tiny_judge) as c:
        evs = events(c, "/ui/api/judge", form)
    direct = tiny_judge.judge(Sample("Capital of Australia?", ("Canberra.", "Sydney."), id="page"))[0]
    assert_close(evs[-1]["verdict"], jsonish(direct.to_dict()), tol=1e-6)
    assert evs[-1]["most_likely"] == [d.mode for d in direct.distributions]
    assert evs[-1]["calibrated"] is False  # no calibration fitted


def test_ask_why_is_judge_discuss_and_goes_on(grader):
    with page(grader) as c:
        verdict = events(c, "/ui/api/judge", {"sample": {"question": "Q?", "answers": ["bad", "good"]}})[-1]
        conversation = verdict["conversation"]
        first = events(c, "/ui/api/discuss", {"conversation": conversation, "message": "Why 2?"})
        second = events(c, "/ui/api/discuss", {"conversation": conversation, "message": "Sure?"})
        missing = c.post("/ui/api/discuss", json={"conversation": "nope", "message": "Why?"})
        empty = c.post("/ui/api/discuss", json={"conversation": conversation, "message": "  "})
    direct = grader.discuss(grader.judge(Sample("Q?", ("bad", "good"), id="page"))[0], "Why 2?")
    assert first[-1] == {"event": "reply", "text": direct.reply, "turns": 2}
    assert tokens(first) == direct.reply == "Reply 1: the good answer is right."
    assert second[-1]["text"].startswith("Reply 2") and second[-1]["turns"] == 4
    assert missing.status_code == 404 and "judge again" in missing.json()["error"]["message"]
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "message"


def test_image_uploads_are_validated_seen_and_seen_again(llama_tokenizer):
    from judgelm.vision.testing import tiny_vision_judge

    model, tok = tiny_vision_judge(llama_tokenizer, seed=1)
    judge = Judge(model, tok, name="tiny-vision")
    image = png()
    form = {
        "sample": {"question": "What color?", "answers": ["Red.", "Blue."], "mode": "image_pairwise"},
        "images": [base64.b64encode(image).decode()],
    }
    with page(judge) as c:
        evs = events(c, "/ui/api/judge", form)
        why = events(
            c, "/ui/api/discuss", {"conversation": evs[-1]["conversation"], "message": "Why?", "max_new_tokens": 8}
        )
    sample = Sample("What color?", ("Red.", "Blue."), images=(image,), mode="image_pairwise", id="page")
    direct = judge.judge(sample)[0]
    assert_close(evs[-1]["verdict"], jsonish(direct.to_dict()), tol=1e-6)
    assert why[-1]["text"] == judge.discuss(direct, "Why?", images=(image,), max_new_tokens=8).reply


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"sample": {"question": "q", "answers": ["a", 5]}}, "sample.answers[1]"),
        ({"sample": {"question": "q", "answers": ["a"]}, "options": {"mode": "pairwise"}}, "sample.answers"),
        ({"sample": {"question": "q", "answers": ["a", "b"], "images": ["/etc/passwd"]}}, "sample.images"),
        ({"sample": {"question": "q", "answers": ["a", "b"], "mode": "image_pairwise"}, "images": ["%%"]}, "images[0]"),
        (
            {
                "sample": {"question": "q", "answers": ["a", "b"], "mode": "image_pairwise"},
                "images": [base64.b64encode(png()[:60]).decode()],  # a truncated PNG
            },
            "images[0]",
        ),
        ({"sample": {"question": "q", "answers": ["a", "b"]}, "images": [base64.b64encode(png()).decode()]}, "images"),
        (
            {"sample": {"question": "q", "answers": ["a", "b"]}, "options": {"max_new_tokens": 10**6}},
            "options.max_new_tokens",
        ),
        ({"sample": {"question": "q", "answers": ["a", "b"]}, "file": "/etc/passwd"}, "file"),
        ({"sample": "q"}, "sample"),
    ],
)
def test_bad_forms_are_refused_naming_the_field(grader, form, field):
    with page(grader) as c:
        r = c.post("/ui/api/judge", json=form)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field


def test_the_server_safety_holds_for_the_page(grader):
    ok = {"sample": {"question": "q", "answers": ["good", "bad"]}}
    with page(grader, api_key="s3cret", max_body_bytes=2048) as c:
        assert c.get("/").status_code == 200  # the page itself holds nothing; it asks for the key
        assert c.get("/ui/api/info").status_code == 401
        assert c.post("/ui/api/judge", json=ok).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert events(c, "/ui/api/judge", ok, headers=auth)[-1]["event"] == "verdict"
        big = {"sample": {"question": "q" * 4000, "answers": ["a", "b"]}}
        assert c.post("/ui/api/judge", json=big, headers=auth).status_code == 413
        plain = c.post("/ui/api/judge", content=json.dumps(ok), headers={**auth, "Content-Type": "text/plain"})
        assert plain.status_code == 415  # a cross-site form can post text/plain without a preflight
        foreign = c.post("/ui/api/judge", json=ok, headers={**auth, "Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert c.get("/", headers={"Host": "evil.example:80"}).status_code == 421  # DNS rebinding
        assert c.get("/health", headers={"Host": "[::1]:1234"}).status_code == 200


UPLOAD = [
    {"id": "a", "question": "Q1?", "answers": ["good 1", "bad 1"], "score": [9, 2]},
    {"id": "b", "question": "Q2?", "answers": ["good 2", "bad 2"], "score": [3, 8]},  # the judge disagrees
    {"question_id": 3, "question_body": "Q3?", "answer1_body": "bad", "answer2_body": "good", "text": "2 7\nB"},
    {"id": "img", "question": "Q4?", "answers": ["good", "bad"], "images": ["/etc/passwd"], "score": [9, 1]},
    {"id": "graded", "question": "Q5?", "answers": ["good 5"]},
    {"id": "short", "question": "Q6?", "answers": ["only one"], "mode": "pairwise"},
]


def upload_text() -> str:
    lines = [json.dumps(r) for r in UPLOAD]
    lines.insert(4, "{not json")
    return "\n".join(lines) + "\n"


def test_a_batch_upload_streams_progress_and_offers_results_and_report(grader, tmp_path):
    body = {"jsonl": upload_text(), "name": "../../My file.jsonl", "options": {"swap": True}}
    with page(grader, max_batch_size=2) as c:
        evs = events(c, "/ui/api/batch", body)
        done = evs[-1]
        results = c.get(f"/ui/api/batch/{done['job']}/results.jsonl")
        report = c.get(f"/ui/api/batch/{done['job']}/report.md")
        assert c.get(f"/ui/api/batch/{done['job']}/other.txt").status_code == 404
        assert c.get("/ui/api/batch/nope/results.jsonl").status_code == 404
        plain = events(c, "/ui/api/batch", {"jsonl": json.dumps(UPLOAD[4]) + "\n"})
        assert plain[-1]["report"] is None
        assert c.get(f"/ui/api/batch/{plain[-1]['job']}/report.md").status_code == 404
        assert c.post("/ui/api/batch", json={"jsonl": "\n \n"}).json()["error"]["field"] == "jsonl"

    # progress: the 3 refused records first, then one event per model call of 2 samples
    assert [(e["event"], e.get("done", e.get("bad"))) for e in evs[:-1]] == [("start", 3), ("rows", 5), ("rows", 7)]
    assert done["name"] == "My_file.jsonl"
    assert 'filename="My_file.judged.jsonl"' in results.headers["content-disposition"]
    lines = [json.loads(line) for line in results.text.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "3", "img", "line-5", "graded", "short"]
    errors = {line["id"]: line["error"] for line in lines if "error" in line}
    assert errors["img"]["field"] == "images" and errors["short"]["field"] == "answers"
    assert errors["line-5"]["record"] == "My_file.jsonl:5"
    judged = [r for r in UPLOAD if r.get("id") not in ("img", "short")]
    records = [Record(i, str(r.get("id", r.get("question_id"))), r) for i, r in enumerate(judged)]
    from judgelm.io import sample_from_record

    samples = [sample_from_record(r.raw).replace(id=r.key) for r in records]
    expected = [
        output_record(r, v, model="grader") for r, v in zip(records, grader.judge(samples, swap=True), strict=True)
    ]
    assert strip_time([line for line in lines if "verdict" in line]) == strip_time(expected)

    # the report is `judgelm eval` on the labelled records and the downloaded results
    truth, pred = tmp_path / "truth.jsonl", tmp_path / "pred.jsonl"
    truth.write_text("".join(json.dumps(r) + "\n" for r in UPLOAD if "score" in r or "text" in r))
    pred.write_text(results.text)
    result, _ = evaluate_files(truth, pred)
    assert result.total_num == 4 and result.abstained == 1  # the image record counts as a failure
    title = "judgelm eval: My_file.jsonl judged by grader"
    assert report.text == done["report"] == render_eval(result, "markdown", title=title)


def test_ui_refuses_to_listen_beyond_loopback_without_a_key(capsys, monkeypatch):
    monkeypatch.delenv("JUDGELM_API_KEY", raising=False)
    assert main(["ui", "--host", "0.0.0.0"]) == 2  # before any model is loaded
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--api-key" in err


def test_ui_endpoint_loads_the_judge_through_judge_from_endpoint(monkeypatch, capsys):
    """A stand-in for `Judge.from_endpoint`: the command must hand it the URL, the model name and
    the key (and the endpoint flags' defaults), then serve the page on that judge."""
    calls, served = [], []

    def from_endpoint(base_url, model, *, api_key=None, **kw):
        calls.append((base_url, model, api_key, kw))
        return scripted_judge(respond, name=f"{model}@endpoint")

    monkeypatch.setattr(Judge, "from_endpoint", from_endpoint, raising=False)
    monkeypatch.setattr("judgelm.serve.server.serve", lambda app, **kw: served.append((app, kw)))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["ui", "--endpoint", "http://127.0.0.1:9/v1", "--model", "judgelm-7b", "--port", "7999"]) == 0
    assert [c[:3] for c in calls] == [("http://127.0.0.1:9/v1", "judgelm-7b", "sk-test")]
    assert calls[0][3]["logprobs"] == "auto" and calls[0][3]["tokenizer"] is None
    app, kw = served[0]
    assert kw["host"] == "127.0.0.1" and kw["port"] == 7999
    with serving(app) as c:
        assert c.get("/ui/api/info").json()["model"] == "judgelm-7b@endpoint"
    assert "judgelm-7b@endpoint on http://127.0.0.1:7999/" in capsys.readouterr().err


def test_ui_command_serves_a_saved_model_until_sigterm(tiny_model_dir):
    with running_command(["judgelm", "ui", "--model", str(tiny_model_dir)]) as (proc, url):
        assert httpx.get(f"{url}/ui/api/info", timeout=10).json()["model"] == str(tiny_model_dir)
        assert 'data-testid="judge"' in httpx.get(url, timeout=10).text
        err = stop(proc)
        assert f"on {url}/" in err and "judgelm ui: stopped" in err


def test_what_the_page_keeps_is_bounded_in_count_and_bytes():
    from judgelm.ui.app import _Bounded

    kept = _Bounded(max_items=3, max_bytes=100)
    for k in range(4):
        kept.put(f"c{k}", k, 10)
    assert [kept.get(f"c{k}") for k in range(4)] == [None, 1, 2, 3]  # the oldest went first
    kept.put("big", "image", 95)
    assert [kept.get(k) for k in ("c1", "c2", "c3", "big")] == [None, None, None, "image"]
    kept.put("huge", "x", 1000)  # alone over the budget: still kept until the next one comes
    assert kept.get("huge") == "x" and kept.get("big") is None


def test_ui_on_a_real_endpoint_gives_the_local_verdict(tiny_judge, monkeypatch):
    """`judgelm ui --endpoint` against a real `judgelm serve` of the same judge: the page's verdict
    is the in-process verdict (exact remote scoring: prompt log-probabilities, to 1e-3)."""
    from conftest import LLAMA_TOKENIZER

    served = []
    monkeypatch.setattr("judgelm.serve.server.serve", lambda app, **kw: served.append(app))
    form = {"sample": {"question": "Capital of Australia?", "answers": ["Canberra.", "Sydney."]}}
    srv = BackgroundServer(tiny_judge, ServeConfig(served_model_name="tiny"), graceful_timeout_s=10).start()
    try:
        args = ["ui", "--endpoint", f"{srv.url}/v1", "--model", "tiny", "--tokenizer", str(LLAMA_TOKENIZER)]
        assert main(args) == 0
        with serving(served[0]) as c:
            evs = events(c, "/ui/api/judge", form)
    finally:
        srv.stop()
    direct = tiny_judge.judge(Sample("Capital of Australia?", ("Canberra.", "Sydney."), id="page"))[0]
    remote = evs[-1]["verdict"]  # (the random judge abstains: most of its mass is outside the grammar)
    assert remote["abstained"] == direct.abstained and remote["reason_code"] == direct.reason_code
    assert remote["order_scores"][0] == pytest.approx(list(direct.order_scores[0]), abs=1e-3)
    for r, d in zip(remote["distributions"], direct.distributions, strict=True):
        assert r["probs"] == pytest.approx(list(d.probs), abs=1e-3)
        assert r["outside_mass"] == pytest.approx(d.outside_mass, abs=1e-3)
