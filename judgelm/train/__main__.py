"""``python -m judgelm.train ...`` (and ``torchrun -m judgelm.train ...``): the ``judgelm train``
command without going through the top-level CLI, for launchers that run a module."""

from __future__ import annotations

import argparse
import logging
import sys

from judgelm.cli.train_cmd import configure, run


def main(argv: list[str] | None = None) -> int:
    parser = configure(argparse.ArgumentParser(prog="python -m judgelm.train", description=__doc__))
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
