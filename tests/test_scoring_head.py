"""The verdict head: reference vs brute force, Triton kernel vs reference, memory.

* Reference tests run everywhere (CPU, fp32 math, compared with a float64 brute force).
* Kernel-in-the-interpreter tests run the Triton kernel on CPU tensors with
  ``TRITON_INTERPRET=1``. That variable is read when triton is imported and turns every
  ``@triton.jit`` function into an interpreted one, so it must not leak into this pytest
  process (other test modules import torch/triton and would get interpreted kernels, or a
  triton imported before the variable was set would silently compile instead). The cases run
  in one child interpreter that reads the case specs from stdin and prints JSON errors.
* An ahead-of-time compile for sm_90 (no GPU needed) checks that the kernels compile for an
  H100, the main dot is a pipelined wgmma, and nothing spills registers.
* GPU tests (marker ``gpu``) are skipped without CUDA. On an H100::

      python -m pytest tests/test_scoring_head.py -q -rs
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from judgelm.scoring.head import (
    HeadOutput,
    _reference_impl,
    naive_head,
    verdict_head,
    verdict_head_reference,
)

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("cand_logprobs", "entropy", "grammar_mass")
HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")


# ----------------------------------------------------------------------------- helpers


def make_case(
    *,
    n_pos: int,
    vocab: int,
    n_hid: int,
    n_cand: int,
    dtype: torch.dtype = torch.float32,
    bias: bool = False,
    special: bool = False,  # padding, an all-padded row, a repeat, boundary ids
    logit_scale: float = 3.0,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Random inputs with LM-like logits (std ~ ``logit_scale``)."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n_pos, n_hid, generator=g)
    weight = torch.randn(vocab, n_hid, generator=g) * (logit_scale / math.sqrt(n_hid))
    ids = torch.randint(0, vocab, (n_pos, n_cand), generator=g)
    if special and n_pos >= 4 and n_cand >= 3:
        ids[0, n_cand // 2 :] = -1  # padding tail
        ids[1, :] = -1  # all candidates padded
        ids[2, 1] = ids[2, 0]  # a candidate repeated
        ids[3, 0], ids[3, -1] = 0, vocab - 1  # vocabulary boundaries
    out: dict[str, Any] = {
        "hidden": hidden.to(dtype).to(device),
        "weight": weight.to(dtype).to(device),
        "cand_ids": ids.to(device),
        "bias": (torch.randn(vocab, generator=g) * 0.5).to(dtype).to(device) if bias else None,
    }
    return out


def brute_force(hidden: Tensor, weight: Tensor, cand_ids: Tensor, bias: Tensor | None = None) -> dict[str, Tensor]:
    """float64, one position and one candidate at a time; shares no code with the library.
    Besides the `HeadOutput` fields it reports ``lse`` (for the tolerance of large logits)."""
    n_pos, n_cand = cand_ids.shape
    w = weight.double().cpu()
    res: dict[str, list[Any]] = {f: [] for f in (*FIELDS, "lse")}
    for p in range(n_pos):
        z = w @ hidden[p].double().cpu()
        if bias is not None:
            z = z + bias.double().cpu()
        zmax = z.max()
        lse = zmax + torch.log(torch.exp(z - zmax).sum())
        logp = z - lse
        res["lse"].append(lse.item())
        res["entropy"].append(-(torch.exp(logp) * logp).sum().item())
        lps, seen, mass = [], set(), 0.0
        for c in range(n_cand):
            i = int(cand_ids[p, c])
            if i < 0:
                lps.append(-math.inf)
                continue
            lp = logp[i].item()
            lps.append(lp)
            if i in seen:
                continue
            seen.add(i)
            mass += math.exp(lp)
        res["cand_logprobs"].append(lps)
        res["grammar_mass"].append(mass)
    return {
        f: torch.tensor(v, dtype=torch.float64).reshape(n_pos, n_cand)
        if f == "cand_logprobs"
        else torch.tensor(v, dtype=torch.float64)
        for f, v in res.items()
    }


def assert_head_close(got: HeadOutput, want: HeadOutput | dict[str, Tensor], *, atol: float, rtol: float) -> None:
    for f in FIELDS:
        a = getattr(got, f)
        b = want[f] if isinstance(want, dict) else getattr(want, f)
        if b is None:
            assert a is None, f
            continue
        assert a is not None and a.dtype == torch.float32, f
        torch.testing.assert_close(a.double().cpu(), b.double().cpu(), atol=atol, rtol=rtol, equal_nan=True, msg=f)


def _args(case: dict[str, Any]) -> tuple[tuple[Tensor, Tensor, Tensor], dict[str, Any]]:
    pos = (case["hidden"], case["weight"], case["cand_ids"])
    return pos, {"bias": case["bias"]}


# ----------------------------------------------------------------------------- reference

REF_CASES = {
    "basic": {"n_pos": 6, "vocab": 97, "n_hid": 16, "n_cand": 5},
    "padding_repeat_bounds": {"n_pos": 6, "vocab": 97, "n_hid": 16, "n_cand": 5, "special": True},
    "bias": {"n_pos": 5, "vocab": 131, "n_hid": 24, "n_cand": 4, "bias": True},
    "bias_and_special": {
        "n_pos": 9, "vocab": 150, "n_hid": 20, "n_cand": 7, "bias": True, "special": True,
    },
    "bf16_inputs": {"n_pos": 4, "vocab": 90, "n_hid": 32, "n_cand": 4, "dtype": torch.bfloat16},
    "fp16_inputs": {
        "n_pos": 4, "vocab": 90, "n_hid": 32, "n_cand": 4, "dtype": torch.float16, "bias": True
    },
    "peaked_large_logits": {"n_pos": 5, "vocab": 80, "n_hid": 16, "n_cand": 4, "logit_scale": 60.0},
}  # fmt: skip


@pytest.mark.parametrize("name", list(REF_CASES))
def test_reference_matches_brute_force(name: str) -> None:
    case = make_case(**REF_CASES[name], seed=list(REF_CASES).index(name))
    pos, kw = _args(case)
    got = verdict_head_reference(*pos, **kw)
    want = brute_force(*pos, **kw)
    # 1e-6 for ordinary logits. fp32 itself rounds a logit z by |z| * 2^-24, so cases with
    # |z| >> 10 (the peaked one reaches ~200) get a proportionally wider band.
    scale = max(1.0, float(want["lse"].abs().max()) / 10)
    assert_head_close(got, want, atol=1e-6 * scale, rtol=1e-6)
    # The dispatcher picks the reference on CPU and gives the same numbers.
    assert_head_close(verdict_head(*pos, **kw), got, atol=0, rtol=0)
    assert_head_close(verdict_head(*pos, **kw, backend="torch"), got, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reference_chunking_is_exact(dtype: torch.dtype) -> None:
    """Tiny budgets force 2-position chunks and 7-row weight upcasts; results don't change."""
    case = make_case(
        n_pos=9, vocab=61, n_hid=10, n_cand=4, dtype=dtype, bias=True, special=True, seed=3,
    )  # fmt: skip
    pos, kw = _args(case)
    chunked = _reference_impl(*pos, **kw, max_logits=2 * 61, max_weight=7 * 10)
    assert_head_close(chunked, brute_force(*pos, **kw), atol=1e-6, rtol=1e-6)
    assert_head_close(chunked, verdict_head_reference(*pos, **kw), atol=1e-6, rtol=1e-6)


