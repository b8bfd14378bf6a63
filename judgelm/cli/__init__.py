"""The ``judgelm`` command. Each subcommand lives in its own module with ``add_parser`` and
``run``; heavy imports (torch, transformers) happen inside ``run``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand name -> module (relative to this package)
COMMANDS = {
    "judge": "judge_cmd",
    "prompts": "prompts_cmd",
    "formats": "formats_cmd",
    "eval": "eval_cmd",
    "audit": "audit_cmd",
    "bench": "bench_cmd",
    "calibrate": "calibrate_cmd",
    "serve": "serve_cmd",
    "ui": "ui_cmd",
    "train": "train_cmd",
    "distill": "distill_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    from judgelm.version import __version__

    parser = argparse.ArgumentParser(prog="judgelm", description="Fine-tuned LLMs as fast, trustworthy judges.")
    parser.add_argument("--version", action="version", version=f"judgelm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"judgelm.cli.{module}")
        p = mod.add_parser(sub, name)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    from judgelm.errors import JudgeLMError

    try:
        return int(args._run(args) or 0)
    except JudgeLMError as e:
        print(f"judgelm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("judgelm: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
