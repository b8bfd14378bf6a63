"""`LlamaFamilyForward`: a compact forward of Llama-family models (Llama, Mistral, Qwen2) on
packed tokens, over a Hugging Face model's own weights.

gpt-fast style: the whole forward in one readable loop, on *packed* tokens ([N, H], no batch
dimension, no padding), reading and writing a slot KV cache (`judgelm.engine.kv_cache`). The HF
modules' parameters are used as they are (no copy). What it adds over the HF forward:

- packed tokens everywhere; attention per segment (`judgelm.engine.attention`);
- on CUDA the last layer runs its queries, output projection and MLP only for the tokens whose
  hidden state is read (each row's last prompt token): K/V are still written for every token;
- on CUDA the elementwise work between the GEMMs (residual add + RMSNorm, rotary, SwiGLU) runs
  as ``torch.compile``-fused kernels (one pass over memory instead of 4-8), checked once against
  the eager function and dropped (with a warning) if compiling fails. ``JUDGELM_COMPILE=0`` turns
  it off. On CPU the same functions run eagerly, so CPU tests exercise the same code.

Supported: RMSNorm, SiLU-gated MLP, rotary embeddings with a static frequency table (rope types
default / linear / llama3 / yarn), grouped KV heads, optional q/k/v/o and MLP biases, sliding
windows (the context is capped at the window, where full attention is identical). Anything else
returns a reason from `unsupported_reason` and the engine registry picks the HF engine.

Shapes: N packed tokens, R rows (prompts), H hidden, Hq / Hkv heads, D head dim, V vocabulary.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from judgelm.engine.attention import AttentionBackend, choose_backend
from judgelm.engine.base import NONLINEAR_HEAD_ATTRS, embeds_images

__all__ = ["LlamaFamilyForward", "Masked", "Step", "Varlen", "unsupported_reason"]

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")
STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn")
_NOT_PLAIN_ATTRS = (*NONLINEAR_HEAD_ATTRS, "attn_logit_softcapping")


# ---- what one forward call computes ----------------------------------------------------------
@dataclass
class Varlen:
    """Attention through segments over the flattened slot cache (see `attention.segment_bounds`)."""

    cu_q: Tensor  # [S+1] int32
    cu_k: Tensor  # [S+1] int32
    max_q: int
    max_k: int
    host: tuple[list[int], list[int]] | None = None  # the same bounds on the host (sdpa loop)


@dataclass
class Masked:
    """Attention of ``B x T`` queries (laid out row-major in the packed tokens) to cache rows
    ``rows`` positions ``[0, width)`` under ``allowed``."""

    rows: slice
    width: int
    allowed: Tensor  # [B, T, width] bool


@dataclass
class Step:
    """One forward over packed tokens: where each token sits, where its K/V go, how it attends."""

    ids: Tensor  # [N] token ids
    pos: Tensor  # [N] rotary positions
    slot: Tensor  # [N] cache row each token's K/V are written to
    at: Tensor  # [N] position in that row
    attn: Varlen | Masked
    last: Tensor | None = None  # [R] indices into N whose hidden state is returned (None: all N)
    last_attn: Varlen | None = None  # one query per row, for the pruned last layer


# ---- support check --------------------------------------------------------------------------
def unsupported_reason(model: Any) -> str | None:
    """Why the fast forward cannot run ``model`` exactly, or None when it can."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"architecture {model_type!r} is not one of {', '.join(SUPPORTED_MODEL_TYPES)}"
    if embeds_images(model):
        return "the model embeds images (a vision judge)"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} (SiLU-gated MLP only)"
    if any(getattr(config, a, None) not in (None, 1.0) for a in _NOT_PLAIN_ATTRS):
        return "a non-linear output head (softcapping / scaling)"
    if int(getattr(config, "pretraining_tp", 1) or 1) != 1:
        return "pretraining_tp > 1"
    try:
        decoder = model.get_decoder()
        layers = list(decoder.layers)
        rotary = decoder.rotary_emb
        head = model.get_output_embeddings()
    except AttributeError as e:
        return f"unexpected module layout ({e})"
    rope_type = getattr(rotary, "rope_type", "default")
    if rope_type not in STATIC_ROPE_TYPES:
        return f"rope type {rope_type!r} (its frequencies change with the sequence length)"
    linears = [head]
    for layer in layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None:
            return "a decoder layer without self_attn / mlp"
        linears += [getattr(attn, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        linears += [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
    if any(type(m) is not nn.Linear for m in linears):
        return "projections that are not plain nn.Linear (quantized or adapted weights)"
    if any(type(p.data) is not torch.Tensor for p in model.parameters()):
        return "weights stored as tensor subclasses (quantized or sharded)"
    dtypes = {p.dtype for p in model.parameters()}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        return f"mixed or non-float parameter dtypes {sorted(map(str, dtypes))}"
    if len({p.device for p in model.parameters()}) != 1:
        return "parameters on several devices"
    return None


# ---- elementwise ops (eager on CPU, fused by torch.compile on CUDA) -------------------------
def rmsnorm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """HF's RMSNorm to the bit: fp32 statistics, back to the input dtype, then the weight."""
    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def add_rmsnorm(x: Tensor, residual: Tensor, weight: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """(residual + x, rmsnorm(residual + x)): the residual add fused into the next norm."""
    residual = residual + x
    return residual, rmsnorm(residual, weight, eps)


def rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x [N, heads, D] with cos/sin [N, 1, D] (HF's rotate_half form)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def swiglu(gate: Tensor, up: Tensor) -> Tensor:
    return F.silu(gate) * up


class _Fused:
    """A function run through ``torch.compile`` (dynamic shapes, one graph): the first call
    compares it with the eager function and keeps the eager one if compiling fails or differs."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.checked = False
        self.compiled: Callable[..., Any] | None
        try:
            self.compiled = torch.compile(fn, dynamic=True, fullgraph=True)
        except Exception as e:  # no dynamo on this build
            log.warning("judgelm: torch.compile unavailable (%s); elementwise ops run eagerly", e)
            self.compiled, self.checked = None, True

    def __call__(self, *args: Any) -> Any:
        if self.checked:
            return (self.compiled or self.fn)(*args)
        self.checked = True
        ref = self.fn(*args)
        try:
            assert self.compiled is not None
            out = self.compiled(*args)
            pairs = zip(out, ref, strict=True) if isinstance(ref, tuple) else [(out, ref)]
            for a, b in pairs:
                if not torch.allclose(a.float(), b.float(), rtol=2e-2, atol=2e-2):
                    raise RuntimeError(f"max difference {float((a.float() - b.float()).abs().max()):.3g}")
        except Exception as e:
            log.warning("judgelm: torch.compile of %s failed (%s); using eager", self.fn.__name__, e)
            self.compiled = None
        return ref


_FUSED: dict[str, _Fused] = {}


def _fused(fn: Callable[..., Any]) -> _Fused:
    """One compiled instance per op per process, shared by every engine (compiling is seconds)."""
    if fn.__name__ not in _FUSED:
        _FUSED[fn.__name__] = _Fused(fn)
    return _FUSED[fn.__name__]


# ---- the model --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layer:
    wq: Tensor
    bq: Tensor | None
    wk: Tensor
    bk: Tensor | None
    wv: Tensor
    bv: Tensor | None
    wo: Tensor
    bo: Tensor | None
    w_gate: Tensor
    b_gate: Tensor | None
    w_up: Tensor
    b_up: Tensor | None
    w_down: Tensor
    b_down: Tensor | None
    norm_attn: Tensor  # [H]
    norm_mlp: Tensor  # [H]


def _weights(m: nn.Linear) -> tuple[Tensor, Tensor | None]:
    return m.weight.detach(), None if m.bias is None else m.bias.detach()


def _eps(norm: nn.Module) -> float:
    for name in ("variance_epsilon", "eps"):
        if hasattr(norm, name):
            return float(getattr(norm, name))
    raise AttributeError(f"{type(norm).__name__} has no epsilon")


class LlamaFamilyForward:
    """The forward of a supported HF causal LM on packed tokens. Build it after the model is on
    its device and dtype: it keeps references to those parameter tensors."""

    def __init__(self, model: Any, *, attention: str | None = None, compile: bool | None = None):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"the packed engine cannot run this model: {reason}")
        config = model.config
        decoder = model.get_decoder()
        first = decoder.layers[0].self_attn
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.n_heads = config.num_attention_heads
        self.n_kv_heads = getattr(config, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(first, "head_dim", None) or config.hidden_size // self.n_heads
        self.hidden = config.hidden_size
        self.scale = float(getattr(first, "scaling", self.head_dim**-0.5))
        self.eps = _eps(decoder.norm)
        self.window = _sliding_window(model)
        self.layers = []
        for layer in decoder.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append(
                _Layer(
                    *_weights(a.q_proj),
                    *_weights(a.k_proj),
                    *_weights(a.v_proj),
                    *_weights(a.o_proj),
                    *_weights(m.gate_proj),
                    *_weights(m.up_proj),
                    *_weights(m.down_proj),
                    layer.input_layernorm.weight.detach(),
                    layer.post_attention_layernorm.weight.detach(),
                )
            )
        self.embed = model.get_input_embeddings().weight.detach()  # [V, H]
        self.norm = decoder.norm.weight.detach()  # [H]
        self.head_weight, self.head_bias = _weights(model.get_output_embeddings())  # [V, H], [V]
        self.max_positions = int(getattr(config, "max_position_embeddings", 4096) or 4096)
        self._rotary = decoder.rotary_emb
        self.cos, self.sin = _rope_tables(self._rotary, self.max_positions, self.head_dim, self.dtype)  # [P, D]
        self.backend: AttentionBackend = choose_backend(
            self.device, self.dtype, gqa=self.n_kv_heads != self.n_heads, force=attention
        )
        if compile is None:
            compile = self.device.type == "cuda" and os.environ.get("JUDGELM_COMPILE", "1") != "0"
        self.compiled = compile
        # The last layer's queries, output projection and MLP only at the read positions (~1/L of
        # the FLOPs saved). Off on CPU: there those become matrix-vector products whose summation
        # order (MKL) depends on the weights' memory alignment, and the CPU results are kept
        # bit-identical however the weights were loaded.
        self.prune_last_layer = self.device.type == "cuda"
        wrap: Callable[[Callable[..., Any]], Callable[..., Any]] = _fused if compile else (lambda f: f)
        self._rmsnorm, self._add_rmsnorm, self._rope, self._swiglu = (
            wrap(f) for f in (rmsnorm, add_rmsnorm, rope, swiglu)
        )

    def fused_ops(self) -> dict[str, str]:
        """How each elementwise op runs: "eager", "compiled", or "pending" (not yet called)."""
        out = {}
        for op in (self._rmsnorm, self._add_rmsnorm, self._rope, self._swiglu):
            if not isinstance(op, _Fused):
                out[op.__name__] = "eager"
            else:
                out[op.fn.__name__] = "pending" if not op.checked else "compiled" if op.compiled else "eager"
        return out

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def ensure_positions(self, n: int) -> None:
        """Rotary tables for positions ``[0, n)`` (grown past the configured maximum on demand,
        as HF's rotary module computes any position)."""
        if n > self.cos.shape[0]:
            self.cos, self.sin = _rope_tables(self._rotary, n, self.head_dim, self.dtype)

    def kv_bytes_per_token(self) -> int:
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * self.dtype.itemsize

    def activation_bytes_per_token(self) -> int:
        """Peak live activations of one layer per packed token (residual, normed, q/k/v, the MLP's
        gate/up/product and the fp32 norm temporaries), with some slack."""
        inter = self.layers[0].w_gate.shape[0]
        elems = 4 * self.hidden + (self.n_heads + 2 * self.n_kv_heads) * self.head_dim + 3 * inter
        return int(1.25 * elems * self.dtype.itemsize + 2 * self.hidden * 4)

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, step: Step, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        """Final-norm hidden states [R, H] at ``step.last`` (or [N, H] for all tokens); writes every
        token's K/V into ``k_cache``/``v_cache`` [layers, slots, S, Hkv, D]."""
        x = F.embedding(step.ids, self.embed)  # [N, H]
        cos, sin = self.cos[step.pos][:, None], self.sin[step.pos][:, None]  # [N, 1, D]
        residual, h = x, self._rmsnorm(x, self.layers[0].norm_attn, self.eps)
        pruned = step.last is not None and self.prune_last_layer
        for i, layer in enumerate(self.layers):
            prune = pruned and i == self.n_layers - 1
            a = self._attention(i, layer, h, cos, sin, step, k_cache, v_cache, prune)  # [N or R, H]
            if prune:
                residual = residual[step.last]
            residual, h = self._add_rmsnorm(a, residual, layer.norm_mlp, self.eps)
            gate = F.linear(h, layer.w_gate, layer.b_gate)  # [N, I]
            up = F.linear(h, layer.w_up, layer.b_up)
            m = F.linear(self._swiglu(gate, up), layer.w_down, layer.b_down)  # [N, H]
            nxt = self.layers[i + 1].norm_attn if i + 1 < self.n_layers else self.norm
            residual, h = self._add_rmsnorm(m, residual, nxt, self.eps)
        if step.last is not None and not pruned:
            h = h[step.last]
        return h

    def _attention(
        self,
        i: int,
        layer: _Layer,
        h: Tensor,  # [N, H]
        cos: Tensor,  # [N, 1, D]
        sin: Tensor,
        step: Step,
        k_cache: Tensor,
        v_cache: Tensor,
        prune: bool,
    ) -> Tensor:
        n, hq, hkv, d = h.shape[0], self.n_heads, self.n_kv_heads, self.head_dim
        k = self._rope(F.linear(h, layer.wk, layer.bk).view(n, hkv, d), cos, sin)  # [N, Hkv, D]
        v = F.linear(h, layer.wv, layer.bv).view(n, hkv, d)
        k_cache[i].index_put_((step.slot, step.at), k)
        v_cache[i].index_put_((step.slot, step.at), v)
        if prune:  # the last layer: queries only where the output is read
            assert step.last is not None
            h, cos, sin = h[step.last], cos[step.last], sin[step.last]
        q = self._rope(F.linear(h, layer.wq, layer.bq).view(-1, hq, d), cos, sin)  # [N or R, Hq, D]
        attn = step.last_attn if prune else step.attn
        if isinstance(attn, Varlen):
            kc, vc = k_cache[i].view(-1, hkv, d), v_cache[i].view(-1, hkv, d)  # [slots * S, Hkv, D]
            o = self.backend.varlen(
                q, kc, vc, attn.cu_q, attn.cu_k, attn.max_q, attn.max_k, scale=self.scale, cu_host=attn.host
            )
        else:
            assert isinstance(attn, Masked)
            b, t = attn.allowed.shape[:2]
            kc, vc = k_cache[i][attn.rows, : attn.width], v_cache[i][attn.rows, : attn.width]  # [B, W, Hkv, D]
            o = self.backend.masked(q.reshape(b, t, hq, d), kc, vc, attn.allowed, scale=self.scale)
        return F.linear(o.reshape(-1, hq * d), layer.wo, layer.bo)

    def logits(self, hidden: Tensor) -> Tensor:
        """[.., V] fp32 logits of final-norm hidden states."""
        return F.linear(hidden, self.head_weight, self.head_bias).float()


def _rope_tables(rotary: nn.Module, n: int, dim: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos/sin [n, D] exactly as the HF rotary module computes them (fp32, scaled, cast)."""
    inv_freq = rotary.inv_freq.float()  # [D/2]
    scaling = float(getattr(rotary, "attention_scaling", 1.0))
    pos = torch.arange(n, device=inv_freq.device, dtype=torch.float32)
    freqs = pos[:, None] * inv_freq[None, :]  # [n, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [n, D]
    if emb.shape[-1] != dim:
        raise ValueError(f"rotary dim {emb.shape[-1]} != head dim {dim} (partial rotary is not supported)")
    return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


def _sliding_window(model: Any) -> int | None:
    """The smallest sliding window any layer uses (None: full attention everywhere)."""
    config = model.config
    windows = [getattr(layer.self_attn, "sliding_window", None) for layer in model.get_decoder().layers]
    if config.model_type == "mistral":
        windows.append(getattr(config, "sliding_window", None))
    found = [int(w) for w in windows if w]
    return min(found) if found else None
