"""Batching examples: padded rows, or one packed row without padding.

Packed batches follow the flash-attention varlen convention that transformers passes through to
the attention function: the samples are concatenated into one row, ``position_ids`` restart at 0
for every sample, ``cu_seq_lens_q/k`` hold the cumulative sample boundaries (int32, starting at
0) and ``max_length_q/k`` the longest sample. No attention mask is sent; the attention function
(`judgelm.engine.attention.packed_attention`) keeps every sample to itself. The first label of every sample is
its BOS position, which the prompt mask already ignores, so no target leaks across samples.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from judgelm.train.encode import IGNORE_INDEX

__all__ = ["PackedCollator", "PaddedCollator"]


@dataclass(frozen=True)
class PaddedCollator:
    """Right-padded rows with an attention mask (for any attention implementation)."""

    pad_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids = torch.full((len(features), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for r, f in enumerate(features):
            n = len(f["input_ids"])
            ids[r, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[r, :n] = torch.tensor(f["labels"], dtype=torch.long)
            mask[r, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


@dataclass(frozen=True)
class PackedCollator:
    """All examples of a batch in one row, with varlen boundaries (see module docstring)."""

    def __call__(self, features: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, Any]:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        bounds = [0]
        for f in features:
            n = len(f["input_ids"])
            ids.extend(f["input_ids"])
            labels.extend(f["labels"])
            positions.extend(range(n))
            bounds.append(bounds[-1] + n)
        cu = torch.tensor(bounds, dtype=torch.int32)
        longest = max(b - a for a, b in itertools.pairwise(bounds))
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
            "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu,
            "max_length_q": longest,
            "max_length_k": longest,
        }
