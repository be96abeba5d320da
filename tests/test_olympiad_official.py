"""`--protocol official`: HiPhO's published evaluation (VLMEvalKit), reproduced defects included.

The answer level is checked against the vendored official verifier itself (``answer_tag_reward_fn_for_r1``), the
LLM steps against the real local chat server, with the rules read off ``hipho.py``.
"""

import json

import pytest
from chat_server import user_texts

from lyceum.cli import main
from lyceum.models.chat import ChatClient, run_sync
from lyceum.olympiad.data import Problem
from lyceum.olympiad.official import hipho_verifier as hv
from lyceum.olympiad.official.protocol import (
    answer_rules,
    answer_with_xverify,
    extract,
    rules,
    score_from_reply,
    solver_prompt,
    step_level,
)
from lyceum.olympiad.scorers import OfficialScorer


def problem(answers, points=None, marking=(), question="How fast does it land?", exam="T_2025"):
    return Problem(id="P_1", exam=exam, question=question, answers=list(answers),
                   answer_types=["Numerical Value"] * len(answers), points=list(points or [1.0] * len(answers)),
                   marking=[list(m) for m in marking], context="A ball falls.", information="g = 9.8 m/s^2")


# --- answer level: the official verifier's own verdicts ----------------------------------------------------

CASES = [
    ([r"\boxed{10}"], r"so \boxed{13}"),  # its rounding rule: 13 for a gold of 10
    ([r"\boxed{-1}"], r"\boxed{-1.3}"),
    ([r"\boxed{$2.9 \times 10^{6}$}"], r"\boxed{2.895e+06}"),
    ([r"\boxed{[1.0\times10^{-3}, 1.2\times10^{-3}]}"], r"\boxed{1.1\times10^{-3}}"),
    ([r"\boxed{[1.64, 1.70]}"], r"\boxed{\dfrac{5}{3}}"),
    ([r"\boxed{$v=\sqrt{2gh}$}"], r"\boxed{v = \sqrt{2 g h}}"),
    ([r"\boxed{x^2+1}"], r"\boxed{1+x^2}"),
    ([r"\boxed{A}", r"\boxed{3.2}"], r"<answer>[\boxed{A}, \boxed{3.2}]</answer>"),
    ([r"\boxed{A}", r"\boxed{3.2}"], r"only one: \boxed{3.2}"),  # the first answer is the missing one
    ([r"\boxed{A}", r"\boxed{3.2}"], r"only one: \boxed{A}"),
    ([r"\boxed{5}"], r"<answer>5</answer>"),  # no box: 0, no <answer> fallback
    ([r"\boxed{9.8}"], r"\boxed{g = 9.80\ \text{m/s}^2}"),
    ([r"\boxed{$\frac{2}{3}$}"], r"\boxed{0.667}"),
    ([r"\boxed{$\pi$}"], r"\boxed{3.14}"),
    ([r"\boxed{1.5}", r"\boxed{2}", r"\boxed{C}"], r"\boxed{1.50} \boxed{2.0} \boxed{(C)}"),
]


@pytest.mark.parametrize("golds, response", CASES)
def test_answer_level_points_equal_the_official_verifier(golds, response):
    prob = problem(golds, points=[0.5 * (i + 1) for i in range(len(golds))])
    ours = answer_rules(prob, response)
    _, point, _, _, _ = hv.answer_tag_reward_fn_for_r1(response, golds, prob.question, prob.points,
                                                          use_xverify=False, debug=False)
    assert ours.points(prob) == round(point, 2)


def test_the_official_defects_are_reproduced():
    assert rules("13", "10").correct and rules("-1.3", "-1").correct  # rounding to 0 decimals of the shorter
    assert not rules(r"1.1\times10^{-3}", r"[1.0\times10^{-3}, 1.2\times10^{-3}]").correct
    assert extract(r"\boxed{3.2}", 2) == ["", "3.2"]  # fewer boxes: the first answers are the missing ones
    assert extract("<answer>5</answer>", 1) == [""]


def test_solver_prompt_is_the_official_text_filled_by_replace():
    text = solver_prompt(problem([r"\boxed{1}"]))
    assert text.startswith("You are participating in a high school physics competition.")
    assert "Context (if applicable):\nA ball falls." in text and "g = 9.8 m/s^2" in text
    assert r"[\boxed{{answer}}]" in text  # the doubled braces reach the model, as in VLMEvalKit
    assert "你正在参加高中物理竞赛" in solver_prompt(problem([r"\boxed{1}"], exam="PanMechanics_2025"))


def test_score_is_read_from_the_last_box_then_the_last_number():
    assert score_from_reply(r"\boxed{0.4}") == 0.4
    assert score_from_reply(r"first \boxed{1} then \boxed{0.25}") == 0.25
    assert score_from_reply(r"\boxed{0.3 pt}") == 0.3
    assert score_from_reply("I give 0.2") == 0.2
    assert score_from_reply("none") == 0.0


# --- xverify and the step-level judge against the chat server ------------------------------------------------

def client_for(server):
    return ChatClient(base_url=server.base_url, model="judge", max_retries=0)


def test_every_rejected_sub_answer_goes_to_xverify_then_its_right_hand_side(chat_server):
    prob = problem([r"\boxed{v = 4.4}", r"\boxed{2}"])
    answers = answer_rules(prob, r"\boxed{v = 4.43\ \text{m/s}} \boxed{2}")
    assert answers.correct == [False, True]
    chat_server.default = lambda r: "[Incorrect]" if len(chat_server.requests) == 1 else "Correct"
    run_sync(answer_with_xverify(client_for(chat_server), prob, answers))
    assert len(chat_server.requests) == 2  # the whole answer, then the text after the last '='
    first, second = (user_texts(r) for r in chat_server.requests)
    assert "Respond with either\n[Correct] or [Incorrect]." in first and "How fast does it land?" in first
    assert 'Output sentence: """v = 4.43\\ \\text{m/s}"""' in first and "Correct answer: v = 4.4" in first
    assert 'Output sentence: """ 4.43\\ \\text{m/s}"""' in second and "Correct answer:  4.4" in second
    assert answers.correct == [True, True] and answers.scored_by == ["xverify", "mathd"]


