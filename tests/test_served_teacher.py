"""The served teacher in training: ServedTeacherFeedback and the OPD loss reading the server's sparse answers.

A real local HTTP server (tests/serving_server.py, speaking vLLM's and SGLang's wire formats) serves the lab's
shipped teacher; every number is compared with the same teacher in this process (the engine's TeacherFeedback).
"""

import copy
import json
from pathlib import Path

import pytest
import torch
from serving_server import ServingServer

import lyceum
from lyceum.cli import main
from lyceum.errors import UserError
from lyceum.lab.tasks import examples, make_problems
from lyceum.models.local import load_local
from lyceum.models.served import SGLangServer, VLLMServer
from lyceum.train.feedback import ServedTeacherFeedback, TeacherFeedback
from lyceum.train.logits import head_source
from lyceum.train.losses import opd_loss_with_scan
from lyceum.train.rollout import Rollouts, micro_batches
from lyceum.train.sparse import SparseTeacher

CHECKPOINTS = Path(lyceum.__file__).parent / "lab" / "checkpoints"
K = 8
PROMPTS = ["12+34=", "7+5=", "40+2="]
CASES = [("vllm", "sampled"), ("vllm", "teacher_topk"), ("sglang", "sampled"), ("sglang", "teacher_topk"),
         ("sglang", "student_topk"), ("sglang", "intersection"), ("sglang", "union"),
         ("sglang", "symmetric_difference")]


@pytest.fixture(scope="module")
def student():
    return load_local(CHECKPOINTS / "student")


@pytest.fixture(scope="module")
def teacher():
    return load_local(CHECKPOINTS / "teacher")


@pytest.fixture(scope="module")
def server(teacher):
    s = ServingServer(copy.deepcopy(teacher)).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def step(student):
    """One step's rollouts (left- and right-padded, as the engine holds them) and its one micro-batch."""
    ro = Rollouts([{"prompt": p} for p in PROMPTS], student.sample(PROMPTS, max_new_tokens=12, n=2, seed=0))
    return ro, next(micro_batches(ro, 16))


def client(kind, url, **kw):
    kw.setdefault("backoff", 0.01)
    return VLLMServer(url, "tiny", **kw) if kind == "vllm" else SGLangServer(url, **kw)


def served_signal(fb, ro, mb, student_src):
    fb.prepare(ro)
    return fb(mb, student=student_src) if fb.needs_student else fb(mb)


def loss_grad_diagnostics(student, mb, teacher_src, support, mode="direct"):
    """The engine's OPD loss on the student's head, its gradient w.r.t. the student's hidden states, the scan."""
    hidden = student.hidden_states(mb.ids, mb.mask)[:, mb.start - 1: -1].detach().requires_grad_()
    loss, _, scan = opd_loss_with_scan(head_source(student, hidden, student.vocab_size), teacher_src, mb.tokens,
                                       mb.response_mask, support=support, k=K, mode=mode, diagnostics_k=4)
    loss.backward()
    return loss.detach(), hidden.grad, scan.diagnostics()


@pytest.mark.parametrize("kind,support", CASES)
def test_served_feedback_gives_the_in_process_opd_loss_and_gradient(kind, support, student, teacher, server, step):
    ro, mb = step
    V = student.vocab_size
    fb = ServedTeacherFeedback(client(kind, server.url), V, support=support, k=K)
    with torch.no_grad():
        src = head_source(student, student.hidden_states(mb.ids, mb.mask)[:, mb.start - 1: -1], V)
    served = served_signal(fb, ro, mb, src)
    assert isinstance(served.teacher, SparseTeacher)  # the server's answers, never dense [b, L, V] logits
    for mode in ("direct", "pg"):
        loss_local, grad_local, _ = loss_grad_diagnostics(student, mb, TeacherFeedback(teacher, V)(mb).teacher,
                                                          support, mode)
        loss_served, grad_served, _ = loss_grad_diagnostics(student, mb, served.teacher, support, mode)
        assert abs(loss_served.item() - loss_local.item()) < 1e-5
        assert (grad_served - grad_local).abs().max().item() < 1e-5
        assert grad_local.abs().max().item() > 0  # not two zero gradients


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_served_diagnostics_equal_the_in_process_ones_where_the_server_answers_them(kind, student, teacher, server,
                                                                                  step):
    ro, mb = step
    V = student.vocab_size
    support = "union" if kind == "sglang" else "teacher_topk"  # with given ids (SGLang) and without (vLLM)
    fb = ServedTeacherFeedback(client(kind, server.url), V, support=support, k=K, diagnostics_k=4)
    with torch.no_grad():
        src = head_source(student, student.hidden_states(mb.ids, mb.mask)[:, mb.start - 1: -1], V)
    _, _, local = loss_grad_diagnostics(student, mb, TeacherFeedback(teacher, V)(mb).teacher, support)
    _, _, served = loss_grad_diagnostics(student, mb, served_signal(fb, ro, mb, src).teacher, support)
    answered = ["overlap_ratio", "overlap_mass_student", "overlap_mass_teacher", "entropy_student"]
    answered += ["overlap_advantage"] if kind == "sglang" else []
    for name in answered:
        for key in (name, f"{name}/first", f"{name}/last"):
            assert abs(served[key] - local[key]) < 1e-5, key
    missing = ["entropy_teacher", "entropy_gap"] + ([] if kind == "sglang" else ["overlap_advantage"])
    assert all(served[name] != served[name] for name in missing)  # nan: left out of the step's record


