"""Training runs survive being killed: a kill at any point of a checkpoint save leaves one complete checkpoint,
and a rerun after SIGKILL or Ctrl-C neither duplicates nor loses a step."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lyceum.cli import main
from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.train import checkpoint as ckpt_mod
from lyceum.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint


def tiny(seed):
    return build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=seed)


def trainer_state(lm):
    opt = torch.optim.AdamW(lm.model.parameters(), lr=1e-3)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


class Killed(BaseException):
    """Stands for a SIGKILL at one exact point of a save: nothing after it runs, what is on disk stays."""


def die(*args, **kwargs):
    raise Killed


# (where the process dies, the step a rerun must resume at): before the commit rename the old checkpoint
# (step 2) is the one; from the commit rename on, the new one (step 3)
KILL_POINTS = {
    "writing trainer.pt": 2,
    "before the first rename": 2,
    "between the two renames": 3,
    "removing checkpoint.old": 3,
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_anywhere_in_a_save_leaves_one_complete_checkpoint(tmp_path, monkeypatch, point):
    path = tmp_path / "checkpoint"
    lm = tiny(0)
    opt, sched = trainer_state(lm)
    save_checkpoint(path, student=lm, optimizer=opt, scheduler=sched, step=2, extra={"at": 2})
    at_2 = lm.model.lm_head.weight.detach().clone()
    with torch.no_grad():
        lm.model.lm_head.weight.add_(1.0)  # the step-3 weights differ from the step-2 ones
    if point == "writing trainer.pt":
        monkeypatch.setattr(ckpt_mod.torch, "save", die)
    elif point == "before the first rename":
        monkeypatch.setattr(ckpt_mod, "_fsync_tree", die)
    elif point == "between the two renames":
        rename = Path.rename
        monkeypatch.setattr(Path, "rename", lambda self, to: die() if self.name == "checkpoint.tmp" else rename(self, to))
    else:
        remove = ckpt_mod._remove
        monkeypatch.setattr(ckpt_mod, "_remove", lambda f: die() if f.name == "checkpoint.old" else remove(f))
    with pytest.raises(Killed):
        save_checkpoint(path, student=lm, optimizer=opt, scheduler=sched, step=3, extra={"at": 3})
    monkeypatch.undo()

    assert has_checkpoint(path)
    fresh = tiny(5)
    opt2, sched2 = trainer_state(fresh)
    step, extra = load_checkpoint(path, student=fresh, optimizer=opt2, scheduler=sched2)
    assert (step, extra) == (KILL_POINTS[point], {"at": KILL_POINTS[point]})
    expected = lm.model.lm_head.weight if step == 3 else at_2
    assert torch.equal(fresh.model.lm_head.weight, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_an_unfinished_first_save_is_no_checkpoint(tmp_path, monkeypatch):
    lm = tiny(0)
    opt, sched = trainer_state(lm)
    monkeypatch.setattr(ckpt_mod.torch, "save", die)
    with pytest.raises(Killed):
        save_checkpoint(tmp_path / "checkpoint", student=lm, optimizer=opt, scheduler=sched, step=1, extra={})
    monkeypatch.undo()
    assert not has_checkpoint(tmp_path / "checkpoint")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ real processes


def write_inputs(tmp_path):
    tiny(0).save(tmp_path / "student")
    tiny(1).save(tmp_path / "teacher")
    rows = examples(make_problems(8, digits=(1, 2), seed=0))
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def train_args(tmp_path, out, steps, checkpoint_every):
    return ["distill", "train", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
            "--prompts", str(tmp_path / "prompts.jsonl"), "--out", str(tmp_path / out), "--steps", str(steps),
            "--prompts-per-step", "2", "--n", "2", "--max-new-tokens", "6", "--k", "4", "--diagnostics-k", "4",
            "--lr", "0.01", "--checkpoint-every", str(checkpoint_every), "--device", "cpu"]


def train_rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(line).get("event") == "train"]


def start_and_stop(tmp_path, args, sig, after_rows):
    """Start `lyceum distill train` in a subprocess and send it ``sig`` once it has logged ``after_rows`` steps."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lyceum", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = Path(args[args.index("--out") + 1]) / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count('"event": "train"') >= after_rows:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same run, straight through: the losses a resumed run must reproduce step for step."""
    tmp_path = tmp_path_factory.mktemp("straight")
    write_inputs(tmp_path)
    assert main(train_args(tmp_path, "run", 10, 2)) == 0
    return tmp_path, [r["loss"] for r in train_rows(tmp_path / "run")]


def test_a_sigkill_and_a_rerun_give_every_step_once_with_the_uninterrupted_losses(uninterrupted, capsys):
    tmp_path, losses = uninterrupted
    args = train_args(tmp_path, "killed", 10, 2)
    start_and_stop(tmp_path, args, signal.SIGKILL, after_rows=5)
    capsys.readouterr()
    assert main(args) == 0
    rows = train_rows(tmp_path / "killed")
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert [r["loss"] for r in rows] == pytest.approx(losses, rel=1e-4)
    assert "resuming at step " in capsys.readouterr().err


def test_a_rerun_after_ctrl_c_before_the_first_checkpoint_starts_over(uninterrupted, capsys):
    tmp_path, _ = uninterrupted
    # 0: a checkpoint only at the end. Many more steps than the signal waits for, so that on a loaded machine the
    # run cannot reach its end (and that final checkpoint) between the second row and the Ctrl-C.
    args = train_args(tmp_path, "interrupted", 24, 0)
    start_and_stop(tmp_path, args, signal.SIGINT, after_rows=2)
    run = tmp_path / "interrupted"
    assert not has_checkpoint(run / "checkpoint") and len(train_rows(run)) >= 2
    capsys.readouterr()
    assert main(args) == 0
    assert [r["step"] for r in train_rows(run)] == list(range(1, 25))
    assert "starting over" in capsys.readouterr().err
    log = (run / "run.log").read_text()
    assert log.count("opened this run") == 2 and "starting over" in log
