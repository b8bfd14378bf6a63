"""Image placeholders in token ids.

The image formats write one ``<image>`` marker per image (`judgelm.formats.image`). The judge's
tokenizer holds ``<image>`` as one added special token, and `ImageTokenizer` — a thin wrapper
that behaves like the Hugging Face tokenizer it wraps — expands each of its ids into
``n_image_tokens`` copies *at tokenization time*. Everything that counts tokens (context
budget, truncation, training labels) therefore sees the real length, and the prompt text stays
readable and independent of the tower. `VisionJudgeModel.embed_inputs` then writes image i's
``n_image_tokens`` projected patch features over its run of placeholders, in order.

Only ``__call__`` and ``encode`` change; every other attribute (``decode``, ``eos_token_id``,
``save_pretrained``, ...) is the wrapped tokenizer's. The expansion happens on ids, after the
backend tokenized, so it is exact whatever the backend does around special tokens.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from judgelm.errors import ModelLoadError

__all__ = ["DEFAULT_IMAGE_TOKEN", "ImageTokenizer", "add_image_token", "check_image_placeholders", "count_image_tokens"]

DEFAULT_IMAGE_TOKEN = "<image>"

# Per-token fields of an encoding that must be repeated with the placeholder they belong to.
_PER_TOKEN = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "offset_mapping")
_OWN = frozenset({"_inner", "image_token", "image_token_id", "n_image_tokens"})


def add_image_token(tokenizer: Any, image_token: str = DEFAULT_IMAGE_TOKEN, *, copy_first: bool = True) -> Any:
    """``tokenizer`` (a copy, unless ``copy_first=False``) with ``image_token`` as one special
    token. The caller resizes the LLM's embeddings to ``len(tokenizer)``."""
    from tokenizers import AddedToken

    tok = copy.deepcopy(tokenizer) if copy_first else tokenizer
    if image_token not in tok.get_vocab():
        tok.add_tokens([AddedToken(image_token, special=True, normalized=False)], special_tokens=True)
    return tok


def count_image_tokens(ids: Sequence[int], image_token_id: int) -> int:
    return sum(1 for i in ids if i == image_token_id)


def check_image_placeholders(
    tokenizer: Any, ids: Sequence[int], n_images: int, *, sample_id: str | None = None
) -> None:
    """Raise `InvalidSampleError` (``field="images"``) unless ``ids`` hold exactly
    ``n_images`` x ``n_image_tokens`` image placeholders — before the batch is run, so that one
    bad sample (images given to a text format, ``<image>`` typed into a text) is refused alone
    instead of failing `VisionJudgeModel.embed_inputs` for its whole batch."""
    from judgelm.errors import InvalidSampleError

    if not isinstance(tokenizer, ImageTokenizer):
        if n_images:
            raise InvalidSampleError(
                "this judge has no vision tower; load a vision judge", field="images", record=sample_id
            )
        return
    found = count_image_tokens(ids, tokenizer.image_token_id)
    if found == n_images * tokenizer.n_image_tokens:
        return
    if n_images and not found:
        message = (
            f"the prompt has no image slot for its {n_images} image(s); "
            "use an image format (image_single, image_pairwise)"
        )
    else:
        message = (
            f"the prompt has {found // tokenizer.n_image_tokens} image slot(s) for {n_images} image(s); "
            f"is the marker {tokenizer.image_token!r} in one of its texts?"
        )
    raise InvalidSampleError(message, field="images", record=sample_id)


class ImageTokenizer:
    """A Hugging Face tokenizer whose ``image_token`` expands to ``n_image_tokens`` ids."""

    def __init__(self, tokenizer: Any, *, n_image_tokens: int, image_token: str = DEFAULT_IMAGE_TOKEN):
        inner = tokenizer._inner if isinstance(tokenizer, ImageTokenizer) else tokenizer
        if n_image_tokens < 1:
            raise ValueError(f"n_image_tokens must be >= 1, got {n_image_tokens}")
        ids = inner(image_token, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ModelLoadError(
                f"{image_token!r} is not a single token of this tokenizer (ids {ids}); add it with add_image_token"
            )
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "image_token", image_token)
        object.__setattr__(self, "image_token_id", int(ids[0]))
        object.__setattr__(self, "n_image_tokens", int(n_image_tokens))

    # ---- the expansion ------------------------------------------------------------------------
    def expand_ids(self, ids: Sequence[int]) -> list[int]:
        """``ids`` with every image token id repeated ``n_image_tokens`` times."""
        out: list[int] = []
        for i in ids:
            if i == self.image_token_id:
                out.extend([i] * self.n_image_tokens)
            else:
                out.append(i)
        return out

    def _expand_row(self, row: dict[str, Any]) -> dict[str, Any]:
        ids = row["input_ids"]
        repeat = [self.n_image_tokens if i == self.image_token_id else 1 for i in ids]
        return {
            k: [v for v, r in zip(values, repeat, strict=True) for _ in range(r)] if k in _PER_TOKEN else values
            for k, values in row.items()
        }

    def __call__(self, text: Any = None, *args: Any, **kwargs: Any) -> Any:
        from transformers import BatchEncoding

        return_tensors = kwargs.pop("return_tensors", None)
        padding = kwargs.pop("padding", False)
        if kwargs.get("truncation") and kwargs.get("max_length") is not None:
            raise ValueError("ImageTokenizer cannot truncate (it would cut image placeholders); fit the text instead")
        enc = self._inner(text, *args, **kwargs)
        data = dict(enc)
        ids = data["input_ids"]
        batched = bool(ids) and isinstance(ids[0], list)
        if batched:
            rows = [self._expand_row({k: v[r] for k, v in data.items()}) for r in range(len(ids))]
            data = {k: [row[k] for row in rows] for k in data}
        else:
            data = self._expand_row(data)
        out = BatchEncoding(data)
        if padding or return_tensors is not None:
            out = self._inner.pad(out, padding=padding or False, return_tensors=return_tensors)
        return out

    def encode(self, text: Any, *args: Any, **kwargs: Any) -> list[int]:
        kwargs.setdefault("add_special_tokens", True)
        return self.expand_ids(self._inner.encode(text, *args, **kwargs))

    # ---- everything else is the wrapped tokenizer's -----------------------------------------
    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_inner":  # copy/pickle probes; not yet set
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            raise AttributeError(f"{name} is fixed; build a new ImageTokenizer")
        setattr(self._inner, name, value)

    def __len__(self) -> int:
        return len(self._inner)

    def __repr__(self) -> str:
        return (
            f"ImageTokenizer({type(self._inner).__name__}, image_token={self.image_token!r} "
            f"(id {self.image_token_id}) x {self.n_image_tokens})"
        )
