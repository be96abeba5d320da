"""`research bench` with an endpoint survives a SIGKILL, records failed questions and stops on a dead endpoint.

A real subprocess runs the bench against the scripted chat server (a real HTTP server) as the judge; the test
kills it with SIGKILL in the middle of the second question and runs it again.
"""

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from chat_server import user_texts

pytest.importorskip("duckdb")

SRC = Path(__file__).resolve().parents[1] / "src"
DELAY = 0.4  # seconds per judge reply: long enough to kill the bench while one is in flight


def write_tables(root: Path) -> Path:
    pkg = root / "tables" / "widgets"
    (pkg / "data").mkdir(parents=True)
    rows = "\n".join(f"{y},{100 + 7 * (y - 2000) + (y % 3) * 4}" for y in range(2000, 2021))
    (pkg / "data" / "widget-output.csv").write_text("year,output\n" + rows + "\n")
    (pkg / "datapackage.json").write_text(json.dumps({
        "name": "widgets", "title": "Widget output",
        "resources": [{"path": "data/widget-output.csv", "title": "Annual widget output in tonnes",
                       "schema": {"fields": [{"name": "year"}, {"name": "output", "description": "tonnes"}]}}]}))
    return root / "tables"


def write_questions(root: Path) -> Path:
    questions = [
        {"id": f"q{i}", "question": q, "main_conclusions": ["Output grew."],
         "key_points": [{"text": "Output in 2020.", "facts": [{"value": 240.0}]}]}
        for i, q in enumerate(["How did widget output grow from 2000 to 2020?",
                               "How fast did widget output rise since 2005?",
                               "What was the widget output trend in the last ten years?"], 1)]
    path = root / "questions.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    return path


class Judge:
    """A deterministic judge that remembers when it answered each request."""

    def __init__(self, fail_on: str | None = None):
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, float]] = []  # (model, request key, time the reply was sent)
        self.texts: list[str] = []
        self.fail_on = fail_on

    def __call__(self, request):
        text = user_texts(request)
        key = hashlib.sha256(json.dumps(request["messages"], sort_keys=True).encode()).hexdigest()
        with self.lock:
            self.log.append((request["model"], key, time.time() + DELAY))
            self.texts.append(text)
        if self.fail_on and self.fail_on in text:
            return {"status": 500}
        if "on each dimension" in text:
            v = 5 + len(text) % 4
            content = json.dumps({"comprehensiveness": v, "depth": v, "instruction_following": v, "readability": v})
        elif "Expert main conclusions" in text:
            content = json.dumps({"scores": [len(text) % 10]})
        else:
            content = json.dumps({"points": [{"covered": True, "support": len(text) % 3}]})
        return {"content": content, "delay": DELAY}


def bench_cmd(questions, tables, out, url, model, *extra):
    return [sys.executable, "-m", "lyceum", "research", "bench", "--questions", str(questions), "--tables",
            str(tables), "--db", str(out.parent / f"{out.name}.duckdb"), "--out", str(out),
            "--judge-base-url", url, "--judge-model", model, *extra]


def env():
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def rows_without_timing(path: Path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        r.pop("seconds", None)
    return rows


def test_a_killed_bench_resumes_without_asking_again_and_matches_an_uninterrupted_run(chat_server, tmp_path):
    judge = Judge()
    chat_server.default = judge
    tables, questions = write_tables(tmp_path), write_questions(tmp_path)
    out = tmp_path / "killed"

    proc = subprocess.Popen(bench_cmd(questions, tables, out, chat_server.base_url, "judge-a"), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(judge.log) < 4:  # question 1 judged (3 calls), question 2's first asked
        time.sleep(0.01)
    assert len(judge.log) >= 4, "the bench never reached the second question"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.time()
    answered_before_kill = {key for _, key, sent in judge.log if sent < killed_at - 0.05}
    first_process = len(judge.log)

    rerun = subprocess.run(bench_cmd(questions, tables, out, chat_server.base_url, "judge-a"), env=env(),
                           capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    asked_again = [key for _, key, _ in judge.log[first_process:] if key in answered_before_kill]
    assert asked_again == []

    fresh = tmp_path / "fresh"
    whole = subprocess.run(bench_cmd(questions, tables, fresh, chat_server.base_url, "judge-a"), env=env(),
                           capture_output=True, text=True, timeout=300, check=False)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert rows_without_timing(out / "scores.jsonl") == rows_without_timing(fresh / "scores.jsonl")
    assert [r["id"] for r in rows_without_timing(out / "scores.jsonl")] == ["q1", "q2", "q3"]

    # Token use covers both processes of the killed run: more than its second process alone asked for.
    usage = json.loads((out / "summary.json").read_text())["usage"]["total"]
    fresh_usage = json.loads((fresh / "summary.json").read_text())["usage"]["total"]
    second_process_calls = len(judge.log) - first_process - fresh_usage["calls"]
    assert usage["calls"] - usage["cached_calls"] > second_process_calls
    assert usage["calls"] >= fresh_usage["calls"]
    for name in ("scores.jsonl", "rows.jsonl", "usage.jsonl"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


def test_a_question_whose_requests_keep_failing_is_an_error_row_and_the_run_goes_on(chat_server, tmp_path):
    judge = Judge(fail_on="How fast did widget output rise")
    chat_server.default = judge
    tables, questions = write_tables(tmp_path), write_questions(tmp_path)
    out = tmp_path / "bench"
    run = subprocess.run(bench_cmd(questions, tables, out, chat_server.base_url, "judge"), env=env(),
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert "error" in rows[1] and "HTTP 500" in rows[1]["error"]
    assert "error" not in rows[0] and "error" not in rows[2]
    assert "1 question(s) failed after every attempt" in run.stdout

    # The next run asks only the failed question again.
    judge.fail_on = None
    before = len(judge.log)
    again = subprocess.run(bench_cmd(questions, tables, out, chat_server.base_url, "judge"), env=env(),
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(judge.log) - before == 3  # race, conclusions, key points: for q2 only
    assert all("How fast did widget output rise" in text for text in judge.texts[before:])
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert all("error" not in r for r in rows)


def test_a_dead_endpoint_stops_the_bench_with_one_sentence(tmp_path):
    tables, questions = write_tables(tmp_path), write_questions(tmp_path)
    run = subprocess.run(bench_cmd(questions, tables, tmp_path / "bench", "http://127.0.0.1:9/v1", "judge"),
                         env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 2
    assert run.stderr.startswith("error: cannot reach the chat endpoint http://127.0.0.1:9/v1")
    assert "Traceback" not in run.stderr
