"""Reward functions shaped for TRL's ``reward_funcs`` (GRPO, RLOO, ...).

TRL calls ``reward_func(prompts=[...], completions=[...], completion_ids=[...], trainer_state=...,
**dataset_columns)``: prompts and completions are strings or conversations (lists of message
dicts), every other dataset column arrives as a list aligned with them, and the function returns
one float per completion (``None`` = no reward for that completion; TRL then leaves this reward
function out of that completion's total). TRL names the function by ``__name__`` in its logs and
runs it on its async loop when ``asyncio.iscoroutinefunction`` says so.

Three ways to judge (``mode``):

- ``"single"``: each completion graded on its own (JudgeLM single-answer grading; with a
  reference column, the reference is the gold answer). Reward = its score.
- ``"pairwise"``: each completion against the reference answer in one pairwise prompt.
  Reward = ``score(completion) - score(reference)``.
- ``"group"``: all completions of one prompt (a GRPO group: consecutive completions of the same
  prompt) in ONE judge prompt that shows the question once and every completion after it (pairwise
  for 2, JudgeLM multi-answer for 3+). Reward = each completion's score within its group; the
  judge compares them side by side, which is what group-relative advantages need.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from judgelm.integrations.backend import as_backend
from judgelm.integrations.rewards import (
    candidate_reward,
    completion_text,
    margin_reward,
    prompt_question,
    reference_text,
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
    """A TRL reward function backed by a judge (a `Judge`, or the URL of ``judgelm serve``).

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
        max_group_size: int | None = None,
        name: str = "judgelm",
        api_key: str | None = None,
    ):
        if mode not in ("single", "pairwise", "group"):
            raise ValueError(f"mode must be 'single', 'pairwise' or 'group', got {mode!r}")
        if max_group_size is not None and max_group_size < 1:
            raise ValueError("max_group_size must be >= 1")
        self.backend = as_backend(judge, api_key=api_key)
        self.mode = mode
        self.reference_column = reference_column
        self.options = options or JudgeOptions()
        if self.options.mode is not None:
            # The adapter picks each sample's format; a call-wide mode would override it.
            raise ValueError("options.mode must stay None: the reward mode decides the format")
        self.normalize = normalize
        self.max_group_size = max_group_size
        self.__name__ = name  # TRL logs reward functions by name

    # ---- TRL's calling convention -----------------------------------------------------------
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        plan = self.plan(prompts, completions, kwargs)
        return self.rewards(plan, self.backend.judge(plan.samples, self.options))

    async def acall(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        plan = self.plan(prompts, completions, kwargs)
        return self.rewards(plan, await self.backend.ajudge(plan.samples, self.options))

    def as_async(self) -> Callable[..., Awaitable[list[float | None]]]:
        """This reward as a coroutine function (TRL checks ``asyncio.iscoroutinefunction``,
        which a callable object's async ``__call__`` does not satisfy)."""

        async def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return await self.acall(prompts, completions, **kwargs)

        reward.__name__ = reward.__qualname__ = self.__name__
        return reward

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
            for start, end in _groups(prompts, refs, self.max_group_size):
                group = tuple(answers[start:end])
                mode = "single" if len(group) == 1 else "pairwise" if len(group) == 2 else "multi"
                slots.extend(_Slot(len(samples), k) for k in range(len(group)))
                samples.append(Sample(prompt_question(prompts[start]), group, reference=refs[start], mode=mode))
        return _Plan(tuple(samples), tuple(slots))

    def rewards(self, plan: _Plan, verdicts: Sequence[Verdict]) -> list[float | None]:
        out: list[float | None] = []
        for slot in plan.slots:
            v = verdicts[slot.sample]
            r = margin_reward(v) if slot.margin else candidate_reward(v, slot.index)
            if r is not None and self.normalize:
                r = to_unit(r, self.backend.score_range, margin=slot.margin)
            out.append(r)
        return out


def _groups(prompts: Sequence[Any], refs: Sequence[str | None], max_size: int | None) -> list[tuple[int, int]]:
    """[start, end) runs of consecutive completions with the same prompt and reference, cut to
    ``max_size`` (TRL repeats each prompt ``num_generations`` times back to back)."""
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(prompts) + 1):
        if (
            i == len(prompts)
            or prompts[i] != prompts[start]
            or refs[i] != refs[start]
            or (max_size and i - start >= max_size)
        ):
            runs.append((start, i))
            start = i
    return runs


def trl_reward_func(judge: Any, **kwargs: Any) -> JudgeReward:
    """A synchronous TRL reward function (see `JudgeReward` for the options)."""
    return JudgeReward(judge, **kwargs)


def trl_async_reward_func(judge: Any, **kwargs: Any) -> Callable[..., Awaitable[list[float | None]]]:
    """An async TRL reward function: TRL runs it on its reward loop, concurrently with other
    async rewards (best against a remote ``judgelm serve``)."""
    return JudgeReward(judge, **kwargs).as_async()
