"""``judgelm serve --model M``: an HTTP judge server with dynamic micro-batching.

Endpoints: POST /v1/judge (JSON samples in, JSONL-output records out), POST /get_reward
(OpenRLHF remote reward protocol), the OpenAI API (GET /v1/models, POST /v1/completions,
POST /v1/chat/completions, streaming included), GET /health, GET /metrics (Prometheus). Binds to 127.0.0.1
unless told otherwise; with --api-key (or $JUDGELM_API_KEY) every endpoint but /health needs
"Authorization: Bearer KEY". SIGINT/SIGTERM finish in-flight requests before exiting.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from judgelm.cli.flags import add_model_flags, add_scoring_flags, add_truncation_flag, load_judge

if TYPE_CHECKING:
    from judgelm.serve.config import ServeConfig

API_KEY_ENV = "JUDGELM_API_KEY"


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help="serve a judge over HTTP (judging, OpenRLHF rewards, the OpenAI API)", description=__doc__
    )
    _add_arguments(p)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_flags(p)
    add_server_flags(p)
    add_truncation_flag(p)
    r = p.add_argument_group("/get_reward (OpenRLHF)")
    r.add_argument(
        "--reward-mode",
        choices=["single", "pairwise"],
        default="single",
        help="grade each answer, or compare it with the label",
    )
    r.add_argument(
        "--reward-label-as",
        choices=["reference", "gold"],
        default="reference",
        help="how a label enters single grading",
    )
    r.add_argument(
        "--reward-separator",
        help="split query into question/answer at the last occurrence (when prompts are not sent)",
    )
    r.add_argument("--reward-swap", action="store_true", help="judge both orders and average (pairwise)")
    add_scoring_flags(r, flag="--reward-scoring", official_parser=False)
    r.add_argument(
        "--abstain-reward",
        type=float,
        default=0.0,
        help="reward sent when the judge abstains (flagged in extra_logs)",
    )


def add_server_flags(p: argparse.ArgumentParser, *, port: int = 8000) -> None:
    """Where to listen, the API key, batching and limits (`ServeConfig`): ``judgelm serve`` and
    ``judgelm ui`` alike."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=port, help=f"port (default: {port})")
    p.add_argument("--served-model-name", help="the model name of the OpenAI routes (default: the --model argument)")
    p.add_argument(
        "--api-key",
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set); "
        "clients that send no headers (OpenRLHF) POST to /k/KEY/get_reward",
    )
    g = p.add_argument_group("batching and limits")
    g.add_argument("--max-batch-size", type=int, default=32, help="samples per model call (default: 32)")
    g.add_argument("--max-wait-ms", type=float, default=5.0, help="longest wait to fill a batch (default: 5)")
    g.add_argument("--max-queue", type=int, default=1024, help="samples waiting before 503 (default: 1024)")
    g.add_argument("--max-request-samples", type=int, default=256, help="samples per request (default: 256)")
    g.add_argument("--max-body-mb", type=float, default=8.0, help="request body limit in MiB (default: 8)")
    g.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        help="open connections; past it the oldest idle one is closed (default: 4096, below `ulimit -n`)",
    )
    g.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds for a request's head to arrive (default: 10)"
    )
    g.add_argument(
        "--keep-alive-timeout", type=float, default=5.0, help="seconds an idle keep-alive connection stays open"
    )
    g.add_argument("--body-timeout", type=float, default=60.0, help="seconds for a request body to arrive")
    g.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="seconds to finish in-flight requests on shutdown",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def server_config(args: argparse.Namespace, **fields: Any) -> ServeConfig:
    """The `ServeConfig` of `add_server_flags`' flags (+ ``fields``); raises ValueError."""
    from judgelm.serve.config import ServeConfig

    return ServeConfig(
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_request_samples=args.max_request_samples,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_connections=args.max_connections,
        header_timeout_s=args.header_timeout,
        keep_alive_s=args.keep_alive_timeout,
        body_timeout_s=args.body_timeout,
        served_model_name=args.served_model_name or args.model,
        **fields,
    )


def build_config(args: argparse.Namespace) -> ServeConfig:
    from judgelm.integrations.openrlhf import RewardMapping
    from judgelm.options import JudgeOptions

    reward = RewardMapping(
        mode=args.reward_mode,
        label_as=args.reward_label_as,
        separator=args.reward_separator,
        abstain_reward=args.abstain_reward,
        options=JudgeOptions(swap=args.reward_swap, scoring=args.reward_scoring),
    )
    return server_config(args, reward=reward)


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ValueError as e:
        print(f"judgelm serve: {e}", file=sys.stderr)
        return 2
    judge = load_judge(args)
    # Scores map to [0, 1] against the judge's own score grammar.
    config = replace(config, reward=replace(config.reward, score_range=judge.config.score_range))
    return serve_until_stopped("serve", judge, judge.name, args, config)


def serve_until_stopped(command: str, app: Any, name: str, args: argparse.Namespace, config: ServeConfig) -> int:
    """Serve ``app`` (a judge or an app) where `add_server_flags`' flags say until SIGINT/SIGTERM,
    saying where on stderr and when it stopped (``judgelm serve`` and ``judgelm ui``)."""
    from judgelm.serve.server import serve

    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address in a URL
    print(f"judgelm {command}: {name} on http://{host}:{args.port}/", file=sys.stderr, flush=True)
    serve(
        app,
        host=args.host,
        port=args.port,
        config=config,
        log_level=args.log_level,
        graceful_timeout_s=args.graceful_timeout,
    )
    print(f"judgelm {command}: stopped", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m judgelm.cli.serve_cmd`` (the same as ``judgelm serve``)."""
    import logging

    p = argparse.ArgumentParser(prog="judgelm serve", description=__doc__)
    _add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from judgelm.errors import JudgeLMError

    try:
        return run(args)
    except JudgeLMError as e:
        print(f"judgelm: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
