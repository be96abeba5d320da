"""Feedback: what the engine learns from after the student has answered.

A feedback has two calls. ``prepare(rollouts)`` runs once per step on all rollouts (a verifier scores every
answer here, so rewards can be normalised within each prompt's group) and returns numbers to log.
``feedback(micro_batch)`` returns a ``Signal`` for a micro-batch: the teacher's logits source aligned with the
student's response positions (OPD), and/or per-rollout rewards and advantages (RL).

    TeacherFeedback(teacher, vocab)            on-policy distillation: the teacher scores the student's tokens
    VerifierFeedback(verifier)                 RL: reward = mean over sub-answers of a verifier's verdicts
    MixedFeedback(TeacherFeedback(...), VerifierFeedback(...))     both

The teacher's logits are never materialised here: the signal carries a ``losses.Head`` (its final hidden
states and LM-head weight) and the loss computes logits a chunk of positions at a time.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from lyceum.errors import UserError
from lyceum.models.local import LocalLM
from lyceum.train.logits import head_source
from lyceum.train.rollout import MicroBatch, Rollouts, takes_images


@dataclass
class Signal:
    """Feedback for one micro-batch; every tensor is aligned with ``MicroBatch.tokens`` rows (and positions)."""

    teacher: Any = None  # Head or logits [b, L, V] of the teacher at the student's response positions
    rewards: torch.Tensor | None = None  # [b]
    advantages: torch.Tensor | None = None  # [b]


class Feedback(Protocol):
    def prepare(self, rollouts: Rollouts) -> dict[str, float]: ...
    def __call__(self, mb: MicroBatch) -> Signal: ...


class TeacherFeedback:
    """The teacher runs once over each micro-batch (prompt + student response) without gradient."""

    def __init__(self, teacher: LocalLM, vocab: int, autocast=nullcontext):
        self.teacher, self.vocab, self.autocast = teacher, vocab, autocast
        teacher.model.eval().requires_grad_(False)

    def prepare(self, rollouts: Rollouts) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def __call__(self, mb: MicroBatch) -> Signal:
        if mb.images is not None and not takes_images(self.teacher):
            raise UserError("the prompts carry images but the teacher is a text-only model; distilling from it "
                            "would score answers about diagrams it never saw (use a vision-language teacher)")
        with self.autocast():  # the rows' images too: the teacher sees the pixels the student answered
            hidden = self.teacher.hidden_states(mb.ids.to(self.teacher.device), mb.mask.to(self.teacher.device),
                                                **mb.body_inputs())
        return Signal(teacher=head_source(self.teacher, hidden[:, mb.start - 1: -1], self.vocab))


class VerifierFeedback:
    """Rewards from a verifier, normalised within each prompt's group (GRPO/GSPO advantages)."""

    def __init__(self, verifier, *, scale_by_std: bool = True):
        self.verifier, self.scale_by_std = verifier, scale_by_std
        self._rewards = self._adv = None

    def prepare(self, rollouts: Rollouts) -> dict[str, float]:
        from lyceum.train.rl_losses import group_advantages, zero_variance_share

        if rollouts.rewards is None:
            rollouts.rewards = verifier_rewards(self.verifier, rollouts)
        groups = rollouts.samples.prompt_index.cpu()
        self._rewards = rollouts.rewards
        self._adv = group_advantages(self._rewards, groups, scale_by_std=self.scale_by_std)
        return {"reward": float(self._rewards.mean()),
                "zero_variance_share": float(zero_variance_share(self._rewards, groups))}

    def __call__(self, mb: MicroBatch) -> Signal:
        idx = mb.index.cpu()
        return Signal(rewards=self._rewards[idx].to(mb.ids.device), advantages=self._adv[idx].to(mb.ids.device))


class MixedFeedback:
    """Several feedbacks at once (e.g. verifier reward plus the OPD teacher term); later ones fill gaps."""

    def __init__(self, *parts: Feedback):
        self.parts = parts

    def prepare(self, rollouts: Rollouts) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.parts:
            out.update(p.prepare(rollouts))
        return out

    def __call__(self, mb: MicroBatch) -> Signal:
        sig = Signal()
        for p in self.parts:
            s = p(mb)
            for name in ("teacher", "rewards", "advantages"):
                if getattr(sig, name) is None:
                    setattr(sig, name, getattr(s, name))
        return sig


def verifier_rewards(verifier, rollouts: Rollouts) -> torch.Tensor:
    """One reward per rollout (mean over its sub-answers), as a float32 CPU tensor."""
    from lyceum.train.verifiers import reward

    return torch.tensor([reward(verifier, rollouts.row_of(i), t) for i, t in enumerate(rollouts.texts)],
                        dtype=torch.float32)
