"""`olympiad run` against a faulty endpoint: a failed problem is an error row and the run goes on; a SIGKILL in
the middle, then a rerun, asks nothing twice, gives the results of an uninterrupted run and reports the whole
run's token use; run files are the user's only."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from chat_server import user_texts

from lyceum.cli import main

PASS = json.dumps({"pass": True, "issues": []})
SRC = str(Path(__file__).resolve().parents[1] / "src")


def hipho(root, n=3):
    root.mkdir()
    exam = [{"information": "g = 9.8 m/s^2"}]
    for i in range(1, n + 1):
        exam.append({"id": f"T_{i}", "question": f"Problem {i}: what is {i} + {i}?", "answer": [rf"\boxed{{{2 * i}}}"],
                     "answer_type": ["Numerical Value"], "unit": [None], "points": [1.0], "field": "Mechanics",
                     "modality": "text-only", "image_question": []})
    (root / "T_2025.json").write_text(json.dumps(exam))
    return root


def answer(request):
    """Deterministic replies: the right sum for the solver, a pass for every review."""
    system = request["messages"][0]["content"] if request["messages"][0]["role"] == "system" else ""
    if "Review Studio" in system:
        return PASS
    text = user_texts(request)
    i = int(text.split("Problem ", 1)[1].split(":", 1)[0])
    return rf"{i} + {i} = \boxed{{{2 * i}}}"


def body_key(request) -> str:
    return json.dumps(request["messages"], sort_keys=True)


def run_args(data, out, server, *extra):
    return ["olympiad", "run", "--data", str(data), "--out", str(out), "--base-url", server.base_url, "--model", "m",
            "--workers", "1", "--concurrency", "1", *extra]


def cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "lyceum", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def results(out: Path):
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    grades = [json.loads(x) for x in (out / "grades.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return [(p["id"], p["response"]) for p in preds], grades, summary


@pytest.mark.parametrize("agent", ["none", "minions"])
def test_sigkill_mid_run_then_rerun_asks_nothing_twice_and_equals_an_uninterrupted_run(chat_server, tmp_path, agent):
    data = hipho(tmp_path / "hipho")
    extra = ["--agent", agent]
    chat_server.default = answer
    assert main(run_args(data, tmp_path / "reference", chat_server, *extra)) == 0
    reference = [body_key(r) for r in chat_server.requests]
    start = len(chat_server.requests)
    kill_at = len(reference) // 2 + 1  # the request that hangs: everything before it has been answered
    hung, release = threading.Event(), threading.Event()

    def hang_once(request):
        if len(chat_server.requests) - start == kill_at and not hung.is_set():
            hung.set()
            release.wait(30)
        return answer(request)

    chat_server.default = hang_once
    out = tmp_path / "run"
    proc = cli(run_args(data, out, chat_server, *extra))
    try:
        assert hung.wait(60), proc.stderr.read() if proc.poll() is not None else "the run never reached the hang"
        time.sleep(0.5)  # the answered calls are in the cache by now
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        release.set()
    interrupted = [body_key(r) for r in chat_server.requests[start:]]
    assert len(interrupted) == kill_at and not (out / "summary.json").exists()
    chat_server.default = answer
    rerun_start = len(chat_server.requests)
    rerun = cli(run_args(data, out, chat_server, *extra))
    stdout, stderr = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, stderr
    resumed = [body_key(r) for r in chat_server.requests[rerun_start:]]
    # the only request asked twice is the one that never got its answer
    assert Counter(interrupted) + Counter(resumed) == Counter(reference) + Counter([interrupted[-1]])
    ref_preds, ref_grades, ref_summary = results(tmp_path / "reference")
    preds, grades, summary = results(out)
    assert preds == ref_preds and grades == ref_grades
    for exams in (summary["exams"], ref_summary["exams"]):  # replayed calls are marked cached, nothing else differs
        for e in exams.values():
            e["tokens"].pop("cached_calls")
    assert summary["exams"] == ref_summary["exams"]
    total, ref_total = summary["solver_usage"]["total"], ref_summary["solver_usage"]["total"]
    assert (total["prompt_tokens"], total["completion_tokens"]) == (ref_total["prompt_tokens"],
                                                                    ref_total["completion_tokens"])
    assert total["cached_calls"] == kill_at - 1 and total["calls"] == ref_total["calls"] + kill_at - 1
    assert "(the whole run, over every resume)" in stdout


def test_a_problem_that_fails_every_attempt_is_an_error_row_and_is_asked_again_next_time(chat_server, tmp_path):
    data = hipho(tmp_path / "hipho")
    chat_server.default = lambda r: {"status": 503} if "Problem 2:" in user_texts(r) else answer(r)
    out = tmp_path / "out"
    assert main(run_args(data, out, chat_server, "--max-retries", "1")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [e["id"] for e in summary["errors"]] == ["T_2"] and "503" in summary["errors"][0]["error"]
    assert summary["exams"]["T_2025"]["score"] == 2.0
    assert len(chat_server.requests) == 4  # T_1, T_3 once; T_2 twice (one retry)
    chat_server.default = answer
    assert main(run_args(data, out, chat_server)) == 0
    assert ["Problem 2:" in user_texts(r) for r in chat_server.requests[4:]] == [True]  # only T_2 asked again
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == [] and summary["exams"]["T_2025"]["score"] == 3.0


def test_a_long_streak_of_failed_problems_stops_the_run_with_one_sentence(chat_server, tmp_path, capsys):
    data = hipho(tmp_path / "hipho", n=10)
    chat_server.default = {"status": 500}
    assert main(run_args(data, tmp_path / "out", chat_server, "--max-retries", "0")) == 2
    # (the server may log a broken pipe for the one request in flight when the run stopped)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: stopped: 8 problems in a row failed on every attempt")
    assert 8 <= len(chat_server.requests) <= 9  # the ninth was cancelled in flight, the tenth never asked


def test_run_files_with_prompts_and_replies_are_private(chat_server, tmp_path):
    data = hipho(tmp_path / "hipho", n=1)
    chat_server.default = answer
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert main(run_args(data, out, chat_server)) == 0
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert mode(out) == 0o700 and mode(out / "transcripts") == 0o700
    for name in ("predictions.jsonl", "grades.jsonl", "summary.json", "report.md", "chat_cache.sqlite",
                 "usage.jsonl", "transcripts/T_1.json"):
        assert mode(out / name) == 0o600, name
