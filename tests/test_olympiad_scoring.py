"""The scorer and `lyceum olympiad grade`: grades per row, exam scores, medals, breakdowns, report, errors."""

import json

import pytest

from lyceum.cli import main
from lyceum.olympiad.data import load_hipho, load_medals, problem_index
from lyceum.olympiad.grade import is_judge_only
from lyceum.olympiad.scoring import GradeSettings, grade_rows, summarize, validate_predictions


def small_hipho(root):
    """Two tiny exams in the real file layout, with cut-offs for one of them."""
    root.mkdir(exist_ok=True)
    alpha = [{"information": "g = 9.8"},
             {"id": "A_1", "question": "speed?", "answer": [r"\boxed{$v = \sqrt{2 g h}$}", r"\boxed{3.0}"],
              "answer_type": ["Expression", "Numerical Value"], "unit": ["m/s"], "points": [1.0, 2.0],
              "field": "Mechanics", "modality": "text-only", "image_question": []},
             {"id": "A_2", "question": "which?", "answer": [r"\boxed{B}"], "answer_type": ["Multiple Choice"],
              "unit": [None], "points": [3.0], "field": "Optics", "modality": "text+data figure",
              "image_question": []},
             {"id": "A_3", "question": "why?", "answer": [r"\boxed{because}"], "answer_type": ["Open-Ended"],
              "unit": [None], "points": [4.0], "field": "Optics", "modality": "text-only", "image_question": [],
              "marking": [["Award 4 pts if the answer explains it."]]}]
    beta = [{"information": ""},
            {"id": "B_1", "question": "q", "answer": [r"\boxed{[1.64, 1.70]}"], "answer_type": ["Numerical Value"],
             "unit": [None], "points": [5.0], "field": "Mechanics", "modality": "text-only", "image_question": []}]
    (root / "Alpha_2025.json").write_text(json.dumps(alpha))
    (root / "Beta_2025.json").write_text(json.dumps(beta))
    (root / "medals.json").write_text(json.dumps({"_note": "x", "Alpha_2025": {
        "bronze": 2, "silver": 4, "gold": 6, "human_full": 10, "model_full": 10}}))
    return root


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_grade(data, preds, out, *extra):
    return main(["olympiad", "grade", "--data", str(data), "--predictions", str(preds), "--out", str(out),
                 "--workers", "1", *extra])


