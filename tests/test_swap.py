"""The one swap function: orders, sample permutation, judgment rewriting."""

from judgelm import Sample, get_format
from judgelm.swap import identity, inverse, permute, permute_judgment, permute_sample, swap_orders, unpermute


def test_orders():
    assert swap_orders(2) == ((0, 1), (1, 0))
    assert swap_orders(3, "cyclic") == ((0, 1, 2), (1, 2, 0), (2, 0, 1))
    assert swap_orders(1) == ((0,),)
    for order in swap_orders(4, "cyclic"):
        assert unpermute(permute("abcd", order), order) == tuple("abcd")
        assert permute(inverse(order), order) == identity(4)


def test_permute_sample_moves_answers_and_conversations():
    s = Sample("q", ("a", "b", "c"))
    assert permute_sample(s, (2, 0, 1)).answers == ("c", "a", "b")
    chat = Sample(
        conversations=(
            [{"role": "user", "content": "u"}, {"role": "assistant", "content": "x"}],
            [{"role": "user", "content": "u"}, {"role": "assistant", "content": "y"}],
        )
    )
    assert permute_sample(chat, (1, 0)).conversations[0][1].content == "y"


def test_judgment_scores_and_mentions_move_together():
    text = "7.5 9\nAssistant 1 is vague; Assistant 2 gives the number. Assistant 1's tone is fine."
    swapped = permute_judgment(text, (1, 0))
    assert swapped == "9 7.5\nAssistant 2 is vague; Assistant 1 gives the number. Assistant 2's tone is fine."
    assert permute_judgment(swapped, (1, 0)) == text  # swap twice = identity


def test_judgment_permutation_for_n_answers():
    text = "3 6 9\nAssistant 3 is best, Assistant 1 worst."
    order = (2, 0, 1)  # slot 0 shows answer 2, ...
    out = permute_judgment(text, order)
    assert out == "9 3 6\nAssistant 1 is best, Assistant 2 worst."
    assert permute_judgment(out, inverse(order)) == text


def test_judgment_with_forced_gold_slot():
    # single-answer targets keep the forced gold score in place
    assert permute_judgment("10 7\nAssistant 2 ...", (0,), n_forced=1) == "10 7\nAssistant 2 ..."


def test_swapped_prompt_parses_back_to_original_order():
    fmt = get_format("pairwise")
    sample = Sample("q", ("first", "second"))
    prompt = fmt.render(sample, (1, 0))
    assert prompt.text.index("second") < prompt.text.index("first")
    parsed = fmt.parse("3 8\nx", prompt)  # the judge scored slot 1 (= "second") 3
    assert parsed.scores == (8.0, 3.0)
