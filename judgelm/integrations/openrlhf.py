"""OpenRLHF's remote reward protocol, mapped onto the judge.

OpenRLHF (>= 0.10.2: ``--reward.remote_url``; before: ``--remote_rm_url``) POSTs
``{"query": [...], "prompts": [...], "labels": [...]}`` and reads
``{"rewards": [...], "scores": [...], "extra_logs": {...}}``; it turns each into a per-sample
tensor, so every value is a list with one number per query. OpenRLHF 0.11 sends one query per
request (``openrlhf/utils/agent.py``, ``SingleTurnAgentExecutor``); a ``.py`` file given as
``--reward.remote_url`` is called as ``reward_func(queries, prompts, labels)`` instead
(`OpenRLHFReward`).

How a query becomes a judge sample:

- ``query[i]`` is the decoded prompt tokens followed by the response. When ``prompts[i]`` is given
  the question is ``prompts[i]`` and the answer is what follows the prompt in ``query[i]``: the
  prompt starts the query, or occurs in it (decoding can add a BOS or spaces in front), or only its
  END starts the query: OpenRLHF keeps the last tokens of an over-long prompt
  (``prompt_token_ids[-max_prompt_length:]``), so the query starts with a suffix of the prompt
  (its first characters possibly garbled where a token boundary split a character). The judge
  still sees the whole prompt as the question. Otherwise the answer is what follows the LAST
  ``separator`` (e.g. ``"<|im_start|>assistant\\n"``: earlier assistant turns of a multi-turn
  prompt come before it) and the question is what precedes it.
- End-of-sequence markers left by decoding (``</s>``, ``<|im_end|>``, ...) are cut from the end
  of the answer.
- ``labels[i]`` (empty or null = none) is the gold answer. ``mode="single"`` grades the answer
  with the label as the reference (JudgeLM single-answer grading: the reference sits in the
  Assistant 1 slot with its score forced to 10, and is shown as the reference;
  ``label_as="gold"`` leaves out the reference block). ``mode="pairwise"`` judges the answer
  against the label in one pairwise prompt; the reward is ``score(answer) - score(label)``.

What comes back: ``rewards`` = the judge's score (expected score under ``scoring="logits"``) or
the pairwise margin; ``scores`` = the same mapped to [0, 1] (OpenRLHF filters on it);
``extra_logs`` = ``judge_abstained`` (1.0 where no verdict stands behind the reward) and
``judge_invalid_input`` (1.0 where the query itself could not be judged: it cannot be split, or
``pairwise`` has no label). OpenRLHF cannot take a missing reward (it retries an HTTP error five
times, then trains on ``None`` and fails later), so a well-formed call is never refused because
of one query: such a query, like an abstained verdict, gets ``abstain_reward`` (default 0.0),
flagged in ``extra_logs`` and counted in the server's metrics. Only a malformed body (not an
object, ``query`` not a list of strings, ``prompts``/``labels`` of the wrong length) is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from judgelm.errors import InvalidSampleError
from judgelm.formats.parsing import DEFAULT_SCORE_RANGE
from judgelm.integrations.backend import as_backend
from judgelm.integrations.rewards import candidate_reward, margin_reward, score_range_of, to_unit
from judgelm.options import JudgeOptions
from judgelm.types import Sample, Verdict

__all__ = [
    "END_MARKERS",
    "OpenRLHFReward",
    "RewardMapping",
    "read_reward_request",
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


# A kept prompt suffix must overlap the prompt by this many characters to count as a match (a
# shorter one could be chance), and may start after this many garbled characters: decoding tokens
# that begin inside a multi-byte character gives one U+FFFD per stray byte (at most 3).
MIN_SUFFIX_OVERLAP = 16
MAX_GARBLED_CHARS = 4
_MAX_CANDIDATES = 256  # bounds the work on a pathological (highly repetitive) prompt


def _prompt_suffix_end(query: str, prompt: str) -> int | None:
    """Where a kept END of ``prompt`` ends in ``query``: the query starts (after at most
    `MAX_GARBLED_CHARS` characters) with a suffix of the prompt at least `MIN_SUFFIX_OVERLAP` long.
    The fewest skipped characters, then the longest suffix, win; None when there is none."""
    for skip in range(MAX_GARBLED_CHARS + 1):
        head = query[skip : skip + MIN_SUFFIX_OVERLAP]
        if len(head) < MIN_SUFFIX_OVERLAP:
            return None
        # The kept suffix starts where the query's first characters occur in the prompt; the
        # earliest such place that matches up to the prompt's end is the longest suffix.
        at = prompt.find(head)
        for _ in range(_MAX_CANDIDATES):
            if at < 0:
                break
            if query.startswith(prompt[at:], skip):
                return skip + len(prompt) - at
            at = prompt.find(head, at + 1)
    return None


def split_query(query: str, prompt: str | None = None, separator: str | None = None) -> tuple[str, str]:
    """(question, answer) of one OpenRLHF query (see the module doc); ValueError if impossible."""
    if prompt:
        if query.startswith(prompt):
            return prompt, query[len(prompt) :]
        at = query.find(prompt)
        if at >= 0:
            return prompt, query[at + len(prompt) :]
        end = _prompt_suffix_end(query, prompt)
        if end is not None:  # OpenRLHF kept only the end of an over-long prompt
            return prompt, query[end:]
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


def _query_sample(i: int, query: str, prompt: str | None, label: str | None, mapping: RewardMapping) -> Sample:
    try:
        question, answer = split_query(query, prompt, mapping.separator)
    except ValueError as e:
        raise InvalidSampleError(str(e), field=f"query[{i}]") from None
    if mapping.question_fn is not None:
        question = mapping.question_fn(question)
    answer = _strip_end(answer, mapping.end_markers)
    if mapping.mode == "pairwise":
        if label is None:
            raise InvalidSampleError(
                "mode 'pairwise' compares against the label: it must be a non-empty string", field=f"labels[{i}]"
            )
        return Sample(question, (answer, label), id=str(i), mode="pairwise")
    if mapping.label_as == "gold":
        return Sample(question, (answer,), gold=label, id=str(i), mode="single")
    return Sample(question, (answer,), reference=label, id=str(i), mode="single")


def read_reward_request(data: Any, mapping: RewardMapping) -> list[Sample | InvalidSampleError]:
    """Per query of an OpenRLHF request body: its sample, or the error that says why it cannot be
    judged (the field names the query or label). Raises `InvalidSampleError` only for a malformed
    body; one bad query never fails the others."""
    if not isinstance(data, Mapping):
        raise InvalidSampleError("the request body must be a JSON object")
    if "query" not in data:
        raise InvalidSampleError("required", field="query")
    queries = _str_list(data, "query", None, nullable_items=False) or []
    n = len(queries)
    prompts = _str_list(data, "prompts", n, nullable_items=True) or [None] * n
    labels = _str_list(data, "labels", n, nullable_items=True) or [None] * n
    items: list[Sample | InvalidSampleError] = []
    for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True)):
        try:
            items.append(_query_sample(i, query, prompt, label or None, mapping))
        except InvalidSampleError as e:
            items.append(e)
    return items


def samples_from_reward_request(data: Any, mapping: RewardMapping) -> list[Sample]:
    """The samples of an OpenRLHF request body, strictly: the first query that cannot be judged
    raises its `InvalidSampleError` (the server uses the lenient `read_reward_request`)."""
    items = read_reward_request(data, mapping)
    for item in items:
        if isinstance(item, InvalidSampleError):
            raise item
    return items  # type: ignore[return-value]


def reward_response(
    verdicts: Sequence[Verdict],
    mapping: RewardMapping,
    items: Sequence[Sample | InvalidSampleError] | None = None,
) -> dict[str, Any]:
    """The OpenRLHF response body. ``verdicts`` are those of the samples among ``items`` (from
    `read_reward_request`; queries that could not be judged get the stand-in), or, without
    ``items``, one per query."""
    margin = mapping.mode == "pairwise"
    judged = iter(verdicts)
    rewards: list[float] = []
    scores: list[float] = []
    abstained: list[float] = []
    invalid: list[float] = []
    for item in items if items is not None else verdicts:
        verdict = None if isinstance(item, InvalidSampleError) else next(judged)
        raw = None if verdict is None else (margin_reward if margin else candidate_reward)(verdict)
        value = mapping.abstain_reward if raw is None else raw
        rewards.append(value)
        scores.append(to_unit(value, score_range_of(verdict, mapping.score_range), margin=margin))
        abstained.append(1.0 if raw is None else 0.0)
        invalid.append(1.0 if verdict is None else 0.0)
    return {
        "rewards": rewards,
        "scores": scores,
        "extra_logs": {"judge_abstained": abstained, "judge_invalid_input": invalid},
    }


class OpenRLHFReward:
    """OpenRLHF's ``reward_func(queries, prompts, labels)`` backed by a judge: the form OpenRLHF
    loads when ``--reward.remote_url`` names a ``.py`` file. Against a ``judgelm serve`` started
    with ``--api-key`` this sends the key in the ``Authorization`` header (OpenRLHF's own HTTP
    client sends no headers)::

        # judge_reward.py, given as --reward.remote_url /path/to/judge_reward.py
        import os
        from judgelm.integrations import OpenRLHFReward
        reward_func = OpenRLHFReward("http://judge-host:8000", api_key=os.environ["JUDGELM_API_KEY"])

    OpenRLHF imports the file in every vLLM engine actor and calls ``reward_func`` in a thread;
    the answer is the ``/get_reward`` body for the same queries.
    """

    def __init__(self, judge: Any, mapping: RewardMapping | None = None, *, api_key: str | None = None):
        self.backend = as_backend(judge, api_key=api_key)
        self.mapping = mapping or RewardMapping()
        self.__name__ = "reward_func"

    def __call__(
        self,
        queries: Sequence[str],
        prompts: Sequence[str] | None = None,
        labels: Sequence[Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        body = {"query": list(queries), "prompts": _as_list(prompts), "labels": _as_list(labels)}
        items = read_reward_request(body, self.mapping)
        samples = [x for x in items if isinstance(x, Sample)]
        return reward_response(self.backend.judge(samples, self.mapping.options), self.mapping, items)


def _as_list(values: Sequence[Any] | None) -> list[Any] | None:
    """OpenRLHF passes labels as they came from the dataset: make them the wire's strings."""
    if values is None:
        return None
    return [v if v is None or isinstance(v, str) else str(v) for v in values]
