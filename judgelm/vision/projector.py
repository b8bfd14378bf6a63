"""The projector: patch features of the tower -> the LLM's token-embedding space (LLaVA).

- ``linear``: one linear map ``[C] -> [H]`` (LLaVA-1).
- ``mlp2x_gelu``: ``Linear(C, H) -> GELU -> Linear(H, H)`` (LLaVA-1.5).
"""

from __future__ import annotations

from typing import Literal

from torch import nn

__all__ = ["PROJECTORS", "ProjectorKind", "build_projector"]

ProjectorKind = Literal["linear", "mlp2x_gelu"]
PROJECTORS: tuple[str, ...] = ("linear", "mlp2x_gelu")


def build_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """A fresh projector (PyTorch's default init) mapping ``[..., in_dim] -> [..., out_dim]``."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise ValueError(f"unknown projector {kind!r}; choose one of {', '.join(PROJECTORS)}")
