"""``python -m judgelm.data.synthetic -n 5000 -o train.jsonl``: write synthetic judge records."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from judgelm.data.synthetic import SyntheticConfig, iter_records, write_jsonl
from judgelm.data.synthetic.tasks import FAMILIES


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m judgelm.data.synthetic", description=__doc__)
    p.add_argument("-n", type=int, required=True, help="number of records")
    p.add_argument("-o", "--output", required=True, help="output JSONL (JudgeLM-100K layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--start",
        type=int,
        default=0,
        help="index of the first record (held-out sets: a disjoint range or seed)",
    )
    p.add_argument("--answers", type=int, default=2, help="candidates per question (default 2)")
    p.add_argument(
        "--position-bias",
        type=float,
        default=0.0,
        help="P(teacher favours Assistant 1 on a close call)",
    )
    p.add_argument("--bias-margin", type=int, default=1, help="score gap that counts as a close call")
    p.add_argument(
        "--plain-teacher-error",
        type=float,
        default=0.0,
        help="P(plain teacher scores a wrong answer as correct)",
    )
    p.add_argument("--score-noise", type=float, default=0.0, help="P(+-1 on a teacher score)")
    p.add_argument("--brief", action="store_true", help="one short clause per assistant")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated question families")
    args = p.parse_args(argv)
    cfg = SyntheticConfig(
        n_answers=args.answers,
        position_bias=args.position_bias,
        bias_margin=args.bias_margin,
        plain_teacher_error=args.plain_teacher_error,
        score_noise=args.score_noise,
        brief=args.brief,
        families=tuple(f for f in args.families.split(",") if f),
    )
    n = write_jsonl(args.output, iter_records(args.n, seed=args.seed, config=cfg, start=args.start))
    print(f"wrote {n} records to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
