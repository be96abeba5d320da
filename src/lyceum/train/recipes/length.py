"""A maximum response length that grows during training.

The paper finds 3K-7K tokens best for OPD and sees instability start at the end of long responses and
spread backwards; growing the budget lets the student settle on short responses first. A length schedule
wraps any prompt schedule and only changes ``max_new_tokens(step)``:

    schedule = LengthSchedule(UniformSchedule(rows, ...), parse_milestones("0:64,100:128,200:256"))
    schedule.max_new_tokens(150)   # -> 128
"""

from __future__ import annotations

from typing import Any

from lyceum.errors import UserError


def parse_milestones(spec: str) -> list[tuple[int, int]]:
    """``"0:64,100:128"`` -> ``[(0, 64), (100, 128)]``: from step 0 use 64 tokens, from step 100 use 128."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            step, length = (int(x) for x in part.split(":"))
        except ValueError:
            raise UserError(f"a length milestone is written STEP:TOKENS (e.g. 0:64,100:128), got {part!r}") from None
        if step < 0 or length < 1:
            raise UserError(f"a length milestone needs step >= 0 and tokens >= 1, got {part!r}")
        out.append((step, length))
    if not out:
        raise UserError("the length schedule is empty; write milestones as STEP:TOKENS,STEP:TOKENS")
    out.sort()
    if out[0][0] != 0:
        raise UserError("the length schedule must say the length at step 0 (start with 0:TOKENS)")
    return out


class LengthSchedule:
    """Any prompt schedule, with ``max_new_tokens`` taken from step milestones (piecewise constant)."""

    def __init__(self, inner: Any, milestones: list[tuple[int, int]] | str):
        self.inner = inner
        self.milestones = parse_milestones(milestones) if isinstance(milestones, str) else sorted(milestones)
        self._current = self.milestones[0][1]

    def max_new_tokens(self, step: int) -> int:
        length = self.milestones[0][1]
        for at, value in self.milestones:
            if step >= at:
                length = value
        self._current = length
        return length

    def metrics(self) -> dict[str, Any]:
        return {**self.inner.metrics(), "max_new_tokens": self._current}

    def __getattr__(self, name: str) -> Any:
        # everything else (next_batch, group_size, observe, state_dict, ...) is the inner schedule's
        return getattr(self.inner, name)
