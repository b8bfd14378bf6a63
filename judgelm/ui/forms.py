"""What the page sends, checked like the server checks ``/v1/judge``: untrusted JSON in, a `Sample`
and `JudgeOptions` out, or an `InvalidSampleError` naming the field.

The judge form::

    {"sample": {<native record: question, answers, reference, gold, conversations, mode>},
     "images": ["<base64>", ...], "options": {<JudgeOptions: swap, explain, scoring, max_new_tokens>}}

Images come as bytes only (base64), each validated by `judgelm.modalities.image.load_image`
before any model time is spent; the record itself may name no image (a path or a URL would be
read on the server's side).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from judgelm.errors import InvalidSampleError
from judgelm.formats import infer_mode
from judgelm.integrations.records import check_sample
from judgelm.io import sample_from_record
from judgelm.options import JudgeOptions
from judgelm.serve.config import ServeConfig
from judgelm.types import Sample

__all__ = ["JudgeForm", "parse_discuss_form", "parse_judge_form", "parse_options"]

_FORM_FIELDS = frozenset({"sample", "images", "options"})


@dataclass(frozen=True)
class JudgeForm:
    sample: Sample
    options: JudgeOptions


def _object(body: Any, where: str | None = None) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidSampleError("must be a JSON object", field=where)
    return body


def parse_options(body: Mapping[str, Any], config: ServeConfig) -> JudgeOptions:
    return JudgeOptions.from_dict(body.get("options"), max_new_tokens_limit=config.max_new_tokens_limit)


def _images(raw: Any) -> tuple[bytes, ...]:
    """Base64 strings -> validated image bytes (`load_image` names the failing image)."""
    from judgelm.modalities.image import load_image

    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidSampleError("must be a list of base64-encoded images", field="images")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise InvalidSampleError("must be a base64-encoded image", field=f"images[{i}]")
        try:
            data = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSampleError("not valid base64", field=f"images[{i}]") from None
        load_image(data, index=i)  # format, size, decompression bomb, truncation: refused here
        out.append(data)
    return tuple(out)


def parse_judge_form(body: Any, config: ServeConfig) -> JudgeForm:
    body = _object(body)
    unknown = set(body) - _FORM_FIELDS
    if unknown:
        raise InvalidSampleError(f"unknown field (expected {', '.join(sorted(_FORM_FIELDS))})", field=min(unknown))
    record = _object(body.get("sample"), "sample")
    if "images" in record:
        raise InvalidSampleError(
            "images travel as base64 in the form's 'images', never as names", field="sample.images"
        )
    options = parse_options(body, config)
    images = _images(body.get("images"))
    try:
        sample = sample_from_record(record, mode=options.mode)
        image_format = infer_mode(sample).startswith("image_")
        if images and not image_format:
            raise InvalidSampleError(
                "images are judged in an image format (image_pairwise, image_single)", field="images"
            )
        if image_format:
            import judgelm.formats.image  # noqa: F401  (registers the image formats)

            sample = sample.replace(images=images)
        check_sample(sample, options.mode)
    except InvalidSampleError as e:
        if (e.field or "").startswith("images"):
            raise InvalidSampleError(e.detail, field=e.field) from None
        raise InvalidSampleError(e.detail, field=f"sample.{e.field}" if e.field else "sample") from None
    return JudgeForm(sample.replace(id=sample.id or "page"), options)


def parse_discuss_form(body: Any, max_new_tokens_limit: int) -> tuple[str, str, int]:
    """``{"conversation": id, "message": text, "max_new_tokens": n}`` -> (id, message, tokens)."""
    body = _object(body)
    conversation, message = body.get("conversation"), body.get("message")
    if not isinstance(conversation, str) or not conversation:
        raise InvalidSampleError("required: the conversation id the verdict came with", field="conversation")
    if not isinstance(message, str) or not message.strip():
        raise InvalidSampleError("required: a question for the judge", field="message")
    tokens = body.get("max_new_tokens", 256)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= max_new_tokens_limit:
        raise InvalidSampleError(f"must be an integer from 1 to {max_new_tokens_limit}", field="max_new_tokens")
    return conversation, message.strip(), tokens