def test_an_unsupported_support_is_refused_before_anything_is_sent(server):
    before = len(server.requests)
    with pytest.raises(UserError) as e:
        ServedTeacherFeedback(client("vllm", server.url), 52, support="union", k=K)
    msg = str(e.value)
    assert "\n" not in msg and "vLLM" in msg and "given ids" in msg and "SGLang" in msg
    with pytest.raises(UserError, match="whole distribution"):
        ServedTeacherFeedback(client("sglang", server.url), 52, support="full", k=K)
    assert len(server.requests) == before


def test_a_5xx_and_a_timeout_mid_step_are_retried_and_no_row_is_lost(student, teacher, server, step):
    ro, mb = step
    V = student.vocab_size
    sglang = client("sglang", server.url, batch_size=2, timeout=1.0)
    fb = ServedTeacherFeedback(sglang, V, support="teacher_topk", k=K)
    before = len(server.requests)
    server.inject({"status": 503, "path": "/generate"}, {"delay": 2.0, "path": "/generate"},
                  {"status": 500, "path": "/generate"})
    served = served_signal(fb, ro, mb, None)
    loss_local, grad_local, _ = loss_grad_diagnostics(student, mb, TeacherFeedback(teacher, V)(mb).teacher,
                                                      "teacher_topk")
    loss_served, grad_served, _ = loss_grad_diagnostics(student, mb, served.teacher, "teacher_topk")
    assert sglang.endpoint.retries >= 3
    assert len(server.requests) - before == 3 + sglang.endpoint.retries  # 6 rollouts, 2 per request, + resends
    assert served.teacher.token_logprobs.shape[0] == len(mb.index)  # every rollout of the micro-batch scored
    assert abs(loss_served.item() - loss_local.item()) < 1e-5
    assert (grad_served - grad_local).abs().max().item() < 1e-5


# --------------------------------------------------------------------------------------------------- the CLI


def write_prompts(path, n=8):
    rows = examples(make_problems(n, digits=(1, 2), seed=0))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_distill_train_with_a_teacher_url_runs_and_writes_metrics(tmp_path, server, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    before = len(server.requests)
    code = main(["distill", "train", "--student", str(CHECKPOINTS / "student"), "--teacher-url", server.url,
                 "--teacher-engine", "sglang", "--prompts", str(prompts), "--eval-prompts", str(prompts),
                 "--verifier", "lab", "--out", str(tmp_path / "run"), "--steps", "2", "--prompts-per-step", "2",
                 "--n", "2", "--max-new-tokens", "8", "--support", "union", "--k", "4", "--diagnostics-k", "4",
                 "--lr", "1e-3", "--device", "cpu", "--checkpoint-every", "-1"])
    assert code == 0, capsys.readouterr().err
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if m["event"] == "train"]
    assert [m["step"] for m in steps] == [1, 2]
    assert all(m["loss"] > 0 and "overlap_advantage" in m and "entropy_teacher" not in m for m in steps)
    assert any(m["event"] == "eval_teacher" for m in metrics)  # the teacher's accuracy, from its own server
    sent = [body for p, body in server.requests[before:] if p == "/generate"]
    assert any("token_ids_logprob" in b for b in sent)  # union: log q at the student's top-k ids was asked for
    assert "sglang http://127.0.0.1" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_5xx_and_a_timeout_mid_run_are_retried_and_every_step_trains_on_all_its_rollouts(tmp_path, server,
                                                                                           capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", 4)
    before = len(server.requests)
    # no evaluation: the first requests to the server are step 1's teacher scores
    server.inject({"status": 503, "path": "/generate"}, {"delay": 2.5, "path": "/generate"})
    code = main(["distill", "train", "--student", str(CHECKPOINTS / "student"), "--teacher-url", server.url,
                 "--teacher-engine", "sglang", "--teacher-timeout", "1", "--teacher-batch-size", "2",
                 "--prompts", str(prompts), "--out", str(tmp_path / "run"), "--steps", "2", "--prompts-per-step",
                 "2", "--n", "2", "--max-new-tokens", "6", "--support", "teacher_topk", "--k", "4",
                 "--device", "cpu", "--checkpoint-every", "-1", "--eval-every", "0"])
    assert code == 0, capsys.readouterr().err
    steps = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["event"] == "train"]
    assert [m["step"] for m in steps] == [1, 2] and all(m["rollouts"] == 4 for m in steps)
    # 2 steps x 4 rollouts, 2 per request = 4 scoring requests, plus a resend for each of the 2 faults (a busy
    # machine may add a timeout of its own: resent the same way)
    assert server.paths()[before:].count("/generate") >= 6


