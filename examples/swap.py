"""Judge both orders and see whether the verdict depends on which answer came first."""

import sys

from judgelm import Judge, Sample

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
samples = [
    Sample("How many legs does a spider have?", ("Six.", "Eight."), reference="Eight.", id="spider"),
    Sample("Give a synonym for 'happy'.", ("Sad.", "Joyful."), id="synonym"),
]
for _, v in judge.stream(samples, swap=True):  # each verdict as soon as it is made
    per_order = " | ".join(" ".join(f"{s:.3g}" for s in scores) for scores in v.order_scores if scores)
    print(f"{v}\n  scores per order: {per_order}")
