"""Checkpoints: everything needed to continue a run exactly where it stopped.

    <run>/checkpoint/model/           the student (save_pretrained + tokenizer): loadable with load_local
    <run>/checkpoint/adapter/         instead of model/ in a LoRA run: the adapters alone (``lyceum distill merge``)
    <run>/checkpoint/trainer.pt       step, optimizer, LR schedule, RNG states, prompt-schedule state, extras

Saving is crash-safe. The new checkpoint is written to ``checkpoint.tmp`` (``trainer.pt`` last, through a
rename, and everything fsynced), then ``checkpoint`` becomes ``checkpoint.old``, ``checkpoint.tmp`` becomes
``checkpoint``, and ``checkpoint.old`` is removed. A kill at any point leaves one complete checkpoint among the
three names, and ``recover_checkpoint`` (run by ``has_checkpoint``, ``load_checkpoint`` and every save) puts
it back under ``checkpoint``: the current one if complete, else the finished ``.tmp`` (a kill between the two
renames), else ``.old``. A folder is complete when it holds ``trainer.pt``.

A run under ``--fsdp`` (``save_sharded_checkpoint``) also writes ``<run>/checkpoint/dcp/``: the sharded
student and optimizer through ``torch.distributed.checkpoint``, every process its own shards, which load back
at any number of processes; ``trainer.pt`` then holds no optimizer and ``model/`` is the gathered student. With
LoRA, ``dcp/`` holds the adapters and their optimizer state only and ``adapter/`` the gathered adapters.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lyceum.errors import UserError
from lyceum.models.local import LocalLM

STATE_FILE = "trainer.pt"
SHARDS = "dcp"  # the torch.distributed.checkpoint folder of a sharded run
ADAPTER_DIR = "adapter"  # a LoRA run's checkpoint holds its adapters here instead of a model/ folder


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


def _siblings(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")


def _complete(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file()


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush a folder's files and the folder entries to disk, so the renames after it never expose empty files."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory
        pass
    finally:
        os.close(fd)


def recover_checkpoint(path: str | Path) -> str | None:
    """Settle what an interrupted save left: afterwards only ``path`` remains (or nothing).

    Returns what happened ("kept", "recovered .tmp", "recovered .old", "removed an unfinished save") or None
    when there was nothing to do. Safe to call from several processes at once (a lost race is re-checked)."""
    path = Path(path)
    tmp, old = _siblings(path)
    if not tmp.exists() and not old.exists():
        return None
    if _complete(path):
        _remove(tmp)
        _remove(old)
        return "kept"
    for candidate, what in ((tmp, "recovered .tmp"), (old, "recovered .old")):
        if _complete(candidate):
            if path.exists():  # never complete here: a stray folder without trainer.pt
                _remove(path)
            try:
                candidate.rename(path)
            except OSError:  # another process of the run got there first
                if not _complete(path):
                    raise
            _fsync_dir(path.parent)
            _remove(tmp)
            _remove(old)
            return what
    _remove(tmp)  # a first save that never finished, and no older checkpoint
    return "removed an unfinished save"


def save_checkpoint(path: str | Path, *, student: LocalLM, optimizer, scheduler, step: int,
                    extra: dict[str, Any]) -> Path:
    path = Path(path)
    tmp, old = _siblings(path)
    recover_checkpoint(path)
    _remove(tmp)
    student.save(tmp / (ADAPTER_DIR if student.adapter is not None else "model"))  # LoRA: the adapters alone
    part = tmp / (STATE_FILE + ".part")
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": rng_state(), "extra": extra}, part)
    part.rename(tmp / STATE_FILE)  # last: its presence marks the folder complete
    _fsync_tree(tmp)
    if path.exists():
        path.rename(old)
    tmp.rename(path)  # the commit point; a kill before it leaves .old (and a complete .tmp) to recover
    _fsync_dir(path.parent)
    _remove(old)
    return path


def save_sharded_checkpoint(path: str | Path, *, sharded, optimizer, scheduler, step: int,
                            extra: dict[str, Any], main: bool) -> Path:
    """``save_checkpoint`` for a sharded student: every process calls it (the DCP save is collective)."""
    import torch.distributed as torch_dist

    from lyceum.train.fsdp import save_state

    path = Path(path)
    tmp, old = _siblings(path)
    if main:
        recover_checkpoint(path)
        _remove(tmp)
    torch_dist.barrier()
    save_state(tmp / SHARDS, sharded.student.model, optimizer)
    if main:  # the gathered model, or with LoRA its adapters alone
        sharded.full.save(tmp / (ADAPTER_DIR if sharded.full.adapter is not None else "model"))
        part = tmp / (STATE_FILE + ".part")
        torch.save({"step": step, "scheduler": scheduler.state_dict(), "rng": rng_state(), "extra": extra}, part)
        part.rename(tmp / STATE_FILE)
        _fsync_tree(tmp)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        _fsync_dir(path.parent)
        _remove(old)
    torch_dist.barrier()  # nobody reads or writes the checkpoint before it is in place
    return path


def has_checkpoint(path: str | Path) -> bool:
    """Whether a complete checkpoint is there, after recovering one an interrupted save left under another name."""
    recover_checkpoint(path)
    return _complete(Path(path))


def load_checkpoint(path: str | Path, *, student: LocalLM, optimizer, scheduler,
                    sharded=None) -> tuple[int, dict[str, Any]]:
    """Restore weights, optimizer, schedule and RNG in place; return (the step to continue from, extras).

    With ``sharded`` (an ``fsdp.Sharded``) the student and optimizer come from the checkpoint's DCP shards,
    resharded to this run's processes, and the gathered copy is refreshed.
    """
    path = Path(path)
    recover_checkpoint(path)
    has_adapter = (path / ADAPTER_DIR).is_dir()
    if has_adapter != (student.adapter is not None):
        held, need = ("LoRA adapters", "the run's lora_r") if has_adapter else ("a full model", "lora_r 0")
        raise UserError(f"the checkpoint in {path} holds {held}; resume with {need}, or start over with --restart")
    if sharded is not None or (path / SHARDS).is_dir():
        return _load_sharded(path, student=student, optimizer=optimizer, scheduler=scheduler, sharded=sharded)
    if has_adapter:
        from lyceum.train.lora import load_adapter_weights

        load_adapter_weights(student, path / ADAPTER_DIR)
    else:
        # the student's own class, so a vision-language student (its vision tower included) restores too
        saved = type(student.model).from_pretrained(path / "model", local_files_only=True)
        student.model.load_state_dict(saved.state_dict())
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"]), state["extra"]


def _load_sharded(path: Path, *, student: LocalLM, optimizer, scheduler, sharded) -> tuple[int, dict[str, Any]]:
    from transformers import AutoModelForCausalLM

    from lyceum.train.fsdp import load_state, load_whole

    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    if (path / SHARDS).is_dir():
        load_state(path / SHARDS, student.model, optimizer)
    elif (path / ADAPTER_DIR).is_dir():  # LoRA saved without --fsdp: the adapters, read into the plain copy first
        from lyceum.train.lora import load_adapter_weights

        load_adapter_weights(sharded.full, path / ADAPTER_DIR)
        trained = {n for n, p in student.model.named_parameters() if p.requires_grad}
        adapters = {n: p for n, p in sharded.full.model.named_parameters() if n in trained}
        load_whole(student.model, optimizer, adapters, state["optimizer"])
    else:  # saved without --fsdp: every process reads the whole state and keeps its shards
        saved = AutoModelForCausalLM.from_pretrained(path / "model", local_files_only=True)
        load_whole(student.model, optimizer, saved.state_dict(), state["optimizer"])
    if sharded is not None:
        sharded.gather()
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"]), state["extra"]
