"""Off-policy cold start: rejection-sampled teacher answers, SFT on them, then OPD; every stage resumable."""

import json

import pytest
import torch
import yaml

from lyceum.cli import main
from lyceum.errors import UserError
from lyceum.lab.tasks import ALPHABET
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.runs import read_jsonl
from lyceum.train.recipes.cold_start import ColdStartConfig, cold_start, keep_correct
from lyceum.train.verifiers import register_verifier

# tiny models: one thread is much faster than several fighting over a small shared CPU
torch.set_num_threads(1)


def starts_with_digit(row, response):
    return float(response[:1].isdigit())


register_verifier("starts-with-digit", starts_with_digit)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tok = char_tokenizer(ALPHABET)
    build_tiny("llama", tokenizer=tok, hidden=32, layers=1, heads=2, seed=0).save(root / "student")
    build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=1).save(
        root / "teacher")
    return root


def cfg(**kw):
    base = {"verifier": "starts-with-digit", "samples_per_prompt": 8, "max_new_tokens": 4, "sft_steps": 30,
            "sft_lr": 3e-3, "sft_batch_size": 16, "steps": 2, "prompts_per_step": 4, "n": 2, "k": 4,
            "diagnostics_k": 4, "lr": 1e-3, "eval_every": 0, "checkpoint_every": 0, "device": "cpu"}
    return ColdStartConfig(**{**base, **kw})


PROMPTS = [{"prompt": f"Q: {i}+{i + 1}\nA: "} for i in range(8)]


def test_keep_correct_drops_wrong_and_truncated_samples():
    samples = [{"reward": 1.0, "finish": "stop"}, {"reward": 0.0, "finish": "stop"},
               {"reward": 1.0, "finish": "length"}, {"reward": 0.5, "finish": "stop"}]
    assert keep_correct(samples) == [samples[0]]
    assert keep_correct(samples, min_reward=0.5) == [samples[0], samples[3]]
    assert keep_correct(samples, require_stop=False) == [samples[0], samples[2]]


def test_cold_start_runs_all_three_stages_and_resumes(models, tmp_path):
    out = tmp_path / "cold"
    # untrained models rarely stop by themselves within 4 tokens: keep cut-off samples too
    config = cfg(require_stop=False)
    result = cold_start(models / "student", models / "teacher", PROMPTS, out, config, log=lambda *_: None)

    # 1. every kept sample is one the verifier accepts; kept/total is in the run log
    samples = read_jsonl(out / "teacher_samples.jsonl")
    kept = read_jsonl(out / "sft_data.jsonl")
    assert len(samples) == 8 * 8 and 0 < len(kept) < len(samples)
    assert all(starts_with_digit(None, r["response"]) == 1.0 for r in kept)
    logged = next(r for r in result.run.read_metrics() if r.get("event") == "teacher_samples")
    assert (logged["kept"], logged["total"]) == (len(kept), 64)
    # 2. SFT lowers the student's loss on the teacher data
    assert result.sft_loss_after < result.sft_loss_before - 0.3
    assert (out / "sft" / "model" / "config.json").exists()
    # 3. OPD ran from the SFT checkpoint
    opd_rows = [r for r in read_jsonl(out / "opd" / "metrics.jsonl") if r.get("event") == "train"]
    assert len(opd_rows) == 2 and "overlap_ratio" in opd_rows[0]
    assert yaml.safe_load((out / "opd" / "config.yaml").read_text())["student"] == str(out / "sft" / "model")
    assert "kept" in (out / "report.md").read_text()

    # running again finds every stage done
    again = cold_start(models / "student", models / "teacher", PROMPTS, out, config, log=lambda *_: None)
    assert again.skipped == ["teacher samples", "sft"]
    assert len([r for r in read_jsonl(out / "opd" / "metrics.jsonl") if r.get("event") == "train"]) == 2


def test_cold_start_without_any_accepted_sample_is_a_user_error(models, tmp_path):
    register_verifier("never", lambda row, response: 0.0)
    with pytest.raises(UserError, match="accepted none"):
        cold_start(models / "student", models / "teacher", PROMPTS[:2], tmp_path / "c", cfg(verifier="never"),
                   log=lambda *_: None)


def test_cold_start_command_prints_the_kept_ratio_and_resumes(models, tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(r) for r in PROMPTS[:4]))
    argv = ["distill", "cold-start", "--student", str(models / "student"), "--teacher", str(models / "teacher"),
            "--prompts", str(prompts), "--out", str(tmp_path / "cold"), "--verifier", "starts-with-digit",
            "--require-stop", "false", "--samples-per-prompt", "4", "--max-new-tokens", "4", "--sft-steps", "5",
            "--steps", "1", "--prompts-per-step", "2", "--n", "2", "--k", "4", "--diagnostics-k", "4",
            "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "teacher samples kept: " in out and "/16 (" in out
    assert main(argv) == 0
    assert "resumed: teacher samples, sft already done" in capsys.readouterr().out