def test_reference_without_entropy_is_the_same_otherwise() -> None:
    """``with_entropy=False`` (what the scorer asks for) drops only the entropy."""
    case = make_case(n_pos=7, vocab=90, n_hid=12, n_cand=4, bias=True, special=True, seed=5)
    pos, kw = _args(case)
    full = verdict_head_reference(*pos, **kw)
    lean = verdict_head(*pos, **kw, with_entropy=False)
    assert lean.entropy is None
    for field in ("cand_logprobs", "grammar_mass"):
        torch.testing.assert_close(getattr(lean, field), getattr(full, field), atol=0, rtol=0, equal_nan=True)


def test_semantics_by_hand() -> None:
    """Padding -> -inf, a repeat counted once."""
    vocab, n_hid = 4, 4
    weight = torch.eye(vocab, n_hid)  # logits = hidden
    hidden = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]]))
    ids = torch.tensor([[3, 3, 1, -1], [-1, -1, -1, -1]])
    out = verdict_head_reference(hidden, weight, ids)
    lp = out.cand_logprobs
    assert lp[0, 0] == lp[0, 1] and math.isclose(lp[0, 0].exp().item(), 0.4, rel_tol=1e-6)
    assert lp[0, 3] == -math.inf and bool((lp[1] == -math.inf).all())
    assert math.isclose(out.grammar_mass[0].item(), 0.6, rel_tol=1e-6)  # {3, 1}, not 3 twice
    assert out.grammar_mass[1] == 0
    assert math.isclose(out.entropy[1].item(), math.log(4), rel_tol=1e-6)


