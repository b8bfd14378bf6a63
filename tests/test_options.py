"""`JudgeOptions` as the one options type (`Judge.judge`, the wire format, the CLI), and the CLI
flags every command shares: declared once, one default each."""

from __future__ import annotations

import pytest

from judgelm import Sample
from judgelm.cli import build_parser
from judgelm.errors import InvalidSampleError
from judgelm.options import JudgeOptions
from judgelm.testing import scripted_judge


def test_options_form_equals_the_keywords():
    judge = scripted_judge(lambda p: "3 8\nbecause" if "[[A]]" in p else "8 3\n")
    samples = [Sample("Q?", ("[[A]]", "b")), Sample("Q?", ("c", "d"), mode="pairwise")]
    by_keywords = judge.judge(samples, swap=True, explain=True, scoring="text")
    options = JudgeOptions(swap=True, explain=True, scoring="text")
    assert judge.judge(samples, options) == by_keywords
    # a keyword overrides the same field of `options`; the other fields stay
    assert judge.judge(samples, options, swap=False) == judge.judge(samples, explain=True, scoring="text")
    with pytest.raises(ValueError, match="scoring must be 'auto', 'logits' or 'text'"):
        judge.judge(samples, scoring="vibes")  # type: ignore[arg-type]


def test_every_judge_keyword_is_an_option():
    import inspect

    from judgelm.judge import Judge

    callbacks = {"on_progress", "on_token"}
    keywords = set(inspect.signature(Judge.judge).parameters) - {"self", "samples", "options", *callbacks}
    assert keywords == set(JudgeOptions.__dataclass_fields__)


def test_wire_form_of_the_newer_fields():
    opts = JudgeOptions(slots="greedy", truncation="error", calibrated=False)
    assert JudgeOptions.from_dict(opts.to_dict()) == opts
    assert JudgeOptions.from_dict({"truncation": None}) == JudgeOptions()
    for bad, field in [
        ({"slots": "all"}, "options.slots"),
        ({"truncation": "cut"}, "options.truncation"),
        ({"calibrated": 1}, "options.calibrated"),
    ]:
        with pytest.raises(InvalidSampleError) as e:
            JudgeOptions.from_dict(bad)
        assert e.value.field == field


COMMANDS = {  # command line -> the shared flags it declares
    ("judge", "in.jsonl"): {"model", "device", "dtype", "trust_remote_code", "scoring", "truncation", "mode"},
    ("audit", "--data", "d", "--out", "o"): {"model", "device", "dtype", "trust_remote_code", "scoring"},
    ("bench", "--benchmark", "pandalm", "--data", "d"): {"model", "device", "dtype", "trust_remote_code", "scoring"},
    ("calibrate", "--data", "d"): {"model", "device", "dtype", "trust_remote_code"},
    ("serve",): {"model", "device", "dtype", "trust_remote_code", "truncation", "reward_scoring"},
    ("train", "d.jsonl", "-o", "out"): {"model", "trust_remote_code", "truncation", "mode"},
    ("prompts", "in.jsonl"): {"mode", "swap"},
    ("ui",): {"model", "device", "dtype", "trust_remote_code", "truncation"},
}


@pytest.mark.parametrize("argv", list(COMMANDS), ids=lambda a: a[0])
def test_shared_flags_have_one_default(argv):
    args = vars(build_parser().parse_args(list(argv)))
    defaults = {
        "model": None,
        "device": None,
        "dtype": None,
        "trust_remote_code": False,
        "scoring": "auto",
        "reward_scoring": "auto",
        "truncation": "answers",
        "mode": None,
        "swap": False,
    }
    for flag in COMMANDS[argv]:
        assert args[flag] == defaults[flag], (argv[0], flag)
