"""--report-to: TensorBoard event files and an offline wandb run mirror metrics.jsonl (no network needed)."""

import pytest
import torch

from lyceum.errors import UserError
from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.runs import RunDir
from lyceum.train.config import OPDConfig
from lyceum.train.engine import opd_objective, train
from lyceum.train.feedback import TeacherFeedback
from lyceum.train.schedules import UniformSchedule

torch.set_num_threads(1)


def tiny(seed):
    return build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=16, layers=1, heads=2, seed=seed)


def run_with(report_to, path):
    c = OPDConfig(steps=2, prompts_per_step=2, n=2, max_new_tokens=6, lr=1e-2, k=4, diagnostics_k=4,
                  eval_every=0, checkpoint_every=-1, device="cpu", report_to=report_to)
    rows = examples(make_problems(4, digits=(1, 1), seed=0))
    schedule = UniformSchedule(rows, prompts_per_step=2, group_size=2, max_new_tokens=6, seed=0)
    student = tiny(0)
    run = RunDir.open(path)
    train(student, TeacherFeedback(tiny(1), student.vocab_size), schedule, c, run, objective=opd_objective(c))
    assert not run.mirrors  # closed at the end of training
    return [r for r in run.read_metrics() if r.get("event") == "train"]


def test_tensorboard_events_hold_the_metrics_jsonl_values(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = run_with("tensorboard", tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    assert "train/grad_norm" in events.Tags()["scalars"]


def test_wandb_offline_writes_its_run_in_the_run_folder_without_a_network(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # any attempt to reach a server would fail at once: nothing listens on port 9
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    run_with("wandb", tmp_path / "run")
    run_id = (tmp_path / "run" / "wandb_id").read_text().strip()
    files = list((tmp_path / "run" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 1
    data = files[0].read_bytes()
    assert b"train/loss" in data and b"train/grad_norm" in data


def test_an_unknown_tracker_is_one_clear_error():
    with pytest.raises(UserError, match="unknown tracker 'mlflow'"):
        OPDConfig(report_to="tensorboard,mlflow")
