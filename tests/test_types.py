import pytest

from judgelm import InvalidSampleError, Sample, Turn
from judgelm.testing import scripted_judge
from judgelm.types import ScoreDistribution, verdict_from_dict


def test_sample_normalises_and_freezes():
    s = Sample(
        "q",
        ["a", "b"],
        id=7,
        conversations=[[{"from": "human", "value": "hi"}, {"role": "assistant", "content": "yo"}]],
    )
    assert s.answers == ("a", "b") and s.id == "7"
    assert s.conversations[0] == (Turn("user", "hi"), Turn("assistant", "yo"))
    with pytest.raises(AttributeError):
        s.question = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"answers": "one string"}, "answers"),
        ({"answers": ["a", 3]}, "answers[1]"),
        ({"question": 5}, "question"),
        ({"reference": {"text": 1}}, "reference"),
        ({"conversations": [[{"role": "bot", "content": "x"}]]}, "conversations[0][0].role"),
    ],
)
def test_bad_samples_name_the_field(kwargs, field):
    with pytest.raises(InvalidSampleError) as info:
        Sample(**{"question": "q", "id": "s1", **kwargs})
    assert info.value.field == field
    assert info.value.record == "s1"


def test_score_distribution_stats():
    d = ScoreDistribution((1.0, 2.0, 3.0), (0.25, 0.5, 0.25), 0.1)
    assert d.expected == pytest.approx(2.0)
    assert d.mode == 2.0
    assert d.entropy == pytest.approx(1.0397207708)


def test_verdict_round_trips_through_dict():
    v = scripted_judge("8 9\nwhy").compare("q", "a", "b", swap=True, explain=True)
    again = verdict_from_dict(v.to_dict())
    assert again == v
    assert v.to_dict()["label"] == 0 and v.to_dict()["tie"] is True  # 8 9 and 9 8 average to a tie
    assert v.consistent is False
    one = scripted_judge("8 9\nwhy").compare("q", "a", "b")
    assert one.to_dict()["label"] == -1 and one.to_dict()["tie"] is False


def test_abstain_is_not_a_tie():
    v = scripted_judge("no idea").compare("q", "a", "b")
    assert v.abstained and v.reason_code == "unparseable"
    assert not v.tie and v.label is None and v.winner is None


def test_a_verdict_reads_at_a_glance():
    from judgelm.types import Preference, Provenance, Verdict

    prov = Provenance(model="m", format="pairwise", template_hash="", orders=((0, 1), (1, 0)), scoring="logits")
    # the --swap case of issue 20: expected scores 2.59 < 2.60, yet answer 1 is the more probable winner
    v = Verdict("pair-1", "pairwise", (2.5912345, 2.6), prov, winner=0, preference=Preference(0.442, 0.12, 0.438))
    text = str(v)
    assert text.startswith("pair-1: answer 1 wins (scores 2.59 2.60)") and "confidence" not in text
    assert text.endswith("; decided by P(answer 1 better) 0.442 > P(answer 2 better) 0.438")
    agree = Verdict(
        "p", "pairwise", (8.0, 3.04), prov, winner=0, preference=Preference(0.9, 0.05, 0.05), confidence=0.61
    )
    assert (
        str(agree)
        == "p: answer 1 wins (scores 8.00 3.04); P(1 better / tie / 2 better) 0.900 / 0.0500 / 0.0500; confidence 0.61"
    )
    assert str(Verdict("g", "single", (10.0,), prov, confidence=0.5)) == "g: graded 10.0; confidence 0.50"
    gone = Verdict("x", "pairwise", None, prov, abstained=True, reason="too long", reason_code="too_long")
    assert str(gone) == "x: abstained (too_long): too long" and "Verdict(" in repr(gone)
