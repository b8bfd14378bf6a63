"""``judgelm eval``: reading reference-format and judgelm-format judgment files, pairing them by id
or by position, and the command's outputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from judgelm.cli import eval_cmd
from judgelm.errors import InvalidSampleError
from judgelm.eval import evaluate_files, read_judgments
from judgelm.io import read_samples, write_results
from judgelm.testing import scripted_judge


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    truth = write_jsonl(
        tmp_path / "truth.jsonl",
        [
            {"question_id": 0, "text": "8 2\nAssistant 1 is better.", "score": [8, 2]},
            {"question_id": 1, "text": "2 8\nAssistant 2 is better."},
            {"question_id": 2, "text": "error"},  # unreadable: dropped
            {"question_id": 3, "text": "6 6\nEqual."},
        ],
    )
    pred = write_jsonl(  # a different line order than the truth
        tmp_path / "pred.jsonl",
        [
            {"question_id": 3, "pred_text": "6 7\n..."},  # -1
            {"question_id": 0, "pred_text": "9 1"},  # 1
            {"question_id": 1, "pred_text": "3, 8"},  # reference parser fails -> tie
            {"question_id": 2, "pred_text": "2 9"},  # -1
        ],
    )
    swapped = write_jsonl(  # as written for the swapped prompts (slot order)
        tmp_path / "swapped.jsonl",
        [
            {"question_id": 0, "pred_text": "1 9"},  # -1: consistent with 1
            {"question_id": 1, "pred_text": "8 3"},  # 1 vs flipped tie -> favours slot 1
            {"question_id": 2, "pred_text": "9 2"},
            {"question_id": 3, "pred_text": "7 6"},  # 1: consistent with -1
        ],
    )
    return {"truth": truth, "pred": pred, "swapped": swapped}


def test_reference_format_by_id(files):
    r, pairs = evaluate_files(files["truth"], files["pred"], files["swapped"], resamples=0)
    # kept: q0 (1 vs 1), q1 (-1 vs tie), q3 (0 vs -1)
    assert r.reference["total_num"] == 3 and r.dropped_truth == 1
    assert r.reference["accuracy"] == pytest.approx(1 / 3)
    assert r.reference["consistency"] == pytest.approx(2 / 3)
    assert r.reference["perfer_before_rate"] == pytest.approx(1 / 3)
    assert r.reference["perfer_after_rate"] == 0
    assert r.abstained == 1 and r.abstain_reasons == {"unparseable": 1}
    assert dict(pairs.unmatched) == {"truth": 0, "pred": 0, "swapped": 0}


def test_reference_format_by_position_pairs_lines(files):
    r, _ = evaluate_files(files["truth"], files["pred"], align_by="position", resamples=0)
    # line k with line k: truth 1, -1, (dropped), 0 vs pred -1, 1, -1 -> nothing agrees
    assert r.reference["accuracy"] == 0.0
    assert "consistency" not in r.reference


def test_position_alignment_cuts_to_the_shortest_file(files, tmp_path):
    short = write_jsonl(tmp_path / "short.jsonl", [{"pred_text": "9 1"}, {"pred_text": "1 9"}])
    r, pairs = evaluate_files(files["truth"], short, align_by="position", resamples=0)
    assert r.records == 2 and r.reference["accuracy"] == 1.0
    assert pairs.unmatched["truth"] == 2


def test_id_alignment_reports_unpaired_records(files, tmp_path):
    partial = write_jsonl(
        tmp_path / "partial.jsonl",
        [{"question_id": 0, "pred_text": "9 1"}, {"question_id": 9, "pred_text": "1 1"}],
    )
    r, pairs = evaluate_files(files["truth"], partial, resamples=0)
    assert r.records == 1 and r.reference["accuracy"] == 1.0
    assert dict(pairs.unmatched) == {"truth": 3, "pred": 1}


def test_duplicate_ids_are_an_error(files, tmp_path):
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"question_id": 0, "pred_text": "9 1"}] * 2)
    with pytest.raises(InvalidSampleError, match=r"duplicate id '0'.*--align position"):
        evaluate_files(files["truth"], dup)


def test_truth_field_option(tmp_path):
    truth = write_jsonl(tmp_path / "t.jsonl", [{"id": "a", "text": "9 1", "text_w_reference": "1 9"}])
    pred = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "pred_text": "1 9"}])
    assert evaluate_files(truth, pred, resamples=0)[0].reference["accuracy"] == 0.0
    assert evaluate_files(truth, pred, truth_field="text_w_reference", resamples=0)[0].reference["accuracy"] == 1.0


def test_judgelm_output_with_swap_carries_its_own_swapped_order(tmp_path):
    """Judge a JudgeLM-dialect file with a scripted judge in both orders, write judgelm's own
    output, and evaluate it against reference-format truth."""
    inputs = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"question_id": k, "question_body": "Q", "answer1_body": a, "answer2_body": b}
            for k, (a, b) in enumerate([("good", "bad"), ("bad", "good"), ("good", "good")])
        ],
    )

    def respond(prompt: str) -> str:
        # a judge that always gives slot 1 a 9 and slot 2 a 5: decisive, and fully position-biased
        return "9 5\nfirst is better"

    records = list(read_samples(inputs))
    verdicts = scripted_judge(respond).judge([r.sample for r in records], swap=True)
    out = tmp_path / "out.jsonl"
    write_results(out, records, verdicts)
    truth = write_jsonl(
        tmp_path / "truth.jsonl",
        [{"question_id": k, "text": t} for k, t in enumerate(["8 2", "2 8", "5 5"])],
    )
    r, _ = evaluate_files(truth, out, resamples=0)
    # normal order: always answer 1 -> right only on q0
    assert r.reference["accuracy"] == pytest.approx(1 / 3)
    # swapped order (slot order): always slot 1 -> flipped normal (-1) minus swapped (1) < 0
    assert r.reference["consistency"] == 0.0
    assert r.reference["perfer_before_rate"] == 1.0
    j = read_judgments(out, role="pred")
    assert j[0].scores == (9.0, 5.0) and j[0].swapped == (9.0, 5.0) and j[0].has_swapped

    # an error line (a record judgelm could not judge) fails in both orders: a tie each time
    with out.open("a") as f:
        f.write(json.dumps({"id": "3", "line": 4, "error": {"message": "bad"}, "input": {}}) + "\n")
    with truth.open("a") as f:
        f.write(json.dumps({"question_id": 3, "text": "5 5"}) + "\n")
    r, _ = evaluate_files(truth, out, resamples=0)
    assert r.reference["accuracy"] == pytest.approx(2 / 4)  # the tie on q3 is right
    assert r.reference["consistency"] == pytest.approx(1 / 4)  # two failures are consistent
    assert r.reference["perfer_before_rate"] == pytest.approx(3 / 4)
    assert r.swapped_failures == 1 and r.abstain_reasons == {"invalid_input": 1}


def test_judgelm_output_abstains_and_error_lines(tmp_path):
    pred = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "id": "a",
                "verdict": {
                    "scores": None,
                    "abstained": True,
                    "reason_code": "too_long",
                    "order_scores": [],
                },
            },
            {
                "id": "b",
                "verdict": {"scores": [7.0, 7.5], "abstained": False, "order_scores": [[7.0, 7.5]]},
            },
            {"id": "c", "line": 3, "error": {"message": "bad"}, "input": {}},
        ],
    )
    truth = write_jsonl(
        tmp_path / "t.jsonl",
        [{"id": k, "score": s} for k, s in zip("abc", ([9, 1], [1, 9], [5, 5]), strict=True)],
    )
    r, _ = evaluate_files(truth, pred, resamples=0)
    assert r.abstained == 2 and r.abstain_reasons == {"invalid_input": 1, "too_long": 1}
    assert r.reference["accuracy"] == pytest.approx(2 / 3)  # b right, c's error is a (correct) tie
    assert r.answered_num == 1


def test_missing_field_names_the_line(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": 1, "something": "else"}])
    with pytest.raises(InvalidSampleError, match=r"line 1.*pred_text"):
        read_judgments(bad, role="pred")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="judgelm")
    eval_cmd.add_parser(parser.add_subparsers(dest="command"), "eval")
    return parser


def test_cli_table_json_markdown(files, capsys, tmp_path):
    base = [
        "eval",
        "--truth",
        str(files["truth"]),
        "--pred",
        str(files["pred"]),
        "--swapped",
        str(files["swapped"]),
    ]
    assert eval_cmd.run(_parser().parse_args([*base, "--bootstrap", "50"])) == 0
    table = capsys.readouterr().out
    assert "agreement" in table and "33.33" in table and "66.67" in table and "95% CI" in table

    out = tmp_path / "r.json"
    assert eval_cmd.run(_parser().parse_args([*base, "--format", "json", "--bootstrap", "0", "-o", str(out)])) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(out.read_text())
    assert set(data["reference"]) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "consistency",
        "perfer_before_rate",
        "perfer_after_rate",
        "delta_bias",
        "total_bias",
        "total_num",
    }
    assert data["reference"]["accuracy"] == pytest.approx(1 / 3) and data["abstained"] == 1

    assert eval_cmd.run(_parser().parse_args([*base, "--format", "markdown", "--align", "position"])) == 0
    md = capsys.readouterr().out
    assert md.startswith("## judgelm eval") and "| agreement |" in md and "Confusion matrix" in md


def test_cli_reports_non_pairs_as_an_error(tmp_path, capsys):
    truth = write_jsonl(tmp_path / "t.jsonl", [{"id": "a", "score": [1, 2]}])
    pred = write_jsonl(
        tmp_path / "p.jsonl",
        [{"id": "a", "verdict": {"scores": [1, 2, 3], "order_scores": [[1, 2, 3]]}}],
    )
    args = _parser().parse_args(["eval", "--truth", str(truth), "--pred", str(pred)])
    assert eval_cmd.run(args) == 2
    assert "must be a pair of scores" in capsys.readouterr().err
