"""Feedback: what the engine learns from after the student has answered.

A feedback has two calls. ``prepare(rollouts)`` runs once per step on all rollouts (a verifier scores every
answer here, so rewards can be normalised within each prompt's group) and returns numbers to log.
``feedback(micro_batch)`` returns a ``Signal`` for a micro-batch: the teacher's logits source aligned with the
student's response positions (OPD), and/or per-rollout rewards and advantages (RL). A feedback with
``needs_student = True`` (a served teacher asked for log q at the student's top-k ids) is called
``feedback(micro_batch, student=head)`` with the student's logits source of that micro-batch.

    TeacherFeedback(teacher, vocab)            on-policy distillation: the teacher scores the student's tokens
    ServedTeacherFeedback(server, vocab, support=..., k=...)   the same with the teacher behind vLLM / SGLang
    VerifierFeedback(verifier)                 RL: reward = mean over sub-answers of a verifier's verdicts
    MixedFeedback(TeacherFeedback(...), VerifierFeedback(...))     both

The teacher's logits are never materialised here: the signal carries a ``losses.Head`` (its final hidden
states and LM-head weight) and the loss computes logits a chunk of positions at a time; a served teacher's
signal carries its sparse answers (``sparse.SparseTeacher``), which the loss reads directly.
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


class ServedTeacherFeedback:
    """The teacher behind a vLLM or SGLang server: its sparse answers (``sparse.SparseTeacher``) as the signal.

    What to ask for is fixed at start-up by ``teacher_request``, which refuses, in one sentence, a support the
    server cannot answer. Supports that need no student ids (``sampled``, ``teacher_topk``) are scored ahead:
    ``prepare`` sends the step's rollouts at once, ``batch_size`` to a request and in the order the micro-batches
    will need them, with up to ``concurrency`` requests in flight, so the server works while the trainer runs
    the student's forward and backward, and each micro-batch waits only for its own rows. Supports that need
    log q at the student's top-k ids ask per micro-batch, with the ids read off the student's head
    (``needs_student``). The client lives on one event loop in a background thread, so its connections are
    kept across steps. ``prefetch(rollouts)`` sends a batch as soon as it is drawn (with ``--max-staleness 1``
    a step before it trains). Requests retry as ``lyceum.models.chat`` does; a request that fails on every attempt
    stops the run with one sentence. ``diagnostics_k`` > 0 adds the teacher's top-``diagnostics_k`` to every
    request (the overlap diagnostics).
    """

    def __init__(self, server, vocab: int, *, support: str, k: int, diagnostics_k: int = 0):
        from lyceum.models.served import teacher_request

        self.server, self.vocab = server, vocab
        req = teacher_request(server.kind, support, k)
        self.topk = max(req.topk, diagnostics_k)
        # given ids: the student's top-k of the loss (and of the diagnostics, for overlap_advantage)
        self.given_k = max(k, diagnostics_k) if req.given else 0
        self.needs_student = req.given
        self._loop = None
        self._chunks: list = []  # the step's prefetch: (rows, future of their SparseTeacher)
        self._where: dict[int, tuple[int, int]] = {}  # rollout -> (chunk, row in it)
        self._ahead: dict[int, tuple] = {}  # id(rollouts) -> (rollouts, chunks, where): sent before prepare

    def _submit(self, coro):
        from lyceum.train.served_teacher import LoopThread

        if self._loop is None:
            self._loop = LoopThread()
        return self._loop.submit(coro)

    def prefetch(self, rollouts: Rollouts) -> None:
        """Send ``rollouts`` to the teacher now, as soon as they are drawn (``rollout.StepRollouts`` calls this),
        so the server scores them while the trainer does other work; ``prepare(rollouts)`` then picks them up.
        With ``--max-staleness 1`` that other work is a whole step: the training of the batch before and the
        decoding of the batch after."""
        if not self.needs_student and id(rollouts) not in self._ahead:
            self._ahead[id(rollouts)] = (rollouts, *self._send(rollouts))

    def prepare(self, rollouts: Rollouts) -> dict[str, float]:
        if self.needs_student:
            return {}
        sent = self._ahead.pop(id(rollouts), None)  # the rollouts object is kept there, so its id is not reused
        self._chunks, self._where = sent[1:] if sent is not None else self._send(rollouts)
        return {}

    def _send(self, rollouts: Rollouts) -> tuple[list, dict[int, tuple[int, int]]]:
        """Ask for the teacher's scores of every rollout, ``batch_size`` to a request, in micro-batch order."""
        from lyceum.train.rollout import micro_batch_order
        from lyceum.train.served_teacher import score_sparse_async

        ids, mask, start = rollouts.samples.sequences()
        order = micro_batch_order(rollouts)
        size = max(1, int(getattr(self.server, "batch_size", 8)))
        chunks, where = [], {}
        for a in range(0, len(order), size):
            rows = order[a: a + size]
            future = self._submit(score_sparse_async(self.server, ids[rows], mask[rows], start, self.vocab,
                                                     topk=self.topk))
            where.update({int(r): (len(chunks), j) for j, r in enumerate(rows.tolist())})
            chunks.append((rows, future))
        return chunks, where

    def __call__(self, mb: MicroBatch, student=None) -> Signal:
        from lyceum.train.served_teacher import score_sparse_async, student_topk_ids
        from lyceum.train.sparse import SparseTeacher

        if not self.needs_student:
            if not self._chunks:
                raise RuntimeError("ServedTeacherFeedback.prepare(rollouts) must run before its micro-batches")
            L = mb.tokens.shape[1]
            picked = [(self._chunks[c][1].result(), j) for c, j in (self._where[int(r)] for r in mb.index.tolist())]

            def rows(name):
                if getattr(picked[0][0], name) is None:
                    return None
                return torch.stack([getattr(sp, name)[j, :L] for sp, j in picked])

            sparse = SparseTeacher(rows("token_logprobs"), rows("tokens"), self.vocab, rows("topk_ids"),
                                   rows("topk_logprobs"), server=self.server.kind)
            return Signal(teacher=sparse.to(mb.ids.device))
        if student is None:
            raise RuntimeError("this support asks the teacher for the student's top-k ids: pass student=")
        given = student_topk_ids(student, mb.response_mask, self.given_k)
        sparse = self._submit(score_sparse_async(self.server, mb.ids.cpu(), mb.mask.cpu(), mb.start, self.vocab,
                                                 topk=self.topk, given_ids=given.cpu())).result()
        return Signal(teacher=sparse.to(mb.ids.device))


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
        self.needs_student = any(getattr(p, "needs_student", False) for p in parts)

    def prefetch(self, rollouts: Rollouts) -> None:
        for p in self.parts:
            if hasattr(p, "prefetch"):
                p.prefetch(rollouts)

    def prepare(self, rollouts: Rollouts) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.parts:
            out.update(p.prepare(rollouts))
        return out

    def __call__(self, mb: MicroBatch, student=None) -> Signal:
        sig = Signal()
        for p in self.parts:
            s = p(mb, student=student) if getattr(p, "needs_student", False) else p(mb)
            for name in ("teacher", "rewards", "advantages"):
                if getattr(sig, name) is None:
                    setattr(sig, name, getattr(s, name))
        return sig


def verifier_rewards(verifier, rollouts: Rollouts) -> torch.Tensor:
    """One reward per rollout (mean over its sub-answers), as a float32 CPU tensor."""
    from lyceum.train.verifiers import reward

    return torch.tensor([reward(verifier, rollouts.row_of(i), t) for i, t in enumerate(rollouts.texts)],
                        dtype=torch.float32)