def test_distill_train_refuses_an_unsupported_support_in_one_sentence(tmp_path, server, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", 2)
    before = len(server.requests)
    code = main(["distill", "train", "--student", str(CHECKPOINTS / "student"), "--teacher-url", server.url,
                 "--teacher-engine", "vllm", "--teacher-model", "tiny", "--prompts", str(prompts),
                 "--out", str(tmp_path / "run"), "--support", "student_topk", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "student_topk support" in err and "SGLang" in err and "Traceback" not in err
    assert len(server.requests) == before and not (tmp_path / "run").exists()


def test_teacher_flags_must_go_together(tmp_path, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", 2)
    base = ["distill", "train", "--student", str(CHECKPOINTS / "student"), "--prompts", str(prompts),
            "--out", str(tmp_path / "run")]
    assert main(base) == 2
    assert "--teacher-url" in capsys.readouterr().err
    assert main([*base, "--teacher-url", "http://127.0.0.1:9"]) == 2
    assert "--teacher-engine" in capsys.readouterr().err
    assert main([*base, "--teacher-url", "http://127.0.0.1:9", "--teacher-engine", "vllm"]) == 2
    assert "--teacher-model" in capsys.readouterr().err
    assert main([*base, "--teacher", "x", "--teacher-url", "http://127.0.0.1:9", "--teacher-engine", "sglang"]) == 2
    assert "not both" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- the other commands


def test_probe_scores_a_served_teacher_as_it_scores_the_same_teacher_in_process(student, teacher, server):
    from lyceum.train.probe import probe

    results = {r.teacher: r for r in probe(student, {"local": teacher, "served": client("sglang", server.url)},
                                           PROMPTS, n=2, max_new_tokens=8, k=4, seed=0)}
    local, served = results["local"], results["served"]
    assert abs(served.reward_mean - local.reward_mean) < 1e-5  # sequence reward: log q of the sampled tokens
    for name in ("overlap_ratio", "overlap_mass_student", "overlap_mass_teacher", "overlap_advantage"):
        assert abs(served.diagnostics[name] - local.diagnostics[name]) < 1e-5, name
    assert served.diagnostics["entropy_gap"] != served.diagnostics["entropy_gap"]  # nan: no server returns it


def test_select_prompts_scores_with_a_served_teacher_equal_the_in_process_ones(student, teacher, server):
    from lyceum.train.recipes.select_prompts import score_prompts

    rows = examples(make_problems(4, digits=(1, 2), seed=3))
    local = score_prompts(student, teacher, rows, n=2, max_new_tokens=6, k=4, seed=0)
    served = score_prompts(student, client("vllm", server.url), rows, n=2, max_new_tokens=6, k=4, seed=0)
    for a, b in zip(local, served):
        assert abs(a.overlap_ratio - b.overlap_ratio) < 1e-5 and abs(a.overlap_mass - b.overlap_mass) < 1e-5
        assert abs(a.teacher_logprob - b.teacher_logprob) < 1e-5
    assert [a.rank for a in local] == [b.rank for b in served]


def test_rl_train_mixed_feedback_and_cold_start_take_a_teacher_url(tmp_path, server, capsys):
    from lyceum.train.verifiers import register_verifier

    register_verifier("served-any", lambda row, response: 1.0)  # keep every teacher sample: this is about wiring
    prompts = write_prompts(tmp_path / "prompts.jsonl", 4)
    before = len(server.requests)
    code = main(["rl", "train", "--student", str(CHECKPOINTS / "student"), "--prompts", str(prompts),
                 "--out", str(tmp_path / "rl"), "--steps", "1", "--verifier", "lab", "--pass-rate-k", "0",
                 "--max-new-tokens", "6", "--n", "2", "--prompts-per-step", "2", "--device", "cpu",
                 "--curriculum", "false", "--difficulty-key", "digits", "--teacher-coef", "0.5", "--support", "sampled", "--checkpoint-every", "-1",
                 "--teacher-url", server.url, "--teacher-engine", "vllm", "--teacher-model", "tiny"])
    assert code == 0, capsys.readouterr().err
    step = next(json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()
                if json.loads(x)["event"] == "train")
    assert "teacher_loss" in step and "overlap_ratio" in step and "sequence_reward" in step
    assert "/v1/completions" in server.paths()[before:]

    code = main(["distill", "cold-start", "--student", str(CHECKPOINTS / "student"), "--prompts", str(prompts),
                 "--out", str(tmp_path / "cold"), "--teacher-url", server.url, "--teacher-engine", "sglang",
                 "--verifier", "served-any", "--require-stop", "false", "--samples-per-prompt", "2",
                 "--max-new-tokens", "8", "--sft-steps", "1",
                 "--steps", "1", "--prompts-per-step", "2", "--n", "2", "--k", "4", "--device", "cpu",
                 "--eval-every", "0", "--checkpoint-every", "-1"])
    assert code == 0, capsys.readouterr().err
    samples = [json.loads(x) for x in (tmp_path / "cold" / "teacher_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8  # 4 prompts x 2 samples, drawn by the teacher's server
    assert (tmp_path / "cold" / "opd" / "metrics.jsonl").exists()


def test_a_vllm_teacher_that_serves_another_model_name_is_refused_before_loading(tmp_path, server, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", 2)
    code = main(["distill", "train", "--student", str(CHECKPOINTS / "student"), "--teacher-url", server.url,
                 "--teacher-engine", "vllm", "--teacher-model", "qwen-7b", "--prompts", str(prompts),
                 "--out", str(tmp_path / "run"), "--support", "sampled", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "serves tiny, not 'qwen-7b'" in err and not (tmp_path / "run").exists()


def test_max_staleness_one_decodes_a_step_ahead_and_the_served_teacher_scores_each_batch_once(tmp_path, server,
                                                                                               capsys):
    """In-process rollouts with --max-staleness 1: step s trains on the batch drawn before update s - 1 (staleness
    1 from the second step on, masked importance sampling on), the teacher is sent every batch exactly once, and
    the first step, drawn by the same weights either way, has the loss of the synchronous run."""
    prompts = write_prompts(tmp_path / "prompts.jsonl", 6)
    runs = {}
    for name, extra in (("sync", []), ("ahead", ["--max-staleness", "1"])):
        before = len(server.requests)
        code = main(["distill", "train", "--student", str(CHECKPOINTS / "student"), "--teacher-url", server.url,
                     "--teacher-engine", "sglang", "--teacher-batch-size", "2", "--prompts", str(prompts),
                     "--out", str(tmp_path / name), "--steps", "3", "--prompts-per-step", "2", "--n", "2",
                     "--max-new-tokens", "6", "--support", "teacher_topk", "--k", "4", "--lr", "1e-4",
                     "--device", "cpu", "--checkpoint-every", "-1", "--eval-every", "0", *extra])
        assert code == 0, capsys.readouterr().err
        runs[name] = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
                      if json.loads(x)["event"] == "train"]
        # 3 steps x 4 rollouts, 2 to a request; no batch is drawn for a 4th step
        assert server.paths()[before:].count("/generate") == 6
    ahead, sync = runs["ahead"], runs["sync"]
    assert [m["staleness"] for m in ahead] == [0, 1, 1] and all("staleness" not in m for m in sync)
    assert all(m["rollouts"] == 4 and 0 < m["mis_kept"] <= 1 for m in ahead)
    assert ahead[0]["loss"] == pytest.approx(sync[0]["loss"], abs=1e-5)
