"""Judging throughput: judgelm's engine and its peers, one model, one run, one table.

    python benchmarks/throughput.py --model llama-7b-random --device cuda --json $OUT/throughput.json
    python benchmarks/throughput.py --model smollm2 --device cpu --n 16 --min-len 128 --max-len 640 \\
        --rows score,greedy,prefill,hf-gen4 --repeats 3
    # CPU with AMX / AVX512-BF16: the demo runs in bf16 (chosen at load), HF generate as users run it (fp32)
    python benchmarks/throughput.py --model smollm2 --device cpu --workload real --n 16 --hf-n 16 --hf-batch 16 \\
        --rows score,greedy,hf-gen4 --hf-dtype fp32 --repeats 3 --interleave

``--model``: a local checkpoint path, or ``llama-7b-random`` (hidden 4096, 32 layers, vocab 32,000,
bf16, random weights built on the device), ``tiny`` (2-layer random Llama), ``smollm2`` (the demo
judge). Workloads (``--workload``): ``synthetic`` — JudgeLM pairwise prompts padded with random
tokens to ``--min-len..--max-len`` tokens (the issue's 256..1,280, mean 769), ending in the real
"### Response:" tail so the verdict grammar applies; ``real`` — pairwise and single prompts
rendered by the formatters from generated question/answer samples.

Rows (``--rows``, default all):
- ``score``: judgelm logit scoring (prefill + the joint verdict tree + verdict head), `score_prompts`;
- ``greedy``: the same with ``strategy="greedy"`` (a ~12-node tree per slot, two rounds);
- ``prefill``: the engine's packed prefill alone (what the tree step adds = score - prefill);
- ``explain``: the engine's KV-cached generation of ``--explain-tokens`` (128) new tokens;
- ``groups``: ``--groups`` groups of 8 candidates whose shared prefix is 3/4 of each prompt,
  scored (joint) vs the same number of independent prompts of the same lengths;
- ablations (``--ablations``, CUDA default ``sdpa,eager,noprune``): prefill only with the SDPA
  backend, without the compiled elementwise ops, without last-layer pruning;
- peers: ``hf-gen4`` / ``hf-gen128`` (HF ``generate``, greedy, batches of ``--hf-batch``
  left-padded in input order: the anchors' setting), ``hf-forward`` (HF padded forward, last
  position's logits), ``hf-packed`` (HF model packed through the registered varlen attention).

Every row: a warm-up on a few prompts (compilation, CUDA graphs), then ``--repeats`` timed runs;
the median is reported. ``--interleave`` times the rows round-robin instead (one repeat of each
row, then the next), so a shared machine's load drifts hit every row alike. The table is printed
last; ``--json`` writes every number.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from judgelm import Judge, Sample
from judgelm.engine import GenerationOptions, PackedEngine, make_engine
from judgelm.modalities.text import EncodedPrompt
from judgelm.scoring.grammar import build_tree
from judgelm.scoring.scorer import score_prompts
from judgelm.testing import packed_hf_hidden

ROOT = Path(__file__).resolve().parent.parent
LLAMA_TOKENIZER = ROOT / "tests" / "assets" / "llama-tokenizer"
ALL_ROWS = ("score", "greedy", "prefill", "explain", "groups", "hf-gen4", "hf-gen128", "hf-forward", "hf-packed")


# ---- models ---------------------------------------------------------------------------------
def load(name: str, device: str, dtype: str | None) -> tuple[Any, Any, str]:
    from judgelm.engine.loading import load_model_and_tokenizer, resolve_dtype
    from judgelm.modalities.text import load_tokenizer

    dev = torch.device(device)
    if name == "llama-7b-random":
        from transformers import AutoModelForCausalLM, LlamaConfig

        config = LlamaConfig(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
        )
        torch.manual_seed(0)
        with dev:
            model = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(dtype, dev))
        return model.eval(), load_tokenizer(str(LLAMA_TOKENIZER)), "Llama 7B config, random weights"
    if name == "tiny":
        from judgelm.testing import tiny_llama

        tok = load_tokenizer(str(LLAMA_TOKENIZER))
        return tiny_llama(tok).to(dev, resolve_dtype(dtype, dev)), tok, "tiny random Llama (2 layers)"
    model, tok, display = load_model_and_tokenizer(None if name == "smollm2" else name, device=device, dtype=dtype)
    return model, tok, display


# ---- workloads ------------------------------------------------------------------------------
WORDS = (
    "the answer is correct because every step follows from the previous one and the final result "
    "matches the reference although the explanation could be shorter and it misses a unit"
).split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def real_samples(n: int, seed: int = 0) -> list[Sample]:
    """Pairwise and single-answer samples with answers of varied length."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        q = f"Question {i}: " + _text(rng, rng.randint(10, 60)) + "?"
        ref = _text(rng, rng.randint(10, 80))
        if i % 3:
            answers = (_text(rng, rng.randint(20, 300)), _text(rng, rng.randint(20, 300)))
            out.append(Sample(q, answers, reference=ref, id=f"p{i}"))
        else:
            out.append(Sample(q, (_text(rng, rng.randint(20, 300)),), gold=ref, id=f"s{i}"))
    return out


