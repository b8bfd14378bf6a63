"""Calibration: apply, fit on a held-out split, ECE/Brier/NLL, save beside the judge."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from judgelm.calibration import (
    Calibration,
    CalibrationItem,
    calibration_metrics,
    fit_calibration,
    plot_reliability,
    reliability_bins,
)
from judgelm.scoring.scorer import PromptScores

VALUES = tuple(float(v) for v in range(1, 11))
LINES = tuple(itertools.product(range(10), repeat=2))


def overconfident_item(rng: random.Random, accuracy: float = 0.7, sharpness: float = 0.97) -> CalibrationItem:
    """A pairwise verdict that is 97% sure of an outcome that is right 70% of the time."""
    truth = rng.choice([1, -1])
    said = truth if rng.random() < accuracy else -truth
    agree = [i for i, (a, b) in enumerate(LINES) if (a > b) == (said == 1) and a != b]
    probs = [(1 - sharpness) / (len(LINES) - len(agree))] * len(LINES)
    for i in agree:
        probs[i] = sharpness / len(agree)
    marg = [
        tuple(sum(p for (line, p) in zip(LINES, probs, strict=True) if line[k] == v) for v in range(10))
        for k in range(2)
    ]
    scores = PromptScores(VALUES, tuple(marg), 0.9, "joint", LINES, tuple(probs))
    return CalibrationItem((scores,), ((0, 1),), label=truth)


def test_apply_temperature_and_bias():
    cal = Calibration(2.0)
    out = cal.apply([0.64, 0.36])
    assert out == pytest.approx((0.8 / 1.4, 0.6 / 1.4))  # sqrt, renormalised
    assert Calibration().apply([0.2, 0.8]) == (0.2, 0.8)
    biased = Calibration(1.0, (math.log(2), 0.0))
    assert biased.apply([0.5, 0.5]) == pytest.approx((2 / 3, 1 / 3))
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_reliability_bins_and_ece_by_hand():
    bins = reliability_bins([(0.95, True), (0.95, False), (0.55, True)])
    assert bins == [(0.55, 1.0, 1), (0.95, 0.5, 2)]
    item = overconfident_item(random.Random(0), accuracy=1.0)
    metrics, _ = calibration_metrics([item], Calibration(), "preference")
    p_first = sum(p for (a, b), p in zip(LINES, item.results[0].line_probs, strict=True) if a > b)
    right = (
        p_first
        if item.label == 1
        else 1 - p_first - sum(p for (a, b), p in zip(LINES, item.results[0].line_probs, strict=True) if a == b)
    )
    assert metrics["nll"] == pytest.approx(-math.log(right))
    assert metrics["ece"] == pytest.approx(1 - right)


def test_fit_lowers_heldout_ece_on_overconfident_judge(tmp_path):
    rng = random.Random(1)
    items = [overconfident_item(rng) for _ in range(300)]
    report = fit_calibration(items, target="preference", heldout=0.3, seed=0)
    assert report.n_heldout == 90 and report.n_fit == 210
    assert report.calibration.temperature > 1.5  # softens an overconfident judge
    assert report.after["ece"] < report.before["ece"] / 2
    assert report.after["nll"] < report.before["nll"]
    assert report.after["brier"] < report.before["brier"]
    png = plot_reliability(report, tmp_path / "reliability.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_fit_scores_target_with_bias():
    rng = random.Random(2)
    items = []
    for _ in range(120):
        truth = rng.choice([3.0, 8.0])
        said = 8 if rng.random() < 0.8 else 3  # the judge leans to 8
        probs = [0.005] * 10
        probs[said - 1] = 1 - 0.045
        ps = PromptScores(VALUES, (tuple(probs),), 0.9, "joint", tuple((v,) for v in range(10)), tuple(probs))
        items.append(CalibrationItem((ps,), ((0,),), scores=(truth,)))
    report = fit_calibration(items, target="scores", fit_bias=True)
    assert report.after["nll"] < report.before["nll"]
    assert report.calibration.value_bias is not None and len(report.calibration.value_bias) == 10


def test_calibration_changes_verdict_distributions(tiny_judge):
    from judgelm import Sample
    from judgelm.calibration import Calibration as Cal

    s = Sample("Q?", ("a", "b"))
    raw = tiny_judge.judge([s])[0]
    try:
        tiny_judge.calibration = Cal(3.0)
        hot = tiny_judge.judge([s])[0]
        uncal = tiny_judge.judge([s], calibrated=False)[0]
    finally:
        tiny_judge.calibration = Cal()
    assert uncal.distributions == raw.distributions
    h_raw = sum(d.entropy for d in raw.distributions)
    assert sum(d.entropy for d in hot.distributions) > h_raw  # a higher temperature flattens


def test_calibrate_command_saves_beside_the_weights(tmp_path, tiny_model_dir, capsys):
    import json
    import shutil

    from judgelm import Judge
    from judgelm.cli import main

    model = tmp_path / "judge"
    shutil.copytree(tiny_model_dir, model)
    data = tmp_path / "labelled.jsonl"
    with data.open("w") as f:
        for i in range(12):
            f.write(
                json.dumps({"id": i, "question": f"q{i}", "answers": [f"a{i}", f"b{i}"], "label": [1, -1, 0][i % 3]})
                + "\n"
            )
    args = [
        "calibrate",
        "--model",
        str(model),
        "--data",
        str(data),
        "--save",
        "--device",
        "cpu",
        "--plot",
        str(tmp_path / "r.png"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fitted T" in out and "ECE" in out
    saved = json.loads((model / "judge.json").read_text())["calibration"]
    assert saved["method"] == "temperature" and saved["temperature"] > 0
    assert Judge.from_pretrained(str(model), device="cpu").calibration.temperature == saved["temperature"]
