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
