"""A synthetic, verifiable image+text judge task set, drawn with pillow.

Each record is a small scene of coloured shapes on white, a question whose answer can only be
read off the image, candidate answers (one right, one wrong, worded identically but for the
fact), and the teacher judgment in the JudgeLM grammar:

- ``count``:   "How many red circles are there in the image?" — 1..4 targets among distractors
  that share the colour or the kind (so counting needs both).
- ``left_of``: "Which shape is to the left of the square?" — the wrong answer names the shape
  that is to its right, so both candidates are in the picture.
- ``color``:   "What color is the triangle?" — the wrong colour is another shape's.
- ``solo_color``: "What color is the circle?" about a scene with that one shape (no binding of
  colour to kind needed; not in the default `TASKS`, see `ALL_TASKS`).
- ``red_present``: "Is there a red shape in the image?" (1-3 bigger shapes of distinct colours,
  red in half of the scenes). The graded answer is always the claim "Yes, there is a red shape in the
  image." (``image_single``), so whether it is right depends on the image alone: the simplest
  verifiable judgment a judge can only make by looking (POPE-style object presence). Pairwise
  records show the "Yes" and the "No" answer. Not in the default `TASKS`.

Without the image the two candidates are symmetric (the right and the wrong fact are drawn from
the same distribution), so a judge that ignores the image agrees with the truth about half the
time; a judge that reads the image can do better. Records use the native JSONL layout (image
paths relative to the JSONL file) with ``mode`` ``image_pairwise`` (``judgment`` "9 2\\n..."
or "2 9\\n...") or ``image_single`` (no gold answer: ``judgment`` "9\\n..." or "2\\n...").
Extra fields: ``task``, ``truth`` (what the image shows), ``true_label`` (pairwise: 1 if
answer 1 is right, -1 if answer 2 is) / ``correct`` (single).

Seeded and deterministic: record ``i`` depends only on ``(seed, i)``.

    python -m judgelm.data.images --n 2000 --seed 0 --out data/shapes-train
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ALL_TASKS",
    "COLORS",
    "KINDS",
    "TASKS",
    "ImageTask",
    "Scene",
    "Shape",
    "draw_task",
    "generate_image_records",
    "make_record",
    "write_image_jsonl",
]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 47),
    "green": (40, 160, 60),
    "blue": (40, 90, 225),
    "yellow": (235, 190, 25),
}
KINDS: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
TASKS: tuple[str, ...] = ("count", "left_of", "color")
ALL_TASKS: tuple[str, ...] = (*TASKS, "solo_color", "red_present")
RED_CLAIM = "Yes, there is a red shape in the image."
NO_RED_CLAIM = "No, there is no red shape in the image."
MODES: tuple[str, ...] = ("image_pairwise", "image_single")
RIGHT_SCORE, WRONG_SCORE = "9", "2"


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    x: float  # centre, pixels
    y: float
    r: float  # half the side / the radius


@dataclass(frozen=True)
class Scene:
    size: int
    shapes: tuple[Shape, ...]

    def draw(self) -> Any:
        """The scene as an RGB PIL image (white background)."""
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (self.size, self.size), (255, 255, 255))
        pen = ImageDraw.Draw(image)
        for s in self.shapes:
            fill = COLORS[s.color]
            box = (s.x - s.r, s.y - s.r, s.x + s.r, s.y + s.r)
            if s.kind == "circle":
                pen.ellipse(box, fill=fill)
            elif s.kind == "square":
                pen.rectangle(box, fill=fill)
            elif s.kind == "triangle":
                h = s.r * math.sqrt(3) / 2
                pen.polygon([(s.x, s.y - s.r), (s.x - s.r, s.y + h), (s.x + s.r, s.y + h)], fill=fill)
            elif s.kind == "diamond":
                pen.polygon([(s.x, s.y - s.r), (s.x + s.r, s.y), (s.x, s.y + s.r), (s.x - s.r, s.y)], fill=fill)
            else:
                raise ValueError(f"unknown shape {s.kind!r}")
        return image


@dataclass(frozen=True)
class ImageTask:
    """One question about one scene, with a right and a wrong answer."""

    task: str
    scene: Scene
    question: str
    right: str
    wrong: str
    truth: str  # what the image shows, in words (used in the teacher's explanation)


def _place(
    rng: random.Random, size: int, placed: Sequence[Shape], r: float, x_range: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """A centre for a shape of radius ``r`` that keeps 2 px clear of the others and the border."""
    lo, hi = x_range or (r + 1, size - r - 1)
    for _ in range(200):
        x, y = rng.uniform(lo, hi), rng.uniform(r + 1, size - r - 1)
        if all(math.hypot(x - s.x, y - s.y) >= r + s.r + 2 for s in placed):
            return x, y
    return None


def _scene(
    rng: random.Random, size: int, wanted: Sequence[tuple[str, str]], min_r: float, max_r: float
) -> Scene | None:
    shapes: list[Shape] = []
    for kind, color in wanted:
        r = rng.uniform(min_r, max_r)
        pos = _place(rng, size, shapes, r)
        if pos is None:
            return None
        shapes.append(Shape(kind, color, pos[0], pos[1], r))
    rng.shuffle(shapes)  # drawing order carries no information
    return Scene(size, tuple(shapes))


def _plural(n: int, color: str, kind: str) -> str:
    return f"There is 1 {color} {kind}." if n == 1 else f"There are {n} {color} {kind}s."


def _count_task(rng: random.Random, size: int, r: tuple[float, float]) -> ImageTask | None:
    kind, color = rng.choice(KINDS), rng.choice(list(COLORS))
    n = rng.randint(1, 4)
    wrong_n = rng.choice([k for k in range(1, 5) if k != n])
    distractors = []
    for _ in range(rng.randint(1, 3)):  # same colour other kind, or same kind other colour
        if rng.random() < 0.5:
            distractors.append((rng.choice([k for k in KINDS if k != kind]), color))
        else:
            distractors.append((kind, rng.choice([c for c in COLORS if c != color])))
    scene = _scene(rng, size, [(kind, color)] * n + distractors, *r)
    if scene is None:
        return None
    return ImageTask(
        "count",
        scene,
        f"How many {color} {kind}s are there in the image?",
        _plural(n, color, kind),
        _plural(wrong_n, color, kind),
        f"the image shows {n} {color} {kind}{'' if n == 1 else 's'}",
    )


def _left_of_task(rng: random.Random, size: int, r: tuple[float, float]) -> ImageTask | None:
    left, right = rng.sample([k for k in KINDS if k != "square"], 2)
    rad = [rng.uniform(*r) for _ in range(3)]
    # Three columns: left shape, square, right shape; rows are free.
    third = size / 3
    shapes: list[Shape] = []
    for col, kind in enumerate((left, "square", right)):
        pos = _place(rng, size, shapes, rad[col], (col * third + rad[col] + 1, (col + 1) * third - rad[col] - 1))
        if pos is None:
            return None
        shapes.append(Shape(kind, rng.choice(list(COLORS)), pos[0], pos[1], rad[col]))
    return ImageTask(
        "left_of",
        Scene(size, tuple(shapes)),
        "Which shape is to the left of the square?",
        f"The {left} is to the left of the square.",
        f"The {right} is to the left of the square.",
        f"the {left} is to the left of the square and the {right} is to its right",
    )


def _color_task(rng: random.Random, size: int, r: tuple[float, float]) -> ImageTask | None:
    kinds = rng.sample(KINDS, rng.randint(2, 3))
    colors = rng.sample(list(COLORS), len(kinds))
    scene = _scene(rng, size, list(zip(kinds, colors, strict=True)), *r)
    if scene is None:
        return None
    target, color = kinds[0], colors[0]
    wrong = rng.choice(colors[1:])
    return ImageTask(
        "color",
        scene,
        f"What color is the {target}?",
        f"The {target} is {color}.",
        f"The {target} is {wrong}.",
        f"the {target} is {color}",
    )


def _solo_color_task(rng: random.Random, size: int, r: tuple[float, float]) -> ImageTask | None:
    kind, color = rng.choice(KINDS), rng.choice(list(COLORS))
    wrong = rng.choice([c for c in COLORS if c != color])
    scene = _scene(rng, size, [(kind, color)], *r)
    if scene is None:
        return None
    return ImageTask(
        "solo_color",
        scene,
        f"What color is the {kind}?",
        f"The {kind} is {color}.",
        f"The {kind} is {wrong}.",
        f"the {kind} is {color}",
    )


def _red_present_task(rng: random.Random, size: int, r: tuple[float, float]) -> ImageTask | None:
    present = rng.random() < 0.5
    others = [c for c in COLORS if c != "red"]
    n = rng.randint(1, 3)
    colors = (["red"] if present else []) + rng.sample(others, n - 1 if present else n)
    scene = _scene(rng, size, [(rng.choice(KINDS), c) for c in colors], *r)
    if scene is None:
        return None
    right, wrong = (RED_CLAIM, NO_RED_CLAIM) if present else (NO_RED_CLAIM, RED_CLAIM)
    truth = "the image shows a red shape" if present else "the image shows no red shape"
    return ImageTask("red_present", scene, "Is there a red shape in the image?", right, wrong, truth)


# Shape radius as a fraction of the canvas; red_present draws bigger shapes (a few patches each).
_RADII: dict[str, tuple[float, float]] = {"red_present": (0.12, 0.18)}

_MAKERS = {
    "count": _count_task,
    "left_of": _left_of_task,
    "color": _color_task,
    "solo_color": _solo_color_task,
    "red_present": _red_present_task,
}


def draw_task(rng: random.Random, task: str, size: int = 64) -> ImageTask:
    """A random instance of ``task`` (one of `ALL_TASKS`) on a ``size`` x ``size`` canvas."""
    if task not in _MAKERS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(ALL_TASKS)}")
    lo, hi = _RADII.get(task, (0.07, 0.10))
    r = (size * lo, size * hi)
    for _ in range(100):
        item = _MAKERS[task](rng, size, r)
        if item is not None:
            return item
    raise RuntimeError(f"could not place the shapes of a {task!r} scene on {size}px")


def make_record(item: ImageTask, image_path: str, rng: random.Random, mode: str, record_id: str) -> dict[str, Any]:
    """The native JSONL training/eval record of ``item`` in ``mode``."""
    base = {"id": record_id, "mode": mode, "question": item.question, "images": [image_path], "task": item.task}
    base["truth"] = item.truth
    if mode == "image_pairwise":
        right_first = rng.random() < 0.5
        answers = [item.right, item.wrong] if right_first else [item.wrong, item.right]
        scores = (RIGHT_SCORE, WRONG_SCORE) if right_first else (WRONG_SCORE, RIGHT_SCORE)
        good, bad = (1, 2) if right_first else (2, 1)
        judgment = (
            f"{scores[0]} {scores[1]}\n{item.truth[0].upper()}{item.truth[1:]}, so Assistant {good} is right "
            f"and Assistant {bad} is wrong."
        )
        return {**base, "answers": answers, "judgment": judgment, "true_label": 1 if right_first else -1}
    if mode == "image_single":
        correct = rng.random() < 0.5
        if item.task == "red_present":  # always the "Yes" claim: right exactly when red is shown
            correct = item.right == RED_CLAIM
        answer = item.right if correct else item.wrong
        verdict = "right" if correct else "wrong"
        score = RIGHT_SCORE if correct else WRONG_SCORE
        judgment = f"{score}\n{item.truth[0].upper()}{item.truth[1:]}, so the answer is {verdict}."
        return {**base, "answers": [answer], "judgment": judgment, "correct": correct}
    raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")


def generate_image_records(
    n: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    size: int = 64,
    tasks: Sequence[str] = TASKS,
    modes: Sequence[str] = MODES,
    start: int = 0,
) -> list[dict[str, Any]]:
    """Draw records ``start .. start+n-1``: PNGs go to ``out_dir/images/``, records name them
    relative to ``out_dir`` (write the JSONL there). Task and mode cycle with the index."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(start, start + n):
        rng = random.Random(f"judgelm-images\0{seed}\0{i}")
        task = tasks[i % len(tasks)]
        mode = modes[(i // len(tasks)) % len(modes)]
        item = draw_task(rng, task, size)
        rel = f"images/s{seed}-{i:06d}.png"
        item.scene.draw().save(out / rel, format="PNG")
        records.append(make_record(item, rel, rng, mode, f"s{seed}-{i:06d}"))
    return records


def write_image_jsonl(path: str | Path, records: Sequence[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", required=True, help="folder for records.jsonl and images/")
    args = parser.parse_args(argv)
    records = generate_image_records(
        args.n, args.out, seed=args.seed, size=args.size, tasks=args.tasks.split(","), modes=args.modes.split(",")
    )
    path = write_image_jsonl(Path(args.out) / "records.jsonl", records)
    print(f"wrote {len(records)} records to {path}")


if __name__ == "__main__":
    main()
