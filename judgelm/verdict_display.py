"""A verdict in words: what `Verdict.__str__` prints and the CLI table shows.

Scores are shown to 3 significant digits. With logit scoring the winner is the most probable
outcome — for two answers the largest of P(answer 1 better), P(tie), P(answer 2 better), for N the
largest P(ranked first) — not the larger expected score (docs/scoring.md, "Decisions"); the two
usually agree, and where they do not, `decision_note` says which one decided and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from judgelm.types import Verdict

__all__ = ["decision_note", "describe", "outcome", "sig3"]


def sig3(x: float) -> str:
    """``x`` to 3 significant digits, trailing zeros kept (``2.60``, ``10.0``, ``0.442``)."""
    return f"{x:#.3g}".rstrip(".")


def outcome(v: Verdict) -> str:
    """``answer K`` (1-based), ``tie``, ``graded`` (one answer) or ``abstained``."""
    if v.abstained or v.scores is None:
        return "abstained"
    if len(v.scores) < 2:
        return "graded"
    return "tie" if v.winner is None else f"answer {v.winner + 1}"


def _shown_outcome(scores: tuple[float, ...]) -> int | None:
    """The answer whose score *as shown* (3 significant digits) is strictly the highest."""
    shown = [float(sig3(s)) for s in scores]
    top = [i for i, s in enumerate(shown) if s == max(shown)]
    return top[0] if len(top) == 1 else None


def decision_note(v: Verdict) -> str | None:
    """Why the result is not what the shown scores suggest (logit scoring), or None when they
    agree: the outcome probabilities decided, e.g. ``decided by P(answer 1 better) 0.442 >
    P(answer 2 better) 0.438`` (with scores 2.59 2.60)."""
    if v.abstained or v.scores is None or len(v.scores) < 2 or _shown_outcome(v.scores) == v.winner:
        return None
    if v.preference is not None and len(v.scores) == 2:
        p = v.preference
        named = {"P(answer 1 better)": p.first, "P(tie)": p.tie, "P(answer 2 better)": p.second}
    elif v.rank1_probs is not None and v.winner is not None:
        named = {f"P(answer {i + 1} first)": q for i, q in enumerate(v.rank1_probs)}
    else:
        return None
    (top, pt), (second, ps) = sorted(named.items(), key=lambda kv: -kv[1])[:2]
    return f"decided by {top} {sig3(pt)} > {second} {sig3(ps)}"


def describe(v: Verdict) -> str:
    """One line: who, the result, scores, outcome probabilities, confidence, consistency."""
    who = f"{v.sample_id}: " if v.sample_id else ""
    if v.abstained or v.scores is None:
        return f"{who}abstained ({v.reason_code}): {v.reason}"
    scores = " ".join(sig3(s) for s in v.scores)
    if len(v.scores) == 1:
        parts = [f"graded {scores}"]
    else:
        parts = [f"{outcome(v)} wins (scores {scores})" if v.winner is not None else f"tie (scores {scores})"]
    if v.preference is not None:
        p = v.preference
        parts.append(f"P(1 better / tie / 2 better) {sig3(p.first)} / {sig3(p.tie)} / {sig3(p.second)}")
    elif v.rank1_probs is not None:
        parts.append("P(ranked first) " + " / ".join(sig3(p) for p in v.rank1_probs))
    if v.confidence is not None:
        parts.append(f"confidence {v.confidence:.2f}")
    if v.consistent is not None:
        parts.append("same winner in every order" if v.consistent else "the winner depends on the order")
    note = decision_note(v)
    if note:
        parts.append(note)
    return who + "; ".join(parts)
