"""`lyceum olympiad run` end to end against the real local chat server: solve, save, grade, resume."""

import json

from chat_server import user_texts

from lyceum.cli import main

PASS = json.dumps({"pass": True, "issues": []})


def tiny_hipho(root):
    root.mkdir()
    (root / "image_question").mkdir()
    (root / "image_question" / "T_2_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    exam = [{"information": "g = 9.8 m/s^2"},
            {"id": "T_1", "question": "Speed after falling h?", "answer": [r"\boxed{$v = \sqrt{2 g h}$}"],
             "answer_type": ["Expression"], "unit": [None], "points": [2.0], "field": "Mechanics",
             "modality": "text-only", "image_question": []},
            {"id": "T_2", "question": "Read the slope.", "answer": [r"\boxed{[1.9, 2.1]}", r"\boxed{C}"],
             "answer_type": ["Numerical Value", "Multiple Choice"], "unit": ["m/s"], "points": [1.0, 1.0],
             "field": "Mechanics", "modality": "text+data figure",
             "image_question": ["image_question/T_2_1.png"]}]
    (root / "T_2025.json").write_text(json.dumps(exam))
    (root / "medals.json").write_text(json.dumps({"T_2025": {"bronze": 1, "silver": 2, "gold": 3}}))
    return root


def answer_by_problem(request):
    text = user_texts(request)
    if "Speed after falling" in text:
        return r"Energy conservation gives \boxed{v=\sqrt{2gh}}."
    return r"The slope is \boxed{2.02} so the answer is \boxed{C}."


def run(data, out, server, *extra):
    return main(["olympiad", "run", "--data", str(data), "--out", str(out), "--base-url", server.base_url,
                 "--model", "m", "--workers", "1", *extra])


def test_run_solves_grades_and_counts_tokens_per_exam(chat_server, tmp_path, capsys):
    data = tiny_hipho(tmp_path / "hipho")
    chat_server.default = answer_by_problem
    assert run(data, tmp_path / "out", chat_server) == 0
    out = tmp_path / "out"
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == ["T_1", "T_2"]
    grades = [json.loads(x) for x in (out / "grades.jsonl").read_text().splitlines()]
    assert [g["correct"] for g in grades] == [[True], [True, True]]
    summary = json.loads((out / "summary.json").read_text())
    exam = summary["exams"]["T_2025"]
    assert exam["score"] == 4.0 and exam["medal"] == "gold"
    assert exam["tokens"]["calls"] == 2 and exam["tokens"]["completion_tokens"] > 0
    assert summary["model"] == "m" and summary["agent"] == "none"
    assert json.loads((out / "transcripts" / "T_2.json").read_text())["calls"][0]["step"] == "solve"
    assert (out / "report.md").exists() and "score 4 / 4" in capsys.readouterr().out
    # the figure went to the model as an image part
    image_request = next(r for r in chat_server.requests if "Read the slope" in user_texts(r))
    assert image_request["messages"][1]["content"][1]["type"] == "image_url"


def test_a_second_run_resumes_from_the_cache(chat_server, tmp_path):
    data = tiny_hipho(tmp_path / "hipho")
    chat_server.default = answer_by_problem
    assert run(data, tmp_path / "out", chat_server) == 0
    sent = len(chat_server.requests)
    assert run(data, tmp_path / "out", chat_server) == 0
    assert len(chat_server.requests) == sent  # every call replayed from OUT/chat_cache.sqlite
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["solver_usage"]["total"]["cached_calls"] == 2


def test_text_only_sends_no_images(chat_server, tmp_path):
    data = tiny_hipho(tmp_path / "hipho")
    chat_server.default = answer_by_problem
    assert run(data, tmp_path / "out", chat_server, "--text-only", "--exam", "T_2025", "--no-cache") == 0
    assert all(isinstance(m["content"], str) for r in chat_server.requests for m in r["messages"])


def test_minions_agent_through_the_cli(chat_server, tmp_path):
    data = tiny_hipho(tmp_path / "hipho")
    figure = json.dumps({"figures": [{"index": 1, "description": "a line through (0,0) and (1,2)"}]})

    def studio(request):
        system = request["messages"][0]["content"]
        text = user_texts(request)
        if "Visual Studio" in system:
            return PASS if "Check it against the images" in text else figure
        if "Review Studio" in system:
            return PASS
        return answer_by_problem(request)

    chat_server.default = studio
    assert run(data, tmp_path / "out", chat_server, "--agent", "minions", "--limit", "1") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["agent_status"] == {"accepted": 1}
    assert summary["exams"]["T_2025"]["complete"] is False and summary["exams"]["T_2025"]["medal"] is None


def test_unreachable_endpoint_is_one_sentence(tmp_path, capsys):
    data = tiny_hipho(tmp_path / "hipho")
    code = main(["olympiad", "run", "--data", str(data), "--out", str(tmp_path / "out"), "--base-url",
                 "http://127.0.0.1:9/v1", "--model", "m", "--no-cache", "--limit", "1", "--max-retries", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot reach the chat endpoint") and "Traceback" not in err


def test_a_problem_the_endpoint_refuses_scores_zero_and_the_run_goes_on(chat_server, tmp_path):
    data = tiny_hipho(tmp_path / "hipho")

    def refuse_figures(request):
        if "Read the slope" in user_texts(request):
            return {"status": 400, "message": "image input is not supported"}
        return answer_by_problem(request)

    chat_server.default = refuse_figures
    assert run(data, tmp_path / "out", chat_server, "--max-retries", "0") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["exams"]["T_2025"]["score"] == 2.0
    assert summary["errors"][0]["id"] == "T_2" and "HTTP 400" in summary["errors"][0]["error"]
    assert "refused by the endpoint" in (tmp_path / "out" / "report.md").read_text()


def test_endpoint_and_model_come_from_the_environment(chat_server, tmp_path, monkeypatch):
    data = tiny_hipho(tmp_path / "hipho")
    chat_server.default = answer_by_problem
    monkeypatch.setenv("LYCEUM_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("LYCEUM_MODEL", "env-model")
    assert main(["olympiad", "run", "--data", str(data), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert {r["model"] for r in chat_server.requests} == {"env-model"}
