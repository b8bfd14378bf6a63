"""Explain-first logit scoring vs generate + the official parser, same judge, samples and run.

    python benchmarks/explain_first.py [--model tiny|demo|PATH] [--n 16] [--max-new-tokens 128] [--out F.json]

Prometheus 2 judges write feedback, then ``[RESULT] <label>``. Rows (one warm judge, median of
``--repeats``):

- peer: greedy generation (judgelm's engine) + ``parse_official`` (prometheus-eval 0.1.20's
  parser, no retries): a verdict, or ``None``;
- judgelm explain-first logits: the same generation, cut at ``[RESULT]``, then one batched
  prefill of prompt + feedback and one tree step over the allowed results: a distribution, or an
  abstention with its reason;
- the scoring pass alone, with ``[RESULT]`` appended to every generated feedback, so its cost is
  measured even when the model never writes the marker (a random tiny model does not).

``--model tiny`` (default) is a random-init Llama (4 layers, hidden 256, LLaMA tokenizer) built
in-process: it shows cost, and its abstention counts show a judge that never writes the marker.
``--model demo`` is the SmolLM2-135M demo judge (a real LM, not trained for Prometheus' format).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from judgelm import Judge, Sample
from judgelm.formats import parse_official
from judgelm.modalities.text import load_tokenizer
from judgelm.scoring.explained import score_explained
from judgelm.testing import tiny_llama

TOKENIZER = Path(__file__).parents[1] / "tests" / "assets" / "llama-tokenizer"


def make_samples(n: int, seed: int = 0) -> list[Sample]:
    """Absolute (one answer, with a reference) and relative (two answers) arithmetic samples."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        right, wrong = str(a + b), str(a + b + rng.choice([-10, -1, 1, 7]))
        q = f"What is {a} + {b}?"
        if i % 2:
            out.append(Sample(q, (f"{a} + {b} = {right}.", f"It is {wrong}."), mode="prometheus_relative", id=f"r{i}"))
        else:
            answer = f"It is {rng.choice([right, wrong])}."
            out.append(Sample(q, (answer,), reference=f"{a} + {b} = {right}.", mode="prometheus_absolute", id=f"a{i}"))
    return out


def build_judge(name: str) -> Judge:
    if name == "tiny":
        tok = load_tokenizer(str(TOKENIZER))
        return Judge(
            tiny_llama(tok, layers=4, hidden=256, heads=8, kv_heads=4, intermediate=512), tok, name="tiny-llama"
        )
    return Judge.from_pretrained(None if name == "demo" else name)


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="explain_first.json")
    args = ap.parse_args()

    judge = build_judge(args.model)
    judge.abstain_threshold = 1.0  # untrained judges: report distributions, count only missing markers
    samples = make_samples(args.n)
    kw = {"max_new_tokens": args.max_new_tokens}
    judge.judge(samples[:2], scoring="text", **kw)  # warm up

    peer, t_peer = timed(lambda: judge.judge(samples, scoring="text", official_parser=True, **kw), args.repeats)
    logits, t_logits = timed(lambda: judge.judge(samples, scoring="logits", **kw), args.repeats)

    # the scoring pass alone: every generated feedback with the marker appended
    encoded = [judge.encode(s)[0] for s in samples]
    generated = judge.engine.generate([e.input_ids for e in encoded], max_new_tokens=args.max_new_tokens)
    marker_ids = judge.tokenizer(" [RESULT]", add_special_tokens=False)["input_ids"]
    forced = [[i for i in g if i != judge.tokenizer.eos_token_id] + marker_ids for g in generated]
    scored, t_scoring = timed(
        lambda: score_explained(judge.engine, judge.tokenizer, encoded, forced, max_new_tokens=args.max_new_tokens),
        args.repeats,
    )
    fed = [len(e.input_ids) + len(f) for e, f in zip(encoded, forced, strict=True)]

    official = [parse_official(v.text, v.format) for v in peer]
    agree = checked = 0
    for lv, found in zip(logits, official, strict=True):
        if found is None or lv.abstained:
            continue
        checked += 1
        if lv.format == "prometheus_absolute":
            agree += lv.distributions[0].mode == float(found)
        else:
            agree += lv.winner == {"A": 0, "B": 1}[found]
    rows = {
        "generate + parse_official (peer)": {
            "seconds": t_peer,
            "abstained": sum(v.abstained for v in peer),
            "reasons": dict(Counter(v.reason_code for v in peer if v.abstained)),
        },
        "judgelm explain-first logits": {
            "seconds": t_logits,
            "abstained": sum(v.abstained for v in logits),
            "reasons": dict(Counter(v.reason_code for v in logits if v.abstained)),
        },
        "scoring pass alone (marker forced)": {
            "seconds": t_scoring,
            "abstained": sum(r.scores is None for r in scored),
        },
    }
    for r in rows.values():
        r["ratio_to_peer"] = round(r["seconds"] / t_peer, 3)
        r["seconds"] = round(r["seconds"], 3)
    result = {
        "model": judge.name,
        "device": str(judge.engine.device),
        "engine": type(judge.engine).__name__,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "n": len(samples),
        "max_new_tokens": args.max_new_tokens,
        "prompt_tokens_mean": round(statistics.mean(len(e.input_ids) for e in encoded), 1),
        "generated_tokens_mean": round(statistics.mean(len(g) for g in generated), 1),
        "scored_tokens_mean": round(statistics.mean(fed), 1),
        "repeats": args.repeats,
        "rows": rows,
        "agreement_where_both_read_a_verdict": {"checked": checked, "agree": agree},
    }
    print(f"{'path':38}{'s':>9}{'x peer':>8}{'abstained':>11}  reasons")
    for name, r in rows.items():
        reasons = r.get("reasons", "")
        print(f"{name:38}{r['seconds']:>9.2f}{r['ratio_to_peer']:>8.2f}{r['abstained']:>11}  {reasons}")
    print(
        f"n={len(samples)}, prompt tokens {result['prompt_tokens_mean']}, generated {result['generated_tokens_mean']} "
        f"(max {args.max_new_tokens}); logits agree with the official parse on {agree}/{checked} rows read by both"
    )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
