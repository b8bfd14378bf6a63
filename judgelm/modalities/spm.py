"""A SentencePiece BPE ``tokenizer.model`` as a Hugging Face fast tokenizer that encodes exactly like
SentencePiece, with no `sentencepiece` package.

Why not transformers' own converter: transformers 5 needs the `sentencepiece` package to read the
file (without it, it tries a tiktoken reader and fails), and it orders the BPE merges by piece *id*.
SentencePiece merges by piece *score* (google/sentencepiece ``src/bpe_model.cc``: at each step the
adjacent pair whose concatenation is the best-scoring piece, the leftmost on a tie). LLaMA's
whitespace pieces (``▁▁`` id 259, ``▁▁▁▁`` id 268, …) have low ids but the lowest scores, so an
id-ordered tokenizer merges ``"\\n    return"`` into ``▁▁▁▁ return`` (268, 2457) where SentencePiece
gives ``▁▁▁ ▁return`` (1678, 736).

Here the merges are every split ``(left, right)`` of every mergeable piece into two mergeable
pieces, ordered best score first; on equal scores the longer left part first (SentencePiece's
leftmost-first tie-break grows a run of equal-score pieces from the left; transformers 4.x and its
GGUF reader use the same key), then by ids. Normalization is LLaMA's legacy SentencePiece one:
``▁`` prepended to each text (``add_dummy_prefix``) and spaces replaced by ``▁``; unknown characters
fall back to ``<0x..>`` byte pieces.

Supported: BPE models with the identity normalizer (no precompiled character map), whitespace
escaped and not collapsed (the LLaMA / Vicuna / JudgeLM family), from a ``tokenizer.model`` or from
the pieces, scores and types of a LLaMA GGUF file. Anything else raises `UnsupportedSentencePiece`,
and the caller falls back to transformers' reader.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from judgelm.modalities.spm_proto import (
    ModelType,
    NormalizerSpec,
    Piece,
    PieceType,
    SentencePieceModel,
    TrainerSpec,
    read_model,
)

__all__ = [
    "UnsupportedSentencePiece",
    "gguf_sentencepiece_tokenizer",
    "legacy_llama_pipeline",
    "sentencepiece_bpe",
    "sentencepiece_tokenizer",
]

log = logging.getLogger(__name__)

SPIECE_UNDERLINE = "▁"
# Pieces a merge may produce or consume. bpe_model.cc looks merges up in `pieces_` (normal,
# user-defined and unused pieces; control, unknown and byte pieces are reserved and never merged);
# models with user-defined or unused pieces are refused below, which leaves the normal ones.
_MERGEABLE = (PieceType.NORMAL,)


class UnsupportedSentencePiece(ValueError):
    """The model uses a SentencePiece feature this converter does not reproduce exactly."""


def legacy_llama_pipeline(tokenizer: Any, *, add_dummy_prefix: bool = True) -> Any:
    """Give a `tokenizers.Tokenizer` LLaMA's legacy SentencePiece normalization and decoding, in place:
    ``Prepend("▁")`` + ``Replace(" ", "▁")``, no pre-tokenizer (each text between special tokens is
    one SentencePiece input), and a decoder that turns ``▁`` back into spaces and drops the dummy one."""
    from tokenizers import decoders, normalizers

    steps = [normalizers.Replace(" ", SPIECE_UNDERLINE)]
    if add_dummy_prefix:
        steps.insert(0, normalizers.Prepend(SPIECE_UNDERLINE))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = None
    strip = [decoders.Strip(" ", 1, 0)] if add_dummy_prefix else []
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(), decoders.Fuse(), *strip]
    )
    return tokenizer


def _check_supported(model: SentencePieceModel) -> None:
    t, n = model.trainer, model.normalizer
    problems = []
    if t.model_type != ModelType.BPE:
        problems.append(f"model type {t.model_type.name} (only BPE is converted here)")
    if n.precompiled_charsmap:
        problems.append(f"a precompiled normalization map ({n.name or 'unnamed'})")
    if n.remove_extra_whitespaces:
        problems.append("remove_extra_whitespaces")
    if not n.escape_whitespaces:
        problems.append("unescaped whitespace")
    if t.treat_whitespace_as_suffix:
        problems.append("treat_whitespace_as_suffix")
    kinds = {p.type for p in model.pieces}
    if PieceType.USER_DEFINED in kinds or PieceType.UNUSED in kinds:
        problems.append("user-defined or unused pieces")
    # SentencePiece merges any two adjacent symbols whose concatenation is a piece, even a character
    # that is no piece itself; a BPE vocabulary cannot, so every such character must be a piece.
    pieces = {p.piece for p in model.pieces}
    if any(ch not in pieces for p in model.pieces if p.type in _MERGEABLE for ch in p.piece):
        problems.append("pieces made of characters that are no pieces")
    if problems:
        raise UnsupportedSentencePiece("SentencePiece model with " + ", ".join(problems))


def _merges(model: SentencePieceModel) -> list[tuple[str, str]]:
    """Every way to build each mergeable piece from two mergeable pieces, best score first."""
    ids = {p.piece: i for i, p in enumerate(model.pieces)}
    mergeable = {p.piece for p in model.pieces if p.type in _MERGEABLE}
    ranked = []
    for i, p in enumerate(model.pieces):
        if p.type not in _MERGEABLE:
            continue
        for cut in range(1, len(p.piece)):
            left, right = p.piece[:cut], p.piece[cut:]
            if left in mergeable and right in mergeable:
                ranked.append((-p.score, -len(left), ids[left], ids[right], i, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def sentencepiece_bpe(model: SentencePieceModel, *, add_bos: bool = True, add_eos: bool = False) -> Any:
    """The `tokenizers.Tokenizer` that encodes like SentencePiece (+ BOS/EOS as asked)."""
    from tokenizers import AddedToken, Tokenizer, models, processors

    _check_supported(model)
    vocab = {p.piece: i for i, p in enumerate(model.pieces)}
    if len(vocab) != len(model.pieces):
        raise UnsupportedSentencePiece("SentencePiece model with duplicate pieces")
    unk = model.pieces[model.trainer.unk_id].piece
    tok = Tokenizer(
        models.BPE(
            vocab=vocab, merges=_merges(model), unk_token=unk, fuse_unk=True, byte_fallback=model.trainer.byte_fallback
        )
    )
    legacy_llama_pipeline(tok, add_dummy_prefix=model.normalizer.add_dummy_prefix)
    reserved = [p.piece for p in model.pieces if p.type in (PieceType.UNKNOWN, PieceType.CONTROL)]
    tok.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in reserved])
    t = model.trainer
    bos = (model.pieces[t.bos_id].piece, t.bos_id) if add_bos and t.bos_id >= 0 else None
    eos = (model.pieces[t.eos_id].piece, t.eos_id) if add_eos and t.eos_id >= 0 else None
    ends = [e for e in (bos, eos) if e]
    single = [*([bos[0]] if bos else []), "$A", *([eos[0]] if eos else [])]
    pair = single + [("$B" if x == "$A" else x) + ":1" for x in single]  # <s> A </s> <s> B </s>, as LLaMA's
    tok.post_processor = processors.TemplateProcessing(
        single=" ".join(single), pair=" ".join(pair), special_tokens=ends
    )
    return tok


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config / special_tokens_map spell it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _wrap(
    model: SentencePieceModel,
    *,
    name_or_path: str,
    named: dict[str, str | None],
    add_bos: bool,
    add_eos: bool,
    model_max_length: int | None,
    **kwargs: Any,
) -> Any:
    """The converted model as a transformers `PreTrainedTokenizerFast`. ``named``: special tokens by
    role (``bos_token`` …) where the checkpoint names them; the model's reserved ids fill the rest."""
    from transformers import PreTrainedTokenizerFast

    t = model.trainer
    roles = {"unk_token": t.unk_id, "bos_token": t.bos_id, "eos_token": t.eos_id, "pad_token": t.pad_id}
    tokens = {}
    for role, piece_id in roles.items():
        text = named.get(role)
        if text is None and 0 <= piece_id < len(model.pieces):
            text = model.pieces[piece_id].piece
        if text is not None:
            tokens[role] = text
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=sentencepiece_bpe(model, add_bos=add_bos, add_eos=add_eos),
        **tokens,
        model_max_length=model_max_length or int(1e30),
        **kwargs,
    )
    tokenizer.name_or_path = name_or_path
    log.info("%s: SentencePiece BPE, %d pieces, merges in score order", name_or_path, len(model.pieces))
    return tokenizer


