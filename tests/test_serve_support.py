"""Helpers shared by the serving/integration tests (no tests here).

`grading_judge()` is a scripted judge that reads the answers out of the JudgeLM prompt and scores
each by its content ("good" -> 9, "bad" -> 2, "garbage" -> unreadable text, else 5), so tests
can check that the right score reaches the right answer. `CountingJudge` wraps a judge to record
every batched call and optionally hold calls at a gate.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from judgelm.testing import scripted_judge

_BLOCK = re.compile(r"\[The Start of Assistant (\d+)'s Answer\]\n(.*?)\n\n\[The End of Assistant \1's Answer\]", re.S)


def score_of(answer: str) -> int:
    if "good" in answer:
        return 9
    if "bad" in answer:
        return 2
    return 5


def respond(prompt: str) -> str:
    answers = [a for _, a in _BLOCK.findall(prompt)]
    if any("garbage" in a for a in answers):
        return "I cannot say\n"
    if prompt.endswith("### Response:10"):  # single grading with a gold answer in slot 1
        return f" {score_of(answers[-1])}\nok"
    return " ".join(str(score_of(a)) for a in answers) + "\nok"


def grading_judge() -> Any:
    return scripted_judge(respond, name="grader")


class CountingJudge:
    """Delegates to ``inner``; records (n_samples, kwargs) per call; blocks while ``gate`` is clear."""

    def __init__(self, inner: Any, *, gated: bool = False, delay: float = 0.0):
        self.inner = inner
        self.name = inner.name
        self.config = inner.config
        self.tokenizer = inner.tokenizer
        self.calls: list[tuple[int, dict[str, Any]]] = []
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.entered = threading.Event()
        self.delay = delay

    def judge(self, samples: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.gate.wait(30)
        if self.delay:
            threading.Event().wait(self.delay)
        self.calls.append((len(samples), kwargs))
        return self.inner.judge(samples, **kwargs)


def assert_close(a: Any, b: Any, path: str = "$", tol: float = 1e-5) -> None:
    """Equal JSON-like structures, floats within ``tol`` (logit scores move in the 7th digit
    with batch padding; JSON rounds distributions to 6)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=tol), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}", tol)
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]", tol)
    else:
        assert a == b, path
