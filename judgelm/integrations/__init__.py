"""judgelm where training and batch jobs live: reward functions for TRL (sync/async, GRPO
groups, picklable for AsyncGRPOTrainer), a veRL ``compute_score`` (sync or awaited by veRL 0.9's
reward loop), OpenRLHF's remote reward protocol (and its ``reward_func`` file form), and Ray Data
batch judging.
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
    "OpenRLHFReward",
    "RayJudgeSummary",
    "RemoteBackend",
    "RewardMapping",
    "VerlScorer",
    "as_backend",
    "judge_dataset",
    "judge_file",
    "read_reward_request",
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
    "OpenRLHFReward": "openrlhf",
    "RewardMapping": "openrlhf",
    "read_reward_request": "openrlhf",
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
