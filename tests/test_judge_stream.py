"""Streaming what the judge writes (`Judge.judge(on_token=...)`, `Judge.discuss(on_token=...)`) and
follow-up chats about image verdicts, where a vision judge sees the images again."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from judgelm import Judge, Sample
from judgelm.errors import InvalidSampleError, PromptTooLongError
from judgelm.modalities.image import load_image
from judgelm.testing import ScriptedEngine, byte_tokenizer, scripted_judge


def _order_aware(prompt: str) -> str:
    """Scores and words that say which order the judge saw (good answer first or second)."""
    good_first = prompt.index("good") < prompt.index("bad")
    return "9 2\ngood came first" if good_first else "2 9\ngood came second"


def _collect(judge, samples, **kw):
    streamed: dict[tuple[int, int], list[int]] = {}
    verdicts = judge.judge(samples, on_token=lambda s, o, t: streamed.setdefault((s, o), []).append(t), **kw)
    text = {k: judge.tokenizer.decode(ids, skip_special_tokens=True) for k, ids in streamed.items()}
    return verdicts, text


def test_text_scoring_streams_every_order_of_every_sample_exactly():
    judge = scripted_judge(_order_aware)
    samples = [Sample("Q1?", ("good a", "bad b")), Sample("Q2?", ("bad c", "good d"))]
    verdicts, text = _collect(judge, samples, swap=True, explain=True)
    assert text == {
        (0, 0): "9 2\ngood came first",
        (0, 1): "2 9\ngood came second",  # the swapped order: the good answer is shown second
        (1, 0): "2 9\ngood came second",
        (1, 1): "9 2\ngood came first",
    }
    assert [v.text for v in verdicts] == [text[0, 0], text[1, 0]]
    assert [v.winner for v in verdicts] == [0, 1]


def test_refused_samples_stream_nothing_and_keep_their_index():
    judge = scripted_judge(_order_aware)
    samples = [Sample("Q?", ("only one answer",), mode="pairwise"), Sample("Q2?", ("good", "bad"))]
    verdicts, text = _collect(judge, samples, explain=True)
    assert verdicts[0].abstained and verdicts[0].reason_code == "invalid_input"
    assert text == {(1, 0): "9 2\ngood came first"}


@pytest.mark.parametrize("mode", ["pairwise", "prometheus_absolute"])
def test_logit_scoring_streams_the_explanation_it_returns(tiny_judge, mode):
    """The explanation pass of logit scoring, and explain-first formats, whose feedback is
    generated before the verdict is read."""
    answers = ("4", "5") if mode == "pairwise" else ("4",)
    verdicts, text = _collect(tiny_judge, [Sample("2+2?", answers, mode=mode)], explain=True, max_new_tokens=12)
    assert verdicts[0].provenance.scoring == "logits"
    assert set(text) == {(0, 0)}
    assert text[0, 0] == verdicts[0].text and text[0, 0]


def test_discuss_streams_its_reply_and_keeps_the_history():
    judge = scripted_judge(lambda p: "8 9\nbecause" if p.endswith("### Response:") else "Answer 2 cites the source.")
    v = judge.compare("q", "a", "b", explain=True)
    streamed: list[int] = []
    d = judge.discuss(v, "Why?", on_token=streamed.append)
    assert judge.tokenizer.decode(streamed, skip_special_tokens=True) == d.reply == "Answer 2 cites the source."
    assert d.images == ()


def test_discuss_refuses_a_conversation_longer_than_the_context():
    tok = byte_tokenizer()
    judge = Judge(None, tok, name="short", engine=ScriptedEngine(tok, "8 9\nok", context_length=1200))
    v = judge.compare("q", "a", "b")  # ~900 bytes of JudgeLM prompt
    with pytest.raises(PromptTooLongError, match="context of 1200"):
        judge.discuss(v, "Why? " * 80)
    judge.discuss(v, "Why?", max_new_tokens=16)  # a short one fits


def test_a_text_judge_refuses_images_to_discuss():
    judge = scripted_judge("8 9\nok")
    v = judge.compare("q", "a", "b")
    with pytest.raises(InvalidSampleError, match="no vision tower") as e:
        judge.discuss(v, "Why?", images=(b"png",))
    assert e.value.field == "images"


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, format="PNG")
    return buf.getvalue()


def test_a_vision_judge_sees_the_images_again_when_asked_why(llama_tokenizer):
    from judgelm.vision.testing import tiny_vision_judge

    model, tok = tiny_vision_judge(llama_tokenizer, seed=1)
    judge = Judge(model, tok, name="tiny-vision")
    red, blue = _png((220, 30, 30)), _png((30, 30, 220))
    v = judge.judge(Sample("What color?", ("Red.", "Blue."), images=(red,), mode="image_pairwise"))[0]
    seen: list = []
    generate = judge.engine.generate

    def spy(prompts, options, *, images=None, on_batch=None):
        seen.append(images)
        return generate(prompts, options, images=images, on_batch=on_batch)

    judge.engine.generate = spy
    with pytest.raises(InvalidSampleError, match="pass the sample's images") as e:
        judge.discuss(v, "Why?", max_new_tokens=4)
    assert e.value.field == "images"
    first = judge.discuss(v, "Why?", images=(red,), max_new_tokens=6)
    again = judge.discuss(first, "And then?", max_new_tokens=6)  # the Discussion keeps the images
    other = judge.discuss(v, "Why?", images=(blue,), max_new_tokens=6)
    pixels = model.preprocess(load_image(red))
    assert [len(s[0]) for s in seen] == [1, 1, 1]
    assert torch.equal(seen[0][0][0], pixels) and torch.equal(seen[1][0][0], pixels)
    assert not torch.equal(seen[2][0][0], pixels)
    assert again.images == (red,) and len(again.turns) == 4
    assert first.reply and other.reply is not None