def test_naive_matches_reference_in_fp32() -> None:
    case = make_case(
        n_pos=6, vocab=120, n_hid=16, n_cand=5, bias=True, special=True, seed=11,
    )  # fmt: skip
    pos, kw = _args(case)
    naive, ref = naive_head(*pos, **kw), verdict_head_reference(*pos, **kw)
    assert_head_close(naive, ref, atol=1e-5, rtol=1e-5)


def test_empty_inputs() -> None:
    w = torch.randn(10, 4)
    out = verdict_head_reference(torch.randn(0, 4), w, torch.zeros(0, 3, dtype=torch.long))
    assert out.cand_logprobs.shape == (0, 3) and out.grammar_mass.shape == (0,)
    out = verdict_head_reference(torch.randn(2, 4), w, torch.zeros(2, 0, dtype=torch.long))
    assert out.cand_logprobs.shape == (2, 0)
    assert bool((out.grammar_mass == 0).all())


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"cand_ids": torch.tensor([[0, 10]])}, ValueError),  # id == V
        ({"cand_ids": torch.tensor([[0, -2]])}, ValueError),  # below the padding value
        ({"cand_ids": torch.tensor([[0.0, 1.0]])}, TypeError),
        ({"bias": torch.zeros(9)}, ValueError),
        ({"hidden": torch.randn(1, 5)}, ValueError),  # H mismatch
        ({"hidden": torch.randn(1, 4, dtype=torch.float64)}, TypeError),
    ],
)
def test_input_validation(change: dict[str, Any], error: type[Exception]) -> None:
    args: dict[str, Any] = {
        "hidden": torch.randn(1, 4), "weight": torch.randn(10, 4),
        "cand_ids": torch.tensor([[0, 9]]),
    }  # fmt: skip
    args.update(change)
    with pytest.raises(error):
        verdict_head_reference(**args)


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend"):
        verdict_head(torch.randn(1, 4), torch.randn(10, 4), torch.tensor([[0]]), backend="cuda")  # type: ignore[arg-type]


def test_triton_backend_refuses_cpu_tensors_without_interpreter() -> None:
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("this process runs the interpreter")
    with pytest.raises(RuntimeError, match="CUDA"):
        verdict_head(torch.randn(1, 4), torch.randn(10, 4), torch.tensor([[0]]), backend="triton")


# ----------------------------------------------------------------------------- interpreter

