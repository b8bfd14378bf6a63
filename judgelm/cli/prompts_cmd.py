"""``judgelm prompts IN.jsonl -o OUT.jsonl``: write the exact prompts a judge would read, one JSON
object per sample (``id``, ``format``, ``prompt``: the offline model input, ``messages``: the chat
form; ``order`` with ``--swap``), without loading a model."""

from __future__ import annotations

import argparse
import os
import sys

from judgelm.cli import EXIT_BAD_RECORDS, EXIT_CODES_HELP, EXIT_OK
from judgelm.cli.flags import add_mode_flag, add_swap_flag


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="write the exact prompts, no model needed",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="JSONL samples (native or JudgeLM format)")
    p.add_argument("-o", "--output", help="output JSONL (default: stdout)")
    add_mode_flag(p)
    add_swap_flag(p, help="also write the swapped orders")
    p.add_argument("--tokenizer", help="a tokenizer folder: adds `input_ids` as the judge would read them")
    return p


def run(args: argparse.Namespace) -> int:
    from judgelm import strict_json
    from judgelm.errors import InvalidSampleError, JobError, JudgeLMError
    from judgelm.formats import get_format, infer_mode
    from judgelm.io import read_samples
    from judgelm.modalities.text import encode, load_tokenizer

    same = args.output and os.path.exists(args.output) and os.path.exists(args.input)
    if same and os.path.samefile(args.output, args.input):
        raise JobError(f"{args.output}: is the input file; write the prompts to another file")
    records = read_samples(args.input, mode=args.mode)
    tok = load_tokenizer(args.tokenizer) if args.tokenizer else None
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    errors = 0
    try:
        for rec in records:
            if rec.sample is None:
                errors += 1
                print(f"judgelm: {rec.error}", file=sys.stderr)
                continue
            try:
                fmt = get_format(infer_mode(rec.sample))
                for order in fmt.orders(rec.sample, args.swap):
                    prompt = fmt.render(rec.sample, order)
                    obj = {"id": rec.key, "format": fmt.name, "prompt": prompt.text, "messages": prompt.chat()}
                    if args.swap:
                        obj["order"] = list(order)
                    if tok is not None:
                        obj["input_ids"] = encode(tok, prompt.text)
                    out.write(strict_json.dumps(obj) + "\n")
            except JudgeLMError as e:
                errors += 1
                err = e if isinstance(e, InvalidSampleError) else InvalidSampleError(str(e), field="mode")
                print(f"judgelm: {rec.locate(err)}", file=sys.stderr)
    finally:
        if out is not sys.stdout:
            out.close()
    return EXIT_BAD_RECORDS if errors else EXIT_OK