def synthetic_prompts(
    judge: Judge, n: int, lo: int, hi: int, seed: int = 0, lengths: Sequence[int] | None = None
) -> list[EncodedPrompt]:
    """JudgeLM pairwise prompts of ``lo..hi`` tokens: the rendered prompt's head and its
    "### Response:" tail around random filler tokens (so the verdict tree is the real one)."""
    rng = random.Random(seed)
    base = judge.encode(Sample("Q?", ("A.", "B.")))[0]
    ids = list(base.input_ids)
    head, tail = ids[:8], ids[-40:]
    vocab = judge.tokenizer.vocab_size
    out = []
    for i in range(n):
        length = lengths[i] if lengths is not None else rng.randint(lo, hi)
        filler = [rng.randrange(100, vocab) for _ in range(max(0, length - len(head) - len(tail)))]
        out.append(dataclasses.replace(base, input_ids=tuple(head + filler + tail)))
    return out


def group_prompts(
    judge: Judge, groups: int, lo: int, hi: int, seed: int = 1
) -> tuple[list[EncodedPrompt], list[EncodedPrompt]]:
    """``groups`` x 8 candidates sharing the first 3/4 of each prompt, and as many independent
    prompts of the same lengths."""
    rng = random.Random(seed)
    base = judge.encode(Sample("Q?", ("A.", "B.")))[0]
    ids = list(base.input_ids)
    head, tail = ids[:8], ids[-40:]
    vocab = judge.tokenizer.vocab_size
    grouped, independent = [], []

    def rand(k: int) -> list[int]:
        return [rng.randrange(100, vocab) for _ in range(k)]

    for _ in range(groups):
        length = rng.randint(lo, hi)
        shared = head + rand(3 * length // 4 - len(head))
        for _ in range(8):
            own = rand(length - len(shared) - len(tail))
            grouped.append(dataclasses.replace(base, input_ids=tuple(shared + own + tail)))
            independent.append(
                dataclasses.replace(base, input_ids=tuple(head + rand(length - len(head) - len(tail)) + tail))
            )
    return grouped, independent


def real_prompts(judge: Judge, n: int) -> list[EncodedPrompt]:
    return [judge.encode(s)[0] for s in real_samples(n)]


# ---- peers (plain Hugging Face) -------------------------------------------------------------
def _left_padded(prompts: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(list(p))
        mask[r, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def hf_generate(model: Any, prompts: Sequence[Sequence[int]], new: int, batch: int, pad: int) -> None:
    dev = next(model.parameters()).device
    for i in range(0, len(prompts), batch):
        ids, mask = _left_padded(prompts[i : i + batch], pad, dev)
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=pad)


@torch.inference_mode()
def hf_forward(model: Any, prompts: Sequence[Sequence[int]], batch: int, pad: int) -> None:
    dev = next(model.parameters()).device
    for i in range(0, len(prompts), batch):
        ids, mask = _left_padded(prompts[i : i + batch], pad, dev)
        model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits.float().log_softmax(-1)


@torch.inference_mode()
def hf_packed(model: Any, prompts: Sequence[Sequence[int]], budget: int) -> None:
    batch: list[Sequence[int]] = []
    for p in [*prompts, None]:
        if p is None or (batch and sum(map(len, batch)) + len(p) > budget):
            hidden = packed_hf_hidden(model, batch)
            model.get_output_embeddings()(hidden).float().log_softmax(-1)
            batch = []
        if p is not None:
            batch.append(p)


# ---- timing ---------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], warm: Callable[[], Any] | None, repeats: int, device: torch.device) -> list[float]:
    if warm is not None:
        warm()
    times = []
    for _ in range(repeats):
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="bf16 / fp32 (default: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument(
        "--hf-dtype",
        default=None,
        help="dtype of the HF peers' copy of the model (default: the very model judgelm runs); 'fp32' with "
        "judgelm in bf16 = HF as users run it on a CPU",
    )
    ap.add_argument("--workload", choices=["synthetic", "real"], default="synthetic")
    ap.add_argument("--n", type=int, default=None, help="prompts for the judgelm rows")
    ap.add_argument("--hf-n", type=int, default=None, help="prompts for the HF generate-4 / forward rows")
    ap.add_argument("--hf128-n", type=int, default=None, help="prompts for the HF generate-128 row")
    ap.add_argument("--explain-n", type=int, default=None)
    ap.add_argument("--explain-tokens", type=int, default=128)
    ap.add_argument("--groups", type=int, default=None, help="groups of 8 candidates")
    ap.add_argument("--min-len", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=1280)
    ap.add_argument("--hf-batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--rows", default=",".join(ALL_ROWS))
    ap.add_argument("--attention", default=None, help="force a backend: flash_attn / torch_varlen / sdpa")
    ap.add_argument(
        "--ablations",
        default=None,
        help="extra prefill-only rows on the same model: 'sdpa' (that attention backend), 'eager' (no "
        "torch.compile), 'noprune' (last layer on every token); default on CUDA: sdpa,eager,noprune",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--interleave",
        action="store_true",
        help="time the rows round-robin (repeat r of every row, then repeat r+1): for shared, noisy CPUs",
    )
    args = ap.parse_args()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    n = args.n or (256 if cuda else 16)
    hf_n = args.hf_n or (128 if cuda else n)
    hf128_n = args.hf128_n or (64 if cuda else 8)
    explain_n = args.explain_n or (128 if cuda else 8)
    groups = args.groups or (16 if cuda else 1)
    repeats = args.repeats or (2 if cuda else 3)
    rows = [r for r in args.rows.split(",") if r]
    unknown = set(rows) - set(ALL_ROWS)
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; choose from {ALL_ROWS}")

    t0 = time.perf_counter()
    model, tok, display = load(args.model, args.device, args.dtype)
    load_s = time.perf_counter() - t0
    peer = model  # what the HF rows run
    if args.hf_dtype is not None:
        from judgelm.engine.loading import resolve_dtype

        hf_dtype = resolve_dtype(args.hf_dtype, dev)
        if hf_dtype != next(model.parameters()).dtype:
            import copy

            peer = copy.deepcopy(model).to(hf_dtype)
    engine = make_engine(model, tok, attention=args.attention) if args.attention else make_engine(model, tok)
    judge = Judge(model, tok, engine=engine)
    packed = isinstance(engine, PackedEngine)
    if args.workload == "synthetic":
        prompts = synthetic_prompts(judge, max(n, hf_n, explain_n, hf128_n), args.min_len, args.max_len)
    else:
        prompts = real_prompts(judge, max(n, hf_n, explain_n, hf128_n))
    ids = [list(p.input_ids) for p in prompts]
    lengths = [len(x) for x in ids]
    pad = engine.facts.pad_id
    pair = next(p for p in prompts if p.prompt.spec.n_graded == 2)  # trees of a pairwise verdict
    tree_joint = build_tree(tok, pair.prompt.spec, pair.prompt.text, strategy="joint")
    tree_greedy = build_tree(tok, pair.prompt.spec, pair.prompt.text, strategy="greedy")
    print(
        f"model {display} on {args.device} ({torch.cuda.get_device_name(dev) if cuda else platform.machine()}), "
        f"engine {type(engine).__name__}"
        + (
            f", attention {engine.attention_backend}, compile {engine.lm.compiled}, graphs {engine.cuda_graphs}"
            if packed
            else ""
        )
        + f"; prompts {min(lengths)}..{max(lengths)} tokens (mean {statistics.fmean(lengths[:n]):.0f}), "
        f"pairwise joint tree {len(tree_joint.tokens)} nodes, greedy {len(tree_greedy.tokens)} per round; "
        f"load {load_s:.0f}s",
        flush=True,
    )

    results: list[dict[str, Any]] = []
    info: dict[str, Any] = {
        "model": args.model,
        "display": display,
        "device": torch.cuda.get_device_name(dev)
        if cuda
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "dtype": str(next(model.parameters()).dtype),
        "hf_dtype": str(next(peer.parameters()).dtype),
        "engine": type(engine).__name__,
        "attention": engine.attention_backend if packed else None,
        "cuda_graphs": engine.cuda_graphs if packed else None,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "workload": args.workload,
        "lengths": {"min": min(lengths[:n]), "mean": statistics.fmean(lengths[:n]), "max": max(lengths[:n])},
        "tree_nodes": {"joint": len(tree_joint.tokens), "greedy_round": len(tree_greedy.tokens)},
        "repeats": repeats,
        "args": vars(args),
    }

    def dump(summary: dict[str, Any] | None = None) -> None:  # after every row: a timeout keeps what ran
        if args.json:
            if packed:
                info["fused_ops"] = engine.lm.fused_ops()
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"info": info, "rows": results, "summary": summary}, indent=2))

    pending: list[tuple[str, int, Callable[[], Any], Callable[[], Any] | None, str, int]] = []

    def row(
        name: str,
        count: int,
        fn: Callable[[], Any],
        warm: Callable[[], Any] | None,
        note: str = "",
        reps: int = repeats,
    ) -> None:
        if args.interleave:  # run later, round-robin with the other rows
            pending.append((name, count, fn, warm, note, reps))
            return
        record(name, count, timed(fn, warm, reps, dev), note)

    def record(name: str, count: int, times: list[float], note: str) -> None:
        med = statistics.median(times)
        results.append(
            {
                "row": name,
                "samples": count,
                "seconds": med,
                "all_seconds": times,
                "samples_per_s": count / med,
                "note": note,
            }
        )
        print(f"  {name:<26} {count:>5} samples  {med:8.2f} s  {count / med:8.2f} samples/s  {note}", flush=True)
        dump()

    few = prompts[:4]
    if "score" in rows:
        row(
            "judgelm score (joint)",
            n,
            lambda: score_prompts(engine, tok, prompts[:n], strategy="joint"),
            lambda: score_prompts(engine, tok, few, strategy="joint"),
            "prefill + joint tree + verdict head",
        )
    if "greedy" in rows:
        row(
            "judgelm score (greedy)",
            n,
            lambda: score_prompts(engine, tok, prompts[:n], strategy="greedy"),
            lambda: score_prompts(engine, tok, few, strategy="greedy"),
            "prefill + greedy trees + head",
        )
    if "prefill" in rows:

        def prefill_all() -> None:
            for b in engine.batches(ids[:n], 0):
                engine.prefill([ids[i] for i in b], want="hidden")

        row(
            "judgelm prefill only",
            n,
            prefill_all,
            lambda: engine.prefill(ids[:4], want="hidden"),
            "packed prefill, no tree",
        )
    ablations = [
        a
        for a in (
            args.ablations if args.ablations is not None else "sdpa,eager,noprune" if cuda and packed else ""
        ).split(",")
        if a
    ]
    for ablation in ablations:
        options: dict[str, Any] = {"sdpa": {"attention": "sdpa"}, "eager": {"compile": False}, "noprune": {}}[ablation]
        other = PackedEngine(model, tok, **options)
        other.lm.prune_last_layer = ablation != "noprune" and other.lm.prune_last_layer

        def prefill_other(e: PackedEngine = other) -> None:
            for b in e.batches(ids[:n], 0):
                e.prefill([ids[i] for i in b], want="hidden")

        row(
            f"prefill only ({ablation})",
            n,
            prefill_other,
            lambda e=other: e.prefill(ids[:4], want="hidden"),
            f"ablation: {ablation}",
        )
        del other
    if "explain" in rows:
        row(
            f"judgelm explain-{args.explain_tokens}",
            explain_n,
            lambda: engine.generate(ids[:explain_n], GenerationOptions(args.explain_tokens)),
            lambda: engine.generate(ids[:4], GenerationOptions(8)),
            "KV-cached generation",
        )
    if "groups" in rows:
        grouped, independent = group_prompts(judge, groups, args.min_len, args.max_len)
        for strategy in ("joint", "greedy"):
            row(
                f"groups of 8, shared ({strategy})",
                len(grouped),
                lambda s=strategy: score_prompts(engine, tok, grouped, strategy=s),
                lambda s=strategy: score_prompts(engine, tok, grouped[:8], strategy=s),
                "3/4 of each prompt shared",
            )
            row(
                f"groups of 8, independent ({strategy})",
                len(independent),
                lambda s=strategy: score_prompts(engine, tok, independent, strategy=s),
                lambda s=strategy: score_prompts(engine, tok, independent[:8], strategy=s),
                "same lengths, nothing shared",
            )
    if "hf-gen4" in rows:
        row(
            "HF generate-4",
            hf_n,
            lambda: hf_generate(peer, ids[:hf_n], 4, args.hf_batch, pad),
            lambda: hf_generate(peer, ids[:2], 4, 2, pad),
            f"batch {args.hf_batch}, left-padded",
        )
    if "hf-gen128" in rows:
        row(
            "HF generate-128",
            hf128_n,
            lambda: hf_generate(peer, ids[:hf128_n], 128, args.hf_batch, pad),
            lambda: hf_generate(peer, ids[:2], 4, 2, pad),
            f"batch {args.hf_batch}, left-padded",
            reps=1,
        )
    if "hf-forward" in rows:
        row(
            "HF padded forward",
            hf_n,
            lambda: hf_forward(peer, ids[:hf_n], args.hf_batch, pad),
            lambda: hf_forward(peer, ids[:2], 2, pad),
            "last position's logits",
        )
    if "hf-packed" in rows:
        budget = engine.max_batch_tokens
        row(
            "HF packed forward",
            hf_n,
            lambda: hf_packed(peer, ids[:hf_n], budget),
            lambda: hf_packed(peer, ids[:2], budget),
            "varlen attention registered",
        )

    if pending:  # --interleave: warm every row, then time them in turn, so load drifts hit all alike
        for _, _, _, warm, _, _ in pending:
            if warm is not None:
                warm()
        times: dict[str, list[float]] = {name: [] for name, *_ in pending}
        for r in range(max(spec[5] for spec in pending)):
            for name, _, fn, _, _, reps in pending:
                if r < reps:
                    times[name] += timed(fn, None, 1, dev)
        for name, count, _, _, note, _ in pending:
            record(name, count, times[name], note)
    by = {r["row"]: r for r in results}

    def ratio(a: str, b: str) -> float | None:
        return by[a]["samples_per_s"] / by[b]["samples_per_s"] if a in by and b in by else None

    summary = {
        "score_vs_hf_gen4": ratio("judgelm score (joint)", "HF generate-4"),
        "greedy_vs_hf_gen4": ratio("judgelm score (greedy)", "HF generate-4"),
        "explain_vs_hf_gen128": ratio(f"judgelm explain-{args.explain_tokens}", "HF generate-128"),
        "tree_share_of_score_time": (
            1 - by["judgelm prefill only"]["seconds"] / n / (by["judgelm score (joint)"]["seconds"] / n)
            if "judgelm prefill only" in by and "judgelm score (joint)" in by
            else None
        ),
        "group_time_fraction_joint": (
            by["groups of 8, shared (joint)"]["seconds"] / by["groups of 8, independent (joint)"]["seconds"]
            if "groups of 8, shared (joint)" in by
            else None
        ),
        "group_time_fraction_greedy": (
            by["groups of 8, shared (greedy)"]["seconds"] / by["groups of 8, independent (greedy)"]["seconds"]
            if "groups of 8, shared (greedy)" in by
            else None
        ),
    }
    print()
    where = f"{info['device']}, {info['dtype']}, HF peers {info['hf_dtype']}, {display}"
    print(f"| path | samples | median s | samples/s |  ({where})")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['row']} | {r['samples']} | {r['seconds']:.2f} | {r['samples_per_s']:.2f} |")
    for k, v in summary.items():
        if v is not None:
            print(f"{k}: {v:.3f}")
    dump(summary)


if __name__ == "__main__":
    main()
