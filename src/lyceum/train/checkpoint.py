"""Checkpoints: everything needed to continue a run exactly where it stopped.

    <run>/checkpoint/model/           the student (save_pretrained + tokenizer): loadable with load_local
    <run>/checkpoint/trainer.pt       step, optimizer, LR schedule, RNG states, prompt-schedule state, extras

A checkpoint is written to a temporary folder and then renamed over the old one, so an interrupted save never
leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lyceum.models.local import LocalLM

STATE_FILE = "trainer.pt"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, *, student: LocalLM, optimizer, scheduler, step: int,
                    extra: dict[str, Any]) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    student.save(tmp / "model")
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": rng_state(), "extra": extra}, tmp / STATE_FILE)
    old = path.with_name(path.name + ".old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        shutil.rmtree(old)
    return path


def has_checkpoint(path: str | Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def load_checkpoint(path: str | Path, *, student: LocalLM, optimizer, scheduler) -> tuple[int, dict[str, Any]]:
    """Restore weights, optimizer, schedule and RNG in place; return (the step to continue from, extras)."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    saved = AutoModelForCausalLM.from_pretrained(path / "model", local_files_only=True)
    student.model.load_state_dict(saved.state_dict())
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"]), state["extra"]
