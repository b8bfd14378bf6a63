"""``judgelm ui [--model M | --endpoint URL --model NAME]``: a web page to judge side by side.

Question, two or more answers (or one with a gold answer), an optional reference, chats turn by
turn or images for vision judges; the page shows each answer's score distribution, the
preference, confidence and calibration, the swap check, abstentions with their reason and the
explanation as it is written, then lets you ask the judge why. A batch tab judges a JSONL file
and offers the results and, when records carry labels, the evaluation report.

Served by the judge server (``judgelm serve``'s app, its ``/v1/judge`` included): loopback only
by default; binding elsewhere requires --api-key (or $JUDGELM_API_KEY), which the page asks for.
"""

from __future__ import annotations

import argparse
import sys

from judgelm.cli.flags import add_endpoint_flags, add_model_flags, add_truncation_flag, load_judge
from judgelm.cli.serve_cmd import API_KEY_ENV, add_server_flags, serve_until_stopped, server_config

DEFAULT_PORT = 7860


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="a web page: judge side by side, see distributions, ask why, judge a file", description=__doc__
    )
    add_model_flags(p)
    add_endpoint_flags(p)
    add_server_flags(p, port=DEFAULT_PORT)
    add_truncation_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from judgelm.serve.server import is_loopback
    from judgelm.ui.app import create_ui_app

    try:
        config = server_config(args)
    except ValueError as e:
        print(f"judgelm ui: error: {e}", file=sys.stderr)
        return 2
    loopback = is_loopback(args.host)
    if not loopback and config.api_key is None:
        print(
            f"judgelm ui: error: --host {args.host} lets other machines reach the page: "
            f"set --api-key (or ${API_KEY_ENV})",
            file=sys.stderr,
        )
        return 2
    judge = load_judge(args)
    app = create_ui_app(judge, config, loopback=loopback)
    return serve_until_stopped("ui", app, judge.name, args, config)
