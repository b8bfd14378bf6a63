"""Comparing greedy continuations computed two ways (no tests here).

Two paths that compute the same logits in a different order (packed vs padded, one row vs a batch,
one worker vs two, another CPU's kernels: AVX2, AVX-512 and AMX round differently) agree to about
1e-5 in fp32, so their greedy tokens agree except where the two best logits are closer than that:
there, either token is a correct greedy choice. `assert_same_greedy` checks every token up to the
first difference exactly and accepts a difference only at such a near-tie (`TIE_TOL`), measured
on the reference path's logits. A wrong cache, mask or position shows up as a difference at a
clear margin and fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

TIE_TOL = 1e-4  # logits; the paths under test agree to ~1e-5 (fp32) on the test models

LogitsAt = Callable[[int, list[int]], torch.Tensor]  # (row, tokens generated so far) -> [V] logits


def assert_same_greedy(got: Sequence[Sequence[int]], want: Sequence[Sequence[int]], logits_at: LogitsAt) -> None:
    """``got[r] == want[r]``, or they part at a near-tie of ``logits_at(r, want[r][:k])``."""
    assert len(got) == len(want)
    for row, (a, b) in enumerate(zip(got, want, strict=True)):
        a, b = list(a), list(b)
        if a == b:
            continue
        k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        assert k < len(a) and k < len(b), f"row {row}: one continuation stops at token {k}: {a} vs {b}"
        with torch.no_grad():
            logits = logits_at(row, b[:k]).double()
        chosen = torch.tensor([a[k], b[k]])
        gap = float((logits[chosen[0]] - logits[chosen[1]]).abs())
        below_top = float(logits.max() - logits[chosen].max())
        assert gap <= TIE_TOL and below_top <= TIE_TOL, (
            f"row {row} parts at token {k} ({a[k]} vs {b[k]}) where the logits differ by {gap:.2e}: not a tie"
        )


def hf_logits_at(model: Any, prompts: Sequence[Sequence[int]]) -> LogitsAt:
    """Reference logits from a plain forward of the Hugging Face model."""
    return lambda row, prefix: model(torch.tensor([[*prompts[row], *prefix]])).logits[0, -1]


def engine_logits_at(
    engine: Any, prompts: Sequence[Sequence[int]], images: Sequence[Sequence[Any]] | None = None
) -> LogitsAt:
    """Reference logits from a judgelm engine's prefill of one prompt (+ its images)."""

    def at(row: int, prefix: list[int]) -> torch.Tensor:
        kwargs = {"images": [images[row]]} if images is not None else {}
        return engine.prefill([[*prompts[row], *prefix]], want="logits", **kwargs).last_logits[0]

    return at


def record_generate(engine: Any, monkeypatch: Any) -> list[list[tuple[tuple[int, ...], Any, list[int]]]]:
    """Record every ``engine.generate`` call as ``[(prompt, its images, continuation), ...]``."""
    calls: list[list[tuple[tuple[int, ...], Any, list[int]]]] = []
    real = engine.generate

    def generate(prompts: Sequence[Sequence[int]], *args: Any, **kwargs: Any) -> list[list[int]]:
        out = real(prompts, *args, **kwargs)
        images = kwargs.get("images") or [None] * len(prompts)
        calls.append([(tuple(p), imgs, o) for p, imgs, o in zip(prompts, images, out, strict=True)])
        return out

    monkeypatch.setattr(engine, "generate", generate)
    return calls