def sentencepiece_tokenizer(folder: str | Path, *, name_or_path: str | None = None) -> Any:
    """A `PreTrainedTokenizerFast` for a folder holding ``tokenizer.model`` (and optionally the
    ``tokenizer_config.json`` / ``special_tokens_map.json`` of the transformers-4.x era, whose
    special tokens, BOS/EOS flags, ``model_max_length`` and ``padding_side`` are honoured).

    Raises `UnsupportedSentencePiece` for models this module does not convert exactly, and for
    ``legacy: false`` configs (transformers' non-legacy handling of spaces is not SentencePiece's)."""
    folder = Path(folder)
    config = _read_json(folder / "tokenizer_config.json")
    if config.get("legacy") is False:
        raise UnsupportedSentencePiece("tokenizer_config.json sets legacy: false")
    specials = {**config, **_read_json(folder / "special_tokens_map.json")}
    max_length = config.get("model_max_length")
    return _wrap(
        read_model(folder / "tokenizer.model"),
        name_or_path=name_or_path or str(folder),
        named={role: _token_text(specials.get(role)) for role in ("unk_token", "bos_token", "eos_token", "pad_token")},
        add_bos=bool(config.get("add_bos_token", True)),
        add_eos=bool(config.get("add_eos_token", False)),
        model_max_length=int(max_length) if isinstance(max_length, int | float) else None,
        padding_side=config.get("padding_side", "right"),
        clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
    )


