"""``judgelm distill`` end to end on loopback: a ``judgelm serve`` server answers questions and
judges as the teacher, the records train a tiny student (``judgelm train``), and the student loads
and judges (``Judge.from_pretrained``). Plus the pieces: the paper's teacher prompt (pinned to the
JudgeLM repo), pair drawing and de-duplication, judgment reading, failures and resuming."""

from __future__ import annotations

import json
import re

import pytest
from test_serve_support import score_of
from test_train_run import _from_scratch_folder

from judgelm import Judge
from judgelm.cli import main
from judgelm.data.records import read_records
from judgelm.distill import TeacherPrompt, read_judgment
from judgelm.distill.models import Completion, Failure, LocalModel, TextRequest
from judgelm.distill.pairs import draw_pairs
from judgelm.distill.seeds import Seed
from judgelm.serve import BackgroundServer, ServeConfig
from judgelm.testing import byte_tokenizer, scripted_judge

# baaivision/JudgeLM judgelm/llm_judge/common.py at 0da7c2210d5d84b207d45d83c9c562136e2a5403:
# conv_judge_pair / conv_judge_pair_w_reference (system, prompt_template, prompt)
JUDGELM_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
JUDGELM_TEMPLATE = (
    "[Question]\n{question}\n\n[The Start of Assistant 1's Answer]\n{answer_1}\n\n[The End of Assistant 1's Answer]"
    "\n\n[The Start of Assistant 2's Answer]\n{answer_2}\n\n[The End of Assistant 2's Answer]\n\n[System]\n{prompt}\n\n"
)
JUDGELM_TEMPLATE_W_REFERENCE = JUDGELM_TEMPLATE.replace(
    "{question}\n\n", "{question}\n\n[Reference Answer]\n{reference}\n\n", 1
)
JUDGELM_PROMPT = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above.\nPlease rate the helpfulness, relevance, accuracy, level of details of their "
    "responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\nPlease first output a single line containing only two values indicating the "
    "scores for Assistant 1 and 2, respectively. The two scores are separated by a space. In the subsequent line, "
    "please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that "
    "the order in which the responses were presented does not affect your judgment."
)


def test_the_default_teacher_prompt_is_the_papers():
    prompt = TeacherPrompt.paper()
    q, a1, a2, ref = "Why {x}?", "Because.\n", "No {idea}", "Ref."
    plain = prompt.request(q, a1, a2)
    assert plain.messages == (
        {"role": "system", "content": JUDGELM_SYSTEM},
        {
            "role": "user",
            "content": JUDGELM_TEMPLATE.format(question=q, answer_1=a1, answer_2=a2, prompt=JUDGELM_PROMPT),
        },
    )
    assert plain.text == JUDGELM_SYSTEM + "\n" + plain.messages[1]["content"] + "### Response:"
    with_ref = prompt.request(q, a1, a2, ref).messages[1]["content"]
    assert with_ref == JUDGELM_TEMPLATE_W_REFERENCE.format(
        question=q, answer_1=a1, answer_2=a2, reference=ref, prompt=JUDGELM_PROMPT
    )


def test_custom_teacher_prompts_fill_placeholders_literally(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "system": "S",
                "template": "Q={question} A={answer_1} B={answer_2}",
                "template_w_reference": "R={reference}",
            }
        )
    )
    req = TeacherPrompt.from_file(path).request("{answer_2}", "x", "y")
    assert req.messages[1]["content"] == "Q={answer_2} A=x B=y"  # a placeholder inside an input stays text
    with pytest.raises(ValueError, match="template_w_reference"):
        path.write_text(json.dumps({"system": "S", "template": "T"}))
        TeacherPrompt.from_file(path)


def test_reading_judgments():
    assert read_judgment("8 9\nAssistant 2 is better.") == read_judgment("  8 9\nAssistant 2 is better.")
    assert read_judgment(" 8 9\nx").text == "8 9\nx" and not read_judgment("8 9\nx").repaired
    repaired = read_judgment("Scores: 8, 9\nAssistant 2 is better.")
    assert repaired.repaired and repaired.text == "8 9\nAssistant 2 is better." and repaired.score == (8.0, 9.0)
    bad = read_judgment("I like both.")
    assert bad.score is None and bad.text is None and "no score line" in bad.reason


