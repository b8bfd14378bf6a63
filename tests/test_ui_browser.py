"""The judge page in a real headless browser (Chromium + Selenium, tests/browser.py): fill the
form, judge, read the verdict off the page and check it is `Judge.judge`'s on the same sample,
watch the explanation stream, ask why (`Judge.discuss`), upload an image for a vision judge,
upload a JSONL and download its results and report. A screenshot of every state is written under
each test's tmp folder (``shots/``). Tiny in-process judges keep it to seconds; without a browser
these tests skip, saying what to install."""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser import Page, chrome
from PIL import Image
from test_serve import strip_time
from test_serve_support import respond
from test_ui import UPLOAD, upload_text

from judgelm import Judge, Sample
from judgelm.io import Record, output_record, sample_from_record
from judgelm.serve import BackgroundServer, ServeConfig
from judgelm.testing import ScriptedEngine, byte_tokenizer, scripted_judge
from judgelm.ui import create_ui_app


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(downloads):
    session = chrome(downloads)
    yield session
    session.quit()


@contextmanager
def opened(driver, judge, tmp_path, **config):
    srv = BackgroundServer(create_ui_app(judge, ServeConfig(**config)), graceful_timeout_s=10).start()
    try:
        yield Page(driver, srv.url, tmp_path / "shots").open()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def logit_judge(tiny_model, llama_tokenizer):
    """The tiny random Llama, never abstaining on grammar mass (as the untrained demo judge), so
    the page shows its distributions."""
    return Judge(tiny_model, llama_tokenizer, name="tiny-llama", abstain_threshold=1.0)


def read_verdict(page: Page, n: int) -> dict:
    """What the page shows, at full precision (the ``data-value`` of each shown number)."""
    out = {"winner": page.value("winner"), "swap": page.value("swap-check"), "confidence": page.value("confidence")}
    out["scores"] = [float(page.value(f"score-{k}")) for k in range(1, n + 1)]
    out["most_likely"] = [float(page.value(f"mode-{k}")) for k in range(1, n + 1) if page.all(f"mode-{k}")]
    out["bars"] = [
        [float(b.get_attribute("data-prob")) for b in page(f"dist-{k}").find_elements("css selector", ".bar")]
        for k in range(1, n + 1)
        if page.all(f"dist-{k}")
    ]
    if not page("preference").get_attribute("hidden"):
        out["preference"] = [float(page.value(f"pref-{k}")) for k in ("first", "tie", "second")]
    return out


def assert_shows(shown: dict, v) -> None:
    if v.abstained:
        winner = "abstained"
    elif len(v.scores) == 1:
        winner = "graded"
    else:
        winner = "tie" if v.winner is None else str(v.winner + 1)
    assert shown["winner"] == winner
    assert shown["scores"] == pytest.approx(v.scores, abs=1e-6)  # the same call (on another thread)
    if v.distributions:
        assert shown["most_likely"] == [d.mode for d in v.distributions]
        assert shown["bars"] == [pytest.approx(list(d.probs), abs=1e-6) for d in v.distributions]
        assert float(shown["confidence"]) == pytest.approx(v.confidence, abs=1e-6)
    if v.preference:
        p = v.preference
        assert shown["preference"] == pytest.approx([p.first, p.tie, p.second], abs=1e-6)
    assert shown["swap"] == ("off" if v.consistent is None else "agree" if v.consistent else "disagree")


def ask_why(page: Page, message: str) -> str:
    page.type("why-input", message)
    page("why-send").click()
    assert page.wait(lambda: page.all("why-reply") and page.wait_state("why-reply", "done", "error")) == "done"
    return page.text("why-reply")


def test_judge_side_by_side_then_ask_why(driver, logit_judge, tmp_path):
    q, a, b, ref = "What is the capital of Australia?", "Canberra is the capital.", "Sydney.", "Canberra."
    with opened(driver, logit_judge, tmp_path) as page:
        assert page.text("model") == "tiny-llama"
        page.type("question", q)
        page.type("answer-1", a)
        page.type("answer-2", b)
        page.type("reference", ref)
        page("swap").click()
        page.screenshot("1-form")
        page("judge").click()
        assert page.wait_state("verdict", "judged", "abstained", "error") == "judged"
        page.screenshot("2-judged")
        shown = read_verdict(page, 2)
        direct = logit_judge.judge(Sample(q, (a, b), reference=ref, mode="pairwise", id="page"), swap=True)[0]
        assert_shows(shown, direct)
        assert len(page.driver.find_elements("css selector", '[data-testid^="order-"]')) == 2  # both orders
        assert page.text("calibration").startswith("none fitted")
        reply = ask_why(page, "Why is that answer better?")
        page.screenshot("3-why")
        assert reply == logit_judge.discuss(direct, "Why is that answer better?").reply
        assert (tmp_path / "shots" / "3-why.png").stat().st_size > 10_000


