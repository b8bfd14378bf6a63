"""The reference metrics, pinned on hand-computed cases (and the reference's quirks), plus the
extras judgelm adds: kappa, the confusion matrix, bootstrap intervals, abstain accounting."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from judgelm.eval import (
    cohen_kappa,
    confusion_matrix,
    evaluate,
    evaluate_labels,
    label_metrics,
    label_of,
    reference_metrics,
    truth_label,
)
from judgelm.eval.metrics import macro_prf
from judgelm.eval.stats import _macro_from_matrices, bootstrap_intervals, pearson, spearman
from judgelm.formats.parsing import parse_scores


def official(text: str):
    return parse_scores(text, 2, official=True)


def approx(x: float) -> object:
    return pytest.approx(x, abs=1e-12)


# ---- labels -------------------------------------------------------------------------------------
def test_label_of_is_strict_and_failures_are_ties():
    assert label_of((8, 7.5)) == 1
    assert label_of((7.5, 8)) == -1
    assert label_of((7, 7.0)) == 0
    assert label_of(None) == 0  # a failed parse: the reference's [-1, -1] is a tie
    assert label_of((-1, -1)) == 0
    assert label_of((float("nan"), 3)) == 0  # both comparisons False -> tie, as in the reference
    assert label_of((-1, 5)) == -1  # a real -1 in a prediction is just a score


def test_decimal_near_ties():
    assert label_of(official("7.50 7.5")) == 0  # same float
    assert label_of(official("7.5 7.49")) == 1
    assert label_of((8.000000001, 8)) == 1  # threshold T = 0.0: no tolerance
    assert label_of((0.1 + 0.2, 0.3)) == 1  # float arithmetic is taken as is, like the reference
    assert label_of(official("10 10.0\nsame")) == 0


def test_label_of_rejects_non_pairs():
    with pytest.raises(ValueError, match="pair"):
        label_of((1, 2, 3))


def test_truth_label_drops_failures_and_any_minus_one():
    assert truth_label((8, 2)) == 1
    assert truth_label(None) is None
    assert truth_label((-1, -1)) is None
    assert truth_label((-1, 5)) is None  # reference filter: s1 == -1 or s2 == -1
    assert truth_label((5, -1.0)) is None
    assert truth_label((float("nan"), 3)) == 0  # nan survives the filter and is a tie


# ---- reference metrics ---------------------------------------------------------------------------
def test_macro_over_present_labels_only():
    # no ties anywhere: the macro average is over {1, -1}, not over three classes
    m = label_metrics([1, 1, -1, -1], [1, -1, -1, -1])
    assert m["accuracy"] == approx(3 / 4)
    # class 1: P 1/1, R 1/2, F 2/3; class -1: P 2/3, R 2/2, F 4/5
    assert m["precision"] == approx((1 + 2 / 3) / 2)
    assert m["recall"] == approx((0.5 + 1) / 2)
    assert m["f1"] == approx((2 / 3 + 4 / 5) / 2)
    assert set(m) == {"accuracy", "precision", "recall", "f1"}  # no swapped: no consistency keys


def test_class_only_in_prediction_scores_zero():
    # -1 is predicted once but never true: P 0 (tp 0 of 1), R 0 (zero division), F 0
    m = label_metrics([1, 1, 0], [1, -1, 0])
    assert m["accuracy"] == approx(2 / 3)
    assert m["precision"] == approx((1 + 1 + 0) / 3)
    assert m["recall"] == approx((0.5 + 1 + 0) / 3)
    assert m["f1"] == approx((2 / 3 + 1 + 0) / 3)


def test_all_prediction_failures_are_ties_and_consistent():
    m = reference_metrics([(9, 1), (1, 9), (5, 5)], [None, None, None], [None, None, None])
    assert m["accuracy"] == approx(1 / 3)
    # only class 0 predicted: P 1/3, R 1, F 2*1/(3+1); classes 1 and -1 score 0
    assert m["precision"] == approx(1 / 9)
    assert m["recall"] == approx(1 / 3)
    assert m["f1"] == approx(0.5 / 3)
    assert m["consistency"] == 1.0  # two failures count as consistent
    assert m["total_bias"] == 0.0
    assert m["total_num"] == 3


def test_all_truth_failures_leave_nothing():
    m = reference_metrics([None, (-1, -1), (-1, 4)], [(9, 1), (1, 9), None], [(1, 9), None, None])
    assert m["total_num"] == 0
    for key in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "consistency",
        "perfer_before_rate",
        "delta_bias",
    ):
        assert math.isnan(m[key]), key


def test_single_class():
    m = reference_metrics([(9, 1)] * 3, [(8, 2), (7, 6), (10, 1)])
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0, 1.0)


def test_ties_only():
    m = reference_metrics([(5, 5), (7, 7)], [(6, 6), official("7.0 7")], [(3, 3), (6, 6)])
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"], m["consistency"]) == (
        1,
        1,
        1,
        1,
        1,
    )


def test_consistency_and_position_rates():
    truth = [(9, 1), (9, 1), (1, 9), (5, 5), (5, 5), None]
    pred = [(9, 2), (8, 3), (3, 8), (5, 5), None, (9, 1)]
    swapped = [(2, 9), (8, 3), (3, 8), (7, 3), None, (9, 1)]  # slot order of the swapped prompt
    m = reference_metrics(truth, pred, swapped)
    # flipped normal vs swapped: -1/-1 same; -1/1 -> before; 1/-1 -> after; 0/1 -> before; 0/0 same
    assert m["total_num"] == 5  # the record with unreadable truth is dropped from all lists
    assert m["consistency"] == approx(2 / 5)
    assert m["perfer_before_rate"] == approx(2 / 5)
    assert m["perfer_after_rate"] == approx(1 / 5)
    assert m["delta_bias"] == approx(1 / 5)
    assert m["total_bias"] == approx(3 / 5)
    assert m["total_bias"] == approx(1 - m["consistency"])
    # truth 1,1,-1,0,0 vs pred 1,1,-1,0,0(failure): all right
    assert m["accuracy"] == 1.0


def test_reference_parser_quirks_flow_through():
    truth = [official(t) for t in ("8 2\nok", "-1 5\nreal -1", "nan 3", "error", "2 8")]
    pred = [official(t) for t in ("8, 9", "1 9", "4 4", "9 1", "2 8 ")]
    # truth: 1, dropped(-1), 0(nan), dropped(unparseable), -1
    # pred:  "8, 9" fails -> 0; "4 4" -> 0; "2 8 " (trailing space) fails -> 0
    m = reference_metrics(truth, pred)
    assert m["accuracy"] == approx(1 / 3)  # only the nan tie agrees


def test_lengths_must_match():
    with pytest.raises(ValueError, match="aligned"):
        reference_metrics([(1, 2)], [(1, 2), (2, 1)])


def test_matches_a_transcription_of_the_reference_on_random_cases():
    """Our result equals a line-by-line transcription of the reference loop (sklearn replaced
    by `macro_prf`, which the cases above pin)."""
    pool = ["8 9", "9 8", "7 7", "7.5 7", "-1 5", "nan 3", "8, 9", "8,9", "junk", "-1 -1", "3 3\nx"]
    rng = random.Random(0)

    def ref_parse(text):
        try:
            sp = text.split("\n")[0].replace(",", " ").split(" ")
            if len(sp) == 2:
                return [float(sp[0]), float(sp[1])]
            raise ValueError
        except ValueError:
            return [-1, -1]

    def win(sl):
        return [1 if s[0] - s[1] > 0 else -1 if s[1] - s[0] > 0 else 0 for s in sl]

    for _ in range(300):
        n = rng.randint(1, 9)
        gt, pr, rv = ([rng.choice(pool) for _ in range(n)] for _ in range(3))
        keep = [i for i, g in enumerate(map(ref_parse, gt)) if not (g[0] == -1 or g[1] == -1)]
        if not keep:
            continue
        yt = win([ref_parse(gt[i]) for i in keep])
        yp = win([ref_parse(pr[i]) for i in keep])
        yr = win([ref_parse(rv[i]) for i in keep])
        ours = reference_metrics(
            [official(t) for t in gt], [official(t) for t in pr], [official(t) for t in rv]
        )
        assert ours["accuracy"] == approx(
            sum(a == b for a, b in zip(yt, yp, strict=True)) / len(keep)
        )
        same = sum(-a == b for a, b in zip(yp, yr, strict=True))
        before = sum(-a - b < 0 for a, b in zip(yp, yr, strict=True))
        assert ours["consistency"] == approx(same / len(keep))
        assert ours["perfer_before_rate"] == approx(before / len(keep))
        assert ours["total_num"] == len(keep)


# ---- extras --------------------------------------------------------------------------------------
def test_confusion_matrix_and_kappa_by_hand():
    truth, pred = [1, 1, -1, -1], [1, -1, -1, -1]
    assert confusion_matrix(truth, pred) == ((1, 0, 1), (0, 0, 0), (0, 0, 2))
    # p_o = 3/4; p_e = 1/2*1/4 + 1/2*3/4 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2)
    assert cohen_kappa(truth, pred) == approx(0.5)
    assert cohen_kappa([1, 0, -1], [1, 0, -1]) == approx(1.0)
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))  # one class on both sides: undefined
    assert math.isnan(cohen_kappa([], []))


def test_vectorised_macro_equals_the_reference_definition():
    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(1, 8)
        t = [rng.choice((1, 0, -1)) for _ in range(n)]
        p = [rng.choice((1, 0, -1)) for _ in range(n)]
        got = _macro_from_matrices(np.asarray([confusion_matrix(t, p)]))
        assert [float(g[0]) for g in got] == pytest.approx(list(macro_prf(t, p)), abs=1e-12)


def test_bootstrap_is_seeded_and_degenerate_cases_collapse():
    t = [1, 1, -1, 0, 1, -1, 0, 0, 1, -1]
    p = [1, 0, -1, 0, 1, 1, 0, -1, 1, -1]
    s = [-1, 0, 1, 0, 1, -1, 0, 1, -1, 1]
    a = bootstrap_intervals(t, p, s, resamples=300, seed=7)
    assert a == bootstrap_intervals(t, p, s, resamples=300, seed=7)
    assert set(a) == {"accuracy", "precision", "recall", "f1", "kappa", "consistency"}
    lo, hi = a["accuracy"]
    assert lo <= 0.7 <= hi and 0 <= lo < hi <= 1
    same = bootstrap_intervals([1] * 5, [1] * 5, resamples=50)
    assert same["accuracy"] == (1.0, 1.0)
    assert all(math.isnan(x) for x in same["kappa"])  # undefined in every resample
    with pytest.raises(ValueError):
        bootstrap_intervals(t, p, level=1.5)


def test_evaluate_counts_abstains_apart_from_the_reference_numbers():
    truth = [(8, 2), (2, 8), (5, 5), (7, 1), None]
    pred = [(9, 1), None, (4, 4), None, None]
    reasons = [None, "unparseable", None, "too_long", "too_long"]
    r = evaluate(truth, pred, reasons=reasons, resamples=0)
    assert r.reference == reference_metrics(truth, pred)
    assert r.reference["accuracy"] == approx(2 / 4)  # abstains are ties: wrong on 1 and -1 truths
    assert (r.records, r.dropped_truth, r.total_num) == (5, 1, 4)
    assert r.abstained == 2  # the dropped record's abstain is not counted
    assert r.abstain_reasons == {"too_long": 1, "unparseable": 1}
    assert r.answered_num == 2 and r.answered["accuracy"] == 1.0
    # truth 1, -1, 0, 1 vs judge 1, tie, 0, tie (rows truth 1, 0, -1; columns judge 1, 0, -1)
    assert r.confusion == ((1, 1, 0), (0, 1, 0), (0, 1, 0))
    assert r.intervals == {}
    d = r.to_dict()
    assert d["reference"]["accuracy"] == 0.5 and d["confusion"]["labels"] == [1, 0, -1]


def test_evaluate_answered_subset_needs_both_orders():
    r = evaluate_labels([1, -1, 0], [(9, 1), (1, 9), (5, 5)], [(1, 9), None, (5, 5)], resamples=0)
    assert r.swapped_failures == 1
    assert r.answered_num == 2
    assert r.reference["consistency"] == approx(2 / 3)
    assert r.answered["consistency"] == 1.0
    assert r.to_dict()["reference"]["total_num"] == 3


def test_nan_becomes_null_in_json():
    r = evaluate([None], [(1, 2)], resamples=10)
    d = r.to_dict()
    assert d["reference"]["accuracy"] is None and d["kappa"] is None


def test_correlations():
    assert pearson([1, 2, 3], [2, 4, 6]) == approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == approx(1.0)
    # ties share their average rank: ranks x = 1, 2.5, 2.5, 4
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == approx(pearson([1, 2.5, 2.5, 4], [1, 2, 3, 4]))