def test_pairs_come_from_two_models_and_duplicates_go():
    seeds = [
        Seed("1", "What is 2+2?", answers={"a": "4", "b": "5", "c": "four"}),
        Seed("2", "What  is 2+2?", answers={"a": "4", "b": "5"}),  # the same question and answers
        Seed("3", "Name a prime.", answers={"a": "7", "b": "7 "}),  # identical answers
        Seed("4", "One source.", answers={"a": "x"}),
    ]
    pairs, skipped = draw_pairs(seeds, per_question=3, seed=1)
    assert sorted(p.pair_id for p in pairs) == ["1:a|b", "1:a|c", "1:b|c"]
    assert all(p.models[0] != p.models[1] for p in pairs)
    assert skipped == {"duplicate pairs": 1, "identical answers": 1, "tasks with fewer than two answers": 1}
    again, _ = draw_pairs(seeds, per_question=3, seed=1)
    assert [p.models for p in again] == [p.models for p in pairs]  # seeded: a re-run draws the same
    # which answer is shown first is drawn: over seeds, both are
    shown_first = {
        draw_pairs([Seed("1", "q", answers={"a": "x", "b": "y"})], seed=s)[0][0].models[0] for s in range(20)
    }
    assert shown_first == {"a", "b"}


_BLOCK = re.compile(r"\[The Start of Assistant (\d+)'s Answer\]\n(.*?)\n\n\[The End of Assistant \1's Answer\]", re.S)


def teacher_and_answerer(prompt: str) -> str:
    """The scripted model behind the server: judges JudgeLM prompts by the answers' content
    (good 9, bad 2, else 5; a "garbage" answer gets an unreadable judgment; "explode" fails the
    request), and answers other prompts."""
    answers = [a for _, a in _BLOCK.findall(prompt)]
    if not answers:
        return "bad: I do not know\n" if "hard" in prompt else "good: the answer is 4\n"
    if any("explode" in a for a in answers):
        raise RuntimeError("the teacher broke")
    if any("garbage" in a for a in answers):
        return "I cannot say\n"
    scores = [score_of(a) for a in answers]
    return f"{scores[0]} {scores[1]}\nAssistant {1 if scores[0] >= scores[1] else 2} is better."


def _chat_tokenizer():
    tok = byte_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    return tok


def test_distill_train_judge_end_to_end(tmp_path, llama_tokenizer, capsys):
    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {
            "question_id": "q1",
            "question": "What is 2+2?",
            "reference": "4",
            "answers": {"good-model": "good: 4", "bad-model": "bad: 5"},
        },
        {"question_id": "q2", "question": "A hard one?", "answers": [{"model_id": "good-model", "text": "good: yes"}]},
        {
            "question_id": "q3",
            "question": "Name a prime.",
            "reference": {"text": "7"},
            "answers": {"bad-model": "garbage"},
        },
        {"question_id": "q4", "question": "Explode?", "answers": {"bad-model": "explode now"}},
        {"question_id": "q5", "question": "Duplicate of q1", "answers": {"good-model": "x", "bad-model": "x"}},
        {"question_id": "q1", "question": "again"},
        {"question": "no id"},
    ]
    seeds.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    extra = tmp_path / "answers.jsonl"
    extra.write_text(json.dumps({"question_id": "q2", "model_id": "bad-model", "text": "bad: no"}) + "\n")
    out = tmp_path / "train.jsonl"
    teacher = scripted_judge(teacher_and_answerer, _chat_tokenizer(), name="teacher")
    with BackgroundServer(teacher, ServeConfig()) as srv:
        argv = ["distill", str(seeds), "-o", str(out), "--teacher-endpoint", srv.url, "--teacher-model", "teacher"]
        argv += ["--answers", str(extra), "--answers-from", f"openai:{srv.url}/v1#teacher", "--max-retries", "1"]
        argv += ["--price-input", "2", "--price-output", "8", "--pairs-per-question", "3", "--teacher-max-tokens", "64"]
        assert main(argv) == 0
        summary = json.loads((tmp_path / "train.summary.json").read_text())
        records = [json.loads(x) for x in out.read_text().splitlines()]
        assert main(argv) == 0  # resumes: nothing judged again
        again = json.loads((tmp_path / "train.summary.json").read_text())
    assert out.read_text().count("\n") == len(records)
    assert again["records_written"] == 0 and again["records_already_done"] == len(records)

    by_id = {r["id"]: r for r in records}
    # q1: the two given answers; q2: a given one, one from a file, one made by the endpoint "teacher" model
    assert summary["answers"] == {"good-model": 3, "bad-model": 5, "teacher": 5}
    assert {r["pair_id"] for r in records} >= {"q1:bad-model|good-model"}
    q1 = [by_id["q1:bad-model|good-model/0"], by_id["q1:bad-model|good-model/1"]]
    for r in q1:  # both orders, plain and with reference, scored by content
        good_first = r["answer1_model_id"] == "good-model"
        assert r["score"] == ([9, 2] if good_first else [2, 9]) and r["score_w_reference"] == r["score"]
        assert r["text"].startswith(f"{r['score'][0]:g} {r['score'][1]:g}\n") and r["reference"] == {"text": "4"}
        assert r["teacher"] == "teacher" and "errors" not in r
    assert q1[0]["answer1_model_id"] == q1[1]["answer2_model_id"]  # order 1 is order 0 swapped
    failed = [r for r in records if r.get("errors")]
    assert failed and all(
        r[k] == "error" and r[k.replace("text", "score")] == [-1, -1] for r in failed for k in r["errors"]
    )
    reasons = [v for r in failed for v in r["errors"].values()]
    assert any("HTTP 500" in v for v in reasons)  # the exploding teacher call, after its retry
    assert any(v.startswith("unreadable judgment: no score line") for v in reasons)  # the garbage answer
    assert summary["skipped"]["duplicate pairs"] + summary["skipped"].get("identical answers", 0) >= 1
    failures = [json.loads(x) for x in (tmp_path / "train.failures.jsonl").read_text().splitlines()]
    stages = {f["stage"] for f in failures}
    assert {"input", "judgment", "parse"} <= stages
    assert any(f.get("field") == "question_id" and "duplicate" in f["reason"] for f in failures)
    assert summary["position_bias"]["plain"]["consistency"] == 1.0  # the scripted teacher has no bias
    assert summary["tokens"]["teacher_prompt_tokens"] > 0
    cost = (summary["tokens"]["teacher_prompt_tokens"] * 2 + summary["tokens"]["teacher_completion_tokens"] * 8) / 1e6
    assert summary["teacher_cost_usd"] == pytest.approx(cost, rel=1e-6)
    assert summary["http"]["retries"] >= 1

    # the records train as they are
    usable = [r for r in records if r["text"] != "error" or r.get("text_w_reference", "error") != "error"]
    assert sum(not isinstance(r, Exception) for r in read_records(out)) == len(usable) > 0
    model = _from_scratch_folder(tmp_path / "init", llama_tokenizer)
    student = tmp_path / "student"
    argv = ["train", str(out), "-o", str(student), "--model", str(model), "--from-scratch", "--max-steps", "2"]
    argv += ["--batch-size", "4", "--max-length", "512", "--cpu", "--no-bf16", "--quiet"]
    assert main([*argv, "--training-arg", 'save_strategy="no"']) == 0
    judge = Judge.from_pretrained(str(student), device="cpu")
    assert judge.config.training["global_step"] == 2
    v = judge.compare("What is 2+2?", "4", "5", scoring="text", max_new_tokens=6)
    assert v.provenance.model == str(student)
    capsys.readouterr()


