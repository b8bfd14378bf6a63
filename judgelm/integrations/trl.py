"""Reward functions shaped for TRL's ``reward_funcs`` (GRPO, RLOO, ...).

TRL (1.16, ``GRPOTrainer._calculate_rewards``) calls ``reward_func(prompts=[...],
completions=[...], completion_ids=[...], trainer_state=..., log_extra=..., log_metric=...,
**dataset_columns)``: prompts and completions are strings or conversations (lists of message
dicts), every other dataset column arrives as a list aligned with them, and the function returns
one float per completion (``None`` = no reward: TRL makes it NaN and leaves this reward function
out of that completion's total). TRL names the function by ``__name__`` in its logs and awaits it
on its async loop when it is a coroutine function. The experimental ``AsyncGRPOTrainer`` pickles
its reward functions into a spawned child and calls them once per prompt group, without
``trainer_state``/``log_metric``. A `JudgeReward` pickles (a local judge travels as its loader,
see `LocalBackend`), and so does ``JudgeReward.as_async()``.

Abstentions are reported through TRL's ``log_metric`` when it is passed, as
``<name>/abstain_rate`` (the share of this call's completions without a reward).

Three ways to judge (``mode``):

- ``"single"``: each completion graded on its own (JudgeLM single-answer grading; with a
  reference column, the reference is the gold answer). Reward = its score.
- ``"pairwise"``: each completion against the reference answer in one pairwise prompt.
  Reward = ``score(completion) - score(reference)``.
- ``"group"``: all completions of one prompt (a GRPO group: ``num_generations`` consecutive
  completions of the same prompt) in ONE judge prompt that shows the question once and every
  completion after it (pairwise for 2, JudgeLM multi-answer for 3+). Reward = each completion's
  score within its group; the judge compares them side by side, which is what group-relative
  advantages need. Give ``num_generations`` (TRL's ``GRPOConfig.num_generations``; a
  ``num_generations`` keyword from the caller wins): without it a group is a run of consecutive
  identical prompts, and two neighbouring groups of the same prompt merge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from judgelm.integrations.backend import as_backend
from judgelm.integrations.coroutine import BoundCoroutine
from judgelm.integrations.rewards import (
    candidate_reward,
    completion_text,
    margin_reward,
    prompt_question,
    reference_text,
    score_range_of,
    to_unit,
)
from judgelm.options import JudgeOptions
from judgelm.types import Sample, Verdict

__all__ = ["JudgeReward", "RewardMode", "trl_async_reward_func", "trl_reward_func"]

RewardMode = Literal["single", "pairwise", "group"]


@dataclass(frozen=True)
class _Slot:
    """Where one completion's reward is read: verdict ``sample`` at candidate ``index``."""

    sample: int
    index: int
    margin: bool = False


@dataclass(frozen=True)
class _Plan:
    samples: tuple[Sample, ...]
    slots: tuple[_Slot, ...]


