"""``judgelm formats``: list the registered judging formats."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help="list the judging formats", description=__doc__)


def run(args: argparse.Namespace) -> int:
    from judgelm.formats import list_formats

    formats = list_formats()
    width = max(map(len, formats))
    for fmt, summary in formats.items():
        print(f"{fmt:<{width}}  {summary}")
    return 0
