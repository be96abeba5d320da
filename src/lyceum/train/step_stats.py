"""One step's numbers over every process of a run, so each process logs and decides on the same ones.

Under ``torchrun`` each process rolls out its own slice of the prompts. The loss is normalised by the step's
units over all processes (``global_units``: response tokens for a token mean, rollouts for GSPO's sequence
mean), and the record of a step is built from every process's part (``merge``): loss statistics weighted by
their share of the global units, rollout numbers (length, stop rate, reward, accuracy, reward AUROC) over all
rollouts, times as the slowest process's. The curriculum observes that merged record, so every process
advances its stage at the same step.

    part = StepPart(sums, weights, prepared, lengths, stops, rewards, seq_reward, times)
    record = merge(gather(dist, part))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

UNITS = ("token", "sequence")


def units(mask: torch.Tensor) -> dict[str, float]:
    """The loss units in a ``[B, L]`` response mask: tokens, and rollouts with at least one token."""
    per_row = mask.sum(-1)
    return {"token": float(per_row.sum()), "sequence": float((per_row > 0).sum())}


def global_units(dist, mask: torch.Tensor) -> dict[str, float]:
    """``units`` summed over every process (one all-reduce; the local ones in a single process)."""
    local = units(mask)
    if dist.world_size <= 1:
        return local
    import torch.distributed as torch_dist

    t = torch.tensor([local[u] for u in UNITS], dtype=torch.float64)
    torch_dist.all_reduce(t)
    return dict(zip(UNITS, t.tolist()))


@dataclass
class StepPart:
    """What one process knows about a step."""

    sums: dict[str, float]  # loss statistics times their share of the global units
    weights: dict[str, float]  # the shares they were weighted by
    prepared: dict[str, float]  # the feedback's numbers over this process's rollouts (e.g. mean reward)
    lengths: list[int]
    stops: list[bool]
    rewards: list[float] | None = None
    seq_reward: list[float] = field(default_factory=list)  # nan where not computed
    times: dict[str, float] = field(default_factory=dict)


def gather(dist, part: StepPart) -> list[StepPart]:
    """Every process's part, on every process."""
    if dist.world_size <= 1:
        return [part]
    import torch.distributed as torch_dist

    out: list = [None] * dist.world_size
    torch_dist.all_gather_object(out, part)
    return out


def merge(parts: list[StepPart]) -> dict:
    """The step's statistics over all parts: loss stats, rollout numbers and the slowest process's times."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for p in parts:
        for k, v in p.sums.items():
            sums[k] = sums.get(k, 0.0) + v
            weights[k] = weights.get(k, 0.0) + p.weights[k]
    record = {k: v / weights[k] for k, v in sums.items() if weights[k] > 0}
    n = [len(p.lengths) for p in parts]
    prepared: dict[str, float] = {}
    for key in {k for p in parts for k in p.prepared}:
        have = [(p.prepared[key], w) for p, w in zip(parts, n) if key in p.prepared and w]
        if have:
            prepared[key] = sum(v * w for v, w in have) / sum(w for _, w in have)
    lengths = [x for p in parts for x in p.lengths]
    stops = [x for p in parts for x in p.stops]
    times = {k: max(p.times.get(k, 0.0) for p in parts) for k in parts[0].times}
    return {"stats": record, "prepared": prepared, "lengths": lengths, "stops": stops,
            "rewards": None if parts[0].rewards is None else [x for p in parts for x in p.rewards],
            "seq_reward": [x for p in parts for x in p.seq_reward], "times": times}