# (spec, HeadKernelConfig fields [block_p, block_v, block_k, n_splits, warps, stages, v_axis],
# or None for the heuristic). Block sizes are small so that the cases cover several position
# blocks, several vocabulary splits with several tiles each (the online rescaling), ragged and
# even last vocabulary tiles, ragged and even H, a ragged last position block, and both tile
# orientations.
INTERP_CASES: dict[str, tuple[dict[str, Any], list[int] | None]] = {
    "fp32_splits_ragged": (
        {"n_pos": 21, "vocab": 301, "n_hid": 40, "n_cand": 5, "special": True},
        [16, 32, 16, 3, 4, 1, 0],
    ),
    "fp32_splits_ragged_p_major": (
        {"n_pos": 21, "vocab": 301, "n_hid": 40, "n_cand": 5, "special": True, "bias": True},
        [16, 32, 16, 3, 4, 1, 1],
    ),
    "bf16_bias": (
        {"n_pos": 6, "vocab": 257, "n_hid": 64, "n_cand": 6, "dtype": "bfloat16", "bias": True,
         "special": True},
        [16, 64, 32, 2, 4, 1, 0],
    ),
    "bf16_p_major_even": (
        {"n_pos": 40, "vocab": 256, "n_hid": 64, "n_cand": 6, "dtype": "bfloat16", "bias": True,
         "special": True},
        [32, 64, 32, 2, 4, 1, 1],
    ),
    "fp16_single_split": (
        {"n_pos": 5, "vocab": 200, "n_hid": 48, "n_cand": 3, "dtype": "float16", "special": True},
        [16, 64, 16, 1, 4, 1, 0],
    ),
    "one_tile_per_split": (
        {"n_pos": 3, "vocab": 130, "n_hid": 32, "n_cand": 16},
        [16, 32, 32, 100, 4, 1, 0],
    ),
    "heuristic_config_bf16": (
        {"n_pos": 4, "vocab": 300, "n_hid": 64, "n_cand": 4, "dtype": "bfloat16", "bias": True},
        None,
    ),
    "one_candidate_peaked": (
        {"n_pos": 4, "vocab": 96, "n_hid": 16, "n_cand": 1, "logit_scale": 60.0},
        [16, 32, 16, 2, 4, 1, 1],
    ),
    "mixed_dtypes_strided_int32": (
        {"n_pos": 5, "vocab": 100, "n_hid": 32, "n_cand": 4, "dtype": "mixed", "strided": True,
         "int32_ids": True, "special": True},
        [16, 32, 16, 2, 4, 1, 0],
    ),
    "underflowing_mass": (
        {"n_pos": 2, "vocab": 64, "n_hid": 16, "n_cand": 2, "underflow": True},
        [16, 32, 16, 2, 4, 1, 0],
    ),
    "empty_positions": ({"n_pos": 0, "vocab": 64, "n_hid": 16, "n_cand": 3}, None),
    "many_candidates": (
        {"n_pos": 3, "vocab": 500, "n_hid": 24, "n_cand": 40, "special": True},
        [16, 128, 16, 2, 4, 1, 0],
    ),
}  # fmt: skip

