"""Does a trained multimodal judge use the image? Train one on the synthetic shapes task set,
then measure its agreement with the truth on held-out images, with the image shown, withheld
(a blank grey image) and swapped for another scene's (same question).

The judge: a random-init Llama (the LLaMA tokenizer; no pretrained weights exist offline)
trained from scratch together with the ``mlp2x_gelu`` projector, in front of a tiny open_clip
tower (``--tower``; random init, trained too unless ``--freeze-tower``), with
`judgelm.vision.train` (= `judgelm.train`'s recipe: swap augmentation, loss on the judgment
only). Evaluation goes through ``Judge.from_pretrained(<saved judge>).judge(...)`` (logit
scoring by default): the real load, batching and scoring path. A tied or abstained verdict
counts as a disagreement.

The run reported in benchmarks/RESULTS.md ("Image judging"; 9 min on a shared 2-core CPU)::

    python benchmarks/image_withheld.py --out /tmp/iw-f --tasks red_present --modes image_single \
        --train 6000 --test 300 --epochs 5 --hidden 128 --layers 2 --batch-size 32 --lr 2e-3 \
        --vision-lr 2e-3 --freeze-tower --tower judgelm-shapes-vit-16 --threads 2

Smoke test: ``python benchmarks/image_withheld.py --out /tmp/iw --train 60 --test 30 --epochs 1``.

Writes ``<out>/results.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script from a checkout: make `judgelm` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judgelm import Judge
from judgelm.data.images import generate_image_records, write_image_jsonl
from judgelm.io import read_samples
from judgelm.modalities.text import load_tokenizer
from judgelm.train import TrainConfig
from judgelm.vision import SHAPES_TOWER, SHAPES_TOWER_16, build_vision_judge
from judgelm.vision.evaluate import CONDITIONS, withheld_comparison
from judgelm.vision.train import VisionTrainOptions, train_vision_judge

ROOT = Path(__file__).resolve().parents[1]
TEST_SEED_OFFSET = 1000  # held-out scenes: another seed, so no train image or record repeats


def _llm(tokenizer: Any, args: argparse.Namespace) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 32,
        num_key_value_heads=args.hidden // 32,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(args.seed)
    return LlamaForCausalLM(config)


def _table(results: dict[str, Any]) -> str:
    conds = [c for c in CONDITIONS if c in results]
    keys = sorted(results[conds[0]]["agreement"], key=lambda k: (k != "all", k))
    lines = ["| subset | " + " | ".join(conds) + " |", "|---" * (len(conds) + 1) + "|"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{100 * results[c]['agreement'][k]:.1f}" for c in conds) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=4800, help="training records")
    p.add_argument("--test", type=int, default=600, help="held-out records")
    p.add_argument("--epochs", type=float, default=4.0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--vision-lr", type=float, default=5e-3, help="learning rate of the tower and projector")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--projector", default="mlp2x_gelu")
    p.add_argument("--tower", default=SHAPES_TOWER, choices=(SHAPES_TOWER, SHAPES_TOWER_16))
    p.add_argument("--freeze-tower", action="store_true", help="keep the random tower fixed")
    p.add_argument(
        "--answer-loss", action="store_true", help="auxiliary loss on the answers' tokens (see VisionTrainOptions)"
    )
    p.add_argument("--tasks", default="count,left_of,color")
    p.add_argument("--modes", default="image_pairwise,image_single")
    p.add_argument("--scoring", default="logits", choices=("text", "logits"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokenizer", default=str(ROOT / "tests" / "assets" / "llama-tokenizer"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    tasks = args.tasks.split(",")
    start = time.perf_counter()

    # ---- data: train and held-out scenes --------------------------------------------------------
    modes = args.modes.split(",")
    train_recs = generate_image_records(args.train, out / "data", seed=args.seed, tasks=tasks, modes=modes)
    test_recs = generate_image_records(
        args.test, out / "data", seed=args.seed + TEST_SEED_OFFSET, tasks=tasks, modes=modes
    )
    train_path = write_image_jsonl(out / "data" / "train.jsonl", train_recs)
    test_path = write_image_jsonl(out / "data" / "test.jsonl", test_recs)

    # ---- the judge, trained -----------------------------------------------------------------------
    tokenizer = load_tokenizer(args.tokenizer)
    model, tok = build_vision_judge(
        _llm(tokenizer, args), tokenizer, tower=args.tower, projector=args.projector, seed=args.seed
    )
    cfg = TrainConfig(
        data=(str(train_path),),
        output_dir=str(out / "judge"),
        model="random-init-llama",
        from_scratch=True,
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        warmup_ratio=0.03,
        max_length=1024,
        p_swap=0.5,
        seed=args.seed,
        logging_steps=25,
        use_cpu=True,
        quiet=False,
        training_args={"save_strategy": "no", "disable_tqdm": True},
    )
    result = train_vision_judge(
        model,
        tok,
        cfg,
        options=VisionTrainOptions(
            train_tower=not args.freeze_tower, vision_learning_rate=args.vision_lr, answer_loss=args.answer_loss
        ),
    )
    trained_s = time.perf_counter() - start

    # ---- held-out evaluation through Judge.from_pretrained --------------------------------------
    judge = Judge.from_pretrained(str(out / "judge"), device="cpu")
    samples = [r.sample for r in read_samples(test_path) if r.sample is not None]
    results = withheld_comparison(judge, samples, scoring=args.scoring, seed=args.seed)
    report = {
        "command": "python benchmarks/image_withheld.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": vars(args),
        "train": {"records": args.train, "steps": result.global_step, "loss": result.train_loss, "seconds": trained_s},
        "test_records": len(samples),
        "eval_seconds": time.perf_counter() - start - trained_s,
        "results": results,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()},
    }
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(_table(results))
    print(
        f"train {trained_s:.0f} s ({result.global_step} steps, loss {result.train_loss:.3f}); "
        f"eval {report['eval_seconds']:.0f} s; {out / 'results.json'}"
    )
    return report


if __name__ == "__main__":
    main()
