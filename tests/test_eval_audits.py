"""Bias audits with scripted judges whose biases are known, so every number is computed by hand;
and the report: Markdown with its PNGs beside it, and JSON."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter

import pytest

from judgelm.cli import audit_cmd
from judgelm.errors import MissingDependencyError
from judgelm.eval import Labelled, run_audits, write_audit
from judgelm.eval.audits import (
    consistency_audit,
    format_audit,
    knowledge_audit,
    length_audit,
    position_audit,
    reliability_audit,
)
from judgelm.eval.judging import judge_items
from judgelm.judge import Judge
from judgelm.testing import scripted_judge
from judgelm.types import Preference, Provenance, Sample, ScoreDistribution, Verdict

SLOT = re.compile(
    r"\[The Start of Assistant (\d+)'s Answer\]\n(.*?)\n\n\[The End of Assistant \1's Answer\]",
    re.S,
)


def slots(prompt: str) -> list[str]:
    return [text for _, text in SLOT.findall(prompt)]


def tag(text: str, name: str) -> int | None:
    m = re.search(rf"{name}=(\d+)", text)
    return None if m is None else int(m.group(1))


def pair(a: str, b: str, label: int | None = None, **kw) -> Labelled:
    pair.n += 1
    return Labelled(
        Sample("Q?", (a, b), reference=kw.pop("reference", None), id=f"s{pair.n}"),
        label=label,
        **kw,
    )


pair.n = 0


# ---- position --------------------------------------------------------------------------------
def slot_one_biased(prompt: str) -> str:
    q = [tag(t, "q") for t in slots(prompt)]
    return "no idea" if None in q else f"{q[0] + 1} {q[1]}\n"


def test_position_audit_by_hand():
    items = [
        pair("[q=8]", "[q=3]", 1),
        pair("[q=2]", "[q=9]", -1),
        pair("[q=5]", "[q=5]", 0),
        pair("[q=6]", "[q=5]", 0),
        pair("untagged", "untagged", 1),
    ]
    verdicts = judge_items(scripted_judge(slot_one_biased), items, with_reference=False, swap=True)
    p = position_audit(items, verdicts)
    assert (p.n, p.both_read, p.labelled) == (5, 4, 5)
    assert p.consistency == pytest.approx(3 / 5) and p.flip_rate == pytest.approx(2 / 5)
    assert p.prefers_first == pytest.approx(2 / 5) and p.prefers_second == 0
    assert p.favoured_slot == "first"
    assert p.slot_gap == pytest.approx(1.0)  # exactly the +1 the judge gives slot 1
    assert p.agreement_normal == pytest.approx(2 / 5)
    assert p.agreement_swapped == pytest.approx(3 / 5)  # -1, 1, -1, 0, tie vs 1, -1, 0, 0, 1
    assert p.agreement_averaged == pytest.approx(3 / 5)  # 1, -1, tie, 1, abstain vs the truth


# ---- length ----------------------------------------------------------------------------------
def word_counter(prompt: str) -> str:
    return " ".join(str(min(10, max(1, len(t.split())))) for t in slots(prompt)) + "\n"


def test_length_audit_by_hand():
    items = [
        pair("one two three four five", "six seven", scores=(8, 2)),
        pair("one", "two three four five", scores=(9, 1)),
        pair("a b c", "d e f", scores=(5, 5)),
        pair("a b", "c d e f g h", scores=(2, 7)),
    ]
    verdicts = judge_items(scripted_judge(word_counter), items, with_reference=False, swap=True)
    ln = length_audit(items, verdicts)
    assert ln.n == 4 and ln.unit == "words"
    assert ln.pearson == pytest.approx(1.0) and ln.spearman == pytest.approx(1.0)
    assert (ln.longer_win_rate, ln.longer_decided) == (1.0, 3)
    assert ln.truth_longer_win_rate == pytest.approx(2 / 3) and ln.truth_longer_decided == 3
    # x = 3, -3, 0, -4; truth s1 - s2 = 6, 8, 0, -5:
    # sum dx*dy = 23, sum dx^2 = 30, sum dy^2 = 104.75
    assert ln.truth_pearson == pytest.approx(23 / (30 * 104.75) ** 0.5)
    assert ln.bins == ((-4.0, -4.0, 1), (-3.0, -3.0, 1), (0.0, 0.0, 1), (3.0, 3.0, 1))


# ---- knowledge and format ---------------------------------------------------------------------
def reference_reader(prompt: str) -> str:
    """Without a reference: quality tags. With 'best=k': answer k gets 9, the other 4."""
    texts = slots(prompt)
    m = re.search(r"\[Reference Answer\]\nbest=(\d)", prompt)
    if m is None:
        return " ".join(str(tag(t, "q")) for t in texts) + "\n"
    best = int(m.group(1))
    return " ".join("9" if tag(t, "id") == best else "4" for t in texts) + "\n"


@pytest.fixture
def reference_items() -> list[Labelled]:
    return [
        # with-reference truth -1; plain truth 1. Without ref: 1 (wrong), with: -1 (fixed)
        pair("[q=8 id=1]", "[q=3 id=2]", 1, reference="best=2", label_with_reference=-1),
        # best=0 matches nobody: both 4 -> tie; truth -1: was right, now wrong (broken)
        pair("[q=2 id=1]", "[q=9 id=2]", -1, reference="best=0", label_with_reference=-1),
        # truth 1 both ways; reference points at answer 2 -> broken
        pair("[q=7 id=1]", "[q=4 id=2]", 1, reference="best=2", label_with_reference=1),
        pair("[q=5 id=1]", "[q=1 id=2]", 1),  # no reference
        pair("[q=6 id=1]", "[q=4 id=2]", 1, reference="best=2", label_with_reference=-1),  # fixed
    ]


def test_knowledge_and_format_audits_by_hand(reference_items):
    judge = scripted_judge(reference_reader)
    ref_items = [i for i in reference_items if i.sample.reference is not None]
    plain = judge_items(judge, reference_items, with_reference=False, swap=True)
    with_ref = judge_items(judge, ref_items, with_reference=True, swap=True)
    by_id = dict(zip([i.id for i in reference_items], plain, strict=True))
    k = knowledge_audit(ref_items, [by_id[i.id] for i in ref_items], with_ref)
    # truth (with reference) -1, -1, 1, -1; without 1, -1, 1, 1; with -1, 0, -1, -1
    assert k.n == 4
    assert k.without_reference["accuracy"] == pytest.approx(2 / 4)
    assert k.with_reference["accuracy"] == pytest.approx(2 / 4)
    assert (k.fixed, k.broken, k.changed) == (2, 2, 4)
    assert k.delta_agreement == pytest.approx(0.0)

    f = format_audit(reference_items, plain, ref_items, with_ref, trained_with="no_reference")
    assert (f.n_without, f.n_with) == (5, 4)
    assert f.without_reference["accuracy"] == 1.0  # quality tags match every plain truth
    assert f.with_reference["accuracy"] == pytest.approx(2 / 4)
    assert f.mismatched == "with_reference" and f.gap == pytest.approx(0.5)
    # score change per pair, mean over its two answers: (4-8 + 9-3)/2 = 1; (4-2 + 4-9)/2 = -1.5;
    # (4-7 + 9-4)/2 = 1; (4-6 + 9-4)/2 = 1.5
    assert f.score_shift == pytest.approx((1 - 1.5 + 1 + 1.5) / 4) and f.shift_n == 4
    assert (
        format_audit(reference_items, plain, ref_items, with_ref, trained_with="both").gap is None
    )
    flipped = format_audit(reference_items, plain, ref_items, with_ref, trained_with="reference")
    assert flipped.mismatched == "without_reference" and flipped.gap == pytest.approx(-0.5)


# ---- self-consistency -------------------------------------------------------------------------
def flaky_judge():
    """Quality tags; but the pair marked 'flaky' is judged the other way round after its first
    run (each of its two prompts is seen once per run)."""
    seen: Counter[str] = Counter()

    def respond(prompt: str) -> str:
        seen[prompt] += 1
        q = [tag(t, "q") for t in slots(prompt)]
        if "flaky" in prompt and seen[prompt] > 1:
            q = q[::-1]
        return f"{q[0]} {q[1]}\n"

    return scripted_judge(respond)


def test_consistency_audit_by_hand():
    items = [pair("[q=8]", "[q=3]", 1), pair("[q=2]", "[q=9]", -1), pair("[q=7] flaky", "[q=3]", 1)]
    judge = flaky_judge()
    runs = [
        judge_items(judge, items, with_reference=False, swap=True, shuffle_seed=s)
        for s in (None, 1)
    ]
    c = consistency_audit(items, runs)
    assert (c.runs, c.judgments, c.n) == (2, 4, 3)
    assert c.unanimous == pytest.approx(2 / 3)
    assert c.run_agreement == pytest.approx(2 / 3)
    assert c.pairwise_agreement == pytest.approx((1 + 1 + 2 / 6) / 3)  # flaky: 1, 1, -1, -1
    # flaky answer 1 scores 7, 7, 3, 3 and answer 2 3, 3, 7, 7: std 2 each; the rest 0
    assert c.score_std == pytest.approx((2 + 2) / 6)
    assert c.majority_agreement == pytest.approx(2 / 3)  # 2-2 on the flaky pair: no majority


def test_shuffled_runs_keep_item_order():
    items = [pair(f"[q={k}]", "[q=5]", None) for k in range(1, 9)]
    judge = scripted_judge(lambda p: " ".join(str(tag(t, "q")) for t in slots(p)) + "\n")
    a = judge_items(judge, items, with_reference=False, swap=False)
    b = judge_items(judge, items, with_reference=False, swap=False, shuffle_seed=3)
    assert [v.scores for v in a] == [v.scores for v in b]
    assert judge.engine.prompts[:8] != judge.engine.prompts[8:]  # the second batch was reordered


# ---- reliability ------------------------------------------------------------------------------
def _verdict(**kw) -> Verdict:
    prov = Provenance(
        model="m", format="pairwise", template_hash="", orders=((0, 1),), scoring="logits"
    )
    return Verdict(
        sample_id=None, format="pairwise", provenance=prov, **{"scores": (5.0, 5.0), **kw}
    )


def test_reliability_by_hand(tmp_path):
    items = [Labelled(Sample("q", ("a", "b")), label=lab) for lab in (1, 1, -1, 1, 1)]
    verdicts = [
        _verdict(preference=Preference(0.9, 0.05, 0.05)),  # says 1 at 0.9: right
        _verdict(preference=Preference(0.1, 0.1, 0.8)),  # says -1 at 0.8: wrong
        _verdict(  # independent distributions: P(first) 0.3, P(second) 0.7 -> -1 at 0.7: right
            distributions=(
                ScoreDistribution((8.0,), (1.0,)),
                ScoreDistribution((6.0, 9.0), (0.3, 0.7)),
            )
        ),
        _verdict(scores=None, abstained=True, reason_code="unparseable"),
        _verdict(),  # text verdict: no probabilities
    ]
    rel = reliability_audit(items, verdicts)
    assert rel.available and rel.n == 3
    assert rel.ece == pytest.approx((0.1 + 0.8 + 0.3) / 3)
    assert rel.accuracy == pytest.approx(2 / 3) and rel.mean_confidence == pytest.approx(0.8)
    assert [(lo, n) for lo, _, _, _, n in rel.bins] == [(0.7, 1), (0.8, 1), (0.9, 1)]
    none = reliability_audit(items, [_verdict()] * 5)
    assert not none.available and "scoring='logits'" in none.reason


# ---- the whole audit and its report -------------------------------------------------------------
def test_run_audits_writes_a_readable_report(tmp_path, reference_items):
    judge = scripted_judge(reference_reader)
    calls = []
    original = judge.judge
    judge.judge = lambda samples, **kw: calls.append(kw["swap"]) or original(samples, **kw)  # type: ignore[method-assign]
    single = Labelled(Sample("Q", ("only one",), id="single"), label=None)
    report = run_audits(
        judge, [*reference_items, single], seeds=2, trained_with="no_reference", resamples=100
    )
    assert calls == [True, True, True]  # plain run, reference run, one shuffled re-run
    assert (report.items, report.pairwise, report.labelled) == (6, 5, 5)
    assert any("1 items are not pairs" in n for n in report.notes)
    assert report.metrics is not None and report.metrics.reference["accuracy"] == 1.0
    assert report.format.gap == pytest.approx(0.5)
    assert report.reliability is not None and not report.reliability.available

    md = write_audit(report, tmp_path / "audit")
    text = md.read_text()
    assert md.name == "audit.md"
    for png in ("confusion.png", "bias.png", "length.png"):
        assert (md.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in text
    assert not (md.parent / "reliability.png").exists()
    assert "Not drawn: no score distributions" in text
    for heading in (
        "## Position bias",
        "## Knowledge bias",
        "## Format bias",
        "## Length bias",
        "## Self-consistency",
    ):
        assert heading in text
    data = json.loads((md.parent / "audit.json").read_text())
    assert data["format"]["mismatched"] == "with_reference"
    assert data["metrics"]["reference"]["accuracy"] == 1.0


def test_audit_without_references_or_truth(tmp_path):
    items = [pair("[q=8]", "[q=3]"), pair("[q=2]", "[q=9]")]
    report = run_audits(
        scripted_judge(slot_one_biased), items, seeds=1, audits=("position", "knowledge")
    )
    assert report.metrics is None and report.knowledge is None and report.length is None
    assert report.position.consistency == 1.0
    assert any("no item has a reference" in n for n in report.notes)
    with pytest.raises(ValueError, match="unknown audits"):
        run_audits(scripted_judge("1 2"), items, audits=("vibes",))


def test_reliability_plot_is_drawn_when_distributions_exist(tmp_path):
    from judgelm.eval.audits import AuditReport
    from judgelm.eval.audits.reliability import Reliability

    report = AuditReport(
        "x",
        "m",
        1,
        1,
        1,
        reliability=Reliability(True, 1, 0.1, 1.0, 0.9, ((0.9, 1.0, 0.9, 1.0, 1),)),
    )
    md = write_audit(report, tmp_path)
    assert (tmp_path / "reliability.png").exists() and "](reliability.png)" in md.read_text()


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    from judgelm.eval.audits import AuditReport

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    report = AuditReport("x", "m", 0, 0, 0)
    with pytest.raises(MissingDependencyError, match=r"judgelm\[eval\]"):
        write_audit(report, tmp_path)
    assert write_audit(report, tmp_path, plots=False).exists()  # the report itself needs no plots


def test_audit_cli(tmp_path, monkeypatch):
    data = tmp_path / "labelled.jsonl"
    rows = [
        {"id": "a", "question": "Q", "answers": ["[q=8]", "[q=3]"], "label": 1},
        {"id": "b", "question": "Q", "answers": ["[q=2]", "[q=9]"], "label": "model_b"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    judge = scripted_judge(slot_one_biased)
    monkeypatch.setattr(Judge, "from_pretrained", classmethod(lambda cls, *a, **k: judge))
    parser = argparse.ArgumentParser(prog="judgelm")
    audit_cmd.add_parser(parser.add_subparsers(dest="command"), "audit")
    out = tmp_path / "report"
    args = parser.parse_args(
        ["audit", "--data", str(data), "--out", str(out), "--seeds", "1", "--bootstrap", "0"]
    )
    assert audit_cmd.run(args) == 0
    assert (out / "audit.md").exists() and (out / "bias.png").exists()
    assert json.loads((out / "audit.json").read_text())["position"]["favoured_slot"] == "none"
