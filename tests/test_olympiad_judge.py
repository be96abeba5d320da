"""The step-level judge against the real local chat server with scripted replies."""

import json

from chat_server import user_texts

from lyceum.models.chat import ChatClient, run_sync
from lyceum.olympiad.data import Problem
from lyceum.olympiad.judge import Judge
from lyceum.olympiad.scoring import GradeSettings, grade_rows

CRITERIA_A = ["Award 0.4 pt if the answer uses energy conservation. Otherwise, award 0 pt.",
              "Award 0.6 pt if the answer gets v = sqrt(2gh). Partial points: award 0.3 pt for a sign slip."]
CRITERIA_B = ["Award 1.0 pt if the answer uses kinematics throughout. Otherwise, award 0 pt."]


def problem(marking=None, points=(1.0,), answers=(r"\boxed{$v=\sqrt{2gh}$}",), types=("Expression",)):
    return Problem(id="P_1", exam="P", question="How fast does it land?", answers=list(answers),
                   answer_types=list(types), points=list(points),
                   marking=[CRITERIA_A, CRITERIA_B] if marking is None else marking)


def by_criterion(scores):
    """A reply function: the JSON score for whichever criterion the request carries."""
    def reply(request):
        text = user_texts(request)
        for key, value in scores.items():
            if key in text:
                if callable(value):
                    return value(request)
                return value if isinstance(value, str) else json.dumps({"score": value, "reason": "ok"})
        raise AssertionError("request without a known criterion")
    return reply


def client_for(server):
    return ChatClient(base_url=server.base_url, model="judge", max_retries=0)


def test_one_call_per_criterion_partial_credit_and_the_best_scheme(chat_server):
    chat_server.default = by_criterion({"energy conservation": 0.4, "sqrt(2gh)": 0.3, "kinematics": 0.5})
    step = run_sync(Judge(client_for(chat_server)).step_level(problem(), "a solution"))
    assert len(chat_server.requests) == 3
    assert [[c.score for c in s] for s in step.schemes] == [[0.4, 0.3], [0.5]]
    assert step.best_scheme == 0 and step.score == 0.7


def test_scores_are_capped_at_the_criterion_and_at_the_problem_points(chat_server):
    chat_server.default = by_criterion({"energy conservation": 5, "sqrt(2gh)": 0.6, "kinematics": -2})
    step = run_sync(Judge(client_for(chat_server)).step_level(problem(points=(0.9,)), "a solution"))
    assert [[c.score for c in s] for s in step.schemes] == [[0.4, 0.6], [0.0]]
    assert step.score == 0.9  # 1.0 from the best scheme, capped at the problem's 0.9 points


def test_malformed_judge_output_is_asked_again_then_scored_zero(chat_server):
    first = {"n": 0}

    def energy(request):  # prose first, JSON when asked again
        first["n"] += 1
        return "I would give it 0.4 points." if first["n"] == 1 else '{"score": 0.4}'

    chat_server.default = by_criterion({"energy conservation": energy, "sqrt(2gh)": "Score: 0.6",
                                        "kinematics": '{"score": "one"}'})
    step = run_sync(Judge(client_for(chat_server)).step_level(problem(), "a solution"))
    a, b = step.schemes
    assert a[0].score == 0.4 and a[0].error is None
    assert a[1].score == 0.0 and "not valid JSON" in a[1].error
    assert b[0].score == 0.0 and b[0].error is not None
    assert step.errors == 2 and step.score == 0.4
    assert len(chat_server.requests) == 6  # every criterion asked at most twice


def test_the_judge_sees_the_criterion_reference_and_response(chat_server):
    chat_server.default = by_criterion({"energy conservation": 0.4, "sqrt(2gh)": 0.6, "kinematics": 0})
    run_sync(Judge(client_for(chat_server)).step_level(problem(), "MY-SOLUTION-TEXT"))
    text = user_texts(chat_server.requests[0])
    assert "MY-SOLUTION-TEXT" in text and "v=\\sqrt{2gh}" in text and "at most" in text


def test_problem_score_is_the_max_of_answer_and_step_level(chat_server, tmp_path):
    p = problem(points=(1.0, 2.0), answers=(r"\boxed{$v=\sqrt{2gh}$}", r"\boxed{3}"),
                types=("Expression", "Numerical Value"),
                marking=[["Award 2.5 pts if the derivation is right.", "Award 0.5 pt if the number is right."]])
    chat_server.default = by_criterion({"derivation": 2.5, "number is right": 0})
    judge = Judge(client_for(chat_server))
    rows = [{"id": "P_1", "response": r"\boxed{\sqrt{2gh}} \boxed{4}"},  # answers 1/3, steps 2.5/3
            {"id": "P_1", "response": r"\boxed{\sqrt{2gh}} \boxed{3}"}]  # full marks: the judge is not asked
    grades = grade_rows(rows, {"P_1": p}, GradeSettings(workers=1), judge=judge)
    assert (grades[0].answer_score, grades[0].step_score, grades[0].score) == (1.0, 2.5, 2.5)
    assert (grades[1].answer_score, grades[1].step_score, grades[1].score) == (3.0, None, 3.0)
    assert len(chat_server.requests) == 2


def test_judge_only_sub_answers_are_decided_by_the_judge(chat_server):
    p = problem(answers=(r"\boxed{$\Omega > \sqrt{2} k/a$}",), types=("Inequality",), marking=[])
    # Rows are judged concurrently, so the reply is chosen by the request rather than by arrival order.
    def equivalent(request):
        same = "1.414" in user_texts(request)
        return '{"equivalent": true, "reason": "same bound"}' if same else '{"equivalent": false}'

    chat_server.script([equivalent, equivalent])
    rows = [{"id": "P_1", "response": r"\boxed{\Omega > 1.414 k/a}"}, {"id": "P_1", "response": r"\boxed{\Omega < k}"}]
    grades = grade_rows(rows, {"P_1": p}, GradeSettings(workers=1), judge=Judge(client_for(chat_server)))
    assert [g.correct for g in grades] == [[True], [False]]
    assert [g.score for g in grades] == [1.0, 0.0]
    assert "Reference answer: $\\Omega > \\sqrt{2} k/a$" in user_texts(chat_server.requests[0])


def test_grade_cli_with_a_judge_endpoint(chat_server, tmp_path):
    from test_olympiad_scoring import small_hipho, write_rows

    from lyceum.cli import main

    data = small_hipho(tmp_path / "hipho")
    preds = write_rows(tmp_path / "p.jsonl", [{"id": "A_3", "response": r"It is so \boxed{since it must}"}])

    def judge(request):
        text = user_texts(request)
        return '{"equivalent": false}' if "equivalent" in text else '{"score": 3, "reason": "mostly explained"}'

    chat_server.default = judge
    code = main(["olympiad", "grade", "--data", str(data), "--predictions", str(preds), "--out", str(tmp_path / "out"),
                 "--workers", "1", "--judge-base-url", chat_server.base_url, "--judge-model", "j"])
    assert code == 0
    row = json.loads((tmp_path / "out" / "grades.jsonl").read_text())
    assert (row["correct"], row["answer_score"], row["step_score"], row["score"]) == ([False], 0.0, 3.0, 3.0)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["judge_usage"]["total"]["calls"] == 2
    assert (tmp_path / "out" / "judge_cache.sqlite").exists()