INTERP_SCRIPT = r"""
import json, math, sys
import numpy as np
import torch

np.seterr(all="ignore")  # the interpreter evaluates both sides of tl.where, like the GPU does
try:
    import triton
    import triton.language as tl

    @triton.jit
    def _probe(x_ptr, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        tl.store(x_ptr + offs, tl.load(x_ptr + offs) * 2.0)

    x = torch.ones(16)
    _probe[(1,)](x, BLOCK=16)
    assert bool((x == 2).all()), "interpreted kernel gave a wrong result"
except Exception as exc:  # no triton, or no interpreter on this platform
    print(json.dumps({"skip": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)

import importlib.util

sys.path.insert(0, sys.argv[1])
from judgelm.scoring.head import verdict_head, verdict_head_reference
from judgelm.scoring.triton_head import HeadKernelConfig

# make_case comes from this test file, loaded by path (a site-packages `tests` could shadow it)
spec = importlib.util.spec_from_file_location("_scoring_head_cases", sys.argv[2])
cases_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cases_mod)
make_case = cases_mod.make_case

results = {}
for name, (spec, cfg) in json.load(sys.stdin).items():
    spec = dict(spec)
    dtype = spec.pop("dtype", "float32")
    strided = spec.pop("strided", False)
    int32_ids = spec.pop("int32_ids", False)
    underflow = spec.pop("underflow", False)
    case = make_case(**spec, dtype=torch.float32 if dtype == "mixed" else getattr(torch, dtype))
    if dtype == "mixed":  # fp32 hidden, bf16 weight: the kernel upcasts both operands
        case["weight"] = case["weight"].bfloat16()
    if strided:  # rows of a wider buffer: stride(0) != H
        n, h = case["hidden"].shape
        case["hidden"] = torch.cat([case["hidden"], torch.zeros(n, 8)], 1)[:, :h]
    if int32_ids:
        case["cand_ids"] = case["cand_ids"].int()
    if underflow:  # candidates ~1e3 nats below the top: p = 0 in fp32, log-probs still exact
        case["hidden"][:, :] = 0.0
        case["weight"][:, :] = 0.0
        case["weight"][5, 0], case["weight"][6, 0], case["weight"][7, 0] = 500.0, -500.0, -500.5
        case["hidden"][:, 0] = 1.0
        case["cand_ids"][:, 0], case["cand_ids"][:, 1] = 6, 7
    pos = (case["hidden"], case["weight"], case["cand_ids"])
    kw = {"bias": case["bias"]}
    ref = verdict_head_reference(*pos, **kw)
    if cfg is None:
        got = verdict_head(*pos, **kw, backend="triton")
    else:
        from judgelm.scoring.triton_head import verdict_head_triton
        got = verdict_head_triton(*pos, **kw, config=HeadKernelConfig(*cfg))
    out = {}
    for f in ("cand_logprobs", "entropy", "grammar_mass"):
        a, b = getattr(got, f), getattr(ref, f)
        same_pattern = bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.isinf(), b.isinf())
                            and torch.equal(a[a.isinf()], b[b.isinf()]))
        fin = torch.isfinite(b) & torch.isfinite(a)
        err = (a[fin] - b[fin]).abs().max().item() if fin.any() else 0.0
        rel = ((a[fin] - b[fin]).abs() / b[fin].abs().clamp(min=1)).max().item() if err else 0.0
        out[f] = {"pattern_ok": same_pattern, "max_abs": err, "max_rel": rel,
                  "shape_ok": a.shape == b.shape, "dtype": str(a.dtype)}
    out["logprobs"] = got.cand_logprobs.tolist()
    results[name] = out
print(json.dumps({"results": results}))
"""


@pytest.fixture(scope="module")
def interpreter_results() -> dict[str, Any]:
    """Run every interpreter case in one child process (TRITON_INTERPRET=1 stays in there)."""
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", INTERP_SCRIPT, str(REPO), str(Path(__file__).resolve())],
        input=json.dumps(INTERP_CASES),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in payload:
        pytest.skip(f"the Triton interpreter cannot run here: {payload['skip']}")
    return payload["results"]


@pytest.mark.parametrize("name", list(INTERP_CASES))
def test_kernel_matches_reference_in_interpreter(name: str, interpreter_results: dict[str, Any]) -> None:
    """Inputs are upcast exactly on both sides; only fp32 summation order differs."""
    results = dict(interpreter_results[name])
    logprobs = results.pop("logprobs")
    if name == "underflowing_mass":  # grammar mass is 0 in fp32, yet the log-probs are exact
        assert results["grammar_mass"]["max_abs"] == 0
        assert logprobs == [pytest.approx([-1000.0, -1000.5], abs=1e-3)] * 2
    for field, r in results.items():
        assert r["shape_ok"] and r["dtype"] == "torch.float32", (name, field, r)
        assert r["pattern_ok"], (name, field, "NaN/inf positions differ")
        assert r["max_rel"] < 1e-5, (name, field, r)


# ----------------------------------------------------------------------------- sm_90 compile

SM90_CASES = {
    # name: (kernel, constexprs beyond the defaults below, num_warps, num_stages)
    "partials_small_p": ("partials", {"BLOCK_P": 16, "V_AXIS": 0}, 4, 4),
    "partials_large_p": ("partials", {"BLOCK_P": 128, "V_AXIS": 1}, 8, 3),
    "finish": ("finish", {}, 4, 3),
}