def test_grade_writes_one_row_per_input_row_in_order(tmp_path, capsys):
    data = small_hipho(tmp_path / "hipho")
    preds = write_rows(tmp_path / "p.jsonl", [
        {"id": "B_1", "response": r"So the ratio is \boxed{1.66}."},
        {"id": "A_1", "response": r"We get \boxed{v=\sqrt{2gh}} and then \boxed{3.1}"},
        {"id": "A_2", "answers": ["(B)"]},
        {"id": "A_1", "answers": [r"\sqrt{gh}", "3.0"]},
    ])
    assert run_grade(data, preds, tmp_path / "out") == 0
    rows = [json.loads(x) for x in (tmp_path / "out" / "grades.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["B_1", "A_1", "A_2", "A_1"]
    assert [r["correct"] for r in rows] == [[True], [True, False], [True], [False, True]]
    assert [r["answer_score"] for r in rows] == [5.0, 1.0, 3.0, 2.0]
    assert all(r["step_score"] is None and r["score"] == r["answer_score"] for r in rows)
    assert set(rows[0]) >= {"id", "correct", "answer_score", "step_score", "score"}
    assert "score 9.5 / 15" in capsys.readouterr().out


def test_exam_scores_medals_and_breakdowns(tmp_path):
    data = small_hipho(tmp_path / "hipho")
    exams = load_hipho(data)
    rows = validate_predictions([{"id": "A_1", "answers": [r"\sqrt{2hg}", "3"]}, {"id": "A_2", "answers": ["C"]},
                                 {"id": "A_3", "answers": ["because"]}, {"id": "B_1", "answers": ["1.8"]}],
                                problem_index(exams))
    grades = grade_rows(rows, problem_index(exams), GradeSettings(workers=1))
    summary = summarize(exams, grades, load_medals(data))
    alpha, beta = summary["exams"]["Alpha_2025"], summary["exams"]["Beta_2025"]
    assert (alpha["score"], alpha["full_mark"], alpha["medal"]) == (3.0, 10.0, "bronze")
    assert (beta["score"], beta["medal"], beta["cutoffs"]) == (0.0, None, None)  # no cut-offs for Beta
    assert grades[2].correct == [None]  # open-ended: judge only
    assert summary["fields"]["Mechanics"] == {"score": 3.0, "full_mark": 8.0, "problems": 2, "graded": 2,
                                              "percent": 37.5}
    assert summary["modalities"]["text+data figure"]["score"] == 0.0
    assert summary["answer_types"]["Open-Ended"] == {"correct": 0, "checked": 0, "unchecked": 1, "accuracy": None}
    assert summary["medals"] == {"gold": 0, "silver": 0, "bronze": 1, "none": 0}


def test_a_partial_exam_gets_no_medal_and_samples_are_averaged(tmp_path):
    data = small_hipho(tmp_path / "hipho")
    exams = load_hipho(data)
    rows = [{"id": "A_2", "answers": ["B"]}, {"id": "A_2", "answers": ["A"]}]
    grades = grade_rows(rows, problem_index(exams), GradeSettings(workers=1))
    alpha = summarize(exams, grades, load_medals(data))["exams"]["Alpha_2025"]
    assert alpha["score"] == 1.5 and alpha["graded"] == 1 and alpha["complete"] is False and alpha["medal"] is None


def test_report_and_chart_are_written(tmp_path):
    data = small_hipho(tmp_path / "hipho")
    preds = write_rows(tmp_path / "p.jsonl", [{"id": "A_2", "answers": ["B"]}])
    assert run_grade(data, preds, tmp_path / "out") == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| Alpha_2025 | 3 | 10 |" in report and "![Exam scores against the medal cut-offs](exam_scores.png)" in report
    assert "## By field" in report and "## By modality" in report
    assert (tmp_path / "out" / "exam_scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["exams"]["Alpha_2025"]["score"] == 3.0


@pytest.mark.parametrize("rows, message", [
    ([{"id": "Z_9", "response": "x"}], "unknown problem id 'Z_9'"),
    ([{"response": "x"}], "row 1 has no 'id'"),
    ([{"id": "A_1"}], "needs a 'response' string or an 'answers' list"),
    ([{"id": "A_1", "answers": ["1"]}], "problem A_1 has 2 sub-answer(s) but the row gives 1"),
])
def test_bad_prediction_rows_are_one_sentence_errors(tmp_path, capsys, rows, message):
    data = small_hipho(tmp_path / "hipho")
    assert run_grade(data, write_rows(tmp_path / "p.jsonl", rows), tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_malformed_jsonl_and_missing_paths_are_one_sentence_errors(tmp_path, capsys):
    data = small_hipho(tmp_path / "hipho")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "A_1", "response": "x"}\n{not json\n')
    assert run_grade(data, bad, tmp_path / "out") == 2
    assert "bad.jsonl:2 is not valid JSON" in capsys.readouterr().err
    assert run_grade(tmp_path / "nope", bad, tmp_path / "out") == 2
    assert "HiPhO data directory not found" in capsys.readouterr().err
    assert run_grade(data, tmp_path / "missing.jsonl", tmp_path / "out") == 2
    assert "predictions file not found" in capsys.readouterr().err


def test_every_gold_answer_fed_back_gets_full_answer_level_marks(hipho_dir):
    """All 14 exams: the gold answers as a model response (boxes extracted) and as an answers list."""
    exams = load_hipho(hipho_dir)
    problems = problem_index(exams)
    rows = [{"id": p.id, "response": "Solution.\n" + "\n".join(p.answers)} for p in problems.values()]
    rows += [{"id": p.id, "answers": list(p.answers)} for p in problems.values()]
    grades = grade_rows(rows, problems, GradeSettings(workers=2))  # also exercises the process pool
    wrong = [(g.id, i) for g in grades for i, c in enumerate(g.correct)
             if not is_judge_only(problems[g.id].answer_types[i]) and c is not True]
    assert wrong == []
    checked = sum(c is not None for g in grades for c in g.correct)
    assert checked == 2 * 579  # every sub-answer that is not inequality / open-ended


def test_grading_needs_neither_torch_nor_transformers(tmp_path):
    """`lyceum olympiad grade` in a process where importing torch, transformers or pandas fails."""
    import subprocess
    import sys

    data = small_hipho(tmp_path / "hipho")
    preds = write_rows(tmp_path / "p.jsonl", [{"id": "A_1", "response": r"\boxed{\sqrt{2gh}} \boxed{3}"}])
    code = ("import sys\n"
            "for m in ('torch', 'transformers', 'accelerate', 'pandas', 'duckdb'): sys.modules[m] = None\n"
            "from lyceum.cli import main\n"
            f"sys.exit(main(['olympiad', 'grade', '--data', {str(data)!r}, '--predictions', {str(preds)!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--workers', '1']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "out" / "grades.jsonl").read_text())["correct"] == [True, True]


def test_selfcheck_verb_reports_every_gold_sub_answer_correct(hipho_dir, capsys):
    assert main(["olympiad", "selfcheck", "--data", str(hipho_dir)]) == 0
    assert capsys.readouterr().out.startswith("579/579 gold sub-answers of 403 problems graded correct in ")


def test_selfcheck_writes_the_gold_answers_as_a_predictions_file_that_grades_full_marks(tmp_path, capsys):
    data = small_hipho(tmp_path / "hipho")
    preds = tmp_path / "runs" / "gold.jsonl"
    assert main(["olympiad", "selfcheck", "--data", str(data), "--write-predictions", str(preds)]) == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["A_1", "A_2", "A_3", "B_1"]
    assert run_grade(data, preds, tmp_path / "out") == 0
    grades = {g["id"]: g for g in map(json.loads, (tmp_path / "out" / "grades.jsonl").read_text().splitlines())}
    # every rule-checked sub-answer is right (A_3 is open-ended: a judge's matter, not the rules')
    assert all(c is True for i, g in grades.items() if i != "A_3" for c in g["correct"])


def test_bad_lines_do_not_lose_the_other_rows(tmp_path, capsys):
    data = small_hipho(tmp_path / "hipho")
    preds = tmp_path / "p.jsonl"
    preds.write_text("\n".join([json.dumps({"id": "A_2", "answers": ["B"]}), "{not json",
                                json.dumps({"id": "Z_9", "response": "x"}), "",
                                json.dumps({"id": "B_1", "response": r"\boxed{1.66}"}), json.dumps({"id": "A_1"})])
                     + "\n")
    assert run_grade(data, preds, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 3 line(s) of ") and err.count("\n") == 1  # one message, every bad line
    assert "p.jsonl:2 is not valid JSON" in err and "row 3: unknown problem id 'Z_9'" in err
    assert "row 6 needs a 'response' string" in err
    grades = [json.loads(x) for x in (tmp_path / "out" / "grades.jsonl").read_text().splitlines()]
    assert [(g["id"], g["correct"]) for g in grades] == [("A_2", [True]), ("B_1", [True])]
    errors = [json.loads(x) for x in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [e["line"] for e in errors] == [2, 3, 6] and errors[1]["reason"].startswith("unknown problem id 'Z_9'")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["bad_lines"] == 3


def test_duplicate_ids_warn_that_they_are_samples_of_one_problem(tmp_path, capsys):
    data = small_hipho(tmp_path / "hipho")
    preds = write_rows(tmp_path / "p.jsonl", [{"id": "A_2", "answers": ["B"]}, {"id": "A_2", "answers": ["C"]}])
    assert run_grade(data, preds, tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert "warning: 1 problem id(s) appear on several rows (A_2)" in err and "samples of one problem" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["exams"]["Alpha_2025"]["score"] == 1.5


def test_grading_without_matplotlib_skips_the_chart_and_names_the_extra(tmp_path):
    import subprocess
    import sys

    data = small_hipho(tmp_path / "hipho")
    preds = write_rows(tmp_path / "p.jsonl", [{"id": "A_2", "answers": ["B"]}])
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None\n"
            "from lyceum.cli import main\n"
            f"sys.exit(main(['olympiad', 'grade', '--data', {str(data)!r}, '--predictions', {str(preds)!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--workers', '1']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "matplotlib is not installed (pip install 'lyceum[olympiad]' brings it)" in out.stdout
    report = (tmp_path / "out" / "report.md").read_text()
    assert "exam_scores.png" in report and "![" not in report and not (tmp_path / "out" / "exam_scores.png").exists()
    assert json.loads((tmp_path / "out" / "grades.jsonl").read_text())["correct"] == [True]


def test_undecided_verdicts_are_written_counted_and_reported(tmp_path, monkeypatch):
    from lyceum.olympiad import grade, scoring

    data = small_hipho(tmp_path / "hipho")
    monkeypatch.setattr(scoring, "answer_verdict",
                        lambda gold, pred, kind, *a, **k: grade.UNDECIDED if kind == "Expression" else True)
    preds = write_rows(tmp_path / "p.jsonl", [{"id": "A_1", "answers": ["x", "3"]}])
    assert run_grade(data, preds, tmp_path / "out") == 0
    row = json.loads((tmp_path / "out" / "grades.jsonl").read_text())
    assert row["correct"] == ["undecided", True] and row["answer_score"] == 2.0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["overall"]["undecided"] == 1 and summary["answer_types"]["Expression"]["undecided"] == 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert "1 sub-answer(s) are **undecided**" in report and "Undecided (out of budget)" in report
