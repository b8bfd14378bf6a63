"""Encoding training examples: the loss mask, the prompt/target boundary, truncation, records."""

from __future__ import annotations

import json

import pytest

from judgelm.data.records import JudgeRecord, read_records, record_from_dict
from judgelm.data.synthetic import generate
from judgelm.errors import FormatError, InvalidSampleError, PromptTooLongError
from judgelm.formats import get_format
from judgelm.modalities.text import encode
from judgelm.train.dataset import JudgeDataset
from judgelm.train.encode import IGNORE_INDEX, encode_example
from judgelm.types import Sample

PAIRWISE = get_format("pairwise")
SINGLE = get_format("single")
SAMPLE = Sample("What is 2+2?\n", ("4", "It is 5."), reference="2 + 2 = 4.")
JUDGMENT = "8 3\nAssistant 1 is right. Assistant 2 says 5, which is wrong."
COLON, SPACE, NEWLINE, EOS = 29901, 29871, 13, 2
DIGIT = {
    str(d): i
    for d, i in zip("0123456789", (29900, 29896, 29906, 29941, 29946, 29945, 29953, 29955, 29947, 29929), strict=True)
}


def test_loss_mask_covers_exactly_the_judgment_and_eos(llama_tokenizer):
    ex = encode_example(llama_tokenizer, PAIRWISE, SAMPLE, (0, 1), JUDGMENT, max_length=2048)
    prompt = PAIRWISE.render(SAMPLE)
    prompt_ids = encode(llama_tokenizer, prompt.text)
    # the prompt part is exactly what the judge reads at inference, and carries no loss
    assert list(ex.input_ids[: ex.prompt_tokens]) == prompt_ids
    assert ex.labels[: ex.prompt_tokens] == (IGNORE_INDEX,) * len(prompt_ids)
    # every later token is a target, labelled with itself, ending in EOS
    target = ex.input_ids[ex.prompt_tokens :]
    assert ex.labels[ex.prompt_tokens :] == target
    assert target[-1] == EOS and EOS not in target[:-1]
    assert llama_tokenizer.decode(list(target[:-1])) == JUDGMENT
    # token by token at the boundary: ... "Response" ":" | "8" "▁" "3" "\n" "Ass" ...
    assert ex.input_ids[ex.prompt_tokens - 1] == COLON
    assert list(target[:4]) == [DIGIT["8"], SPACE, DIGIT["3"], NEWLINE]
    assert not ex.boundary_fallback and ex.truncation == ()
    assert len(ex.input_ids) == len(ex.labels) == len(encode(llama_tokenizer, prompt.text + JUDGMENT)) + 1


def test_swapped_target_tokens(llama_tokenizer):
    ex = encode_example(llama_tokenizer, PAIRWISE, SAMPLE, (1, 0), JUDGMENT, max_length=2048)
    text = llama_tokenizer.decode([t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE_INDEX])
    assert text == "3 8\nAssistant 2 is right. Assistant 1 says 5, which is wrong.</s>"
    assert "[The Start of Assistant 1's Answer]\nIt is 5.\n" in llama_tokenizer.decode(list(ex.input_ids))


@pytest.mark.parametrize("judgment", ["10 7\nAssistant 2 is close.", "7\nAssistant 2 is close."])
def test_single_answer_target_starts_after_the_forced_10(llama_tokenizer, judgment):
    sample = Sample("Q?", ("an answer",), gold="the gold answer")
    ex = encode_example(llama_tokenizer, SINGLE, sample, (0,), judgment, max_length=2048)
    prompt = SINGLE.render(sample)
    assert prompt.text.endswith("### Response:10")
    assert list(ex.input_ids[: ex.prompt_tokens]) == encode(llama_tokenizer, prompt.text)
    assert list(ex.input_ids[ex.prompt_tokens - 3 : ex.prompt_tokens]) == [COLON, DIGIT["1"], DIGIT["0"]]
    target = list(ex.input_ids[ex.prompt_tokens :])
    assert target[:3] == [SPACE, DIGIT["7"], NEWLINE]  # " 7\n"
    full = llama_tokenizer.decode(list(ex.input_ids), skip_special_tokens=True)
    assert full == prompt.text + " 7\nAssistant 2 is close."


def test_bad_judgments_are_refused(llama_tokenizer):
    with pytest.raises(FormatError):
        encode_example(llama_tokenizer, PAIRWISE, SAMPLE, (0, 1), "8 3 5\nthree scores", max_length=2048)
    with pytest.raises(FormatError):
        encode_example(llama_tokenizer, PAIRWISE, SAMPLE, (0, 1), "great answers", max_length=2048)
    with pytest.raises(FormatError):
        encode_example(
            llama_tokenizer, SINGLE, Sample("Q", ("a",), gold="g"), (0,), "9 7\nforced is 10", max_length=2048
        )


