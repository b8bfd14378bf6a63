"""Text in: loading a tokenizer exactly, encoding prompts, and fitting them into the context.

Three guards live here:

- A SentencePiece-only checkpoint (``tokenizer.model``, no ``tokenizer.json``: JudgeLM, Vicuna
  v1.3, LLaMA-1) is read by `judgelm.modalities.spm`, which encodes exactly like SentencePiece
  (transformers 5 would need the `sentencepiece` package and orders the merges wrongly).
- transformers >= 5 builds ``LlamaTokenizer(Fast)`` with a ``Metaspace(prepend_scheme="always")``
  pre-tokenizer that drops LLaMA's dummy "▁" before text that starts with a space (``" grabbed"``
  loses id 29871). JudgeLM was trained with the legacy SentencePiece behaviour, so such a tokenizer
  is rebuilt with the legacy normalizer (``Prepend("▁")``, ``Replace(" ", "▁")``, no
  pre-tokenizer), which reproduces the original ids.
- The BOS a prompt starts with is the one the tokenizer's config declares (`match_declared_bos`):
  PandaLM-7B declares ``</s>`` (id 2), and transformers 4.x's slow LlamaTokenizer — what PandaLM
  was trained and run with — prepended it; a ``tokenizer.json`` post-processor hard-codes ``<s>``.
- Truncation never cuts the instruction or the ``### Response:`` ending: it shortens the
  candidate texts (longest first) and records what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from judgelm.errors import ModelLoadError, PromptTooLongError
from judgelm.formats.base import Formatter, Prompt
from judgelm.hub import Source, hub_file, resolve_source
from judgelm.modalities.spm import (
    UnsupportedSentencePiece,
    gguf_sentencepiece_tokenizer,
    legacy_llama_pipeline,
    sentencepiece_tokenizer,
)
from judgelm.types import Sample, Truncation

__all__ = [
    "EncodedPrompt",
    "TruncationPolicy",
    "encode",
    "fit_prompt",
    "load_tokenizer",
    "match_declared_bos",
    "repair_legacy_llama",
    "tokenizer_from_source",
]

log = logging.getLogger(__name__)

TruncationPolicy = Literal["answers", "error", "none"]
MIN_KEEP_TOKENS = 8  # never shorten a candidate below this many tokens


def repair_legacy_llama(tokenizer: Any) -> Any:
    """Return a tokenizer that encodes like LLaMA's legacy SentencePiece (see module docstring).

    Tokenizers that are not affected are returned unchanged."""
    if not type(tokenizer).__name__.startswith("LlamaTokenizer") or not getattr(tokenizer, "legacy", False):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.pre_tokenizer).__name__ != "Metaspace":
        return tokenizer
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    fixed = legacy_llama_pipeline(Tokenizer.from_str(backend.to_str()))
    log.info("rebuilt %s with LLaMA's legacy normalizer (exact JudgeLM ids)", type(tokenizer).__name__)
    repaired = PreTrainedTokenizerFast(
        tokenizer_object=fixed,
        bos_token=tokenizer.bos_token,
        eos_token=tokenizer.eos_token,
        unk_token=tokenizer.unk_token,
        pad_token=tokenizer.pad_token,
        model_max_length=tokenizer.model_max_length,
    )
    repaired.name_or_path = tokenizer.name_or_path
    return repaired


def match_declared_bos(tokenizer: Any) -> Any:
    """Make the tokenizer prepend its declared ``bos_token`` where its post-processor prepends
    another special token (see the module docstring); other tokenizers are returned unchanged."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    bos, bos_id = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "bos_token_id", None)
    if backend is None or bos is None or bos_id is None:
        return tokenizer
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    added = getattr(tokenizer, "added_tokens_decoder", {})
    special_first = ids[0] in added and getattr(added[ids[0]], "special", False)
    if ids[1:] != plain or len(ids) != len(plain) + 1 or ids[0] == bos_id or not special_first:
        return tokenizer
    from tokenizers import processors

    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )
    log.info("%s prepends its declared BOS %r (id %d)", type(tokenizer).__name__, bos, bos_id)
    return tokenizer


def _sentencepiece_only(source: Source, revision: str | None) -> Path | None:
    """The folder holding the checkpoint's ``tokenizer.model`` when it has no ``tokenizer.json``
    (for a hub repo: its snapshot in the local cache, with the tokenizer's json files)."""
    if hub_file(source, "tokenizer.json", revision) is not None:
        return None
    model = hub_file(source, "tokenizer.model", revision)
    if model is None:
        return None
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        hub_file(source, name, revision)  # a hub snapshot keeps them beside tokenizer.model
    return model.parent


