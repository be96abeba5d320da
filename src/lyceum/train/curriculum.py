"""Curriculum for RL with a verifier (the P1-VL recipe): filter by pass rate, then widen difficulty by stages.

1. Estimate each prompt's pass rate from k rollouts of the starting policy (``pass_rates``).
2. Drop prompts it always solves (pass rate > 0.7: little left to learn) or never solves (= 0: every group
   has zero reward variance, so GRPO/GSPO get no signal) (``filter_by_pass_rate``).
3. Sort the rest into difficulty buckets, easiest first (``difficulty_buckets``).
4. Train on the easiest bucket; when the training reward (averaged over a window of steps) reaches the stage's
   threshold, open the next bucket. Each stage can also use a larger group and a longer generation budget.

``Curriculum`` is a prompt schedule for the on-policy engine: every step it hands out a batch of prompt rows
and the stage's group size and max length, and after the step it is told the step's metrics. A uniform
baseline is the same class with a single stage that opens every bucket (``Curriculum.uniform``).

    buckets = difficulty_buckets(rows, key="digits")
    cur = Curriculum(buckets, [Stage(4, 32, advance_at=0.6), Stage(8, 48, advance_at=0.6), Stage(8, 64)],
                     prompts_per_step=8)
    rows = cur.next_batch(step); ...; cur.observe(step, {"reward": 0.7, ...})
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

from lyceum.errors import UserError
from lyceum.train.config import number_list

# ---------------------------------------------------------------------------------------------------------
# pass-rate estimation and filtering


def pass_rates(rows: Sequence[dict], generate: Callable[[list[str], int], list[list[str]]],
               reward: Callable[[dict, str], float], k: int) -> list[float]:
    """Each prompt's mean reward over ``k`` sampled responses.

    ``generate(prompts, k)`` returns k response texts per prompt; ``reward(row, response)`` scores one (the
    verifier feedback's ``reward`` fits). A reward in [0, 1] counts fractionally (mean over sub-answers).
    """
    if k < 1:
        raise UserError(f"pass-rate estimation needs k >= 1 rollouts per prompt, got {k}")
    responses = generate([r["prompt"] for r in rows], k)
    return [fmean(reward(row, resp) for resp in resps) for row, resps in zip(rows, responses)]


@dataclass
class FilterReport:
    """What pass-rate filtering kept and why the rest went."""

    kept: int
    too_easy: int      # pass rate above max_rate
    unsolved: int      # pass rate exactly 0
    total: int

    def summary(self) -> str:
        return (f"kept {self.kept}/{self.total} prompts (dropped {self.too_easy} too easy, "
                f"{self.unsolved} never solved)")


def filter_by_pass_rate(rows: Sequence[dict], rates: Sequence[float], *, max_rate: float = 0.7,
                        drop_unsolved: bool = True) -> tuple[list[dict], FilterReport]:
    """Keep prompts with 0 < pass rate <= ``max_rate``; each kept row gains a ``pass_rate`` field."""
    if len(rows) != len(rates):
        raise ValueError(f"{len(rows)} rows but {len(rates)} pass rates")
    kept, too_easy, unsolved = [], 0, 0
    for row, rate in zip(rows, rates):
        if rate > max_rate:
            too_easy += 1
        elif rate == 0 and drop_unsolved:
            unsolved += 1
        else:
            kept.append({**row, "pass_rate": rate})
    return kept, FilterReport(len(kept), too_easy, unsolved, len(rows))


def difficulty_buckets(rows: Sequence[dict], *, key: str | None = "difficulty",
                       n_buckets: int | None = None) -> list[list[dict]]:
    """Group rows into buckets, easiest first.

    With ``key`` present in every row (e.g. the lab's ``digits``), one bucket per distinct value, ascending
    (``n_buckets`` then merges neighbours into that many buckets of near-equal size). Otherwise difficulty
    comes from the pass rate (higher = easier) cut into ``n_buckets`` (default 3) near-equal quantile buckets.
    """
    rows = list(rows)
    if not rows:
        raise UserError("no prompts left to build a curriculum from; loosen the pass-rate filter")
    if key is not None and all(key in r for r in rows):
        levels = sorted({r[key] for r in rows})
        buckets = [[r for r in rows if r[key] == v] for v in levels]
        if n_buckets is None or n_buckets >= len(buckets):
            return buckets
        return _merge(buckets, n_buckets)
    if not all("pass_rate" in r for r in rows):
        raise UserError(f"rows need a '{key}' field or a pass_rate to sort them by difficulty")
    ordered = sorted(rows, key=lambda r: -r["pass_rate"])
    n = min(n_buckets or 3, len(ordered))
    return [ordered[i * len(ordered) // n:(i + 1) * len(ordered) // n] for i in range(n)]


def _merge(buckets: list[list[dict]], n: int) -> list[list[dict]]:
    """Merge consecutive buckets into ``n`` groups of near-equal row count, keeping the order."""
    total = sum(map(len, buckets))
    out: list[list[dict]] = [[]]
    seen = 0
    for b in buckets:
        # start a new group once this one holds its share of the rows
        if out[-1] and seen >= total * len(out) / n and len(out) < n:
            out.append([])
        out[-1].extend(b)
        seen += len(b)
    return out


# ---------------------------------------------------------------------------------------------------------
# the staged schedule


@dataclass
class Stage:
    """One curriculum stage: how many buckets are open, the group size and max length, and when to move on.

    ``advance_at`` is the windowed mean training reward that opens the next stage (None: the last stage).
    ``buckets`` counts buckets from the easiest; 0 means "one more than the previous stage".
    """

    group_size: int
    max_new_tokens: int
    advance_at: float | None = None
    buckets: int = 0


@dataclass
class StageLog:
    stage: int
    open_buckets: int
    first_step: int
    steps: int = 0
    reward: list[float] = field(default_factory=list)
    zero_variance_share: list[float] = field(default_factory=list)
    response_length: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        mean = lambda xs: round(fmean(xs), 4) if xs else None
        return {"stage": self.stage, "open_buckets": self.open_buckets, "first_step": self.first_step,
                "steps": self.steps, "reward": mean(self.reward),
                "zero_variance_share": mean(self.zero_variance_share),
                "response_length": mean(self.response_length)}


class Curriculum:
    """A staged prompt schedule: easiest bucket first, the next one opens when the reward crosses a threshold.

    Prompts are drawn without replacement from the union of open buckets, from an RNG seeded by (seed, step),
    so a resumed run draws exactly the batches it would have drawn. Under several processes each takes its own
    slice of one global draw (``rank``/``world_size``); every process sees the same metrics, so all advance
    together.
    """

    def __init__(self, buckets: Sequence[Sequence[dict]], stages: Sequence[Stage], *, prompts_per_step: int,
                 window: int = 4, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not buckets or not all(buckets):
            raise UserError("a curriculum needs at least one non-empty difficulty bucket")
        if not stages:
            raise UserError("a curriculum needs at least one stage")
        if window < 1 or prompts_per_step < 1:
            raise UserError("window and prompts_per_step must be at least 1")
        self.buckets = [list(b) for b in buckets]
        self.stages = list(stages)
        opened = 0
        self._open: list[int] = []
        for s in self.stages:
            opened = min(len(self.buckets), s.buckets or opened + 1)
            self._open.append(opened)
        self.prompts_per_step = prompts_per_step
        self.window = window
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.stage = 0
        self._recent: list[float] = []
        self.log: list[StageLog] = [StageLog(0, self._open[0], first_step=0)]

    @classmethod
    def uniform(cls, buckets: Sequence[Sequence[dict]], *, group_size: int, max_new_tokens: int,
                prompts_per_step: int, **kwargs: Any) -> Curriculum:
        """The baseline: every bucket open from step 0, one group size and length throughout."""
        return cls(buckets, [Stage(group_size, max_new_tokens, None, buckets=len(buckets))],
                   prompts_per_step=prompts_per_step, **kwargs)

    # --- what the engine asks before a step

    @property
    def open_buckets(self) -> int:
        return self._open[self.stage]

    def pool(self) -> list[dict]:
        return [r for b in self.buckets[:self.open_buckets] for r in b]

    def next_batch(self, step: int) -> list[dict]:
        pool = self.pool()
        rng = random.Random(self.seed * 1_000_003 + step)
        total = self.prompts_per_step * self.world_size
        drawn = rng.sample(pool, total) if len(pool) >= total else [rng.choice(pool) for _ in range(total)]
        return drawn[self.rank * self.prompts_per_step:(self.rank + 1) * self.prompts_per_step]

    def group_size(self, step: int) -> int:
        return self.stages[self.stage].group_size

    def max_new_tokens(self, step: int) -> int:
        return self.stages[self.stage].max_new_tokens

    # --- what the engine tells it after a step

    def observe(self, step: int, metrics: dict[str, Any]) -> bool:
        """Record the step's reward, zero-variance share and response length; advance if due. True if it did."""
        log = self.log[-1]
        log.steps += 1
        reward = metrics.get("reward")
        if reward is not None:
            log.reward.append(float(reward))
            self._recent = (self._recent + [float(reward)])[-self.window:]
        for name in ("zero_variance_share", "response_length"):
            if metrics.get(name) is not None:
                getattr(log, name).append(float(metrics[name]))
        threshold = self.stages[self.stage].advance_at
        if (threshold is None or self.stage + 1 >= len(self.stages) or len(self._recent) < self.window
                or fmean(self._recent) < threshold):
            return False
        self.stage += 1
        self._recent = []
        self.log.append(StageLog(self.stage, self.open_buckets, first_step=step + 1))
        return True

    def metrics(self) -> dict[str, Any]:
        return {"stage": self.stage, "open_buckets": self.open_buckets, "pool_size": len(self.pool()),
                "group_size": self.stages[self.stage].group_size,
                "max_new_tokens": self.stages[self.stage].max_new_tokens}

    def stage_summaries(self) -> list[dict[str, Any]]:
        return [s.summary() for s in self.log]

    # --- resume

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "recent": list(self._recent), "log": [asdict(s) for s in self.log]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state["stage"])
        self._recent = list(state["recent"])
        self.log = [StageLog(**s) for s in state["log"]]


def stages_from_config(n_buckets: int, *, thresholds: float | Sequence[float] = 0.6,
                       group_sizes: int | Sequence[int] = 4,
                       max_new_tokens: int | Sequence[int] = 64) -> list[Stage]:
    """One stage per bucket; scalars apply to every stage, lists give per-stage values (the last repeats)."""
    def at(value, i):
        if isinstance(value, (int, float)):
            return value
        value = list(value)
        if not value:
            raise UserError("a per-stage setting is an empty list")
        return value[min(i, len(value) - 1)]

    return [Stage(group_size=int(at(group_sizes, i)), max_new_tokens=int(at(max_new_tokens, i)),
                  advance_at=None if i == n_buckets - 1 else float(at(thresholds, i)), buckets=i + 1)
            for i in range(n_buckets)]


# ---------------------------------------------------------------------------------------------------------
# set-up from an RLConfig


def estimate_pass_rates(student, rows: list[dict], verifier, *, k: int, max_new_tokens: int, seed: int = 0,
                        batch_size: int = 64, autocast=None) -> list[float]:
    """Each row's mean verifier reward over ``k`` sampled student responses (temperature 1)."""
    from lyceum.train.rollout import sample_batches, sampler_inputs
    from lyceum.train.verifiers import reward

    # what the sampler is handed: the rows' texts, or their texts with their images (refused for a text model)
    inputs = sampler_inputs(student, rows)

    def generate(prompts: list[str], k: int) -> list[list[str]]:
        out: list[list[str]] = []
        for _, s in sample_batches(student, inputs, n=k, max_new_tokens=max_new_tokens,
                                   prompts_per_call=max(1, batch_size // k), seed=seed, desc="pass rates",
                                   autocast=autocast):
            out += [s.texts[j * k:(j + 1) * k] for j in range(len(s.texts) // k)]
        return out

    return pass_rates(rows, generate, lambda row, text: reward(verifier, row, text), k)


def build_curriculum(rows: list[dict], cfg, *, rank: int = 0, world_size: int = 1):
    """Buckets from ``rows`` and the stages of ``cfg`` (or the uniform baseline when ``cfg.curriculum`` is off)."""
    buckets = difficulty_buckets(rows, key=cfg.difficulty_key, n_buckets=cfg.n_buckets or None)
    groups = [int(x) for x in number_list(cfg.group_sizes, "group_sizes")] or [cfg.n]
    lengths = [int(x) for x in number_list(cfg.stage_max_new_tokens, "stage_max_new_tokens")] or [cfg.max_new_tokens]
    common = {"prompts_per_step": cfg.prompts_per_step, "seed": cfg.seed, "rank": rank,
              "world_size": world_size}
    if not cfg.curriculum:
        return Curriculum.uniform(buckets, group_size=groups[0], max_new_tokens=lengths[0], **common)
    stages = stages_from_config(len(buckets), thresholds=number_list(cfg.thresholds, "thresholds") or [0.6],
                                group_sizes=groups, max_new_tokens=lengths)
    return Curriculum(buckets, stages, window=cfg.window, **common)