def test_an_abstention_shows_its_reason(driver, tiny_judge, tmp_path):
    with opened(driver, tiny_judge, tmp_path) as page:
        page.type("question", "2+2?")
        page.type("answer-1", "4")
        page.type("answer-2", "5")
        page("judge").click()
        assert page.wait_state("verdict", "judged", "abstained", "error") == "abstained"
        page.screenshot("abstained")
        direct = tiny_judge.judge(Sample("2+2?", ("4", "5"), mode="pairwise", id="page"))[0]
        assert direct.abstained and page.value("winner") == "abstained"
        assert page.text("abstain-reason") == f"{direct.reason_code}: {direct.reason}"
        assert len(page.all("dist-1")) == 1  # the distributions it could not trust are still shown


class SlowScriptedEngine(ScriptedEngine):
    """Scripted replies, one token every 20 ms: slow enough to watch the text arrive."""

    def generate(self, prompts, options, *, images=None, on_batch=None):
        if options.on_token is not None:
            emit = options.on_token

            def slow(index, token):
                time.sleep(0.02)
                emit(index, token)

            options = dataclasses.replace(options, on_token=slow)
        return super().generate(prompts, options, images=images, on_batch=on_batch)


def test_the_explanation_streams_token_by_token(driver, tmp_path):
    tok = byte_tokenizer()
    explanation = "Assistant 1 names the right city; Assistant 2 names the largest one."
    engine = SlowScriptedEngine(tok, lambda p: f"9 3\n{explanation}" if "ASSISTANT:" not in p else "It is right.")
    judge = Judge(None, tok, name="slow-scripted", engine=engine)
    with opened(driver, judge, tmp_path) as page:
        page.type("question", "Capital of Australia?")
        page.type("answer-1", "Canberra.")
        page.type("answer-2", "Sydney.")
        page("explain").click()
        page.driver.execute_script(
            """const box = document.querySelector('[data-testid="explanation"]');
            window.seen = [];
            new MutationObserver(() => window.seen.push(box.textContent))
                .observe(box, {childList: true, characterData: true, subtree: true});"""
        )
        page("judge").click()
        page.wait(lambda: len(page.driver.execute_script("return window.seen")) > 5)
        page.screenshot("streaming")
        assert page.wait_state("verdict", "judged", "abstained", "error") == "judged"
        page.screenshot("explained")
        seen = page.driver.execute_script("return window.seen")
        direct = judge.judge(Sample("Capital of Australia?", ("Canberra.", "Sydney."), mode="pairwise"), explain=True)[
            0
        ]
        assert page.text("explanation") == direct.explanation == explanation
        partial = [s for s in seen if s and s != explanation]
        assert len(partial) > 10 and all(f"9 3\n{explanation}".startswith(s) for s in partial)  # growing prefixes
        assert page.text("raw-text") == direct.text


def png_file(folder: Path, color=(220, 30, 30)) -> Path:
    path = folder / "picture.png"
    Image.new("RGB", (40, 30), color).save(path, format="PNG")
    return path


def test_an_image_is_uploaded_judged_and_seen_again_when_asked_why(driver, llama_tokenizer, tmp_path):
    from judgelm.vision.testing import tiny_vision_judge

    model, tok = tiny_vision_judge(llama_tokenizer, seed=1)
    judge = Judge(model, tok, name="tiny-vision", abstain_threshold=1.0)
    picture = png_file(tmp_path)
    with opened(driver, judge, tmp_path) as page:
        page.select("mode", "image_pairwise")
        page("images").send_keys(str(picture))  # the user picks a file; the page sends its bytes
        page.type("question", "What color is it?")
        page.type("answer-1", "Red.")
        page.type("answer-2", "Blue.")
        page("judge").click()
        assert page.wait_state("verdict", "judged", "abstained", "error") == "judged"
        page.screenshot("image-judged")
        image = picture.read_bytes()
        sample = Sample("What color is it?", ("Red.", "Blue."), images=(image,), mode="image_pairwise", id="page")
        direct = judge.judge(sample)[0]
        assert_shows(read_verdict(page, 2), direct)
        reply = ask_why(page, "Why?")
        page.screenshot("image-why")
        assert reply == judge.discuss(direct, "Why?", images=(image,)).reply