def test_local_models_answer_and_judge(tiny_model_dir, tmp_path):
    """A local model (no chat template: the plain text prompt) as answer source and teacher; a
    teacher that cannot write a score line gives recorded parse failures, nothing lost."""
    from judgelm.distill import DistillConfig, distill

    local = LocalModel.load(str(tiny_model_dir), max_tokens=6)
    seeds = tmp_path / "s.jsonl"
    seeds.write_text(json.dumps({"question_id": 1, "question": "Hi?", "answers": {"given": "hello"}}) + "\n")
    summary = distill(seeds, tmp_path / "o.jsonl", local, answer_models=[local], config=DistillConfig(chunk=2))
    recs = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and {r["answer1_model_id"] for r in recs} == {"given", str(tiny_model_dir)}
    assert (
        summary["judgments"].get("unreadable", 0)
        + summary["judgments"].get("ok", 0)
        + summary["judgments"].get("repaired", 0)
        == 2
    )
    assert summary["tokens"]["answer_completion_tokens"] <= 6


class _FlakyTeacher:
    name = "flaky"

    def __init__(self):
        self.calls = 0

    def complete(self, requests):
        self.calls += len(requests)
        return [Failure("down") if self.calls <= 2 else Completion("7 3\nfine", 10, 3) for _ in requests]


def test_retry_errors_judges_failed_records_again(tmp_path):
    from judgelm.distill import DistillConfig, distill

    seeds = tmp_path / "s.jsonl"
    seeds.write_text(json.dumps({"question_id": 1, "question": "Q", "answers": {"a": "x", "b": "y"}}) + "\n")
    out = tmp_path / "o.jsonl"
    teacher = _FlakyTeacher()
    first = distill(seeds, out, teacher)
    assert first["judgments"] == {"request failed": 2}
    assert distill(seeds, out, teacher)["records_written"] == 0  # failures are records: kept, not redone
    redo = distill(seeds, out, teacher, config=DistillConfig(retry_errors=True))
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert redo["judgments"] == {"ok": 2} and len(recs) == 2 and all(r["score"] == [7, 3] for r in recs)


def test_request_and_completion_types():
    req = TeacherPrompt.paper().request("q", "a", "b")
    assert isinstance(req, TextRequest) and req.messages[0]["role"] == "system"
