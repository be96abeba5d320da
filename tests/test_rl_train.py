"""`rl train` on the engine: the policy learns what the verifier rewards; the run folder tells the story."""

import json

import pytest
import torch

from lyceum.cli import main
from lyceum.lab.tasks import ALPHABET
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.runs import read_jsonl
from lyceum.train.rl import RLConfig, rl_train
from lyceum.train.verifiers import register_verifier

# tiny models: one thread is much faster than several fighting over a small shared CPU
torch.set_num_threads(1)


def starts_with_seven(row, response):
    """A toy verifier: an answer is right when it starts with the row's target character."""
    return float(response[:1] == row["target"])


register_verifier("first-char", starts_with_seven)


def tiny_student(tmp_path=None):
    lm = build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=0)
    if tmp_path is not None:
        lm.save(tmp_path / "student")
    return lm


def prompts(n=8):
    # two difficulty levels; the target is the same so the curriculum's second bucket is as learnable
    return [{"prompt": f"Q: {i}+{i}\nA: ", "target": "7", "difficulty": 1 + i % 2} for i in range(n)]


def cfg(**kw):
    base = {"steps": 12, "lr": 3e-2, "prompts_per_step": 4, "n": 8, "max_new_tokens": 2,
            "verifier": "first-char", "loss": "grpo", "pass_rate_k": 0, "thresholds": "0.3", "window": 2,
            "eval_every": 0, "checkpoint_every": 0, "micro_batch_size": 32, "diagnostics_every": 0, "device": "cpu"}
    return RLConfig(**{**base, **kw})


@pytest.mark.parametrize("loss", ["grpo", "gspo"])
def test_rl_raises_the_reward_the_verifier_gives(tmp_path, loss):
    # GSPO's default clip (3e-4) is for many small updates; one update per batch makes its ratio 1 anyway
    result = rl_train(tiny_student(), prompts(), tmp_path / "run", cfg(loss=loss))
    rewards = [r["reward"] for r in result.run.read_metrics() if r.get("event") == "train"]
    assert len(rewards) == 12
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2


def test_curriculum_stages_and_per_stage_logs_land_in_the_run_folder(tmp_path):
    result = rl_train(tiny_student(), prompts(), tmp_path / "run", cfg())
    summary = json.loads((result.run.path / "curriculum.json").read_text())
    first = summary["stages"][0]
    assert first["open_buckets"] == 1
    assert set(first) >= {"reward", "zero_variance_share", "response_length"}
    train_rows = [r for r in result.run.read_metrics() if r.get("event") == "train"]
    assert train_rows[0]["stage"] == 0 and "zero_variance_share" in train_rows[0]
    # the reward crosses 0.3 within 12 steps here, so the second bucket opens
    assert len(summary["stages"]) == 2 and train_rows[-1]["open_buckets"] == 2


def test_pass_rate_filter_keeps_only_prompts_the_model_sometimes_solves(tmp_path):
    rows = prompts(4) + [{"prompt": "Q: 9+9\nA: ", "target": "never", "difficulty": 1}]
    result = rl_train(tiny_student(), rows, tmp_path / "run", cfg(steps=1, pass_rate_k=16, max_pass_rate=0.7,
                                                                  drop_unsolved=True))
    pool = read_jsonl(result.run.path / "pool.jsonl")
    assert "Q: 9+9\nA: " not in [r["prompt"] for r in pool]
    assert result.filter["total"] == 5 and result.filter["unsolved"] >= 1
    assert all(0 < r["pass_rate"] <= 0.7 for r in pool)


def test_rl_train_command_writes_a_report(tmp_path, capsys):
    tiny_student(tmp_path)
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in prompts()))
    code = main(["rl", "train", "--student", str(tmp_path / "student"), "--prompts", str(tmp_path / "p.jsonl"),
                 "--out", str(tmp_path / "run"), "--steps", "2", "--verifier", "first-char", "--pass-rate-k", "0",
                 "--max-new-tokens", "2", "--n", "4", "--prompts-per-step", "2", "--device", "cpu",
                 "--curriculum", "false", "--loss", "gspo"])
    assert code == 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Curriculum stages" in report and "reward.png" in report
    assert "| stage |" in capsys.readouterr().out


def test_kl_to_the_starting_model_starts_at_zero_and_grows(tmp_path):
    result = rl_train(tiny_student(), prompts(), tmp_path / "run", cfg(steps=6, kl_coef=0.1))
    kl = [r["kl_ref"] for r in result.run.read_metrics() if r.get("event") == "train"]
    assert kl[0] == pytest.approx(0.0, abs=1e-6)  # the first update starts from the reference itself
    assert kl[-1] > 1e-4


def test_masked_importance_sampling_keeps_every_rollout_when_the_engines_agree(tmp_path):
    # rollouts and training use the same model here, so every sequence ratio is ~1 and nothing is masked
    result = rl_train(tiny_student(), prompts(), tmp_path / "run", cfg(steps=2, mis_low=0.5, mis_high=2.0))
    kept = [r["mis_kept"] for r in result.run.read_metrics() if r.get("event") == "train"]
    assert kept == [1.0, 1.0]


def test_length_schedule_sets_the_generation_length_per_step(tmp_path):
    result = rl_train(tiny_student(), prompts(), tmp_path / "run", cfg(steps=3, length_schedule="0:1,2:3"))
    rows = [r for r in result.run.read_metrics() if r.get("event") == "train"]
    assert [r["max_new_tokens"] for r in rows] == [1, 1, 3]
    assert max(r["response_length"] for r in rows[:2]) == 1.0


def test_mixed_feedback_adds_the_teacher_term_and_its_diagnostics(tmp_path):
    teacher = build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=3)
    result = rl_train(tiny_student(), prompts(), tmp_path / "run", cfg(steps=2, k=4, diagnostics_k=4,
                                                                       diagnostics_every=1, teacher_coef=0.5),
                      teacher=teacher)
    row = next(r for r in result.run.read_metrics() if r.get("event") == "train")
    assert {"reward", "teacher_loss", "policy_loss", "overlap_ratio"} <= set(row)
    assert row["loss"] == pytest.approx(row["policy_loss"] + 0.5 * row["teacher_loss"], rel=1e-4, abs=1e-6)
