"""``judgelm distill SEEDS.jsonl -o OUT.jsonl --teacher-model M [...]``: the JudgeLM paper's data
pipeline. Seed tasks (questions, optional references, optional answers) plus answers from
``--answers FILE`` and from models (``--answers-from local:NAME`` or ``openai:URL#MODEL``,
repeatable; each answer tagged with its model); pairs of answers from two different models; the
teacher (``--teacher-endpoint URL --teacher-model NAME``, or a local ``--teacher-model``) judges
each pair in both orders, without and with the reference, with the paper's GPT-4 prompt (or
``--teacher-prompt FILE``). OUT is JudgeLM-format training data: ``judgelm train OUT ...`` reads it
as is. Re-run the same command to resume; OUT.failures.jsonl records every failure and
OUT.summary.json the counts, tokens, cost and the teacher's position bias.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="make JudgeLM training data: answers, pairs, teacher judgments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("seeds", help="seed tasks JSONL (question_id, question, reference?, answers?)")
    p.add_argument("-o", "--output", required=True, help="training records JSONL (appended; re-run to resume)")
    a = p.add_argument_group("answers")
    a.add_argument("--answers", action="append", default=[], help="answer file(s): question_id, model_id, text")
    a.add_argument(
        "--answers-from",
        action="append",
        default=[],
        metavar="SPEC",
        help="a model that answers every task: local:NAME_OR_FOLDER or openai:URL#MODEL (repeatable)",
    )
    a.add_argument("--answer-max-tokens", type=int, default=512)
    a.add_argument("--answer-temperature", type=float, default=0.0)
    t = p.add_argument_group("teacher")
    t.add_argument(
        "--teacher-model", required=True, help="served model name (with --teacher-endpoint) or a local model"
    )
    t.add_argument("--teacher-endpoint", help="an OpenAI-compatible server (vLLM, judgelm serve, a hosted API)")
    t.add_argument(
        "--teacher-api",
        choices=["chat", "completions"],
        default="chat",
        help="chat: system + user messages (default); completions: the JudgeLM prompt as text",
    )
    t.add_argument("--teacher-prompt", help="JSON {system, template, template_w_reference} (default: the paper's)")
    t.add_argument("--teacher-max-tokens", type=int, default=1024)
    t.add_argument("--teacher-temperature", type=float, default=0.0)
    t.add_argument("--no-reference-judgments", action="store_true", help="judge without the reference only")
    d = p.add_argument_group("pairs")
    d.add_argument("--pairs-per-question", type=int, default=1)
    d.add_argument("--seed", type=int, default=0)
    h = p.add_argument_group("endpoints")
    h.add_argument("--api-key", help="API key for the endpoints (default: $OPENAI_API_KEY)")
    h.add_argument("--concurrency", type=int, default=8, help="requests in flight per endpoint")
    h.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    h.add_argument("--max-retries", type=int, default=5)
    h.add_argument("--rpm", type=float, help="at most this many requests per minute per endpoint")
    h.add_argument("--price-input", type=float, default=0.0, help="teacher USD per million prompt tokens")
    h.add_argument("--price-output", type=float, default=0.0, help="teacher USD per million completion tokens")
    p.add_argument("--chunk", type=int, default=32, help="pairs per teacher batch (written as each finishes)")
    p.add_argument("--retry-errors", action="store_true", help="judge again the records holding a failed judgment")
    return p


def run(args: argparse.Namespace) -> int:
    from judgelm.distill import DistillConfig, EndpointModel, LocalModel, TeacherPrompt, distill, model_from_spec
    from judgelm.engine.openai_http import OpenAIHTTP

    http_options = {
        "api_key": args.api_key or os.environ.get("OPENAI_API_KEY") or None,
        "timeout": args.timeout,
        "max_retries": args.max_retries,
        "concurrency": args.concurrency,
        "requests_per_minute": args.rpm,
    }
    teacher_options = {"max_tokens": args.teacher_max_tokens, "temperature": args.teacher_temperature}
    clients = []
    if args.teacher_endpoint:
        http = OpenAIHTTP(args.teacher_endpoint, **http_options)
        clients.append(http)
        teacher = EndpointModel(http, args.teacher_model, api=args.teacher_api, **teacher_options)
    else:
        teacher = LocalModel.load(args.teacher_model, **teacher_options)
    try:
        sources = [
            model_from_spec(s, http_options, max_tokens=args.answer_max_tokens, temperature=args.answer_temperature)
            for s in args.answers_from
        ]
    except ValueError as e:
        print(f"judgelm distill: {e}", file=sys.stderr)
        return 2
    clients += [s.http for s in sources if isinstance(s, EndpointModel)]
    config = DistillConfig(
        pairs_per_question=args.pairs_per_question,
        seed=args.seed,
        with_reference=not args.no_reference_judgments,
        chunk=args.chunk,
        price_input=args.price_input,
        price_output=args.price_output,
        retry_errors=args.retry_errors,
    )

    def usage() -> dict[str, int]:
        total: dict[str, int] = {}
        for c in clients:
            for k, v in c.usage.as_dict().items():
                total[k] = total.get(k, 0) + v
        return total

    def progress(done: int, total: int) -> None:
        print(f"judgelm distill: {done}/{total} pairs judged", file=sys.stderr, flush=True)

    prompt = TeacherPrompt.from_file(args.teacher_prompt) if args.teacher_prompt else TeacherPrompt.paper()
    summary = distill(
        args.seeds,
        args.output,
        teacher,
        answer_models=sources,
        answer_files=args.answers,
        prompt=prompt,
        config=config,
        http_usage=usage,
        on_progress=progress,
    )
    for c in clients:
        c.close()
    print(json.dumps(summary, indent=2, ensure_ascii=False), file=sys.stderr)
    return 0
