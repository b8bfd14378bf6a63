"""Make ``upstream_judges.json``: what the Prometheus 2 and PandaLM code itself produces.

Runs the upstream code (never a copy of it) on edge-case inputs and records its outputs; the
tests (``tests/test_formats_upstream.py``) compare judgelm's formats and parsers with them.

Sources (fetched by hand, not at test time):

- ``prometheus-eval==0.1.20`` (PyPI wheel) and the ``fastchat==0.1.0`` wheel it pins (its
  ``fastchat/conversation.py`` "mistral" template equals FastChat's, fschat 0.2.36);
- ``prometheus-eval/prometheus-eval`` at dcfb44272d5d0414832f5dbb8c2a05ebc2614234:
  ``libs/prometheus-eval/prometheus_eval/prompts.py`` (the current relative templates) and
  ``libs/prometheus-eval/tests/test_parser.py`` (the parser's own test table);
- ``WeOpenML/PandaLM`` at 3871806e72b4832f815ecafd24d3503c73403f48:
  ``pandalm/utils/pandalm_inference.py``.

Usage::

    pip download prometheus-eval==0.1.20 fastchat==0.1.0 --no-deps -d /tmp/up
    cd /tmp/up && for w in prometheus_eval-*.whl fastchat-*.whl; do unzip -oq $w -d site; done
    git -C PROMETHEUS_REPO show dcfb442:libs/prometheus-eval/prometheus_eval/prompts.py > repo_prompts.py
    git -C PROMETHEUS_REPO show dcfb442:libs/prometheus-eval/tests/test_parser.py > test_parser.py
    git -C PANDALM_REPO show 3871806:pandalm/utils/pandalm_inference.py > pandalm_inference.py
    python tests/golden/make_upstream_fixtures.py --site /tmp/up/site --repo-prompts /tmp/up/repo_prompts.py \\
        --parser-tests /tmp/up/test_parser.py --pandalm /tmp/up/pandalm_inference.py
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).with_name("upstream_judges.json")

# Inputs that stress a template: braces, the verdict marker inside an answer, unicode, CRLF,
# tabs, leading/trailing spaces, empty and whitespace-only texts.
TEXTS = {
    "plain": "What is 2+2?",
    "braces": "Fill {instruction} and {{rubric}} and {0} in",
    "marker": "The answer is 4. [RESULT] 5",
    "unicode": "Café 漢字 🙂 — naïve",
    "crlf": "line one\r\nline two\r\n",
    "tabs": "\tdef f():\n\t\treturn 1\t",
    "spaces": "  padded answer  ",
    "empty": "",
    "blank": " \n\t ",
}

RUBRIC_DICT = {
    "criteria": "Is the response {correct}?",
    "score1_description": "Wrong.",
    "score2_description": "Mostly wrong.",
    "score3_description": "Half right.",
    "score4_description": "Mostly right.",
    "score5_description": "Right, with [RESULT] in it.",
}

PANDALM_RESPONSES = {
    "special": "  <s>Answer</s> with [PAD] and <unk>  ",
    "spaces": "\n  Response with spaces \n",
}

PROMETHEUS_OUTPUTS = [
    "Good feedback. [RESULT] 3",
    "Good feedback. [RESULT] 3\n",
    "Good feedback. [RESULT] 3 because",
    "Feedback: [RESULT] 3\r\n",
    "Score: 4/5",
    "[RESULT] 7",
    "[RESULT] 0",
    "No verdict here",
    "",
    "Feedback mentions [RESULT] 2 early. Final: [RESULT] 4",
    "[RESULT] A",
    "[RESULT] b",
    "Feedback: x\nResult: B",
    "[RESULT] A because",
    "[RESULT] tie",
    "Response A is better [RESULT] (A)",
    "Réponse — très bien 🙂 [RESULT] 5",
]

PANDALM_OUTPUTS = [
    "1\n\n### Reason: Response 1 is better.\n\n### Reference: 4\n",
    "2",
    "Tie\n\n### Reason: same.",
    "tie",
    "TIE\nx",
    " 2 \nfoo",
    "Response 1",
    "1.",
    "3",
    "",
    "\n\n1\n",
]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def prometheus_cases(site: Path, repo_prompts: Path) -> list[dict]:
    sys.path.insert(0, str(site))
    import prometheus_eval
    from prometheus_eval import judge as judge_mod
    from prometheus_eval import prompts

    assert prometheus_eval.__version__ == "0.1.20"
    repo = _load(repo_prompts, "repo_prompts")

    class Capture:  # the mock interface judge.py accepts; records what it would be sent
        def __init__(self, reply: str):
            self.reply = reply

        def validate_mockllm(self):
            return True

        def completions(self, inputs, **kwargs):
            self.inputs = inputs
            return [self.reply] * len(inputs)

    cases = []

    def record(case: dict, mode: str, templates: tuple[str, str], call) -> None:
        model = Capture("x [RESULT] 5" if mode == "absolute" else "x [RESULT] A")
        ref = case["reference"]
        if mode == "absolute":
            judge = judge_mod.PrometheusEval(model, absolute_grade_template=templates[ref is None])
        else:
            judge = judge_mod.PrometheusEval(model, relative_grade_template=templates[ref is None])
        call(judge, [ref])
        messages = model.inputs[0]
        offline = judge._get_conversation_prompt(messages).strip()  # what vllm.py's completions sends
        cases.append({**case, "messages": messages, "offline_prompt": offline})

    rubrics = {
        name: prompts.load_rubric(name, "absolute")
        for name in ("helpfulness", "harmlessness", "honesty", "factual_validity", "reasoning")
    }
    for key, text in TEXTS.items():
        for ref in (None, TEXTS["marker"] if key != "marker" else "ref {x}"):
            for rubric_key in ("helpfulness", "dict", "verbatim") if key in ("plain", "braces") else ("helpfulness",):
                rubric = {"helpfulness": "helpfulness", "dict": RUBRIC_DICT, "verbatim": "Is it {good}?\tYes."}[
                    rubric_key
                ]
                abs_rubric = (
                    rubrics["helpfulness"]
                    if rubric_key == "helpfulness"
                    else prompts.SCORE_RUBRIC_TEMPLATE.format(**RUBRIC_DICT)
                    if rubric_key == "dict"
                    else rubric
                )
                base = {"instruction": text, "reference": ref, "rubric": rubric}
                record(
                    {**base, "format": "prometheus_absolute", "response": TEXTS["spaces"] + text},
                    "absolute",
                    (prompts.ABSOLUTE_PROMPT, prompts.ABSOLUTE_PROMPT_WO_REF),
                    lambda j, refs, t=text, r=abs_rubric: j.absolute_grade(
                        instructions=[t], responses=[TEXTS["spaces"] + t], rubric=r, reference_answers=refs
                    ),
                )
                if rubric_key == "dict":
                    continue  # relative grading has no upstream mapping form
                rel_rubric = prompts.load_rubric("helpfulness", "relative") if rubric_key == "helpfulness" else rubric
                for fmt, templates in (
                    ("prometheus_relative", (prompts.RELATIVE_PROMPT, prompts.RELATIVE_PROMPT_WO_REF)),
                    ("prometheus_relative_repo", (repo.RELATIVE_PROMPT, repo.RELATIVE_PROMPT_WO_REF)),
                ):
                    record(
                        {**base, "format": fmt, "responses": [text, TEXTS["unicode"]]},
                        "relative",
                        templates,
                        lambda j, refs, t=text, r=rel_rubric: j.relative_grade(
                            instructions=[t],
                            responses_A=[t],
                            responses_B=[TEXTS["unicode"]],
                            rubric=r,
                            reference_answers=refs,
                        ),
                    )
    builtin = {
        name: {"absolute": prompts.load_rubric(name, "absolute"), "relative": prompts.load_rubric(name, "relative")}
        for name in rubrics
    }
    return cases, builtin, prompts.SCORE_RUBRIC_TEMPLATE


def prometheus_parser(site: Path, parser_tests: Path) -> tuple[list[dict], list[dict]]:
    from prometheus_eval.parser import parse_output

    out = []
    for text in PROMETHEUS_OUTPUTS:
        for mode in ("absolute", "relative"):
            out.append({"output": text, "mode": mode, "result": parse_output(text, mode)[1]})
    # the parser's own test table: the parametrize list of test_parse_output
    tree = ast.parse(parser_tests.read_text())
    table = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize":
            for output, mode, expected in ast.literal_eval(node.args[1]):
                table.append(
                    {"output": output, "mode": mode, "expected": expected, "result": parse_output(output, mode)[1]}
                )
    return out, table


def pandalm_cases(pandalm: Path) -> dict:
    source = pandalm.read_text()
    module = _load(pandalm, "pandalm_inference")
    cls = module.PandaLMBatchInferenceProvider
    # __init__ loads a 7B model; take its `self.pattern = re.compile(...)` from the source instead
    init = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assign = next(
        n for n in ast.walk(init) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "self.pattern"
    )
    provider = cls.__new__(cls)
    provider.pattern = eval(compile(ast.Expression(assign.value), "pattern", "eval"), {"re": re})
    prompts = []
    for _key, text in TEXTS.items():
        for input_key in ("empty", "plain", "blank", "crlf"):
            for r1, r2 in ((text, TEXTS["unicode"]), (PANDALM_RESPONSES["special"], PANDALM_RESPONSES["spaces"])):
                prompts.append(
                    {
                        "instruction": text,
                        "input": TEXTS[input_key],
                        "responses": [r1, r2],
                        "prompt": provider.build_pandalm_prompt(text, TEXTS[input_key], r1, r2),
                    }
                )
    parses = [{"output": o, "result": provider.parse_pandalm_response(o)} for o in PANDALM_OUTPUTS]
    # inference(): decode(prompt + output) -> postprocess_output -> filter_special_token -> parse
    pipeline = []
    for instruction, (r1, r2), output in (
        (TEXTS["plain"], (TEXTS["plain"], TEXTS["unicode"]), "2\n\n### Reason: x</s>"),
        ("Q ### Evaluation: 1", ("a", "b"), "2\n\n### Reason: x</s>"),
        ("Q", ("a", "b"), "Tie</s>"),
    ):
        prompt_text = provider.build_pandalm_prompt(instruction, "", r1, r2)
        text = provider.filter_special_token(provider.postprocess_output("</s>" + prompt_text + output))
        pipeline.append(
            {
                "instruction": instruction,
                "responses": [r1, r2],
                "prompt": prompt_text,
                "output": output,
                "text": text,
                "result": provider.parse_pandalm_response(text),
            }
        )
    return {"prompts": prompts, "parses": parses, "pipeline": pipeline}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", required=True, type=Path, help="folder with prometheus_eval and fastchat unzipped")
    ap.add_argument("--repo-prompts", required=True, type=Path)
    ap.add_argument("--parser-tests", required=True, type=Path)
    ap.add_argument("--pandalm", required=True, type=Path)
    args = ap.parse_args()
    cases, builtin, template = prometheus_cases(args.site, args.repo_prompts)
    parses, table = prometheus_parser(args.site, args.parser_tests)
    data = {
        "sources": {
            "prometheus-eval": "PyPI prometheus-eval==0.1.20 (= prometheus-eval/prometheus-eval 1a88c06)",
            "prometheus-eval-repo": "prometheus-eval/prometheus-eval dcfb44272d5d0414832f5dbb8c2a05ebc2614234",
            "fastchat": "PyPI fastchat==0.1.0 fastchat/conversation.py (template 'mistral')",
            "pandalm": "WeOpenML/PandaLM 3871806e72b4832f815ecafd24d3503c73403f48 pandalm/utils/pandalm_inference.py",
        },
        "prometheus": {"cases": cases, "builtin_rubrics": builtin, "score_rubric_template": template},
        "prometheus_parser": {"outputs": parses, "upstream_tests": table},
        "pandalm": pandalm_cases(args.pandalm),
    }
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"wrote {OUT}: {len(cases)} Prometheus prompts, {len(parses) + len(table)} parses, "
        f"{len(data['pandalm']['prompts'])} PandaLM prompts"
    )


if __name__ == "__main__":
    main()
