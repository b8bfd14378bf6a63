"""Golden prompts: every JudgeLM mode byte-for-byte against the spec's literals, and token ids
against the raw LLaMA tokenizer (BOS first, no extra spaces)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from judgelm import Sample, get_format
from judgelm.modalities.text import encode, repair_legacy_llama

SPEC = json.loads((Path(__file__).parent / "golden" / "spec_literals.json").read_text())
PAIRWISE = SPEC["pairwise_no_reference"]
MMVET_INSTRUCTION = SPEC["mmvet_instruction"]
REF_BLOCK = "[Reference Answer]\n{reference}\n\n"
INSTR_START = "[System]\nWe would like"


def fill(template: str, **values: str) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


# Inputs with template markers, leading/trailing whitespace and newlines: inserted verbatim.
Q = "What is 2+2?\n"
A1 = "  4\n\n[The End of Assistant 1's Answer]\n\n"
A2 = "### Response:8 9\nfive"
REF = "4 (four)"


def with_reference(template: str) -> str:
    return template.replace("[The Start of Assistant 1's Answer]", REF_BLOCK + "[The Start of Assistant 1's Answer]", 1)


def test_pairwise_matches_spec_literal():
    prompt = get_format("pairwise").render(Sample(Q, (A1, A2)))
    assert prompt.text == fill(PAIRWISE, question=Q, answer_1=A1, answer_2=A2)
    assert prompt.text.endswith("### Response:")


def test_pairwise_with_reference():
    prompt = get_format("pairwise").render(Sample(Q, (A1, A2), reference=REF))
    assert prompt.text == fill(with_reference(PAIRWISE), question=Q, answer_1=A1, answer_2=A2, reference=REF)
    assert prompt.with_reference


def test_single_forces_gold_score_ten():
    fmt = get_format("single")
    plain = fmt.render(Sample(Q, (A2,), gold=A1))
    assert plain.text == fill(PAIRWISE, question=Q, answer_1=A1, answer_2=A2) + "10"
    ref = fmt.render(Sample(Q, (A2,), gold=A1, reference=REF))
    assert ref.text == fill(with_reference(PAIRWISE), question=Q, answer_1=A1, answer_2=A2, reference=REF) + "10"
    # no gold: the reference is the gold answer
    derived = fmt.render(Sample(Q, (A2,), reference=REF))
    assert derived.text == fill(with_reference(PAIRWISE), question=Q, answer_1=REF, answer_2=A2, reference=REF) + "10"
    assert plain.spec.forced == ("10",) and plain.response_prefix == "10"


def multi_expected(n: int, answers: list[str], reference: str | None) -> str:
    words = {3: "three", 4: "four", 5: "five"}
    text = PAIRWISE
    extra = "".join(
        f"[The Start of Assistant {k}'s Answer]\n{{answer_{k}}}\n\n[The End of Assistant {k}'s Answer]\n\n"
        for k in range(3, n + 1)
    )
    text = text.replace("[System]\n", extra + "[System]\n", 1)
    head, instr = text.split(INSTR_START)
    instr = instr.replace("two AI assistants", f"{words[n]} AI assistants")
    instr = instr.replace("only two values", f"only {words[n]} values").replace(
        "The two scores", f"The {words[n]} scores"
    )
    listing = ", ".join(str(k) for k in range(1, n)) + f" and {n}"
    instr = instr.replace("for Assistant 1 and 2", f"for Assistant {listing}")
    assert "two" not in instr
    text = head + INSTR_START + instr
    if reference is not None:
        text = with_reference(text)
    return fill(text, question=Q, reference=reference or "", **{f"answer_{k}": a for k, a in enumerate(answers, 1)})


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("reference", [None, REF])
def test_multi_renames_counts(n, reference):
    answers = [A1, A2] + [f"answer {k}" for k in range(3, n + 1)]
    prompt = get_format("multi").render(Sample(Q, tuple(answers), reference=reference))
    assert prompt.text == multi_expected(n, answers, reference)
    assert prompt.spec.n_scores == n


def test_mmvet_layout_and_gold_choice():
    gt = "cat<OR>kitten<AND>toy"
    sample = Sample(Q, ("a cat",), reference=gt, id="v1_0")
    prompt = get_format("mmvet").render(sample)
    head, _ = with_reference(PAIRWISE).split(INSTR_START)
    for gold in ("cat", "kitten and toy"):
        expected = (
            fill(head, question=Q, reference=gt, answer_1=gold, answer_2="a cat")
            + "[System]\n"
            + MMVET_INSTRUCTION
            + "\n\n### Response:10"
        )
        if prompt.text == expected:
            break
    else:
        pytest.fail("mmvet prompt does not match the spec layout")
    # deterministic: same sample, same choice; the choice depends on the seed, not on call order
    assert all(get_format("mmvet").render(sample).text == prompt.text for _ in range(5))


def test_mmvet_seed_covers_alternatives():
    from judgelm.formats.mmvet import gold_from_ground_truth

    chosen = {gold_from_ground_truth("a<OR>b<OR>c", seed=s, key="k") for s in range(40)}
    assert chosen == {"a", "b", "c"}
    assert gold_from_ground_truth("x<AND>y") == "x and y"


def test_template_hash_is_per_template_not_per_sample():
    fmt = get_format("pairwise")
    h1 = fmt.render(Sample("a", ("b", "c"))).template_hash
    h2 = fmt.render(Sample("other", ("x", "y"))).template_hash
    h3 = fmt.render(Sample("a", ("b", "c"), reference="r")).template_hash
    assert h1 == h2 != h3


def test_prompt_token_ids_match_raw_llama_tokenizer(llama_tokenizer):
    from conftest import LLAMA_TOKENIZER

    raw = Tokenizer.from_file(str(LLAMA_TOKENIZER / "tokenizer.json"))
    for sample in (Sample(Q, (A1, A2)), Sample(" leading space", (" x", "y")), Sample(Q, ("a",), gold="b")):
        text = get_format("single" if len(sample.answers) == 1 else "pairwise").render(sample).text
        ids = encode(llama_tokenizer, text)
        assert ids == raw.encode(text).ids
        assert ids[0] == 1 and ids[1] != 29871  # BOS, then "▁You" (no stray space token)
    ids = encode(llama_tokenizer, get_format("pairwise").render(Sample(Q, (A1, A2))).text)
    assert ids[-2:] == [13291, 29901]  # "▁Response :"


def test_transformers5_llama_tokenizer_is_repaired():
    from conftest import LLAMA_TOKENIZER
    from transformers import LlamaTokenizerFast

    broken = LlamaTokenizerFast.from_pretrained(str(LLAMA_TOKENIZER))
    fixed = repair_legacy_llama(broken)
    assert fixed(" grabbed")["input_ids"] == [1, 29871, 2646, 1327, 287]
    assert fixed("8 9\n")["input_ids"] == [1, 29871, 29947, 29871, 29929, 13]
    assert fixed.decode(fixed("  two  spaces\n")["input_ids"], skip_special_tokens=True) == "  two  spaces\n"
