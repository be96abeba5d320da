"""Rollouts: the student answers a batch of prompt rows, then the batch is cut into micro-batches for training.

    ro = rollout(student, rows, n=4, max_new_tokens=64, seed=step_seed)
    for mb in micro_batches(ro, size=16): ...     # mb.ids, mb.mask, mb.start, mb.tokens, mb.response_mask

Micro-batches group rollouts of similar length and drop columns that are padding in every row of the batch,
so the training forward pass does not spend time on padding the sampler needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lyceum.models.local import LocalLM, Samples


@dataclass
class Rollouts:
    """A step's rollouts: ``samples`` row i answers ``rows[samples.prompt_index[i]]``."""

    rows: list[dict]
    samples: Samples
    rewards: torch.Tensor | None = None  # [N] verifier rewards, when a verifier is configured

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def texts(self) -> list[str]:
        return self.samples.texts

    def row_of(self, i: int) -> dict:
        return self.rows[int(self.samples.prompt_index[i])]

    @property
    def tokens(self) -> int:
        return int(self.samples.mask.sum())


@dataclass
class MicroBatch:
    """Some rollouts as one padded batch: prompt in ``ids[:, :start]`` (left-padded), response after it."""

    index: torch.Tensor  # [b] which rollouts of the step
    ids: torch.Tensor  # [b, T]
    mask: torch.Tensor  # [b, T] attention mask
    start: int  # first response column
    old_logprobs: torch.Tensor | None = None  # [b, L] log-probs of the tokens under the sampling distribution
    group: torch.Tensor | None = None  # [b] prompt index: rollouts of one prompt form a group

    def to(self, device: torch.device) -> MicroBatch:
        move = lambda t: None if t is None else t.to(device)
        return MicroBatch(self.index, self.ids.to(device), self.mask.to(device), self.start,
                          move(self.old_logprobs), move(self.group))

    @property
    def tokens(self) -> torch.Tensor:
        """The response tokens ``[b, L]``; position t of a model's shifted outputs predicts ``tokens[:, t]``."""
        return self.ids[:, self.start:]

    @property
    def response_mask(self) -> torch.Tensor:
        return self.mask[:, self.start:]

    @property
    def n_tokens(self) -> int:
        return int(self.response_mask.sum())


def rollout(student: LocalLM, rows: list[dict], *, n: int, max_new_tokens: int, temperature: float = 1.0,
            top_p: float = 1.0, seed: int | None = None) -> Rollouts:
    samples = student.sample([r["prompt"] for r in rows], max_new_tokens, temperature=temperature, top_p=top_p,
                             n=n, seed=seed)
    return Rollouts(rows, samples)


def micro_batches(ro: Rollouts, size: int) -> Iterator[MicroBatch]:
    """Length-sorted micro-batches of at most ``size`` rollouts, each trimmed of all-padding columns."""
    s = ro.samples
    prompt_len = s.prompt_mask.sum(-1)
    resp_len = s.mask.sum(-1).long()
    order = torch.argsort(prompt_len * 100_000 + resp_len, stable=True)
    P = s.prompt_ids.shape[1]
    for a in range(0, len(order), size):
        idx = order[a: a + size]
        left = P - int(prompt_len[idx].max())
        right = int(resp_len[idx].max())
        ids = torch.cat([s.prompt_ids[idx, left:], s.tokens[idx, :right]], 1)
        mask = torch.cat([s.prompt_mask[idx, left:], s.mask[idx, :right].long()], 1)
        yield MicroBatch(idx, ids, mask, P - left, s.logprobs[idx, :right], s.prompt_index[idx])