def gguf_sentencepiece_tokenizer(path: str | Path, *, name_or_path: str | None = None) -> Any | None:
    """The tokenizer of a LLaMA-architecture GGUF file whose vocabulary is SentencePiece
    (``tokenizer.ggml.model = "llama"``: pieces, scores and types, as llama.cpp stores them), or
    ``None`` for any other GGUF vocabulary (transformers reads those)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields

    def get(key: str, default: Any = None) -> Any:
        return fields[key].contents() if key in fields else default

    arch = get("general.architecture")
    if arch != "llama" or get("tokenizer.ggml.model") != "llama":
        return None
    pieces = tuple(
        Piece(piece, float(score), PieceType(kind))
        for piece, score, kind in zip(
            get("tokenizer.ggml.tokens"), get("tokenizer.ggml.scores"), get("tokenizer.ggml.token_type"), strict=True
        )
    )
    ids = {
        "unk_id": "unknown_token_id",
        "bos_id": "bos_token_id",
        "eos_id": "eos_token_id",
        "pad_id": "padding_token_id",
    }
    trainer = TrainerSpec(
        model_type=ModelType.BPE,
        vocab_size=len(pieces),
        byte_fallback=any(p.type == PieceType.BYTE for p in pieces),
        **{name: int(get(f"tokenizer.ggml.{key}", -1)) for name, key in ids.items()},
    )
    normalizer = NormalizerSpec(
        name="identity",
        add_dummy_prefix=bool(get("tokenizer.ggml.add_space_prefix", True)),
        remove_extra_whitespaces=False,
    )
    return _wrap(
        SentencePieceModel(pieces, trainer, normalizer),
        name_or_path=name_or_path or str(path),
        named={},
        add_bos=bool(get("tokenizer.ggml.add_bos_token", True)),
        add_eos=bool(get("tokenizer.ggml.add_eos_token", False)),
        model_max_length=get(f"{arch}.context_length"),
    )
