"""Judge both orders and see whether the verdict depends on which answer came first."""

import sys

from judgelm import Judge, Sample

judge = Judge.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
samples = [
    Sample("How many legs does a spider have?", ("Six.", "Eight."), reference="Eight."),
    Sample("Give a synonym for 'happy'.", ("Sad.", "Joyful.")),
]
for v in judge.judge(samples, swap=True):
    print(v.order_scores, "->", v.scores, "consistent" if v.consistent else "order-dependent")
