"""A new user's first minutes on the demo judge, timed: the README run, the discuss example, the
first verdict's latency, the model load with and without the converted-weights cache, and
judgelm's judging against Hugging Face ``generate`` + parse on the same samples in the same run.

    python benchmarks/first_minutes.py --repeats 3 --json /tmp/first_minutes.json

Rows (median of ``--repeats``; commands run as a user runs them, in fresh processes):
- ``README run``: ``judgelm judge examples/samples.jsonl`` wall time, model load included
  (target < 10 s on a quiet 2-core machine);
- ``discuss example``: ``python examples/discuss.py`` wall time (target < 15 s);
- ``load (cached)``: ``Judge.from_pretrained(None)`` in a fresh process, imports excluded, from
  the converted cache; ``load (GGUF)``: the same with the cache off (``--cold``, ~20 s);
- ``first verdict``: from the model loaded to the first verdict written to the output file,
  through the CLI's judging loop (target < 3 s);
- in-process, interleaved (``--repeats`` rounds of each): ``judgelm (logits)`` = the CLI's
  judging loop on the samples (streamed, verdicts read from the logits), ``judgelm (text)`` = the
  same with ``--scoring text``, ``HF generate + parse`` = the peer: HF ``generate`` greedy for the
  score line (one left-padded batch, the ``--max-new-tokens`` a score line needs) then
  ``Formatter.parse``, as a user would write it.

The machine, torch's CPU capability and the dtype chosen are printed with the table; the JSON
holds every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "samples.jsonl"


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


_LOAD = """
import time, torch, transformers
start = time.perf_counter()
from judgelm import Judge
judge = Judge.from_pretrained(None, device="cpu")
print(time.perf_counter() - start, next(judge.model.parameters()).dtype)
"""


def _load_seconds(env: dict[str, str]) -> tuple[float, str]:
    out = subprocess.run(
        [sys.executable, "-c", _LOAD], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), out[1]


def _peer(judge: Any, samples: list[Any]) -> list[Any]:
    """HF ``generate`` for each sample's score line (one left-padded batch), then the format's parser."""
    import torch

    from judgelm.formats import get_format, infer_mode

    fmts = [get_format(s.mode or infer_mode(s)) for s in samples]
    prompts = [f.render(s) for f, s in zip(fmts, samples, strict=True)]
    tok, model = judge.tokenizer, judge.model
    ids = [tok(p.text)["input_ids"] for p in prompts]
    width = max(map(len, ids))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batch = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    new = 4 * max(p.spec.n_scores for p in prompts) + 4
    with torch.inference_mode():
        out = model.generate(
            input_ids=batch, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=pad
        )
    texts = tok.batch_decode(out[:, width:], skip_special_tokens=True)
    return [f.parse(t.split("\n")[0] + "\n", p) for f, t, p in zip(fmts, texts, prompts, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="also time a load from the GGUF file (cache off, ~20 s)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from judgelm import Judge
    from judgelm.cli.judge_loop import judge_records
    from judgelm.engine.loading import native_bf16_instructions
    from judgelm.io import ResultWriter, read_samples
    from judgelm.options import JudgeOptions

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cli = [sys.executable, "-m", "judgelm", "judge", str(SAMPLES), "--quiet"]
    discuss = [sys.executable, "examples/discuss.py"]
    _wall(cli, env)  # first run: converts and caches the demo weights (not timed)
    rows: dict[str, list[float]] = {"README run": [], "discuss example": [], "load (cached)": []}
    dtype = ""
    for _ in range(args.repeats):
        rows["README run"].append(_wall(cli, env))
        rows["discuss example"].append(_wall(discuss, env))
        seconds, dtype = _load_seconds(env)
        rows["load (cached)"].append(seconds)
    if args.cold:
        rows["load (GGUF)"] = [_load_seconds({**env, "JUDGELM_CACHE_DIR": "off"})[0]]

    judge = Judge.from_pretrained(None, device="cpu")
    records = [r for r in read_samples(str(SAMPLES)) if r.sample is not None]
    samples = [r.sample for r in records]

    def loop(options: JudgeOptions) -> float:
        """The CLI's judging loop writing to a file; returns the seconds to the first verdict written."""
        first: list[float] = []
        with tempfile.TemporaryDirectory() as tmp, ResultWriter(Path(tmp) / "out.jsonl") as writer:
            write, start = writer.write, time.perf_counter()

            def timed_write(obj: Any, **kw: Any) -> None:
                write(obj, **kw)
                if not first:
                    first.append(time.perf_counter() - start)

            writer.write = timed_write  # type: ignore[method-assign]
            judge_records(judge, records, options, writer=writer, progress=False)
        return first[0]

    timed = {
        "judgelm (logits)": lambda: loop(JudgeOptions()),
        "judgelm (text)": lambda: loop(JudgeOptions(scoring="text")),
        "HF generate + parse": lambda: _peer(judge, samples),
    }
    for fn in timed.values():  # warm-up
        fn()
    rows.update({name: [] for name in timed})
    rows["first verdict"] = []
    for _ in range(args.repeats):  # interleaved: a load drift on a shared machine hits every row alike
        for name, fn in timed.items():
            start = time.perf_counter()
            first = fn()
            rows[name].append(time.perf_counter() - start)
            if name == "judgelm (logits)":
                rows["first verdict"].append(first)

    med = {k: statistics.median(v) for k, v in rows.items() if v}
    peer = med["HF generate + parse"]
    info = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16: {native_bf16_instructions() or 'no'}, threads {torch.get_num_threads()}",
        "dtype": dtype,
        "load_average": os.getloadavg(),
        "samples": len(samples),
    }
    print(f"\n{info['machine']}; demo judge in {dtype}; {len(samples)} samples; load average {info['load_average']}")
    print("| row | median s | all (s) | vs HF generate + parse |")
    print("|---|---|---|---|")
    for name, values in rows.items():
        if not values:
            continue
        ratio = f"{peer / med[name]:.2f}x" if name in timed else ""
        print(f"| {name} | {med[name]:.2f} | {' '.join(f'{v:.2f}' for v in values)} | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "rows": rows, "median": med}, indent=2))


if __name__ == "__main__":
    main()
