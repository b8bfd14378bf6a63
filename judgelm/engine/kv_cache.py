"""The slot KV cache and the steps that address it.

One cache = ``k, v: [layers, slots, width, Hkv, D]``: a row (slot) per prompt, static shapes (so a
decoding step can be captured in a CUDA graph), lengths kept by the caller. A row is written at
explicit positions and read through segments of the flattened ``[slots * width, Hkv, D]`` view
(`attention.segment_bounds`), so rows of different lengths never need padding.

Steps (`judgelm.engine.llama_family.Step`):
- `extend_step`: append tokens to rows (causal within the new tokens, over each row's cached
  prefix): prompt prefill (start 0), a shared prefix's suffixes (start = prefix length);
- `tree_step`: each row's verdict token tree after its prompt under a tree mask; the tree's K/V
  land after the prompt and are simply not counted, so the row is unchanged for the next step;
- decoding steps are built in place by `judgelm.engine.continuous` (static buffers).

Memory: `token_budget` turns free device memory into a token budget for a batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from judgelm.engine.attention import segment_bounds
from judgelm.engine.llama_family import Masked, Step, Varlen

__all__ = ["KVCache", "extend_step", "token_budget", "tree_step"]


@dataclass
class KVCache:
    k: Tensor  # [layers, slots, width, Hkv, D]
    v: Tensor

    @classmethod
    def empty(
        cls,
        layers: int,
        slots: int,
        width: int,
        kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
        *,
        zeroed: bool = False,
    ) -> KVCache:
        shape = (layers, slots, width, kv_heads, head_dim)
        make = torch.zeros if zeroed else torch.empty
        return cls(make(shape, dtype=dtype, device=device), make(shape, dtype=dtype, device=device))

    @property
    def slots(self) -> int:
        return self.k.shape[1]

    @property
    def width(self) -> int:
        return self.k.shape[2]

    def copy_prefix(self, src: int, dst: Sequence[int], n: int) -> None:
        """Copy row ``src``'s first ``n`` positions (every layer) into rows ``dst``."""
        if not dst or n == 0:
            return
        idx = torch.tensor(list(dst), device=self.k.device)
        for t in (self.k, self.v):
            t[:, idx, :n] = t[:, src : src + 1, :n]

    def widened(self, width: int) -> KVCache:
        """A copy with rows ``width`` long (the cached positions kept)."""
        layers, slots, old, kv, d = self.k.shape
        out = KVCache.empty(layers, slots, width, kv, d, self.k.dtype, self.k.device)
        keep = min(old, width)
        out.k[:, :, :keep], out.v[:, :, :keep] = self.k[:, :, :keep], self.v[:, :, :keep]
        return out