CRITERIA = ["Award 0.4 pt if energy conservation is used.", "Award 0.6 pt if v = sqrt(2gh) is reached."]


def test_step_judge_sees_no_reference_answer_and_the_total_score_warning(chat_server):
    prob = problem([r"\boxed{$v=\sqrt{2gh}$}"], marking=[CRITERIA])
    chat_server.default = lambda r: r"\boxed{0.4}" if "energy" in user_texts(r) else r"\boxed{0.5}"
    steps = run_sync(step_level(client_for(chat_server), prob, "my solution"))
    assert steps.score == 0.9 and steps.attempts == 1 and not steps.scaled
    text = user_texts(chat_server.requests[0])
    assert "STUDENT'S SOLUTION:\nmy solution" in text and "sqrt{2gh}" not in text  # no reference answers
    assert "maximum total score of 1.0 points" in text and "attempt #1 of evaluation" in text
    assert "RETRY NOTICE" not in text


def test_over_scoring_is_asked_three_more_times_then_scaled_down(chat_server):
    prob = problem([r"\boxed{1}"], marking=[CRITERIA])
    chat_server.default = r"\boxed{0.8}"  # 1.6 > 1.0 every time
    steps = run_sync(step_level(client_for(chat_server), prob, "my solution"))
    assert len(chat_server.requests) == 8 and steps.attempts == 4  # 2 criteria x (1 + 3 retries)
    texts = [user_texts(r) for r in chat_server.requests]
    assert sum("RETRY NOTICE" in t for t in texts) == 6 and "attempt #4 of evaluation" in texts[-1]
    assert steps.scaled and steps.score == 1.0 and steps.scores == [0.5, 0.5]


def test_several_schemes_are_asked_once_each_scaled_and_the_best_counts(chat_server):
    prob = problem([r"\boxed{1}"], marking=[CRITERIA, ["Award 1.0 pt if kinematics is used."]])
    chat_server.default = lambda r: r"\boxed{0.9}" if "kinematics" not in user_texts(r) else r"\boxed{0.7}"
    steps = run_sync(step_level(client_for(chat_server), prob, "my solution"))
    assert len(chat_server.requests) == 3 and steps.best_scheme == 0 and steps.scaled and steps.score == 1.0


def test_the_problem_scores_the_max_of_answer_and_step_level(chat_server):
    prob = problem([r"\boxed{3}", r"\boxed{4}"], points=[1.0, 1.0], marking=[CRITERIA])
    chat_server.default = lambda r: ("[Incorrect]" if "Output sentence" in user_texts(r)
                                     else r"\boxed{0.4}" if "energy" in user_texts(r) else r"\boxed{0.6}")
    grades = OfficialScorer(client_for(chat_server)).score([{"id": "P_1", "response": r"\boxed{3} \boxed{5}"}],
                                                           {"P_1": prob})
    g = grades[0]
    assert g.correct == [True, False] and g.answer_score == 1.0 and g.step_score == 1.0 and g.score == 1.0


# --- the command line -------------------------------------------------------------------------------------

def tiny_hipho(root):
    root.mkdir()
    exam = [{"information": "g = 9.8 m/s^2"},
            {"id": "T_1", "question": "Speed after falling h?", "answer": [r"\boxed{10}"],
             "answer_type": ["Numerical Value"], "unit": [None], "points": [2.0], "field": "Mechanics",
             "modality": "text-only", "image_question": []}]
    (root / "T_2025.json").write_text(json.dumps(exam))
    return root


def test_grade_with_the_official_protocol_reproduces_its_verdict(tmp_path, capsys):
    data = tiny_hipho(tmp_path / "hipho")
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "T_1", "response": r"\boxed{13}"}) + "\n")
    args = ["olympiad", "grade", "--data", str(data), "--predictions", str(preds), "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "lyceum")]) == 0
    assert main([*args, "--out", str(tmp_path / "official"), "--protocol", "official"]) == 0
    lyceum = json.loads((tmp_path / "lyceum" / "grades.jsonl").read_text())
    official = json.loads((tmp_path / "official" / "grades.jsonl").read_text())
    assert lyceum["correct"] == [False] and official["correct"] == [True]  # 13 for 10: the official defect
    assert official["scored_by"] == ["sympy_verify"]
    assert json.loads((tmp_path / "official" / "summary.json").read_text())["protocol"] == "official"


def test_run_with_the_official_protocol_sends_the_official_prompt(chat_server, tmp_path):
    data = tiny_hipho(tmp_path / "hipho")
    chat_server.default = r"<think>v = sqrt(2gh)</think><answer>[\boxed{10}]</answer>"
    assert main(["olympiad", "run", "--data", str(data), "--out", str(tmp_path / "out"), "--base-url",
                 chat_server.base_url, "--model", "m", "--workers", "1", "--protocol", "official"]) == 0
    (request,) = chat_server.requests
    assert [m["role"] for m in request["messages"]] == ["user"]  # no system message
    assert request["messages"][0]["content"].startswith("You are participating in a high school physics")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["agent"] == "official" and summary["protocol"] == "official"
    assert summary["exams"]["T_2025"]["score"] == 2.0
