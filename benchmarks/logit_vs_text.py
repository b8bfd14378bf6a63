"""Logit scoring vs generate-then-parse, same judge, same samples, same run.

    python benchmarks/logit_vs_text.py [--model demo|PATH] [--data SAMPLES.jsonl] [--n 32] [--out results.json]

Samples: ``--data`` (pairwise and single-answer records, native or JudgeLM format; their lengths
vary as real data does), else generated arithmetic questions of nearly equal length.

Rows: judgelm logit scoring (joint and greedy slots), judgelm text scoring (its own KV-cached
greedy decoding, stopping at the first newline like the reference "fast eval"), and the peer:
Hugging Face ``generate`` (batched, left-padded, 16 new tokens, stop at "\\n") + the reference
parser. Reports time, samples/s and the ratio to the peer, how often each abstains or fails, and
whether logit scoring agrees with the parsed text on the most likely score wherever the parse
succeeded (pairwise: the winner; single: the score).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from judgelm import Judge, Sample
from judgelm.formats import get_format, parse_scores


def make_samples(n: int, seed: int = 0) -> list[Sample]:
    """Pairwise and single-answer samples with computable truth (arithmetic)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        right, wrong = str(a + b), str(a + b + rng.choice([-10, -1, 1, 7]))
        q = f"What is {a} + {b}?"
        if i % 2:
            out.append(Sample(q, (f"{a} + {b} = {right}.", f"The answer is {wrong}."), id=f"p{i}"))
        else:
            out.append(Sample(q, (f"It is {rng.choice([right, wrong])}.",), gold=f"{a} + {b} = {right}.", id=f"s{i}"))
    return out


def _render(sample: Sample) -> Any:
    return get_format("single" if len(sample.answers) == 1 else "pairwise").render(sample)


def hf_generate_parse(
    judge: Judge, samples: list[Sample], batch: int = 16
) -> tuple[list[tuple[float, ...] | None], float, list[int]]:
    """The peer: HF generate (greedy, left-padded batches, stop at newline) + the reference parser.
    Returns (parsed scores or None per sample, seconds, new tokens generated per batch)."""
    from transformers import StopStringCriteria

    tok, model = judge.tokenizer, judge.model
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prompts = [_render(s) for s in samples]
    stop = StopStringCriteria(tok, ["\n"])
    out: list[tuple[float, ...] | None] = []
    steps: list[int] = []
    start = time.perf_counter()
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        enc = tok([p.text for p in chunk], return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            gen = model.generate(
                **enc, max_new_tokens=16, do_sample=False, stopping_criteria=[stop], pad_token_id=tok.pad_token_id
            )
        steps.append(gen.shape[1] - enc["input_ids"].shape[1])
        for p, row in zip(chunk, gen[:, enc["input_ids"].shape[1] :], strict=True):
            text = p.response_prefix + tok.decode(row, skip_special_tokens=True)
            out.append(parse_scores(text, p.spec.n_scores, official=True))
    return out, time.perf_counter() - start, steps


def timed(fn, repeats: int) -> tuple[object, float]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--data", help="JSONL samples (pairwise / single); default: generated arithmetic")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device")
    ap.add_argument("--out", default="logit_vs_text.json")
    args = ap.parse_args()

    judge = Judge.from_pretrained(args.model, device=args.device, abstain_threshold=1.0)
    if args.data:
        from judgelm.io import read_samples

        samples = [r.sample for r in read_samples(args.data) if r.sample is not None][: args.n]
    else:
        samples = make_samples(args.n)
    judge.judge(samples[:2])  # warm up
    rows = {}
    logits, t_logits = timed(lambda: judge.judge(samples, scoring="logits"), args.repeats)
    _, t_greedy = timed(lambda: judge.judge(samples, scoring="logits", slots="greedy"), args.repeats)
    text, t_text = timed(lambda: judge.judge(samples, scoring="text"), args.repeats)
    peer, t_peer = timed(lambda: hf_generate_parse(judge, samples), args.repeats)
    peer_scores = peer[0]  # type: ignore[index]

    lengths = [len(judge.tokenizer(p.text)["input_ids"]) for p in map(_render, samples)]
    agree = checked = 0
    for s, lv, ps in zip(samples, logits, peer_scores, strict=True):  # type: ignore[arg-type]
        if ps is None or lv.abstained:
            continue
        checked += 1
        if len(s.answers) == 1:
            agree += lv.distributions[0].mode == ps[1]
        else:
            label = 1 if ps[0] > ps[1] else -1 if ps[0] < ps[1] else 0
            modes = [d.mode for d in lv.distributions]
            agree += label == (1 if modes[0] > modes[1] else -1 if modes[0] < modes[1] else 0)
    for name, seconds, verdicts in (
        ("judgelm logits (joint)", t_logits, logits),
        ("judgelm logits (greedy)", t_greedy, None),
        ("judgelm text (fast eval)", t_text, text),
        ("HF generate + parse (peer)", t_peer, None),
    ):
        rows[name] = {
            "seconds": round(seconds, 3),
            "samples_per_s": round(len(samples) / seconds, 3),
            "speedup_vs_peer": round(t_peer / seconds, 3),
            "abstained": None if verdicts is None else sum(v.abstained for v in verdicts),  # type: ignore[union-attr]
        }
    rows["HF generate + parse (peer)"]["parse_failures"] = sum(p is None for p in peer_scores)
    rows["HF generate + parse (peer)"]["new_tokens_per_batch"] = peer[2]  # type: ignore[index]
    result = {
        "model": judge.name,
        "device": str(judge.engine.device),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "n": len(samples),
        "data": args.data or "generated arithmetic",
        "prompt_tokens": {
            "min": min(lengths),
            "mean": round(statistics.mean(lengths), 1),
            "max": max(lengths),
        },
        "repeats": args.repeats,
        "rows": rows,
        "agreement_where_parse_succeeded": {"checked": checked, "agree": agree},
    }
    print(f"{'path':30}{'s':>9}{'samples/s':>11}{'x peer':>8}{'abstain':>9}")
    for name, r in rows.items():
        print(
            f"{name:30}{r['seconds']:>9.2f}{r['samples_per_s']:>11.2f}{r['speedup_vs_peer']:>8.2f}{r['abstained']!s:>9}"
        )
    print(
        f"peer parse failures: {rows['HF generate + parse (peer)']['parse_failures']}/{len(samples)}; "
        f"logits agree with the parsed text on {agree}/{checked} parsed samples; "
        f"peer new tokens per batch: {peer[2]}"  # type: ignore[index]
    )
    print(f"prompt tokens: {result['prompt_tokens']}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
