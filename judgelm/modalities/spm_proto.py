"""Reading a SentencePiece ``tokenizer.model`` without the `sentencepiece` or `protobuf` packages.

The file is one protobuf ``ModelProto`` message (google/sentencepiece, ``src/sentencepiece_model.proto``,
v0.2.x). Only the fields a tokenizer needs are read; every other field is skipped by its wire type,
so newer files with more fields still load:

- ``pieces = 1`` (repeated ``SentencePiece``: ``piece = 1`` string, ``score = 2`` float,
  ``type = 3`` enum, default NORMAL),
- ``trainer_spec = 2`` (``model_type = 3``, ``vocab_size = 4``, ``byte_fallback = 35``,
  ``unk_id``/``bos_id``/``eos_id``/``pad_id`` = 40..43, ``treat_whitespace_as_suffix = 24``),
- ``normalizer_spec = 3`` (``name = 1``, ``precompiled_charsmap = 2``, ``add_dummy_prefix = 3``,
  ``remove_extra_whitespaces = 4``, ``escape_whitespaces = 5``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

__all__ = ["ModelType", "NormalizerSpec", "Piece", "PieceType", "SentencePieceModel", "TrainerSpec", "read_model"]


class PieceType(IntEnum):
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


class ModelType(IntEnum):
    UNIGRAM = 1
    BPE = 2
    WORD = 3
    CHAR = 4


@dataclass(frozen=True)
class Piece:
    piece: str
    score: float
    type: PieceType = PieceType.NORMAL


@dataclass(frozen=True)
class TrainerSpec:
    """The trainer settings that change encoding (proto defaults where the file is silent)."""

    model_type: ModelType = ModelType.UNIGRAM
    vocab_size: int = 8000
    byte_fallback: bool = False
    treat_whitespace_as_suffix: bool = False
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1


@dataclass(frozen=True)
class NormalizerSpec:
    name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


@dataclass(frozen=True)
class SentencePieceModel:
    pieces: tuple[Piece, ...]
    trainer: TrainerSpec
    normalizer: NormalizerSpec


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtoError("varint longer than 10 bytes")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """``(field number, value)`` of one message: an int for varint/fixed fields, bytes for
    length-delimited ones (strings, sub-messages). A fixed32 keeps its raw 4 bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 1:
            pos += 8  # fixed64: no field read here uses one
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ProtoError(f"field {number} runs past the end of the message")
            out.append((number, buf[pos : pos + size]))
            pos += size
        elif wire == 5:
            out.append((number, buf[pos : pos + 4]))
            pos += 4
        else:
            raise ProtoError(f"unsupported wire type {wire} (field {number})")
    if pos != len(buf):
        raise ProtoError("truncated message")
    return out


def _int32(value: int | bytes) -> int:
    """A varint-encoded int32 (negative numbers are 10-byte two's complement)."""
    if not isinstance(value, int):
        raise ProtoError("an integer field holds bytes")
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _piece(buf: bytes) -> Piece:
    text, score, kind = "", 0.0, PieceType.NORMAL
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            text = value.decode("utf-8")
        elif number == 2 and isinstance(value, bytes):
            score = struct.unpack("<f", value)[0]
        elif number == 3 and isinstance(value, int):
            kind = PieceType(value)
    return Piece(text, score, kind)


def _trainer(buf: bytes) -> TrainerSpec:
    ints = {3: "model_type", 4: "vocab_size", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}
    flags = {24: "treat_whitespace_as_suffix", 35: "byte_fallback"}
    kw: dict[str, object] = {}
    for number, value in _fields(buf):
        if number in ints:
            kw[ints[number]] = _int32(value)
        elif number in flags:
            kw[flags[number]] = bool(value)
    if "model_type" in kw:
        kw["model_type"] = ModelType(kw["model_type"])
    return TrainerSpec(**kw)  # type: ignore[arg-type]


def _normalizer(buf: bytes) -> NormalizerSpec:
    flags = {3: "add_dummy_prefix", 4: "remove_extra_whitespaces", 5: "escape_whitespaces"}
    kw: dict[str, object] = {}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            kw["name"] = value.decode("utf-8")
        elif number == 2 and isinstance(value, bytes):
            kw["precompiled_charsmap"] = value
        elif number in flags:
            kw[flags[number]] = bool(value)
    return NormalizerSpec(**kw)  # type: ignore[arg-type]


def read_model(source: str | Path | bytes) -> SentencePieceModel:
    """Parse a ``tokenizer.model`` file (a path or its bytes)."""
    buf = source if isinstance(source, bytes) else Path(source).read_bytes()
    pieces: list[Piece] = []
    trainer, normalizer = TrainerSpec(), NormalizerSpec()
    try:
        for number, value in _fields(buf):
            if not isinstance(value, bytes):
                continue
            if number == 1:
                pieces.append(_piece(value))
            elif number == 2:
                trainer = _trainer(value)
            elif number == 3:
                normalizer = _normalizer(value)
    except (ProtoError, UnicodeDecodeError, ValueError) as e:  # ValueError: an enum value out of range
        raise ProtoError(f"not a SentencePiece model: {e}") from e
    if not pieces:
        raise ProtoError("not a SentencePiece model: it has no pieces")
    return SentencePieceModel(tuple(pieces), trainer, normalizer)
