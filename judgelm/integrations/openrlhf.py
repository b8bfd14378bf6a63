"""OpenRLHF's remote reward protocol, mapped onto the judge.

OpenRLHF POSTs ``{"query": [...], "prompts": [...], "labels": [...]}`` to ``--remote_rm_url``
and reads ``{"rewards": [...], "scores": [...], "extra_logs": {...}}``; it turns each into a
per-sample tensor, so every value is a list with one number per query.

How a query becomes a judge sample:

- ``query[i]`` is the prompt and the response as one text. When ``prompts[i]`` is given and
  starts ``query[i]`` (or occurs in it: decoding can add a BOS or spaces in front), the question is
  ``prompts[i]`` and the answer is what follows it. Without prompts, the answer is what follows
  the LAST ``separator`` (e.g. ``"<|im_start|>assistant\\n"``: earlier assistant turns of a
  multi-turn prompt come before it) and the question is what precedes it. A query that cannot be
  split is a 400 naming ``query[i]``: a misconfigured split must fail loudly, not score garbage.
- End-of-sequence markers left by decoding (``</s>``, ``<|im_end|>``, ...) are cut from the end
  of the answer.
- ``labels[i]`` (empty or null = none) is the gold answer. ``mode="single"`` grades the answer
  with the label as the reference (JudgeLM single-answer grading: the reference sits in the
  Assistant 1 slot with its score forced to 10, and is shown as the reference;
  ``label_as="gold"`` leaves out the reference block). ``mode="pairwise"`` judges the answer
  against the label in one pairwise prompt; the reward is ``score(answer) - score(label)``.

What comes back: ``rewards`` = the judge's score (expected score under ``scoring="logits"``) or
the pairwise margin; ``scores`` = the same mapped to [0, 1] (OpenRLHF filters on it);
``extra_logs`` = ``judge_abstained`` (1.0 where the judge abstained).
OpenRLHF cannot take a missing reward, so an abstained query gets ``abstain_reward`` (default
0.0) in ``rewards``, flagged in ``judge_abstained`` and counted in the server's metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from judgelm.errors import InvalidSampleError
from judgelm.formats.parsing import DEFAULT_SCORE_RANGE
from judgelm.integrations.rewards import candidate_reward, margin_reward, to_unit
from judgelm.options import JudgeOptions
from judgelm.types import Sample, Verdict

__all__ = [
    "END_MARKERS",
    "RewardMapping",
    "reward_response",
    "samples_from_reward_request",
    "split_query",
]

# End-of-turn strings of common chat templates, cut from the end of a decoded answer.
END_MARKERS: tuple[str, ...] = (
    "</s>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<eos>",
    "<pad>",
)


@dataclass(frozen=True)
class RewardMapping:
    """How ``/get_reward`` turns OpenRLHF queries into samples and verdicts into rewards."""

    mode: Literal["single", "pairwise"] = "single"
    label_as: Literal["reference", "gold"] = "reference"
    separator: str | None = None
    end_markers: tuple[str, ...] = END_MARKERS
    abstain_reward: float = 0.0
    score_range: tuple[float, float] = DEFAULT_SCORE_RANGE
    options: JudgeOptions = field(default_factory=JudgeOptions)
    # Python-only hook: clean a prompt before the judge sees it (e.g. drop a chat template).
    question_fn: Callable[[str], str] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("single", "pairwise"):
            raise ValueError(f"mode must be 'single' or 'pairwise', got {self.mode!r}")
        if self.label_as not in ("reference", "gold"):
            raise ValueError(f"label_as must be 'reference' or 'gold', got {self.label_as!r}")
        if self.separator == "":
            raise ValueError("separator must be a non-empty string or None")
        if self.options.mode is not None:
            raise ValueError("options.mode must stay None: the reward mode decides the format")


def _strip_end(text: str, markers: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        stripped = text.rstrip()
        for m in markers:
            if m and stripped.endswith(m):
                text, changed = stripped[: -len(m)], True
                break
    return text


def split_query(query: str, prompt: str | None = None, separator: str | None = None) -> tuple[str, str]:
    """(question, answer) of one OpenRLHF query (see the module doc); ValueError if impossible."""
    if prompt:
        if query.startswith(prompt):
            return prompt, query[len(prompt) :]
        at = query.find(prompt)
        if at >= 0:
            return prompt, query[at + len(prompt) :]
        if separator is None:
            raise ValueError("the prompt is not part of the query (and no separator is configured)")
    if separator is None:
        raise ValueError("cannot tell the question from the answer: send 'prompts' or configure a separator")
    at = query.rfind(separator)
    if at < 0:
        raise ValueError(f"the separator {separator!r} does not occur in the query")
    return query[:at], query[at + len(separator) :]


def _str_list(data: Mapping[str, Any], name: str, n: int | None, *, nullable_items: bool) -> list[Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list):
        raise InvalidSampleError("must be a list of strings", field=name)
    if n is not None and len(value) != n:
        raise InvalidSampleError(f"has {len(value)} items for {n} queries", field=name)
    for i, item in enumerate(value):
        if not (isinstance(item, str) or (nullable_items and item is None)):
            raise InvalidSampleError(f"must be a string{' or null' if nullable_items else ''}", field=f"{name}[{i}]")
    return value


def samples_from_reward_request(data: Any, mapping: RewardMapping) -> list[Sample]:
    """Samples for an OpenRLHF request body; `InvalidSampleError` names the bad field."""
    if not isinstance(data, Mapping):
        raise InvalidSampleError("the request body must be a JSON object")
    if "query" not in data:
        raise InvalidSampleError("required", field="query")
    queries = _str_list(data, "query", None, nullable_items=False) or []
    n = len(queries)
    prompts = _str_list(data, "prompts", n, nullable_items=True)
    labels = _str_list(data, "labels", n, nullable_items=True)
    samples = []
    for i, query in enumerate(queries):
        try:
            question, answer = split_query(query, prompts[i] if prompts else None, mapping.separator)
        except ValueError as e:
            raise InvalidSampleError(str(e), field=f"query[{i}]") from None
        if mapping.question_fn is not None:
            question = mapping.question_fn(question)
        answer = _strip_end(answer, mapping.end_markers)
        label = (labels[i] if labels else None) or None
        if mapping.mode == "pairwise":
            if label is None:
                raise InvalidSampleError(
                    "mode 'pairwise' compares against the label: it must be a non-empty string",
                    field=f"labels[{i}]",
                )
            samples.append(Sample(question, (answer, label), id=str(i), mode="pairwise"))
        elif mapping.label_as == "gold":
            samples.append(Sample(question, (answer,), gold=label, id=str(i), mode="single"))
        else:
            samples.append(Sample(question, (answer,), reference=label, id=str(i), mode="single"))
    return samples


def reward_response(verdicts: Sequence[Verdict], mapping: RewardMapping) -> dict[str, Any]:
    """The OpenRLHF response body for the verdicts of `samples_from_reward_request`."""
    margin = mapping.mode == "pairwise"
    rewards: list[float] = []
    scores: list[float] = []
    abstained: list[float] = []
    for v in verdicts:
        raw = margin_reward(v) if margin else candidate_reward(v)
        value = mapping.abstain_reward if raw is None else raw
        rewards.append(value)
        scores.append(to_unit(value, mapping.score_range, margin=margin))
        abstained.append(1.0 if raw is None else 0.0)
    return {
        "rewards": rewards,
        "scores": scores,
        "extra_logs": {"judge_abstained": abstained},
    }