@pytest.mark.parametrize("name", list(SM90_CASES))
def test_kernel_compiles_for_h100_without_spills(name: str) -> None:
    """Ahead-of-time compile for sm_90 (no GPU needed): the main kernel must use wgmma with
    cp.async-pipelined loads, and no kernel may spill registers (ptxas -v). A spill here once
    came from picking candidate logits out of the tile, which is why that moved to the finish
    kernel."""
    triton = pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("kernels are interpreted in this process")
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        ptxas = triton.knobs.nvidia.ptxas.path
    except Exception as exc:  # another triton layout: nothing to check against
        pytest.skip(f"no ahead-of-time CUDA toolchain in this triton: {exc}")
    import subprocess as sp

    from judgelm.scoring import triton_head as th

    kind, consts, warps, stages = SM90_CASES[name]
    if kind == "partials":
        fn = th._partials_kernel
        ptr = ["h_ptr", "w_ptr", "b_ptr", "part_m_ptr", "part_s_ptr", "part_t_ptr"]
        types = ["*bf16", "*bf16", "*bf16", "*fp32", "*fp32", "*fp32"]
        ints = ["P", "V", "H", "stride_hp", "stride_wv", "tiles_per_split"]
        const = {"HAS_BIAS": True, "EVEN_K": True, "EVEN_V": True,
                 "DOT_F32": False, "DOT_PRECISION": "ieee", "BLOCK_V": 128, "BLOCK_K": 64,
                 **consts}  # fmt: skip
        aligned = [*ptr, "V", "H", "stride_hp", "stride_wv"]  # what a real launch sees
    else:
        fn = th._finish_kernel
        ptr = ["part_m_ptr", "part_s_ptr", "part_t_ptr", "h_ptr", "w_ptr", "b_ptr", "ids_ptr",
               "lp_ptr", "ent_ptr", "mass_ptr"]  # fmt: skip
        types = ["*fp32"] * 3 + ["*bf16"] * 3 + ["*i64"] + ["*fp32"] * 3
        ints = ["P", "V", "H", "C", "NS", "stride_hp", "stride_wv", "stride_ip"]
        const = {"HAS_BIAS": True, "BLOCK_P": 8, "BLOCK_S": 16, "BLOCK_C": 16, "BLOCK_K": 64}
        aligned = [*ptr, "V", "H", "C", "stride_hp", "stride_wv", "stride_ip"]
    sig = dict(zip(ptr, types, strict=True))
    sig.update(dict.fromkeys(ints, "i32"))
    sig.update(dict.fromkeys(const, "constexpr"))
    names = list(sig)
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in aligned}
    try:
        src = ASTSource(fn, sig, const, attrs=attrs)
    except TypeError as exc:
        pytest.skip(f"ASTSource API differs in this triton: {exc}")
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": stages})
    ttgir = kernel.asm["ttgir"]
    if kind == "partials":
        assert "warp_group_dot" in ttgir, "the main kernel's dot is not a Hopper wgmma"
        assert "async_copy_global_to_local" in ttgir, "the K loop is not pipelined"
    ptx = Path(os.environ.get("TMPDIR", "/tmp")) / f"judgelm_head_{name}_{os.getpid()}.ptx"
    ptx.write_text(kernel.asm["ptx"])
    try:
        res = sp.run([ptxas, "-arch=sm_90a", "-v", str(ptx), "-o", os.devnull],
                     capture_output=True, text=True, check=True)  # fmt: skip
    finally:
        ptx.unlink(missing_ok=True)
    assert "Used" in res.stderr, res.stderr
    assert " 0 bytes spill stores" in res.stderr, res.stderr


# ----------------------------------------------------------------------------- GPU

# Tolerance for bf16 inputs, kernel vs reference: both sides read the same bf16 values and
# every product of two bf16 numbers is exact in fp32; both accumulate in fp32. Only summation
# order (tensor-core k-blocking vs cuBLAS) and exp2/log2 approximations (~2 ulp) differ, so the
# logits agree to ~1e-5 relative. 2e-3 absolute on log-probabilities (logits here reach ~20)
# is ~10x that worst case and still 10-50x tighter than one bf16 rounding of the logits
# (eps 2^-8: 0.04-0.08 at |z| = 10-20), i.e. it catches any path that rounds logits to 16 bits.
GPU_ATOL = {"cand_logprobs": 2e-3, "entropy": 2e-3, "grammar_mass": 2e-4}


