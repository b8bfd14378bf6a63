"""The parser table: the reference `parse_score` quirks (official=True) and the tolerant default."""

import math

import pytest

from judgelm.formats import parse_scores, parse_verdict_line

# (text, reference result) — the reference returns [-1, -1] where we return None
OFFICIAL = [
    ("8 9\nAssistant 2 is better.", (8.0, 9.0)),
    ("8,9", (8.0, 9.0)),
    ("7.5 8", (7.5, 8.0)),
    ("10 10", (10.0, 10.0)),
    ("8, 9", None),  # ", " -> two spaces -> 3 fields
    ("8 9 ", None),  # trailing space -> 3 fields
    (" 8 9", None),  # leading space
    ("8", None),
    ("eight nine", None),
    ("8 9 10", None),
    ("", None),
    ("\n8 9", None),  # the score line is the first line, here empty
    ("8  9", None),  # double space
    ("11 -3", (11.0, -3.0)),  # range is not enforced by the reference
]


@pytest.mark.parametrize(("text", "expected"), OFFICIAL)
def test_official_parser_matches_reference(text, expected):
    assert parse_scores(text, 2, official=True) == expected


def test_official_parser_accepts_nan_like_reference():
    scores = parse_scores("nan 8", 2, official=True)
    assert scores is not None and math.isnan(scores[0]) and scores[1] == 8.0


def test_official_parser_generalises_to_n():
    assert parse_scores("1 2 3\n", 3, official=True) == (1.0, 2.0, 3.0)
    assert parse_scores("1 2\n", 3, official=True) is None


TOLERANT = [
    ("8 9\nbecause", (8.0, 9.0)),
    ("8, 9", (8.0, 9.0)),
    (" 8 9 ", (8.0, 9.0)),
    ("8  9", (8.0, 9.0)),
    ("\n\n8 9\n", (8.0, 9.0)),
    ("8/10 9/10", (8.0, 9.0)),
    ("Scores: 7.5 8", (7.5, 8.0)),
    ("**8 9**", (8.0, 9.0)),
    ("Assistant 1: 8, Assistant 2: 9", (8.0, 9.0)),
    ("Assistant 2: 9, Assistant 1: 8", (8.0, 9.0)),
    ("Assistant 1: 8\nAssistant 2: 9\nexplanation", (8.0, 9.0)),
    ("Assistant 1's score: 6/10; Assistant 2's score: 4/10", (6.0, 4.0)),
    ("8 and 9", (8.0, 9.0)),
]


@pytest.mark.parametrize(("text", "expected"), TOLERANT)
def test_tolerant_reads(text, expected):
    assert parse_scores(text, 2) == expected


FAILS = [
    ("8", "unparseable"),
    ("8 9 10", "unparseable"),
    ("I think assistant 2 is better", "unparseable"),
    ("8 9 because reasons", "unparseable"),  # words on the score line: never guess
    ("11 9", "out_of_range"),
    ("0 9", "out_of_range"),
    ("nan 8", "unparseable"),
    ("Assistant 1: 8", "unparseable"),
    ("Assistant 1: 8, Assistant 1: 9", "unparseable"),
    ("", "unparseable"),
]


@pytest.mark.parametrize(("text", "code"), FAILS)
def test_tolerant_fails_with_reason(text, code):
    result = parse_verdict_line(text, 2)
    assert result.scores is None
    assert result.reason_code == code and result.reason


def test_tolerant_custom_range():
    assert parse_scores("0.5 0.25", 2, score_range=(0.0, 1.0)) == (0.5, 0.25)
    assert parse_scores("3 1", 2, score_range=(0.0, 1.0)) is None
