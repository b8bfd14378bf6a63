"""Token ids back to text, one token at a time: the text each token adds after the tokens before
it (a few tokens of context, so SentencePiece's leading spaces survive), multi-byte characters
split over byte tokens emitted whole on their last token, and stop strings (the text is cut before
the first one; a stream holds back what could still become one). Used by the OpenAI routes of the
server and by the remote engine to name tokens the way such servers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["TextStream", "added_text", "token_pieces"]

_WINDOW = 6  # tokens of context when decoding one token's text
_INCOMPLETE = "\ufffd"  # what a byte token of an unfinished UTF-8 character decodes to


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def added_text(tokenizer: Any, before: Sequence[int], token: int) -> str:
    """The text ``token`` adds after ``before`` (the last few tokens are enough context)."""
    ctx = list(before[-_WINDOW:])
    head, full = decode(tokenizer, ctx), decode(tokenizer, [*ctx, token])
    return full[len(head) :] if full.startswith(head) else full


class TextStream:
    """The text of tokens fed one at a time (`feed` returns what may be sent now), cut at the
    first of ``stops``. ``pieces[i]`` is the text token ``i`` added (empty while a character is
    unfinished); ``tokens`` counts the tokens up to and including the one that completed a stop."""

    def __init__(self, tokenizer: Any, context: Sequence[int] = (), stops: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.ids = list(context)
        self.first = len(self.ids)
        self.pending = self.first  # first token whose text is not yet out (an unfinished character)
        self.stops = tuple(stops)
        self.full = ""  # all text so far
        self.sent = 0  # characters of `full` handed out
        self.pieces: list[str] = []
        self.stopped = False
        self.tokens = 0

    def fork(self) -> TextStream:
        """An independent copy (sequences sharing a prefix decode it once)."""
        other = TextStream.__new__(TextStream)
        other.__dict__.update(self.__dict__)
        other.ids, other.pieces = list(self.ids), list(self.pieces)
        return other

    def feed(self, token: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token)
        self.tokens += 1
        ctx_start = max(0, self.pending - _WINDOW)
        head = decode(self.tokenizer, self.ids[ctx_start : self.pending])
        text = decode(self.tokenizer, self.ids[ctx_start:])
        if text.endswith(_INCOMPLETE):
            self.pieces.append("")
            return ""
        piece = text[len(head) :] if text.startswith(head) else text
        self.pending = len(self.ids)
        self.pieces.append(piece)
        self.full += piece
        return self._release(final=False)

    def close(self) -> str:
        """Everything not sent yet (a stream's end: nothing can become a stop any more)."""
        if not self.stopped and self.pending < len(self.ids):  # an unfinished character at the end
            piece = decode(self.tokenizer, self.ids[self.pending :])
            self.pieces[-1] += piece
            self.full += piece
            self.pending = len(self.ids)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self.stops and not self.stopped:
            start = max(0, self.sent - max(map(len, self.stops)))
            hits = [i for i in (self.full.find(s, start) for s in self.stops) if i >= 0]
            if hits:
                self.full, self.stopped = self.full[: min(hits)], True
                final = True
        keep = len(self.full) if final else len(self.full) - self._held()
        out, self.sent = self.full[self.sent : keep], max(self.sent, keep)
        return out

    def _held(self) -> int:
        """Characters at the end that could still be the start of a stop string."""
        tail = self.full[self.sent :]
        return max(
            (n for s in self.stops for n in range(1, min(len(s), len(tail) + 1)) if tail.endswith(s[:n])), default=0
        )

    @property
    def text(self) -> str:
        """The text handed out so far (all of it once stopped or closed)."""
        return self.full[: self.sent]


def token_pieces(tokenizer: Any, sequences: Sequence[Sequence[int]]) -> list[list[str]]:
    """The text each token of each sequence adds (see `TextStream`); a prefix all sequences
    share is decoded once (a judge prompt followed by each verdict line)."""
    if not sequences:
        return []
    shared = 0
    first = sequences[0]
    while shared < min(map(len, sequences)) and all(s[shared] == first[shared] for s in sequences):
        shared += 1
    shared = max(0, shared - _WINDOW)  # keep the tail undecided: later tokens may complete a character
    base = TextStream(tokenizer)
    for t in first[:shared]:
        base.feed(t)
    out = []
    for seq in sequences:
        stream = base.fork()
        for t in seq[shared:]:
            stream.feed(t)
        stream.close()
        out.append(stream.pieces)
    return out
