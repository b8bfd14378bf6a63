"""The synthetic shapes task set: deterministic, and its truth is what the picture shows."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from judgelm.data.images import (
    ALL_TASKS,
    COLORS,
    KINDS,
    RED_CLAIM,
    TASKS,
    draw_task,
    generate_image_records,
    write_image_jsonl,
)
from judgelm.data.records import record_from_dict
from judgelm.formats import get_format
from judgelm.train.encode import full_judgment
from judgelm.vision.train import load_image_records


def test_records_are_deterministic_and_prefix_stable(tmp_path: Path):
    a = generate_image_records(6, tmp_path / "a", seed=3, size=32)
    b = generate_image_records(3, tmp_path / "b", seed=3, size=32)
    assert a[:3] == b
    for rec in b:
        rel = rec["images"][0]
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert generate_image_records(3, tmp_path / "c", seed=4, size=32) != b


@pytest.mark.parametrize("task", ALL_TASKS)
def test_the_right_answer_is_what_the_scene_shows(task):
    rng = random.Random(0)
    for _ in range(40):
        item = draw_task(rng, task, 64)
        shapes = item.scene.shapes
        image = item.scene.draw()
        for s in shapes:  # every shape is drawn in its colour at its centre
            assert image.getpixel((round(s.x), round(s.y))) == COLORS[s.color]
        assert item.right != item.wrong
        if task == "count":
            words = item.question.split()
            color, kind = words[2], words[3][:-1]
            n = sum(s.color == color and s.kind == kind for s in shapes)
            assert str(n) in item.right.split() and str(n) not in item.wrong.split()
        elif task == "left_of":
            square = next(s for s in shapes if s.kind == "square")
            left = next(k for k in KINDS if item.right.startswith(f"The {k} "))
            wrong = next(k for k in KINDS if item.wrong.startswith(f"The {k} "))
            assert next(s for s in shapes if s.kind == left).x < square.x < next(s for s in shapes if s.kind == wrong).x
        elif task == "red_present":
            assert len({s.color for s in shapes}) == len(shapes)  # distinct colours
            assert (item.right == RED_CLAIM) == any(s.color == "red" for s in shapes)
        else:
            if task == "solo_color":
                assert len(shapes) == 1
            kind = item.question.removeprefix("What color is the ").removesuffix("?")
            assert item.right == f"The {kind} is {next(s.color for s in shapes if s.kind == kind)}."
            if task == "color":  # the wrong colour is another shape's
                assert any(item.wrong == f"The {kind} is {s.color}." for s in shapes if s.kind != kind)
            else:
                assert item.wrong != item.right and item.wrong.removesuffix(".").split()[-1] in COLORS


def test_records_fit_their_formats_and_read_back_with_resolved_images(tmp_path: Path):
    recs = generate_image_records(12, tmp_path / "d", seed=0, size=32)
    assert {r["mode"] for r in recs} == {"image_pairwise", "image_single"} and {r["task"] for r in recs} == set(TASKS)
    for r in recs:
        record = record_from_dict(r)
        prompt = get_format(r["mode"]).render(record.sample)
        full_judgment(record.judgment, prompt.spec)  # raises if the grammar does not fit
        head = record.judgment.split("\n")[0].split()
        if r["mode"] == "image_pairwise":
            assert (int(head[0]) > int(head[1])) == (r["true_label"] == 1)
        else:
            assert (head == ["9"]) == r["correct"]
    path = write_image_jsonl(tmp_path / "d" / "train.jsonl", recs)
    loaded, errors = load_image_records([path])
    assert not errors and len(loaded) == 12
    assert all(Path(r.sample.images[0]).is_file() for r in loaded)
    assert loaded[0].sample.meta["task"] == recs[0]["task"]


def test_red_present_grades_the_yes_claim_and_is_balanced(tmp_path: Path):
    recs = generate_image_records(60, tmp_path, seed=1, size=32, tasks=("red_present",), modes=("image_single",))
    assert all(r["answers"] == [RED_CLAIM] for r in recs)
    assert 15 < sum(r["correct"] for r in recs) < 45
    for r in recs:
        from PIL import Image

        with Image.open(tmp_path / r["images"][0]) as im:
            has_red = any(px == COLORS["red"] for px in im.convert("RGB").getdata())
        assert has_red == r["correct"]


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        draw_task(random.Random(0), "nope")