def test_every_mode_of_the_form_is_the_sample_python_would_judge(driver, logit_judge, tmp_path):
    with opened(driver, logit_judge, tmp_path) as page:
        # multi: a third answer turns the pairwise form into a multi-answer one
        page.type("question", "Name a prime number.")
        for k, answer in enumerate(("4", "7", "9"), start=1):
            if k == 3:
                page("add-answer").click()
            page.type(f"answer-{k}", answer)
        assert page("mode").get_attribute("value") == "multi"
        page("judge").click()
        page.wait_state("verdict", "judged", "abstained", "error")
        page.screenshot("multi")
        direct = logit_judge.judge(Sample("Name a prime number.", ("4", "7", "9"), mode="multi", id="page"))[0]
        assert_shows(read_verdict(page, 3), direct)
        assert [float(page.value(f"rank1-{k}")) for k in (1, 2, 3)] == pytest.approx(direct.rank1_probs, abs=1e-6)

        # single, graded against a gold answer
        page.select("mode", "single")
        page.type("answer-1", "7")
        page.type("gold", "2")
        page("judge").click()
        page.wait(lambda: page.value("winner") == "graded")
        page.screenshot("single")
        direct = logit_judge.judge(Sample("Name a prime number.", ("7",), gold="2", mode="single", id="page"))[0]
        assert_shows(read_verdict(page, 1), direct)

        # chat, two turns of two assistants with the same user
        page.select("mode", "chat")
        page("add-turn").click()
        turns = [("Hi, a prime?", "7.", "8."), ("And an even one?", "2.", "4 is prime.")]
        for k, (user, one, two) in enumerate(turns, start=1):
            page.type(f"chat-user-{k}", user)
            page.type(f"chat-1-{k}", one)
            page.type(f"chat-2-{k}", two)
        page("judge").click()
        page.wait(lambda: page.text("provenance").startswith("chat"))
        page.screenshot("chat")
        convs = tuple(
            tuple(
                t
                for user, *answers in turns
                for t in ({"role": "user", "content": user}, {"role": "assistant", "content": answers[i]})
            )
            for i in (0, 1)
        )
        direct = logit_judge.judge(Sample(conversations=convs, mode="chat", id="page"))[0]
        assert_shows(read_verdict(page, 2), direct)
        assert page.text("answer-result-1").startswith("Assistant 1")


def test_a_jsonl_upload_shows_progress_verdicts_and_downloads(driver, downloads, tmp_path):
    judge = scripted_judge(respond, name="grader")
    upload = tmp_path / "reviews.jsonl"
    upload.write_text(upload_text())
    with opened(driver, judge, tmp_path, max_batch_size=2) as page:
        page("tab-batch").click()
        page("batch-file").send_keys(str(upload))
        page("batch-swap").click()
        page.screenshot("batch-chosen")
        page("batch-run").click()
        assert page.wait_state("batch", "done", "error") == "done"
        page.screenshot("batch-done")
        progress = page("batch-progress")
        assert progress.get_attribute("value") == progress.get_attribute("max") == "7"
        assert progress.get_attribute("data-steps") == "3,5,7"  # refused records, then 2 per model call
        rows = page.all("batch-row")
        assert [r.get_attribute("data-key") for r in rows] == ["img", "line-5", "short", "a", "b", "3", "graded"]
        assert [r.get_attribute("class") for r in rows[:3]] == ["bad"] * 3
        report = page.text("batch-report")
        assert "agreement" in report and "Confusion matrix" in report
        for button, name in (
            ("batch-download-results", "reviews.judged.jsonl"),
            ("batch-download-report", "reviews.report.md"),
        ):
            page(button).click()
            page.wait(lambda name=name: (downloads / name).exists() and not list(downloads.glob("*.crdownload")))
    assert (downloads / "reviews.report.md").read_text() == report
    lines = [json.loads(line) for line in (downloads / "reviews.judged.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "3", "img", "line-5", "graded", "short"]
    judged = [r for r in UPLOAD if r.get("id") not in ("img", "short")]
    records = [Record(i, str(r.get("id", r.get("question_id"))), r) for i, r in enumerate(judged)]
    samples = [sample_from_record(r.raw).replace(id=r.key) for r in records]
    verdicts = judge.judge(samples, swap=True)
    expected = [output_record(r, v, model="grader") for r, v in zip(records, verdicts, strict=True)]
    assert strip_time([line for line in lines if "verdict" in line]) == strip_time(expected)