def test_truncation_shortens_answers_only_and_keeps_the_whole_judgment(llama_tokenizer):
    long = Sample("Explain.", ("word " * 900, "short answer"))
    judgment = "6 7\n" + "Assistant 2 is better. " * 20
    ex = encode_example(llama_tokenizer, PAIRWISE, long, (1, 0), judgment, max_length=512)
    assert len(ex.input_ids) <= 512
    assert [t.answer for t in ex.truncation] == [0] and ex.truncation[0].kept_tokens < 900
    text = llama_tokenizer.decode(list(ex.input_ids[: ex.prompt_tokens]), skip_special_tokens=True)
    assert text.endswith(PAIRWISE.render(long).text[-700:])  # instruction and "### Response:" intact
    assert "short answer" in text and "Explain." in text
    target = llama_tokenizer.decode(list(ex.input_ids[ex.prompt_tokens :]), skip_special_tokens=True)
    assert target == "7 6\n" + "Assistant 1 is better. " * 20
    with pytest.raises(PromptTooLongError):  # the judgment alone does not fit: never cut it
        encode_example(llama_tokenizer, PAIRWISE, long, (0, 1), judgment, max_length=100)


def _merging_tokenizer():
    """A byte-level BPE where ':' and '8' merge into one token, unlike LLaMA."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<s>": 0, "</s>": 1, **{ch: i + 2 for i, ch in enumerate(alphabet)}}
    vocab[":8"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(":", "8")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def test_a_merge_across_the_boundary_keeps_the_prompt_ids_of_inference():
    tok = _merging_tokenizer()
    prompt = PAIRWISE.render(SAMPLE).text
    assert encode(tok, prompt + "8 3")[len(encode(tok, prompt)) - 1] == tok.convert_tokens_to_ids(":8")
    ex = encode_example(tok, PAIRWISE, SAMPLE, (0, 1), JUDGMENT, max_length=4096)
    assert ex.boundary_fallback
    assert list(ex.input_ids[: ex.prompt_tokens]) == encode(tok, prompt)
    assert tok.decode(list(ex.input_ids), skip_special_tokens=True) == prompt + JUDGMENT


def test_records_in_both_dialects(tmp_path):
    judgelm = generate(1, seed=0)[0]
    rec = record_from_dict(judgelm)
    assert rec.judgment == judgelm["text"] and rec.judgment_w_reference == judgelm["text_w_reference"]
    assert rec.views == (False, True) and rec.sample_for(False).reference is None
    native = {"id": "n1", "question": "Q?", "answers": ["a", "b"], "judgment": "7 8\nok", "reference": None}
    rec = record_from_dict(native)
    assert rec.views == (False,) and "judgment" not in rec.sample.meta
    rec = record_from_dict({**judgelm, "text": "error"})  # the reference code's failed teacher call
    assert rec.views == (True,)
    with pytest.raises(InvalidSampleError):
        record_from_dict({"question": "Q?", "answers": ["a", "b"]})
    with pytest.raises(InvalidSampleError):
        JudgeRecord(Sample("Q", ("a", "b")), None, "8 9\nno reference to go with")
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps(judgelm), "{not json", json.dumps(native), json.dumps({"question": "Q", "answers": ["a", "b"]})]
    path.write_text("\n".join(lines) + "\n")
    items = list(read_records(path))
    assert [type(i).__name__ for i in items] == [
        "JudgeRecord",
        "InvalidSampleError",
        "JudgeRecord",
        "InvalidSampleError",
    ]
    assert ":4" in str(items[3])  # names the line


def test_dataset_scan_reports_truncation_and_drops(llama_tokenizer):
    good = [record_from_dict(r) for r in generate(6, seed=2)]
    long = JudgeRecord(Sample("Q?", ("word " * 600, "b"), id="long"), "4 6\nAssistant 2 is better.")
    bad = JudgeRecord(Sample("Q?", ("a", "b"), id="bad"), "8\nonly one score")
    ds = JudgeDataset([*good, long, bad], llama_tokenizer, max_length=600, p_swap=0.5, p_reference=0.5)
    report = ds.report
    assert report.records == 8 and report.kept == 7 and len(ds) == 7
    assert report.truncated == {"plain": 1, "with_reference": 0}
    assert report.dropped == {"plain_invalid": 1, "records": 1}
    assert report.views == {"plain": 7, "with_reference": 6}
    assert "truncation shortens the answers of 1" in report.summary()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert len(item["input_ids"]) == len(item["labels"]) <= 600
            assert item["labels"][-1] == llama_tokenizer.eos_token_id
