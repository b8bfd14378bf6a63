"""One training example: prompt + teacher judgment + EOS as token ids, with the loss mask.

The judgment is written right after ``### Response:`` (``"8 9\\n..."``); for single-answer
grading the prompt already holds the forced ``10`` and the target starts with ``" 7\\n"``.
Prompt and target are tokenized as one string and the mask starts at the prompt's own token
count, after checking that the prompt's ids are a prefix of the joint ids — i.e. that no token
merges across the boundary (with LLaMA, ":" and "8" are separate tokens). Where a tokenizer does
merge, the target is tokenized on its own behind the prompt's ids, so the judge still learns to
continue the exact ids it reads at inference.

Truncation never cuts the instruction, the ``### Response:`` ending or the judgment: the answers
are shortened (`judgelm.modalities.text.fit_prompt`) to leave room for the whole target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from judgelm.errors import FormatError, PromptTooLongError
from judgelm.formats.base import Formatter, VerdictSpec
from judgelm.modalities.text import TruncationPolicy, encode, fit_prompt
from judgelm.swap import permute_judgment
from judgelm.types import Sample, Truncation

__all__ = ["IGNORE_INDEX", "EncodedExample", "encode_example", "full_judgment", "target_text"]

IGNORE_INDEX = -100  # label of tokens that carry no loss (the prompt)
_NO_LIMIT = 1 << 30


@dataclass(frozen=True)
class EncodedExample:
    """Token ids and labels of one example; ``labels`` is ``IGNORE_INDEX`` on the prompt."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    prompt_tokens: int
    truncation: tuple[Truncation, ...] = ()
    boundary_fallback: bool = False  # prompt and target were tokenized separately (a merge)

    @property
    def target_tokens(self) -> int:
        return len(self.input_ids) - self.prompt_tokens


def _fields(line: str) -> list[str]:
    return line.replace(",", " ").split()


def full_judgment(judgment: str, spec: VerdictSpec) -> str:
    """The judgment with every score of the verdict line, forced ones included
    (``"7\\n..."`` -> ``"10 7\\n..."`` for single-answer grading); raises `FormatError` if its
    first line does not hold the format's number of scores."""
    head = judgment.partition("\n")[0]
    fields = _fields(head)
    try:
        [float(f) for f in fields]
    except ValueError:
        raise FormatError(f"the judgment's first line {head!r} is not a line of scores") from None
    n = len(fields)
    prefix = " ".join(spec.forced)
    if n == spec.n_scores:
        if spec.forced and fields[: len(spec.forced)] != list(spec.forced):
            raise FormatError(f"the judgment's first line {head!r} should start with the forced score {prefix!r}")
        return judgment
    if spec.forced and n == spec.n_graded:
        return prefix + spec.separator + judgment
    raise FormatError(f"the judgment's first line {head!r} has {n} scores; this format needs {spec.n_scores}")


def target_text(judgment: str, spec: VerdictSpec, order: Sequence[int]) -> str:
    """What the judge must write after the prompt for the candidates shown in ``order``: the
    teacher judgment permuted with `judgelm.swap.permute_judgment`, minus the forced prefix the
    prompt already holds."""
    full = full_judgment(judgment, spec)
    shown = permute_judgment(full, order, n_forced=len(spec.forced))
    prefix = " ".join(spec.forced)
    if prefix:
        if not shown.startswith(prefix):  # "10,7" style: rebuild the line with the separator
            head, nl, rest = shown.partition("\n")
            shown = spec.separator.join(_fields(head)) + nl + rest
        shown = shown[len(prefix) :]
    return shown


def _continuation(tokenizer: Any, prompt_text: str, prompt_ids: Sequence[int], target: str) -> tuple[list[int], bool]:
    """Ids of ``target`` as the continuation of ``prompt_ids``, and whether the joint encoding
    merged across the boundary (then the target is encoded on its own)."""
    joint = encode(tokenizer, prompt_text + target)
    n = len(prompt_ids)
    if joint[:n] == list(prompt_ids):
        return joint[n:], False
    return list(tokenizer(target, add_special_tokens=False)["input_ids"]), True


def encode_example(
    tokenizer: Any,
    formatter: Formatter,
    sample: Sample,
    order: Sequence[int],
    judgment: str,
    *,
    max_length: int,
    truncation: TruncationPolicy = "answers",
) -> EncodedExample:
    """Encode ``sample`` shown in ``order`` with its teacher ``judgment`` (written for the
    sample's own order) as ``prompt + target + EOS``, at most ``max_length`` tokens.

    Raises `PromptTooLongError` when the prompt cannot be made to fit under ``truncation``,
    `FormatError` when the judgment does not fit the format's verdict line."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise FormatError("the tokenizer has no EOS token; the judge could not learn to stop")
    order = tuple(order)
    enc = fit_prompt(formatter, sample, order, tokenizer, _NO_LIMIT, "none")
    target = target_text(judgment, enc.prompt.spec, order)
    cont, fallback = _continuation(tokenizer, enc.prompt.text, enc.input_ids, target)
    if len(enc.input_ids) + len(cont) + 1 > max_length:
        budget = max_length - len(cont) - 1
        if budget <= 0:
            raise PromptTooLongError(f"the judgment alone needs {len(cont) + 1} tokens; max_length is {max_length}")
        enc = fit_prompt(formatter, sample, order, tokenizer, budget, truncation)
        cont, fallback = _continuation(tokenizer, enc.prompt.text, enc.input_ids, target)
        if len(enc.input_ids) + len(cont) + 1 > max_length:  # only under truncation="none"
            raise PromptTooLongError(f"{len(enc.input_ids) + len(cont) + 1} tokens; max_length is {max_length}")
    ids = [*enc.input_ids, *cont, eos]
    labels = [IGNORE_INDEX] * len(enc.input_ids) + [*cont, eos]
    return EncodedExample(tuple(ids), tuple(labels), len(enc.input_ids), enc.truncation, fallback)
