"""Microbenchmark: the fused Triton verdict head vs the naive full-logits path.

On CUDA, for P in {1, 64, 1024, 4096}, V in {32,000, 49,152}, H = 4096 (bf16, C = 12
candidates) it times (CUDA events, after warmup; median of ``--iters``) and measures the peak
extra memory of

* ``kernel``: ``verdict_head_triton(validate=False)`` (the two kernels only),
* ``kernel+validate``: the default call, which also checks the candidate ids (one host sync),
* ``naive``: ``naive_head`` (``F.linear`` -> ``[P, V]`` logits -> ``log_softmax`` -> gather),

checks the kernel against the fp32 reference, and prints a table and writes JSON (``--out``)
with the card name. ``--sweep`` also times a handful of alternative kernel configurations per
shape and reports the best one next to the heuristic's.

Without CUDA it says so and times the torch reference vs the naive path on small shapes, so
the script itself stays exercised.

    python benchmarks/scoring_head.py --out scoring_head.json [--sweep]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script from a checkout: make `judgelm` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judgelm.scoring.head import HeadOutput, naive_head, verdict_head_reference

N_CAND = 12
DEVICE = "cuda"
GPU_SHAPES = [(p, v, 4096) for v in (32_000, 49_152) for p in (1, 64, 1024, 4096)]
CPU_SHAPES = [(p, 32_000, 256) for p in (1, 16, 64)]


def make_inputs(
    n_pos: int, vocab: int, n_hid: int, dtype: torch.dtype, device: str, seed: int = 0
) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """LM-like inputs: logits with std ~4, 12 candidates (two of them padding)."""
    g = torch.Generator(device=device).manual_seed(seed)
    hidden = torch.randn(n_pos, n_hid, generator=g, device=device).to(dtype)
    weight = (torch.randn(vocab, n_hid, generator=g, device=device) * (4 / n_hid**0.5)).to(dtype)
    ids = torch.randint(0, vocab, (n_pos, N_CAND), generator=g, device=device)
    ids[:, -2:] = -1  # padding, as in a real trie node
    return (hidden, weight, ids), {}


def cuda_time_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    """Median of per-call CUDA-event times (W is larger than L2, so no cache flush needed)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cuda_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak memory allocated during one call, above what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak


def cpu_time_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def max_diff(a: HeadOutput, b: HeadOutput) -> dict[str, float]:
    out = {}
    for f in ("cand_logprobs", "entropy", "grammar_mass"):
        x, y = getattr(a, f), getattr(b, f)
        if x is None or y is None:
            continue
        fin = torch.isfinite(x) & torch.isfinite(y)
        out[f] = float((x[fin] - y[fin]).abs().max()) if bool(fin.any()) else 0.0
    return out


def sweep_configs(n_pos: int) -> list[Any]:
    from judgelm.scoring.triton_head import HeadKernelConfig as K

    if n_pos <= 64:
        bp = 16 if n_pos <= 16 else (32 if n_pos <= 32 else 64)
        return [
            K(bp, 128, 64, None, 4, 4, 0),
            K(bp, 64, 64, None, 4, 4, 0),
            K(bp, 128, 128, None, 4, 3, 0),
            K(bp, 256, 64, None, 8, 3, 0),
            K(bp, 128, 64, None, 8, 4, 0),
            K(max(bp, 32), 128, 64, None, 4, 4, 1),
        ]
    return [
        K(128, 128, 64, None, 8, 3, 1),
        K(128, 128, 64, None, 8, 4, 1),
        K(128, 256, 64, None, 8, 3, 1),
        K(64, 128, 64, None, 4, 4, 0),
        K(128, 64, 64, None, 8, 3, 0),
        K(256, 128, 64, None, 8, 3, 1),
        K(128, 128, 64, 2 * 132, 8, 3, 1),
    ]


