"""A veRL ``compute_score`` backed by a judge.

veRL 0.9 computes rewards in its reward loop (``verl/experimental/reward_loop``): it starts
``reward.num_workers`` (8) Ray actors, each of which imports the file named by
``reward.custom_reward_function.path`` and takes ``compute_score`` from it
(``verl/trainer/ppo/reward.py``: ``get_custom_reward_fn``). The registered reward managers
(``naive``, ``dapo``, ``gdpo``, ``rate_limited``) call it once per response as
``compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **reward_kwargs)`` and
``await`` it directly when ``inspect.iscoroutinefunction`` says it is async, else run it in a
thread; ``remote`` takes only a sync function and pickles it into its own Ray actors. The old
batch manager (``reward_manager.name=batch``) is gone from the reward loop.

``solution_str`` is the response only, so the question comes from ``extra_info[question_key]``
(veRL's own data preprocessing puts it at ``extra_info["question"]``).

The result is a dict: ``score`` (the reward), ``judge_score`` (the judge's raw score, or margin)
and ``abstained`` (1.0 when the judge could not give a verdict). veRL logs the extra keys. veRL
needs a number even when the judge abstains: ``score`` is then ``abstain_score`` (default 0.0),
and ``abstained`` says so, so the stand-in is never mistaken for a verdict.

Wire it with a small file that veRL's ``reward.custom_reward_function.path`` points at (name:
``compute_score``). The judge should be a URL: a local `Judge` in that file is loaded by each of
the ``num_workers`` actors (a warning says so)::

    from judgelm.integrations import verl_compute_score
    compute_score = verl_compute_score("http://127.0.0.1:8000").as_async()    # naive/dapo/... managers
    # compute_score = verl_compute_score("http://127.0.0.1:8000")             # the `remote` manager
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from judgelm.integrations.backend import as_backend
from judgelm.integrations.coroutine import BoundCoroutine
from judgelm.integrations.rewards import candidate_reward, margin_reward, reference_text, score_range_of, to_unit
from judgelm.options import JudgeOptions
from judgelm.types import Sample, Verdict

__all__ = ["VerlScorer", "verl_compute_score"]


class VerlScorer:
    """``compute_score`` for veRL: call it per response (sync), ``.as_async()`` for the coroutine
    function veRL's reward loop awaits, ``.batch`` for the batch manager of veRL < 0.9."""

    def __init__(
        self,
        judge: Any,
        *,
        mode: Literal["single", "pairwise"] = "single",
        question_key: str = "question",
        options: JudgeOptions | None = None,
        normalize: bool = False,
        abstain_score: float = 0.0,
        api_key: str | None = None,
    ):
        if mode not in ("single", "pairwise"):
            raise ValueError(f"mode must be 'single' or 'pairwise', got {mode!r}")
        self.backend = as_backend(judge, api_key=api_key)
        self.mode = mode
        self.question_key = question_key
        self.options = options or JudgeOptions()
        if self.options.mode is not None:
            # The adapter picks each sample's format; a call-wide mode would override it.
            raise ValueError("options.mode must stay None: the reward mode decides the format")
        self.normalize = normalize
        self.abstain_score = abstain_score
        self.__name__ = "compute_score"

    def _sample(self, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None) -> Sample:
        if not isinstance(extra_info, Mapping) or self.question_key not in extra_info:
            raise ValueError(
                f"extra_info[{self.question_key!r}] must hold the question "
                "(veRL passes only the response as solution_str)"
            )
        question = str(extra_info[self.question_key])
        ref = reference_text(ground_truth)
        if self.mode == "pairwise":
            if ref is None:
                raise ValueError("mode='pairwise' needs a ground_truth to compare against")
            return Sample(question, (solution_str, ref), mode="pairwise")
        return Sample(question, (solution_str,), reference=ref, mode="single")

    def _result(self, verdict: Verdict) -> dict[str, float]:
        margin = self.mode == "pairwise"
        raw = margin_reward(verdict) if margin else candidate_reward(verdict)
        if raw is None:
            return {
                "score": self.abstain_score,
                "judge_score": self.abstain_score,
                "abstained": 1.0,
            }
        score = (
            to_unit(raw, score_range_of(verdict, self.backend.score_range), margin=margin) if self.normalize else raw
        )
        return {"score": score, "judge_score": raw, "abstained": 0.0}

    def __call__(
        self,
        data_source: Any,
        solution_str: str,
        ground_truth: Any,
        extra_info: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, float]:
        sample = self._sample(solution_str, ground_truth, extra_info)
        return self._result(self.backend.judge([sample], self.options)[0])

    async def acall(
        self,
        data_source: Any,
        solution_str: str,
        ground_truth: Any,
        extra_info: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, float]:
        sample = self._sample(solution_str, ground_truth, extra_info)
        return self._result((await self.backend.ajudge([sample], self.options))[0])

    def as_async(self) -> Callable[..., Awaitable[dict[str, float]]]:
        """This scorer as an async ``compute_score`` (awaited by veRL's reward managers, many at
        once: a judge server batches the concurrent calls)."""
        return BoundCoroutine(self, "acall", "compute_score")

    def batch(
        self,
        data_sources: Sequence[Any],
        solution_strs: Sequence[str],
        ground_truths: Sequence[Any],
        extra_infos: Sequence[Mapping[str, Any] | None],
        **_: Any,
    ) -> list[dict[str, float]]:
        """One judge call for a whole batch (the ``BatchRewardManager`` of veRL < 0.9)."""
        if not len(solution_strs) == len(ground_truths) == len(extra_infos):
            raise ValueError("solution_strs, ground_truths and extra_infos must have the same length")
        samples = [self._sample(s, g, e) for s, g, e in zip(solution_strs, ground_truths, extra_infos, strict=True)]
        return [self._result(v) for v in self.backend.judge(samples, self.options)]


def verl_compute_score(judge: Any, **kwargs: Any) -> VerlScorer:
    """A veRL ``compute_score`` (see `VerlScorer`)."""
    return VerlScorer(judge, **kwargs)
