"""`Judge`: batching, combination of orders, abstains, truncation, generation vs HF generate."""

from __future__ import annotations

import warnings

import pytest
import torch
from greedy import assert_same_greedy, hf_logits_at

from judgelm import Judge, Sample, Turn
from judgelm.engine import GenerationOptions
from judgelm.testing import ScriptedEngine, byte_tokenizer, scripted_judge


def test_helpers_wrap_judge():
    judge = scripted_judge(
        lambda p: " 7\nok" if p.endswith("### Response:10") else "3 9 6\nx" if "three AI" in p else "8 9\nx"
    )
    assert judge.compare("q", "a", "b").scores == (8.0, 9.0)
    graded = judge.grade("q", "answer", gold="gold")
    assert graded.scores == (7.0,) and graded.winner is None and not graded.abstained
    ranked = judge.rank("q", ["a", "b", "c"])
    assert ranked.ranking == (1, 2, 0) and ranked.winner == 1


def test_swap_uses_reversed_order_and_maps_back():
    # the judge always prefers whatever is shown second: a position-biased judge
    judge = scripted_judge("5 9\n")
    v = judge.compare("q", "a", "b", swap=True)
    assert v.provenance.orders == ((0, 1), (1, 0))
    assert v.order_scores == ((5.0, 9.0), (9.0, 5.0))
    assert v.scores == (7.0, 7.0) and v.tie and v.consistent is False


def test_swap_consistent_judge():
    judge = scripted_judge(lambda p: "9 5\n" if p.index("AAA") < p.index("BBB") else "5 9\n")
    v = judge.compare("q", "AAA", "BBB", swap=True)
    assert v.consistent is True and v.winner == 0 and v.scores == (9.0, 5.0)


def test_multi_swap_is_cyclic():
    judge = scripted_judge("1 2 3\n")
    v = judge.rank("q", ["a", "b", "c"], swap=True)
    assert len(v.provenance.orders) == 3
    assert v.scores == (2.0, 2.0, 2.0) and v.consistent is False


def test_one_failed_order_keeps_the_other():
    judge = scripted_judge(lambda p: "garbage" if p.index("AAA") > p.index("BBB") else "9 5\n")
    v = judge.compare("q", "AAA", "BBB", swap=True)
    assert not v.abstained and v.scores == (9.0, 5.0) and v.consistent is None
    assert v.order_scores[1] is None


def test_invalid_samples_abstain_and_others_go_on():
    judge = scripted_judge("8 9\n")
    out = judge.judge([Sample("q", ("a", "b", "c"), mode="pairwise", id="bad"), Sample("q", ("a", "b"), id="ok")])
    assert out[0].abstained and out[0].reason_code == "invalid_input" and "answers" in out[0].reason
    assert out[1].scores == (8.0, 9.0)


def test_official_parser_option():
    judge = scripted_judge("8, 9\n")
    assert judge.compare("q", "a", "b").scores == (8.0, 9.0)
    v = judge.compare("q", "a", "b", official_parser=True)
    assert v.abstained and v.reason_code == "unparseable"


def test_explain_keeps_explanation_and_fast_eval_stops_at_newline():
    judge = scripted_judge("8 9\nAssistant 2 is right.")
    assert judge.compare("q", "a", "b").text == "8 9\n"
    v = judge.compare("q", "a", "b", explain=True)
    assert v.explanation == "Assistant 2 is right." and v.text == "8 9\nAssistant 2 is right."


def test_compare_chats():
    judge = scripted_judge("4 8\n")
    a = [Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "2+2?"), Turn("assistant", "5")]
    b = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hey"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    v = judge.compare_chats(a, b)
    assert v.format == "chat" and v.winner == 1
    assert "### Assistant 2:\n4" in judge.engine.prompts[-1]
    mismatched = [*b[:2], {"role": "user", "content": "3+3?"}, b[3]]
    bad = judge.compare_chats(a, mismatched)
    assert bad.abstained and "same user turns" in bad.reason


def test_truncation_shortens_answers_only(llama_tokenizer):
    engine = ScriptedEngine(llama_tokenizer, "8 9\n", context_length=400)
    judge = Judge(None, llama_tokenizer, engine=engine)
    long_a, long_b = "alpha " * 400, "beta " * 50
    v = judge.compare("question?", long_a, long_b)
    assert not v.abstained
    trunc = {t.answer: t for t in v.provenance.truncation}
    assert 0 in trunc and trunc[0].kept_tokens < trunc[0].original_tokens
    assert v.prompt.endswith("### Response:") and "[System]\nWe would like" in v.prompt
    assert len(llama_tokenizer(v.prompt)["input_ids"]) <= 400 - 12
    refused = judge.compare("question?", long_a, long_b, truncation="error")
    assert refused.abstained and refused.reason_code == "too_long"