def bench_cuda(args: argparse.Namespace) -> list[dict[str, Any]]:
    from judgelm.scoring.triton_head import pick_config, verdict_head_triton

    torch.backends.cuda.matmul.allow_tf32 = False  # the reference must be true fp32
    rows = []
    for n_pos, vocab, n_hid in GPU_SHAPES:
        pos, kw = make_inputs(n_pos, vocab, n_hid, torch.bfloat16, DEVICE)
        cfg = pick_config(n_pos, vocab, torch.bfloat16, pos[0].device)

        def kernel(cfg=cfg, pos=pos, kw=kw) -> HeadOutput:
            return verdict_head_triton(*pos, **kw, config=cfg, validate=False)

        def kernel_validated(pos=pos, kw=kw) -> HeadOutput:
            return verdict_head_triton(*pos, **kw)

        def naive(pos=pos, kw=kw) -> HeadOutput:
            return naive_head(*pos, **kw)

        diff = max_diff(kernel(), verdict_head_reference(*pos, **kw))
        t_kernel = cuda_time_ms(kernel, args.warmup, args.iters)
        t_valid = cuda_time_ms(kernel_validated, args.warmup, args.iters)
        t_naive = cuda_time_ms(naive, args.warmup, args.iters)
        m_kernel, m_naive = cuda_peak_bytes(kernel), cuda_peak_bytes(naive)
        flops = 2 * n_pos * vocab * n_hid
        w_bytes = vocab * n_hid * 2
        row: dict[str, Any] = {
            "P": n_pos, "V": vocab, "H": n_hid, "C": N_CAND, "dtype": "bfloat16",
            "kernel_ms": t_kernel, "kernel_validated_ms": t_valid, "naive_ms": t_naive,
            "speedup": t_naive / t_kernel,
            "kernel_peak_bytes": m_kernel, "naive_peak_bytes": m_naive,
            "memory_ratio": m_naive / max(m_kernel, 1),
            "kernel_tflops": flops / t_kernel / 1e9,
            "kernel_weight_gbps": w_bytes / t_kernel / 1e6,
            "max_abs_diff_vs_reference": diff,
            "config": asdict(cfg),
        }  # fmt: skip
        if args.sweep:
            best = (t_kernel, asdict(cfg))
            for alt in sweep_configs(n_pos):
                try:
                    ms = cuda_time_ms(
                        lambda alt=alt, pos=pos, kw=kw: verdict_head_triton(*pos, **kw, config=alt, validate=False),
                        args.warmup,
                        args.iters,
                    )
                except Exception as exc:  # e.g. out of shared memory for a large tile
                    print(f"  sweep {alt}: {type(exc).__name__}", file=sys.stderr)
                    continue
                if ms < best[0]:
                    best = (ms, asdict(alt))
            row["sweep_best_ms"], row["sweep_best_config"] = best
        rows.append(row)
        print_row(row, cuda=True)
        del pos, kw
        torch.cuda.empty_cache()
    return rows


def bench_cpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n_pos, vocab, n_hid in CPU_SHAPES:
        pos, kw = make_inputs(n_pos, vocab, n_hid, torch.float32, "cpu")
        t_ref = cpu_time_ms(lambda pos=pos, kw=kw: verdict_head_reference(*pos, **kw), 1, 3)
        t_naive = cpu_time_ms(lambda pos=pos, kw=kw: naive_head(*pos, **kw), 1, 3)
        diff = max_diff(verdict_head_reference(*pos, **kw), naive_head(*pos, **kw))
        row = {
            "P": n_pos, "V": vocab, "H": n_hid, "C": N_CAND, "dtype": "float32",
            "reference_ms": t_ref, "naive_ms": t_naive, "speedup": t_naive / t_ref,
            "max_abs_diff_reference_vs_naive": diff,
        }  # fmt: skip
        rows.append(row)
        print_row(row, cuda=False)
    return rows


def print_header(cuda: bool) -> None:
    if cuda:
        cols = f"{'P':>5} {'V':>6} {'H':>5} | {'kernel ms':>9} {'+valid ms':>9} {'naive ms':>9} "
        cols += f"{'speedup':>7} | {'kernel MB':>9} {'naive MB':>9} {'mem x':>8} | {'TFLOP/s':>7} "
        cols += f"{'W GB/s':>7} | {'max|dlp|':>8}"
    else:
        cols = f"{'P':>5} {'V':>6} {'H':>5} | {'ref ms':>9} {'naive ms':>9} {'speedup':>7}"
    print(cols)
    print("-" * len(cols))


def print_row(r: dict[str, Any], cuda: bool) -> None:
    head = f"{r['P']:>5} {r['V']:>6} {r['H']:>5} | "
    if cuda:
        mb = 1 / 2**20
        line = (
            f"{head}{r['kernel_ms']:>9.3f} {r['kernel_validated_ms']:>9.3f} {r['naive_ms']:>9.3f} "
            f"{r['speedup']:>7.2f} | {r['kernel_peak_bytes'] * mb:>9.1f} "
            f"{r['naive_peak_bytes'] * mb:>9.1f} {r['memory_ratio']:>8.0f} | "
            f"{r['kernel_tflops']:>7.1f} {r['kernel_weight_gbps']:>7.0f} | "
            f"{r['max_abs_diff_vs_reference']['cand_logprobs']:>8.1e}"
        )
        if "sweep_best_ms" in r:
            line += f"  sweep best {r['sweep_best_ms']:.3f} ms {r['sweep_best_config']}"
    else:
        line = f"{head}{r['reference_ms']:>9.2f} {r['naive_ms']:>9.2f} {r['speedup']:>7.2f}"
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--sweep", action="store_true", help="also time alternative configs")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    meta: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if cuda else (platform.processor() or "cpu"),
        "cuda": cuda,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        meta["triton"] = None
    if cuda:
        if meta["triton"] is None:
            print("triton is not installed: the kernel cannot be benchmarked", file=sys.stderr)
            return 1
        print(f"{meta['device']}  torch {meta['torch']}  triton {meta['triton']}")
        print_header(cuda=True)
        rows = bench_cuda(args)
    else:
        print(
            "The Triton kernel needs a CUDA GPU; timing the torch reference vs the naive path "
            "on small CPU shapes instead (fp32)."
        )
        print_header(cuda=False)
        rows = bench_cpu(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