def token_budget(
    device: torch.device, bytes_per_token: int, *, cap: int, floor: int = 512, fraction: float = 0.85
) -> int:
    """Tokens a batch may hold: ``fraction`` of the free memory of a CUDA device over the bytes a
    token costs (its KV cache + its share of one layer's activations), within ``[floor, cap]``;
    ``cap`` on other devices."""
    if device.type != "cuda":
        return cap
    free, _ = torch.cuda.mem_get_info(device)
    return max(floor, min(cap, int(free * fraction) // max(bytes_per_token, 1)))


def _to(values: Sequence[int], device: torch.device, dtype: torch.dtype = torch.long) -> Tensor:
    return torch.tensor(list(values), dtype=dtype).to(device, non_blocking=True)


def extend_step(
    rows: Sequence[tuple[int, int, Sequence[int]]], width: int, device: torch.device, *, last_only: bool = True
) -> Step:
    """Append ``tokens`` to each ``(slot, start, tokens)`` row (slots increasing): token ``j`` of a
    row sits at position ``start + j`` and attends to the row's positions ``[0, start + j]``.
    ``last_only``: return only each row's last hidden state (and prune the last layer to it)."""
    ids, pos, slot = [], [], []
    for s, start, toks in rows:
        ids.extend(toks)
        pos.extend(range(start, start + len(toks)))
        slot.extend([s] * len(toks))
    spans = [(s, len(t), start + len(t)) for s, start, t in rows]
    cu_q, cu_k, max_q, max_k = segment_bounds(spans, width)
    pos_t = _to(pos, device)
    step = Step(
        ids=_to(ids, device),
        pos=pos_t,
        slot=_to(slot, device),
        at=pos_t,
        attn=Varlen(_to(cu_q, device, torch.int32), _to(cu_k, device, torch.int32), max_q, max_k, (cu_q, cu_k)),
    )
    if last_only:
        ends = list(itertools.accumulate(len(t) for _, _, t in rows))
        lq, lk, _, lmax = segment_bounds([(s, 1, n_k) for s, _, n_k in spans], width)
        step.last = _to([e - 1 for e in ends], device)
        step.last_attn = Varlen(_to(lq, device, torch.int32), _to(lk, device, torch.int32), 1, lmax, (lq, lk))
    return step


def tree_ancestors(parents: Tensor) -> Tensor:
    """[B, T, T] bool: node i (0-based, = tree node i+1) may see node j (itself or an ancestor).
    ``parents`` [B, T]: 1-based parent node per node, 0 = the root (the prompt's last token);
    padding nodes have parent 0. Nodes are in topological order (parents before children)."""
    b, t = parents.shape
    anc = torch.eye(t, dtype=torch.bool).expand(b, t, t).clone()
    rows = torch.arange(b)[:, None].expand(b, t)
    cols = torch.arange(t)[None, :].expand(b, t)
    cur = parents.clone()
    while bool((cur > 0).any()):  # one hop up per round: at most the tree's depth
        live = cur > 0
        anc[rows[live], cols[live], cur[live] - 1] = True
        cur = torch.where(live, parents.gather(1, (cur - 1).clamp(min=0)), torch.zeros_like(cur))
    return anc


def tree_step(
    first_slot: int,
    lengths: Sequence[int],
    tokens: Sequence[Sequence[int]],
    parents: Sequence[Sequence[int]],
    depths: Sequence[Sequence[int]],
    width: int,
    pad_id: int,
    device: torch.device,
    *,
    nodes: int | None = None,
) -> Step:
    """Rows ``first_slot + b`` hold prompts of ``lengths[b]`` tokens; feed each row's tree (T =
    ``nodes`` or the most nodes, shorter trees padded) at cache positions ``[L_b, L_b + T)`` with rotary
    positions ``L_b - 1 + depth``. Node i sees its row's prompt, its ancestors and itself;
    padding sees the prompt and itself. Returns hidden states for all ``B * T`` nodes."""
    b, t = len(lengths), nodes if nodes is not None else max((len(x) for x in tokens), default=0)
    seen = max(lengths) + t
    if seen > width:
        raise ValueError(f"the tree needs {seen} cache positions, the rows hold {width}")
    ids = torch.full((b, t), pad_id, dtype=torch.long)
    depth = torch.zeros((b, t), dtype=torch.long)
    par = torch.zeros((b, t), dtype=torch.long)
    for r, (tok, p, d) in enumerate(zip(tokens, parents, depths, strict=True)):
        n = len(tok)
        ids[r, :n], par[r, :n], depth[r, :n] = torch.tensor(list(tok)), torch.tensor(list(p)), torch.tensor(list(d))
    lens = torch.tensor(list(lengths), dtype=torch.long)  # [B]
    anc = tree_ancestors(par)  # [B, T, T]
    cols = torch.arange(seen)  # [W]
    rel = cols[None, :] - lens[:, None]  # [B, W]: tree node index of each cache position
    in_tree = (rel >= 0) & (rel < t)
    tree_part = anc.gather(2, rel.clamp(0, max(t - 1, 0))[:, None, :].expand(b, t, seen))  # [B, T, W]
    allowed = (cols[None, None, :] < lens[:, None, None]) | (in_tree[:, None, :] & tree_part)
    at = lens[:, None] + torch.arange(t)[None, :]  # [B, T]
    return Step(
        ids=ids.flatten().to(device),
        pos=(lens[:, None] - 1 + depth).flatten().to(device),
        slot=(first_slot + torch.arange(b)[:, None].expand(b, t)).flatten().to(device),
        at=at.flatten().to(device),
        attn=Masked(slice(first_slot, first_slot + b), seen, allowed.to(device)),
    )