def test_engine_generation_equals_hf_generate(tiny_judge, llama_tokenizer):
    samples = [
        Sample("Q?", ("a", "b")),
        Sample("A much longer question " * 5, ("x " * 20, "y")),
        Sample("q", ("one",), gold="g"),
    ]
    prompts = [tiny_judge.encode(s)[0].input_ids for s in samples]
    got = tiny_judge.engine.generate(prompts, GenerationOptions(12))
    model, want = tiny_judge.model, []
    for ids in prompts:
        ref = model.generate(
            torch.tensor([ids]),
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=llama_tokenizer.eos_token_id,
            pad_token_id=0,
        )
        ref_new = ref[0, len(ids) :].tolist()
        if llama_tokenizer.eos_token_id in ref_new:
            ref_new = ref_new[: ref_new.index(llama_tokenizer.eos_token_id) + 1]
        want.append(ref_new)
    assert_same_greedy(got, want, hf_logits_at(model, prompts))


def test_newline_stop(tiny_judge):
    ids = tiny_judge.encode(Sample("Q?", ("a", "b")))[0].input_ids
    out = tiny_judge.engine.generate([ids], GenerationOptions(30, stop_at_newline=True))[0]
    texts = [tiny_judge.tokenizer.decode([t]) for t in out]
    assert all("\n" not in t for t in texts[:-1])


def test_discuss_keeps_history():
    judge = scripted_judge(lambda p: "8 9\nbecause" if p.endswith("### Response:") else f"reply {p.count('USER:')}")
    v = judge.compare("q", "a", "b", explain=True)
    d = judge.discuss(v, "Why is 2 better?")
    assert d.reply == "reply 1"
    assert judge.engine.prompts[-1].endswith("8 9\nbecauseUSER: Why is 2 better? ASSISTANT:")
    d2 = judge.discuss(d, "And 1?")
    assert d2.reply == "reply 2" and len(d2.turns) == 4
    assert "ASSISTANT: reply 1</s>USER: And 1? ASSISTANT:" in judge.engine.prompts[-1]


def test_explanations_stop_where_the_template_starts_over():
    """A judge that does not stop writes its template's "### Response:" again: the engine stops
    there (the format's stop string) and the text is cut before it."""
    judge = scripted_judge("8 9\nAssistant 2 is right.\n\n### Response:8 9\nAssistant 2 is right.")
    v = judge.compare("q", "a", "b", explain=True)
    assert v.text == "8 9\nAssistant 2 is right.\n\n" and v.explanation == "Assistant 2 is right."


def test_a_discussion_reply_carries_no_turn_markers():
    replies = iter(["ASSISTANT: Because 2 is right. USER: ok? ASSISTANT: x", "It is.\n\n### Response:8 9"])
    judge = scripted_judge(lambda p: "8 9\nbecause" if p.endswith("### Response:") else next(replies))
    d = judge.discuss(judge.compare("q", "a", "b"), "Why?")
    assert d.reply == "Because 2 is right."
    assert judge.discuss(d, "Sure?").reply == "It is."  # a new judgment (the format's stop string) ends it too


