"""The ``judgelm`` command. Each subcommand lives in its own module with ``add_parser`` and
``run``; heavy imports (torch, transformers) happen inside ``run``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Exit codes, one meaning each across commands (`judgelm --help` and the README list them).
EXIT_OK = 0  # everything done: every record judged (a verdict or an abstention)
EXIT_BUG = 1  # an internal error (Python's own code for an uncaught exception: a judgelm bug)
EXIT_CANNOT_RUN = 2  # the job could not run (bad arguments, unreadable input, a refused output file)
EXIT_BAD_RECORDS = 3  # the job ran to the end, but some records could not be judged (error lines)
EXIT_INTERRUPTED = 130  # Ctrl-C; re-run the same command to resume
EXIT_CODES_HELP = """exit codes:
  0    every record judged (a verdict or an abstention)
  2    the job could not run: bad arguments, an unreadable input, an output file that is not this
       job's (nothing was judged; the message says what to do)
  3    (judge, prompts) the job ran to the end, but some records could not be judged: each
       is an error line (file:line, id, field) on stderr and in the output
  130  interrupted: re-run the same command to resume
  1    an internal error (a judgelm bug; please report it with its traceback)"""

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

    parser = argparse.ArgumentParser(
        prog="judgelm",
        description="Fine-tuned LLMs as fast, trustworthy judges.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        return int(args._run(args) or EXIT_OK)
    except JudgeLMError as e:
        print(f"judgelm: error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever it quotes
        return EXIT_CANNOT_RUN
    except OSError as e:  # a file the command needs (a missing input, a full disk, ...): one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"judgelm: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print("judgelm: interrupted; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
