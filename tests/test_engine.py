"""The on-policy engine: distillation moves the student toward the teacher, logs what the paper watches,
accumulates gradients exactly, resumes exactly, and its CLI writes a complete run folder."""

import json

import pytest
import torch

from lyceum.cli import main
from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.local import build_tiny, load_local
from lyceum.models.tokenizers import char_tokenizer
from lyceum.runs import RunDir
from lyceum.train.config import OPDConfig
from lyceum.train.engine import accumulate_gradients, opd_objective, train
from lyceum.train.feedback import TeacherFeedback
from lyceum.train.losses import Head, divergence
from lyceum.train.rollout import micro_batches, rollout
from lyceum.train.schedules import UniformSchedule, load_prompts


def tiny(seed, sharpen=1.0):
    lm = build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=seed)
    with torch.no_grad():  # a confident teacher: the student has something definite to learn
        lm.model.lm_head.weight.mul_(sharpen)
    return lm


def rows(n=16, seed=0):
    return examples(make_problems(n, digits=(1, 2), seed=seed))


def cfg(**kw):
    base = {"steps": 8, "prompts_per_step": 4, "n": 2, "max_new_tokens": 10, "lr": 1e-2, "support": "student_topk",
            "k": 8, "micro_batch_size": 8, "diagnostics_k": 4, "eval_every": 0, "checkpoint_every": 0, "device": "cpu"}
    return OPDConfig(**{**base, **kw})


def schedule_for(c, prompts):
    return UniformSchedule(prompts, prompts_per_step=c.prompts_per_step, group_size=c.n,
                           max_new_tokens=c.max_new_tokens, seed=c.seed)


def reverse_kl_on(student, teacher, sequences):
    """Full-vocabulary KL(student || teacher), token mean over the responses of fixed sequences."""
    ids, mask, start = sequences
    with torch.no_grad():
        hs = student.hidden_states(ids, mask)[:, start - 1: -1]
        ht = teacher.hidden_states(ids, mask)[:, start - 1: -1]
        d = divergence(Head(hs, student.model.lm_head.weight), Head(ht, teacher.model.lm_head.weight), None,
                       support="full", mask=mask[:, start:])
    return float(d.sum() / mask[:, start:].sum())


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """8 steps of OPD from a sharpened random teacher: the pair, the run, fixed sequences and the KL before."""
    student, teacher = tiny(0), tiny(1, sharpen=8.0)
    fixed = teacher.sample([r["prompt"] for r in rows(6, seed=5)], 10, seed=0).sequences()
    kl_before = reverse_kl_on(student, teacher, fixed)
    c = cfg()
    run = RunDir.create(tmp_path_factory.mktemp("runs"), "opd", vars(c))
    result = train(student, TeacherFeedback(teacher, student.vocab_size), schedule_for(c, rows()), c, run,
                   objective=opd_objective(c))
    return {"student": student, "teacher": teacher, "result": result, "fixed": fixed, "kl_before": kl_before}


def test_distillation_lowers_the_reverse_kl_to_the_teacher(distilled):
    kl_after = reverse_kl_on(distilled["student"], distilled["teacher"], distilled["fixed"])
    assert kl_after < 0.8 * distilled["kl_before"]


def test_every_step_logs_loss_grad_norm_length_and_the_paper_diagnostics(distilled):
    steps = [r for r in distilled["result"].run.read_metrics() if r["event"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 9))
    for r in steps:
        assert r["loss"] > 0 and r["grad_norm"] > 0 and r["lr"] == pytest.approx(1e-2)
        assert 1 <= r["response_length"] <= 10 and r["rollouts"] == 8
        assert 0 <= r["overlap_ratio"] <= 1 and 0 <= r["overlap_mass_student"] <= 1
        assert r["entropy_gap"] == pytest.approx(abs(r["entropy_teacher"] - r["entropy_student"]), abs=0.05)
        for third in ("first", "middle", "last"):
            assert f"overlap_ratio/{third}" in r
        assert r["sequence_reward"] <= 0.5  # mean log q - log p: a sharpened teacher dislikes random text
    assert distilled["result"].initial.keys() == distilled["result"].final.keys() >= {"overlap_ratio", "entropy_gap"}