def tokenizer_from_source(source: Source, *, trust_remote_code: bool = False, revision: str | None = None) -> Any:
    """The tokenizer of a resolved checkpoint (see `load_tokenizer`)."""
    unsupported = ""
    try:
        if source.gguf_file is not None:
            gguf = hub_file(source, source.gguf_file, revision)
            tok = gguf_sentencepiece_tokenizer(gguf, name_or_path=source.path) if gguf is not None else None
            if tok is not None:
                return match_declared_bos(tok)
        elif (folder := _sentencepiece_only(source, revision)) is not None:
            return match_declared_bos(sentencepiece_tokenizer(folder, name_or_path=source.path))
    except UnsupportedSentencePiece as e:
        log.info("%s: %s; using transformers' SentencePiece reader", source.path, e)
        unsupported = f" (judgelm reads LLaMA-style SentencePiece itself, not a {e}; transformers needs sentencepiece)"
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            source.path,
            trust_remote_code=trust_remote_code,
            revision=revision,
            gguf_file=source.gguf_file,
        )
    except Exception as e:  # transformers raises many types here; keep the cause
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"could not load the tokenizer of {source.path!r}: {first_line}{unsupported}") from e
    return match_declared_bos(repair_legacy_llama(tok))


def load_tokenizer(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    gguf_file: str | None = None,
) -> Any:
    """Load a checkpoint's tokenizer (a folder, a ``.gguf`` file or a hub id; no remote code unless
    asked) so that it encodes exactly like the one the model was trained with:

    - a SentencePiece ``tokenizer.model`` without ``tokenizer.json`` (LLaMA-1 era checkpoints such
      as JudgeLM) is read by `judgelm.modalities.spm`, merges in SentencePiece's score order, with
      no `sentencepiece` package;
    - otherwise transformers loads it, and LLaMA tokenizers get the legacy-space guard."""
    source = resolve_source(name_or_path, revision)
    if gguf_file is not None:
        source = replace(source, gguf_file=gguf_file)
    return tokenizer_from_source(source, trust_remote_code=trust_remote_code, revision=revision)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a prompt as the judge reads it (BOS added as the tokenizer defines)."""
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _cut(tokenizer: Any, text: str, keep: int) -> str:
    """The longest prefix of ``text`` made of its first ``keep`` tokens."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc.get("offset_mapping")
    if offsets and keep <= len(offsets):
        return text[: offsets[keep - 1][1]] if keep > 0 else ""
    return tokenizer.decode(enc["input_ids"][:keep], skip_special_tokens=True)


def _water_fill(lengths: Sequence[int], target: int, floor: int) -> list[int]:
    """Caps per text so that sum(min(len, cap)) <= target, shrinking the longest texts first and
    none below ``floor`` (returns the floor caps if even they exceed the target)."""
    lo, hi = floor, max(lengths, default=floor)
    best = floor
    while lo <= hi:
        mid = (lo + hi) // 2
        if sum(min(n, mid) for n in lengths) <= target:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return [min(n, best) for n in lengths]


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt ready for the engine: its text, ids, and the truncation applied to fit."""

    prompt: Prompt
    input_ids: tuple[int, ...]
    truncation: tuple[Truncation, ...] = ()


def _truncation_records(
    formatter: Formatter, sample: Sample, before: list[int], after: list[int]
) -> tuple[Truncation, ...]:
    records = []
    if sample.conversations:  # chat: assistant turns, conversation by conversation
        slots = [
            (c, i) for c, conv in enumerate(sample.conversations) for i, t in enumerate(conv) if t.role == "assistant"
        ]
    else:
        slots = [(None, i) for i in range(len(before))]
    for (conv, idx), b, a in zip(slots, before, after, strict=True):
        if a < b:
            records.append(Truncation(answer=idx, original_tokens=b, kept_tokens=a, conversation=conv))
    return tuple(records)


def fit_prompt(
    formatter: Formatter,
    sample: Sample,
    order: Sequence[int] | None,
    tokenizer: Any,
    max_prompt_tokens: int,
    policy: TruncationPolicy = "answers",
) -> EncodedPrompt:
    """Render and encode ``sample``; if it is over ``max_prompt_tokens``, apply ``policy``:
    ``answers`` shortens the candidate texts, ``error`` raises `PromptTooLongError`, ``none``
    passes it through unchanged."""
    prompt = formatter.render(sample, order)
    ids = encode(tokenizer, prompt.text)
    if len(ids) <= max_prompt_tokens or policy == "none":
        return EncodedPrompt(prompt, tuple(ids))
    if policy == "error":
        raise PromptTooLongError(f"prompt has {len(ids)} tokens, the limit is {max_prompt_tokens}")
    texts = formatter.shortenable(sample)
    lengths = [_count(tokenizer, t) for t in texts]
    caps = list(lengths)
    excess = len(ids) - max_prompt_tokens
    for _ in range(6):  # token counts of pieces differ slightly from the whole; re-check and repeat
        caps = _water_fill(caps, sum(caps) - excess, MIN_KEEP_TOKENS)
        shortened = formatter.with_shortened(sample, [_cut(tokenizer, t, c) for t, c in zip(texts, caps, strict=True)])
        prompt = formatter.render(shortened, order)
        ids = encode(tokenizer, prompt.text)
        excess = len(ids) - max_prompt_tokens
        if excess <= 0:
            return EncodedPrompt(prompt, tuple(ids), _truncation_records(formatter, sample, lengths, caps))
        if sum(caps) <= sum(min(n, MIN_KEEP_TOKENS) for n in lengths):
            break
    raise PromptTooLongError(
        f"prompt needs {len(ids)} tokens even with every answer cut to {MIN_KEEP_TOKENS} tokens; "
        f"the limit is {max_prompt_tokens}"
    )