def _assert_gpu_close(got: HeadOutput, want: HeadOutput, scale: float = 1.0) -> None:
    for f in FIELDS:
        a, b = getattr(got, f), getattr(want, f)
        torch.testing.assert_close(a, b, atol=GPU_ATOL[f] * scale, rtol=1e-4 * scale, equal_nan=True, msg=f)


@pytest.fixture
def no_tf32():
    """The reference's fp32 matmul must be true fp32 on the GPU."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("n_hid", [576, 4096])
@pytest.mark.parametrize("vocab", [32_000, 49_152])
@pytest.mark.parametrize("n_pos", [1, 3, 16, 17, 64, 100, 1024, 4096])
def test_kernel_matches_reference_gpu(n_pos: int, vocab: int, n_hid: int, no_tf32) -> None:
    from judgelm.scoring.triton_head import verdict_head_triton

    seed = n_pos * 7 + vocab + n_hid
    case = make_case(
        n_pos=n_pos, vocab=vocab, n_hid=n_hid, n_cand=12, dtype=torch.bfloat16,
        bias=seed % 2 == 0, special=True, logit_scale=4.0, seed=seed, device="cuda",
    )  # fmt: skip
    pos, kw = _args(case)
    got = verdict_head_triton(*pos, **kw)
    _assert_gpu_close(got, verdict_head_reference(*pos, **kw))
    assert bool((got.grammar_mass <= 1 + 1e-5).all())


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_kernel_other_dtypes_gpu(dtype: torch.dtype, no_tf32) -> None:
    from judgelm.scoring.triton_head import verdict_head_triton

    case = make_case(
        n_pos=77, vocab=32_000, n_hid=576, n_cand=16, dtype=dtype, bias=True, special=True,
        seed=5, device="cuda",
    )  # fmt: skip
    pos, kw = _args(case)
    # fp32 runs an IEEE fp32 dot: agreement is to fp32 rounding, so 10x tighter.
    scale = 0.1 if dtype == torch.float32 else 1.0
    _assert_gpu_close(verdict_head_triton(*pos, **kw), verdict_head_reference(*pos, **kw), scale)


@pytest.mark.gpu
@gpu
def test_auto_dispatches_to_kernel_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import judgelm.scoring.triton_head as th

    calls = []
    real = th.verdict_head_triton
    monkeypatch.setattr(th, "verdict_head_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    case = make_case(n_pos=2, vocab=1000, n_hid=64, n_cand=3, dtype=torch.bfloat16, device="cuda")
    pos, kw = _args(case)
    verdict_head(*pos, **kw)
    assert calls == [1]


@pytest.mark.gpu
@gpu
def test_kernel_never_allocates_positions_by_vocab() -> None:
    from judgelm.scoring.triton_head import verdict_head_triton

    n_pos, vocab = 4096, 32_000
    case = make_case(
        n_pos=n_pos, vocab=vocab, n_hid=4096, n_cand=16, dtype=torch.bfloat16, device="cuda",
    )  # fmt: skip
    pos, kw = _args(case)
    verdict_head_triton(*pos, **kw)  # compile outside the measurement

    def peak_extra(fn) -> int:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        del out
        return torch.cuda.max_memory_allocated() - base

    pv_fp32 = n_pos * vocab * 4  # 524 MB
    kernel = peak_extra(lambda: verdict_head_triton(*pos, **kw))
    naive = peak_extra(lambda: naive_head(*pos, **kw))
    reference = peak_extra(lambda: verdict_head_reference(*pos, **kw))
    assert naive >= pv_fp32  # the measurement does see a [P, V] tensor when there is one
    # Kernel: partial triples + outputs, well under 1 MB here.
    assert kernel < pv_fp32 // 50, f"kernel peak {kernel} bytes vs [P, V] fp32 {pv_fp32}"
    # Reference: position chunks of <= 2**25 logits, two alive at once, + weight upcast chunks.
    assert reference < pv_fp32, f"reference peak {reference} bytes vs [P, V] fp32 {pv_fp32}"