def test_the_teacher_is_never_updated(distilled):
    fresh = tiny(1, sharpen=8.0)
    for (name, a), b in zip(distilled["teacher"].model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_gradient_accumulation_equals_one_large_batch():
    student, teacher = tiny(0), tiny(1, sharpen=4.0)
    ro = rollout(student, rows(3), n=2, max_new_tokens=10, seed=3)
    grads = []
    for size in (6, 4, 1):
        student.model.zero_grad()
        accumulate_gradients(student, ro, TeacherFeedback(teacher, student.vocab_size), opd_objective(cfg()),
                             vocab=student.vocab_size, micro_batch_size=size, diagnostics_k=0)
        grads.append(torch.cat([p.grad.reshape(-1) for p in student.model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and torch.allclose(grads[0], grads[2], atol=1e-6)


def test_micro_batches_keep_every_token_and_drop_all_padding_columns():
    student = tiny(0)
    ro = rollout(student, [{"prompt": p} for p in ["1+2=", "12+34+5=", "7="]], n=2, max_new_tokens=12, seed=1)
    ids, mask, _ = ro.samples.sequences()
    seen = 0
    for mb in micro_batches(ro, 2):
        assert mb.mask[:, 0].any() and mb.mask[:, -1].any()  # no column is padding in every row
        for j, i in enumerate(mb.index.tolist()):
            assert mb.ids[j][mb.mask[j].bool()].tolist() == ids[i][mask[i].bool()].tolist()
            assert mb.tokens[j][mb.response_mask[j].bool()].tolist() == ro.samples.tokens[i][:int(ro.samples.lengths[i])].tolist()
        seen += len(mb.index)
    assert seen == 6


def test_uniform_schedule_visits_each_prompt_once_per_epoch_and_shards_across_processes():
    data = [{"prompt": str(i)} for i in range(10)]
    s = UniformSchedule(data, prompts_per_step=5, group_size=1, max_new_tokens=1, seed=0)
    epoch = s.next_batch(0) + s.next_batch(1)
    assert sorted(r["prompt"] for r in epoch) == sorted(r["prompt"] for r in data)
    assert s.next_batch(2) != s.next_batch(0) or s.next_batch(3) != s.next_batch(1)  # a new order per epoch
    ranks = [UniformSchedule(data, prompts_per_step=2, group_size=1, max_new_tokens=1, seed=0, rank=r,
                             world_size=2).next_batch(0) for r in range(2)]
    assert not {r["prompt"] for r in ranks[0]} & {r["prompt"] for r in ranks[1]}


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    c = cfg(steps=3, checkpoint_every=2)

    def run_until(steps, folder):
        student, teacher = tiny(0), tiny(1, sharpen=4.0)
        cc = OPDConfig(**{**vars(c), "steps": steps})
        run = RunDir.create(tmp_path, folder, vars(cc))
        train(student, TeacherFeedback(teacher, student.vocab_size), schedule_for(cc, rows()), cc, run,
              objective=opd_objective(cc))
        return student, run

    straight, _ = run_until(3, "straight")
    run_until(2, "resumed")  # stops after a checkpoint at step 2
    resumed, run = run_until(3, "resumed")  # a fresh student: the weights must come from the checkpoint
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert [r["step"] for r in run.read_metrics() if r["event"] == "train"] == [1, 2, 3]
    assert "resumed from" in (run.path / "run.log").read_text()


def write_pair(tmp_path, teacher_alphabet=ALPHABET):
    tiny(0).save(tmp_path / "student")
    t = build_tiny("llama", tokenizer=char_tokenizer(teacher_alphabet), hidden=32, layers=1, heads=2, seed=1)
    t.save(tmp_path / "teacher")
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(8)))


def test_distill_train_cli_writes_a_complete_run_folder(tmp_path, capsys):
    write_pair(tmp_path)
    (tmp_path / "opd.yaml").write_text("steps: 5\nlr: 0.001\nk: 4\nmax_new_tokens: 8\n")
    code = main(["distill", "train", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
                 "--prompts", str(tmp_path / "prompts.jsonl"), "--eval-prompts", str(tmp_path / "prompts.jsonl"),
                 "--out", str(tmp_path / "runs" / "cli"), "--config", str(tmp_path / "opd.yaml"), "--steps", "2",
                 "--prompts-per-step", "2", "--n", "2", "--verifier", "lab", "--device", "cpu"])
    assert code == 0
    run = tmp_path / "runs" / "cli"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if m["event"] == "train"] == [1, 2]  # the flag beat the file's 5 steps
    evals = [m for m in metrics if m["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 2] and all(e["accuracy"] == 0.0 for e in evals)  # random models
    assert (run / "report.md").exists() and (run / "overlap.png").exists() and (run / "config.yaml").exists()
    assert "lr: 0.001" in (run / "config.yaml").read_text()
    reloaded = load_local(run / "checkpoint" / "model", device="cpu")
    assert reloaded.sample(["1+1="], 4, seed=0).tokens.shape[0] == 1
    assert "student accuracy" in capsys.readouterr().out


def test_distill_train_refuses_teachers_with_another_vocabulary(tmp_path, capsys):
    write_pair(tmp_path, teacher_alphabet=ALPHABET[::-1])
    code = main(["distill", "train", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
                 "--prompts", str(tmp_path / "prompts.jsonl"), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert code == 2
    assert "shared vocabulary" in capsys.readouterr().err


def test_distill_train_explains_bad_settings(tmp_path, capsys):
    write_pair(tmp_path)
    args = ["distill", "train", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
            "--prompts", str(tmp_path / "prompts.jsonl"), "--out", str(tmp_path / "run")]
    assert main([*args, "--support", "everything"]) == 2
    assert "unknown support" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("stepz: 3\n")
    assert main([*args, "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown setting(s) stepz" in capsys.readouterr().err
    assert main([*args[:-4], "--prompts", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "r")]) == 2
    assert "prompt file not found" in capsys.readouterr().err


def test_prompt_files_in_jsonl_and_plain_text(tmp_path):
    (tmp_path / "p.txt").write_text("1+2=\n\nQ: 3+4\\nA: \n")
    assert load_prompts(tmp_path / "p.txt") == [{"prompt": "1+2="}, {"prompt": "Q: 3+4\nA: "}]
    (tmp_path / "p.jsonl").write_text('{"prompt": "1+2=", "answer": 3}\n{"text": "x"}\n')
    with pytest.raises(Exception, match="row 2 has no 'prompt'"):
        load_prompts(tmp_path / "p.jsonl")


def test_probe_cli_ranks_and_reads_each_teacher(tmp_path, capsys):
    write_pair(tmp_path)
    tiny(0).save(tmp_path / "twin")  # the student itself: a perfectly compatible "teacher"
    code = main(["distill", "probe", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
                 "--teacher", str(tmp_path / "twin"), "--prompts", str(tmp_path / "prompts.jsonl"), "--n", "2",
                 "--max-new-tokens", "6", "--k", "4", "--verifier", "lab", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    ranked = [line.split()[1] for line in out.splitlines() if line[:1] in "12" and len(line.split()) > 2]
    assert ranked[:2] == ["twin", "teacher"]  # identical distributions overlap completely: ranked first


def test_one_pass_step_diagnostics_equal_the_reference_functions():
    from lyceum.train.diagnostics import sequence_reward
    from lyceum.train.losses import token_logprobs
    from lyceum.train.scan import token_diagnostics, token_scan

    g = torch.Generator().manual_seed(0)
    hs, ht = torch.randn(3, 7, 16, generator=g), torch.randn(3, 7, 16, generator=g)
    student, teacher = Head(hs, torch.randn(40, 16, generator=g)), Head(ht, 3 * torch.randn(40, 16, generator=g))
    tokens = torch.randint(0, 40, (3, 7), generator=g)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    scan = token_scan(student, teacher, tokens, mask, k=5)
    diag, rewards = scan.diagnostics(), scan.sequence_reward()
    ref = token_diagnostics(student, teacher, mask, k=5)
    assert diag.keys() == ref.keys()
    for key in ref:
        assert diag[key] == pytest.approx(ref[key], abs=1e-5, nan_ok=True), key
    expected = sequence_reward(token_logprobs(student, tokens), token_logprobs(teacher, tokens), mask)
    assert torch.allclose(rewards, expected, atol=1e-5)


def test_demo_prints_the_table_and_writes_report_and_plots(tmp_path):
    import io

    from rich.console import Console

    from lyceum.lab.demo import DemoSetup, run_demo

    write_pair(tmp_path)
    setup = DemoSetup(tmp_path / "student", tmp_path / "teacher", rows(8), rows(4, seed=9), max_new_tokens=6,
                      opd_overrides={"prompts_per_step": 2, "n": 2, "eval_every": 1})
    out = io.StringIO()
    result = run_demo(tmp_path / "demo", steps=2, setup=setup, console=Console(file=out, width=120))
    text = out.getvalue()
    for line in ("student accuracy", "teacher accuracy", "gap recovery", "overlap ratio", "overlap mass",
                 "entropy gap"):
        assert line in text
    run = tmp_path / "demo"
    assert [e["step"] for e in result.evals] == [0, 1, 2]
    assert (run / "metrics.jsonl").exists() and (run / "accuracy.png").exists() and (run / "entropy.png").exists()
    assert "| student accuracy | 0.0% | 0.0% |" in (run / "report.md").read_text()
