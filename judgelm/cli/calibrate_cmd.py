"""``judgelm calibrate --model M --data LABELLED.jsonl``: fit a temperature to a judge's verdict
distributions on labelled data, report NLL / Brier / ECE on a held-out split before and after,
and (``--save``) write it to ``judge.json`` beside the weights, where `Judge.from_pretrained`
picks it up."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from judgelm.cli.flags import add_model_flags, load_judge


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help="fit a temperature to a judge's verdict distributions", description=__doc__)
    add_model_flags(p)
    p.add_argument("--data", required=True, help="labelled JSONL (samples with `label` or teacher `score`/`text`)")
    p.add_argument(
        "--target",
        choices=["preference", "scores"],
        default="preference",
        help="what the labels are (default: preference)",
    )
    p.add_argument("--heldout", type=float, default=0.3, help="share of items held out for the before/after report")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--swap", action="store_true", help="calibrate the order-averaged distributions")
    p.add_argument("--bias", action="store_true", help="also fit a per-score-value bias (scores target)")
    p.add_argument("--limit", type=int, help="use the first N items")
    p.add_argument("--save", action="store_true", help="write the calibration into the model folder's judge.json")
    p.add_argument("--plot", help="reliability diagram PNG path")
    p.add_argument("--report", help="JSON report path")
    return p


def run(args: argparse.Namespace) -> int:
    from judgelm.calibration import calibrate_judge, plot_reliability
    from judgelm.eval.labelled import read_labelled

    items = read_labelled(args.data, limit=args.limit).items
    judge = load_judge(args)
    report = calibrate_judge(
        judge, items, target=args.target, heldout=args.heldout, seed=args.seed, swap=args.swap, fit_bias=args.bias
    )
    print(f"fitted T = {report.calibration.temperature:.4g} on {report.n_fit} items; held-out {report.n_heldout}:")
    print(f"{'':8}{'NLL':>10}{'Brier':>10}{'ECE':>10}{'acc':>10}")
    for name, m in (("raw", report.before), ("calib.", report.after)):
        print(f"{name:8}{m['nll']:>10.4f}{m['brier']:>10.4f}{m['ece']:>10.4f}{m['accuracy']:>10.4f}")
    if args.plot:
        plot_reliability(report, args.plot)
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.save:
        if not args.model or not Path(args.model).is_dir():
            print("judgelm: --save needs --model to be a local folder", file=sys.stderr)
            return 2
        judge.calibration = report.calibration
        judge.config.save(args.model)
        print(f"saved to {Path(args.model) / 'judge.json'}")
    return 0
