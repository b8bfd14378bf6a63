"""judgelm where training and batch jobs live: reward functions for TRL (sync/async, GRPO
groups), a veRL ``compute_score``, OpenRLHF's remote reward protocol, and Ray Data batch judging.
Each works with a `Judge` in this process or against a running ``judgelm serve``. Names load on
first use; Ray is needed only by the Ray functions (extra ``ray``), httpx only for remote judges
(extra ``serve``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "JudgeBackend",
    "JudgeReward",
    "LocalBackend",
    "RayJudgeSummary",
    "RemoteBackend",
    "RewardMapping",
    "VerlScorer",
    "as_backend",
    "judge_dataset",
    "judge_file",
    "reward_response",
    "samples_from_reward_request",
    "split_query",
    "trl_async_reward_func",
    "trl_reward_func",
    "verl_compute_score",
]

_WHERE = {
    "JudgeBackend": "backend",
    "LocalBackend": "backend",
    "RemoteBackend": "backend",
    "as_backend": "backend",
    "JudgeReward": "trl",
    "trl_reward_func": "trl",
    "trl_async_reward_func": "trl",
    "VerlScorer": "verl",
    "verl_compute_score": "verl",
    "RewardMapping": "openrlhf",
    "reward_response": "openrlhf",
    "samples_from_reward_request": "openrlhf",
    "split_query": "openrlhf",
    "RayJudgeSummary": "ray_data",
    "judge_dataset": "ray_data",
    "judge_file": "ray_data",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"judgelm.integrations.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'judgelm.integrations' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
