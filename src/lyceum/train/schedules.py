"""Prompt schedules: which prompts the engine rolls out at each step, how many rollouts each, how long.

A schedule is any object with these methods (``lyceum.train.curriculum.Curriculum`` is one):

    next_batch(step) -> list[dict]        prompt rows ({"prompt": ..., plus whatever the verifier needs})
    group_size(step) -> int               rollouts per prompt
    max_new_tokens(step) -> int
    observe(step, metrics) -> bool        told the step's metrics afterwards (a curriculum may advance)
    metrics() -> dict                     logged with the step
    state_dict() / load_state_dict(d)     for resume

Batches are a pure function of (seed, step) plus the saved state, so a resumed run draws exactly the prompts
the uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Protocol

from lyceum.errors import UserError


class PromptSchedule(Protocol):
    def next_batch(self, step: int) -> list[dict]: ...
    def group_size(self, step: int) -> int: ...
    def max_new_tokens(self, step: int) -> int: ...
    def observe(self, step: int, metrics: dict[str, Any]) -> bool: ...
    def metrics(self) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class UniformSchedule:
    """Epochs over the prompts in a fresh seeded order each; every prompt is used once per epoch."""

    def __init__(self, rows: list[dict], *, prompts_per_step: int, group_size: int, max_new_tokens: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if not rows:
            raise UserError("there are no prompts to train on")
        self.rows = list(rows)
        self.prompts_per_step = prompts_per_step
        self._group_size = group_size
        self._max_new_tokens = max_new_tokens
        self.seed = seed
        self.rank, self.world_size = rank, world_size

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.rows)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_batch(self, step: int) -> list[dict]:
        # every process takes its own slice of the global batch, so together they see prompts_per_step x world
        per_step = self.prompts_per_step * self.world_size
        first = step * per_step + self.rank * self.prompts_per_step
        out = []
        for i in range(first, first + self.prompts_per_step):
            epoch, at = divmod(i, len(self.rows))
            out.append(self.rows[self._order(epoch)[at]])
        return out

    def group_size(self, step: int) -> int:
        return self._group_size

    def max_new_tokens(self, step: int) -> int:
        return self._max_new_tokens

    def observe(self, step: int, metrics: dict[str, Any]) -> bool:
        return False

    def metrics(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


SCHEDULES = {"uniform": UniformSchedule}


def make_schedule(name: str, rows: list[dict], **kwargs: Any) -> PromptSchedule:
    if name not in SCHEDULES:
        raise UserError(f"unknown prompt schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name](rows, **kwargs)


# Prompt sources besides a file (``--data KIND DIR``): name -> "package.module:function", imported when asked
# for, so train imports no task package. The function takes (dir, exams, modalities=..., images=...) and returns
# (rows, report with .summary()); its rows carry what the source's verifier (DATA_VERIFIERS) needs.
DATA_SOURCES = {"hipho": "lyceum.olympiad.prompts_rl:hipho_prompt_rows"}
DATA_VERIFIERS = {"hipho": "hipho"}


def load_data(kind: str, path: str | Path, *, exams: str | None = None, modalities: list[str] | None = None,
              images: bool = True) -> tuple[list[dict], str]:
    """Prompt rows from a data set folder (``--data hipho DIR``): (rows, a one-line summary of what was kept).

    ``images=False`` makes rows for a text-only model (HiPhO: the prompt then says the figures are not shown).
    """
    from lyceum.train.verifiers import resolve

    if kind not in DATA_SOURCES:
        raise UserError(f"unknown data set {kind!r}; choose one of {', '.join(DATA_SOURCES)} (or give --prompts)")
    rows, report = resolve(DATA_SOURCES[kind], "data source")(path, exams, modalities=modalities, images=images)
    return rows, report.summary()


def image_row(row: dict, base: Path, where: str) -> dict:
    """A row with images or chat messages (``lyceum.train.image_prompts``): image paths checked and made
    absolute; a messages row also gets its text as ``prompt`` (for logs, text verifiers and dedup keys)."""
    from lyceum.train.image_prompts import normalise_row, prompt_text

    out = normalise_row(row, base, where)
    if "messages" in out and not isinstance(out.get("prompt"), str):
        out["prompt"] = prompt_text({"messages": out["messages"]})
    return out


def load_prompts(path: str | Path) -> list[dict]:
    """Prompt rows from a file: JSONL/JSON with a ``prompt`` field per row, or plain text with one per line.

    JSONL/JSON rows may carry ``images`` or chat ``messages`` with image parts (``lyceum.train.image_prompts``);
    relative image paths are resolved against the file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".json"):
        if path.suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"{path} is not valid JSON ({e.msg})") from e
            rows = data if isinstance(data, list) else None
            if rows is None:
                raise UserError(f"{path} must hold a list of prompt rows")
        else:
            from lyceum.runs import read_jsonl

            rows = read_jsonl(path)
        for i, r in enumerate(rows, 1):
            if isinstance(r, str):
                rows[i - 1] = {"prompt": r}
            elif isinstance(r, dict) and ("images" in r or "messages" in r):
                rows[i - 1] = image_row(r, path.parent, f"{path}: row {i}")
            elif not isinstance(r, dict) or not isinstance(r.get("prompt"), str):
                raise UserError(f"{path}: row {i} has no 'prompt' text")
    else:
        # plain text: one prompt per line; a literal "\n" in a line stands for a newline inside the prompt
        rows = [{"prompt": line.replace("\\n", "\n")} for line in text.splitlines() if line.strip()]
    if not rows:
        raise UserError(f"{path} holds no prompts")
    return rows