def test_grading_without_a_gold_answer_warns():
    judge = scripted_judge("7\n")
    with pytest.warns(UserWarning, match="without gold= or reference="):
        judge.grade("q", "a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        judge.grade("q", "a", gold="g")


def test_bf16_verdicts_stay_close_to_fp32(tiny_model, llama_tokenizer):
    """The bf16 path (chosen on CPUs with AMX / AVX512-BF16, forced here) reads the same verdicts
    as fp32 within rounding: distributions to 0.02 on a random tiny model."""
    import copy

    samples = [Sample("What is 2+2?", ("4", "five"), reference="4"), Sample("Pick a prime.", ("4", "7", "9"))]
    fp32 = Judge(tiny_model, llama_tokenizer, abstain_threshold=1.0).judge(samples)
    half = Judge(copy.deepcopy(tiny_model).to(torch.bfloat16), llama_tokenizer, abstain_threshold=1.0)
    assert type(half.engine).__name__ == "PackedEngine"
    for a, b in zip(fp32, half.judge(samples), strict=True):
        for d, e in zip(a.distributions, b.distributions, strict=True):
            assert max(abs(p - q) for p, q in zip(d.probs, e.probs, strict=True)) < 0.02
        assert a.scores == pytest.approx(b.scores, abs=0.05)


def test_stream_yields_every_verdict_in_order_first_one_alone(tiny_judge):
    from judgelm.judge import ChunkSizer

    samples = [Sample(f"What is {i}+{i}?", (str(2 * i), str(i))) for i in range(5)] + [Sample("q", ())]
    chunks: list[int] = []
    original = tiny_judge._run
    tiny_judge._run = lambda jobs, *a: (chunks.append(len(jobs)), original(jobs, *a))  # type: ignore[method-assign]
    try:
        got = list(tiny_judge.stream(samples, scoring="text", max_chunk=2))
    finally:
        del tiny_judge._run
    assert [i for i, _ in got] == list(range(6)) and chunks[0] == 1 and max(chunks) <= 2
    want = tiny_judge.judge(samples, scoring="text")
    assert [v.scores for _, v in got] == [v.scores for v in want] and got[5][1].abstained
    sizer = ChunkSizer(64, 2.0)
    sizer.record(1, 0.5)  # 0.5 s a sample: 4 fit in 2 s, but grow at most x2
    assert sizer.size == 2
    sizer.record(2, 0.2)
    assert sizer.size == 4
    sizer.record(4, 16.0)  # slow: 4 s a sample
    assert sizer.size == 1


def test_save_and_load_round_trip(tiny_model, llama_tokenizer, tmp_path):
    from judgelm.calibration import Calibration

    judge = Judge(tiny_model, llama_tokenizer)
    judge.calibration = Calibration(temperature=2.0)
    judge.save_pretrained(tmp_path)
    assert (tmp_path / "judge.json").exists() and any(tmp_path.glob("*.safetensors"))
    again = Judge.from_pretrained(str(tmp_path), device="cpu")
    assert again.calibration.temperature == 2.0
    s = [Sample("Q?", ("a", "b"))]
    assert again.judge(s, scoring="text")[0].text == judge.judge(s, scoring="text")[0].text
    a, b = again.judge(s)[0], judge.judge(s)[0]
    assert a.distributions == b.distributions and a.provenance.scoring == "logits"


def test_scripted_engine_honours_the_generation_options():
    tok = byte_tokenizer()
    engine = ScriptedEngine(tok, "8 9\nmore")
    nine = tok.convert_tokens_to_ids("9")
    seen = []
    options = GenerationOptions(50, stop_token_ids={nine}, on_token=lambda i, t: seen.append((i, t)))
    out = engine.generate([tok("q")["input_ids"]] * 2, options)
    assert out == [tok("8 9", add_special_tokens=False)["input_ids"]] * 2
    assert seen == [(i, t) for i in range(2) for t in out[i]]
    assert not engine.capabilities.logits and engine.facts.eos_ids == {tok.eos_token_id}


def test_followup_turns_render_like_the_judgelm_demo():
    """The turns after the verdict, against the upstream renderer: baaivision/JudgeLM (commit
    636c5c7) judgelm/conversation.py, ``Conversation.get_prompt``, the ``ADD_COLON_TWO`` branch
    for a first message holding "### Response:": the judge prompt, the verdict, then each later
    message ``role + ": " + message + seps[i % 2]`` (template ``vicuna_v1.1``: sep " ", sep2
    "</s>"), the open turn ``role + ":"``; the verdict kept is the judge's text stripped
    (judgelm/serve/gradio_web_server_judgelm.py, ``bot_response_v2``: ``data["text"].strip()``)."""
    from judgelm.formats.followup import followup_context, followup_prompt

    def upstream(messages):
        seps, out = [" ", "</s>"], messages[0][1]
        if messages[1][1] is not None:
            out += messages[1][1]
        for i, (role, message) in enumerate(messages[2:]):
            out += f"{role}: {message}{seps[i % 2]}" if message else f"{role}:"
        return out

    prompt, written = "PROMPT ### Response:", "8 9\nexplained \n"
    turns = (Turn("user", "Why?"), Turn("assistant", "Because 2 is right."))
    messages = [
        ("USER", prompt),
        ("ASSISTANT", written.strip()),
        ("USER", "Why?"),
        ("ASSISTANT", "Because 2 is right."),
        ("USER", "And 1?"),
        ("ASSISTANT", None),
    ]
    context = followup_context(prompt, written)
    assert followup_prompt(context, turns, "And 1?", "</s>") == upstream(messages)
    assert "explainedUSER: Why? ASSISTANT: Because 2 is right.</s>USER: And 1? ASSISTANT:" in upstream(messages)