class JudgeReward:
    """A TRL reward function backed by a judge: the URL of a ``judgelm serve``, a `Judge`, or a
    loader of one (``LocalBackend.from_pretrained(...)``: loaded on first use, which is what a
    reward pickled into ``AsyncGRPOTrainer``'s child needs).

    >>> reward = JudgeReward(judge, mode="group")                       # doctest: +SKIP
    >>> GRPOTrainer(..., reward_funcs=[reward])                          # doctest: +SKIP
    >>> GRPOTrainer(..., reward_funcs=[reward.as_async()])               # doctest: +SKIP
    """

    def __init__(
        self,
        judge: Any,
        *,
        mode: RewardMode = "single",
        reference_column: str | None = "reference",
        options: JudgeOptions | None = None,
        normalize: bool = False,
        num_generations: int | None = None,
        max_group_size: int | None = None,
        name: str = "judgelm",
        api_key: str | None = None,
    ):
        if mode not in ("single", "pairwise", "group"):
            raise ValueError(f"mode must be 'single', 'pairwise' or 'group', got {mode!r}")
        for what, value in (("num_generations", num_generations), ("max_group_size", max_group_size)):
            if value is not None and value < 1:
                raise ValueError(f"{what} must be >= 1")
        self.backend = as_backend(judge, api_key=api_key)
        self.mode = mode
        self.reference_column = reference_column
        self.options = options or JudgeOptions()
        if self.options.mode is not None:
            # The adapter picks each sample's format; a call-wide mode would override it.
            raise ValueError("options.mode must stay None: the reward mode decides the format")
        self.normalize = normalize
        self.num_generations = num_generations
        self.max_group_size = max_group_size
        self.__name__ = name  # TRL logs reward functions by name

    # ---- TRL's calling convention -----------------------------------------------------------
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        plan = self.plan(prompts, completions, kwargs)
        return self.rewards(plan, self.backend.judge(plan.samples, self.options), kwargs)

    async def acall(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        plan = self.plan(prompts, completions, kwargs)
        return self.rewards(plan, await self.backend.ajudge(plan.samples, self.options), kwargs)

    def as_async(self) -> Callable[..., Awaitable[list[float | None]]]:
        """This reward as a coroutine function named like it, which every trainer's check
        recognises and which pickles (see `BoundCoroutine`)."""
        return BoundCoroutine(self, "acall", self.__name__)

    # ---- the mapping ------------------------------------------------------------------------
    def _references(self, n: int, kwargs: Mapping[str, Any]) -> list[str | None]:
        column = self.reference_column
        values = kwargs.get(column) if column else None
        if values is None:
            if self.mode == "pairwise":
                raise ValueError(f"mode='pairwise' needs the dataset column {column!r} (the reference answers)")
            return [None] * n
        if len(values) != n:
            raise ValueError(f"column {column!r} has {len(values)} values for {n} completions")
        refs = [reference_text(v) for v in values]
        if self.mode == "pairwise" and None in refs:
            raise ValueError(f"mode='pairwise': column {column!r} is empty at row {refs.index(None)}")
        return refs

    def plan(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> _Plan:
        """The samples to judge for one call and where each completion's reward comes from."""
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts for {len(completions)} completions")
        refs = self._references(len(completions), kwargs)
        answers = [completion_text(c) for c in completions]
        samples: list[Sample] = []
        slots: list[_Slot] = []
        if self.mode == "single":
            for prompt, answer, ref in zip(prompts, answers, refs, strict=True):
                slots.append(_Slot(len(samples), 0))
                samples.append(Sample(prompt_question(prompt), (answer,), reference=ref, mode="single"))
        elif self.mode == "pairwise":
            for prompt, answer, ref in zip(prompts, answers, refs, strict=True):
                slots.append(_Slot(len(samples), 0, margin=True))
                samples.append(Sample(prompt_question(prompt), (answer, ref or ""), mode="pairwise"))
        else:
            size = kwargs.get("num_generations")
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:  # absent, or a dataset column
                size = self.num_generations
            for start, end in _groups(prompts, refs, size, self.max_group_size):
                group = tuple(answers[start:end])
                mode = "single" if len(group) == 1 else "pairwise" if len(group) == 2 else "multi"
                slots.extend(_Slot(len(samples), k) for k in range(len(group)))
                samples.append(Sample(prompt_question(prompts[start]), group, reference=refs[start], mode=mode))
        return _Plan(tuple(samples), tuple(slots))

    def rewards(
        self, plan: _Plan, verdicts: Sequence[Verdict], kwargs: Mapping[str, Any] | None = None
    ) -> list[float | None]:
        """One reward per completion; reports the abstain rate through ``kwargs["log_metric"]``."""
        out: list[float | None] = []
        for slot in plan.slots:
            v = verdicts[slot.sample]
            r = margin_reward(v) if slot.margin else candidate_reward(v, slot.index)
            if r is not None and self.normalize:
                r = to_unit(r, score_range_of(v, self.backend.score_range), margin=slot.margin)
            out.append(r)
        log_metric = (kwargs or {}).get("log_metric")
        if callable(log_metric) and out:
            log_metric(f"{self.__name__}/abstain_rate", out.count(None) / len(out))
        return out


def _groups(
    prompts: Sequence[Any], refs: Sequence[str | None], size: int | None, max_size: int | None
) -> list[tuple[int, int]]:
    """[start, end) GRPO groups: runs of consecutive completions with the same prompt and
    reference (TRL repeats each prompt ``num_generations`` times back to back), each cut into
    groups of ``size`` from its start, then into chunks of at most ``max_size``."""
    bounds: list[tuple[int, int]] = []
    run = 0
    for i in range(1, len(prompts) + 1):
        if i < len(prompts) and prompts[i] == prompts[run] and refs[i] == refs[run]:
            continue
        for group in range(run, i, size or i - run):
            group_end = min(i, group + (size or i - run))
            step = max_size or group_end - group
            bounds.extend((s, min(group_end, s + step)) for s in range(group, group_end, step))
        run = i
    return bounds


def trl_reward_func(judge: Any, **kwargs: Any) -> JudgeReward:
    """A synchronous TRL reward function (see `JudgeReward` for the options)."""
    return JudgeReward(judge, **kwargs)


def trl_async_reward_func(judge: Any, **kwargs: Any) -> Callable[..., Awaitable[list[float | None]]]:
    """An async TRL reward function: TRL runs it on its reward loop, concurrently with other
    async rewards (best against a remote ``judgelm serve``)."""
    return JudgeReward(judge, **kwargs).as_async()
