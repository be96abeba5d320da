"""Objectives: what the engine minimises on one micro-batch, given the student's logits source and the feedback.

    objective(student_src, micro_batch, signal, diagnostics_k=0) -> (loss, stats, scan)

``scan`` is the ``scan.TokenScan`` of the step's diagnostics when the objective read it off its own passes over
the two heads (the OPD loss does, for ``diagnostics_k`` > 0), else None (the engine then scans on its own).

``loss`` is a mean over the micro-batch in the objective's ``unit``: ``"token"`` (a token mean, the default) or
``"sequence"`` (a mean over rollouts, GSPO). The engine weights each micro-batch by its share of the step's
units (``MicroBatch.share``), so the step's gradient does not depend on how the rollouts are cut into
micro-batches, nor on how they are spread over processes.

    opd_objective(cfg)                         on-policy distillation: ``losses.opd_loss`` against the teacher
    policy_objective("grpo", clip_low=0.2)     RL with a verifier: GRPO / GSPO on the signal's advantages
    mixed_objective(policy, opd, teacher_coef) both: the policy loss plus a weighted OPD term
    rl_objective(rl_config)                    what an ``RLConfig`` asks for (policy, optionally mixed)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lyceum.errors import UserError
from lyceum.train.config import OPDConfig
from lyceum.train.feedback import Signal, head_source
from lyceum.train.rollout import MicroBatch

Objective = Callable[..., tuple[torch.Tensor, dict[str, float], Any]]


def opd_objective(cfg: OPDConfig) -> Objective:
    """On-policy distillation: ``losses.opd_loss`` of the student against the teacher in the signal.

    The settings are checked here, before any model is loaded, so a typo fails in a second.
    """
    from lyceum.train.losses import KINDS, MODES, SUPPORTS, opd_loss_with_scan

    for name, value, valid in (("support", cfg.support, SUPPORTS), ("divergence kind", cfg.kind, KINDS),
                               ("update mode", cfg.mode, MODES)):
        if value not in valid:
            raise UserError(f"unknown {name} {value!r}; choose one of {', '.join(valid)}")

    mis = getattr(cfg, "mis", None)  # on by default for served rollouts: their tokens came from the server's weights

    def objective(student, mb: MicroBatch, signal: Signal, diagnostics_k: int = 0):
        if signal.teacher is None:
            raise UserError("on-policy distillation needs a teacher in the feedback")
        weights = None
        if mis is not None:
            weights = _mis(student, mb, mis)
        loss, stats, scan = opd_loss_with_scan(student, signal.teacher, mb.tokens, mb.response_mask,
                                               support=cfg.support, k=cfg.k, kind=cfg.kind, beta=cfg.beta,
                                               mode=cfg.mode, clip=cfg.clip, diagnostics_k=diagnostics_k,
                                               weights=weights)
        if weights is not None:
            stats["mis_kept"] = float((weights > 0).float().mean())
        return loss, stats, scan

    return objective


def _mis(student, mb: MicroBatch, band: tuple[float, float]) -> torch.Tensor:
    """Sequence-level masked importance sampling weights ``[b]``: the trainer's log-probs of the sampled tokens
    (no gradient) against the sampler's (``mb.old_logprobs``)."""
    from lyceum.train.losses import token_logprobs
    from lyceum.train.rl_losses import mis_weights

    with torch.no_grad():
        logp = token_logprobs(student, mb.tokens) * mb.response_mask
    return mis_weights(logp, mb.old_logprobs, mb.response_mask, low=band[0], high=band[1])


def policy_objective(loss: str = "grpo", *, clip_low: float | None = None, clip_high: float | None = None,
                     old: str = "current", reference=None, kl_coef: float = 0.0,
                     vocab: int | None = None, mis: tuple[float, float] | None = None) -> Objective:
    """RL with a verifier: GRPO/GSPO (``lyceum.train.rl_losses``) on the advantages in the signal.

    ``old="current"`` takes the behaviour log-probs as the current ones, detached (exact for on-policy, one
    update per batch: the ratio is 1 and its gradient the policy gradient); ``old="sampler"`` uses the
    log-probs recorded while sampling (they differ when sampling used a temperature or top-p).
    ``reference`` + ``kl_coef``: a k3 KL term to a frozen model (its first ``vocab`` logits). ``mis=(low, high)``:
    sequence-level masked importance sampling of the trainer's vs the sampler's log-probs, for rollouts that
    came from another engine.
    """
    from lyceum.train.losses import token_logprobs
    from lyceum.train.rl_losses import mis_weights, policy_loss

    def objective(student, mb: MicroBatch, signal: Signal, diagnostics_k: int = 0):
        if signal.advantages is None:
            raise UserError("a policy-gradient objective needs rewards from the feedback (e.g. a verifier)")
        logp = token_logprobs(student, mb.tokens) * mb.response_mask
        behaviour = logp.detach() if old == "current" else mb.old_logprobs
        weights = None
        if mis is not None:
            weights = mis_weights(logp.detach(), mb.old_logprobs, mb.response_mask, low=mis[0], high=mis[1])
        ref_logp = None
        if reference is not None and kl_coef:
            ref_logp = reference_logprobs(reference, mb, vocab).to(logp.device)
        value, stats = policy_loss(loss, logp, behaviour, signal.advantages, mb.response_mask, clip_low=clip_low,
                                   clip_high=clip_high, ref_logp=ref_logp, kl_coef=kl_coef, weights=weights)
        if weights is not None:
            stats["mis_kept"] = float((weights > 0).float().mean())
        return value, stats, None

    objective.unit = "sequence" if loss == "gspo" else "token"
    return objective


def reference_logprobs(reference, mb: MicroBatch, vocab: int | None = None) -> torch.Tensor:
    """Log-probs of ``mb``'s response tokens under the frozen reference (its first ``vocab`` logits), no gradient.

    A reference with LoRA adapters is the student itself computed with its adapters switched off
    (``lora.base_weights``): the base weights never change, so they are the starting policy."""
    from lyceum.train.lora import base_weights
    from lyceum.train.losses import token_logprobs

    with torch.no_grad(), base_weights(reference):
        hidden = reference.hidden_states(mb.ids.to(reference.device), mb.mask.to(reference.device),
                                         **mb.body_inputs())
        src = head_source(reference, hidden[:, mb.start - 1: -1], vocab or reference.vocab_size)
        return token_logprobs(src, mb.tokens.to(reference.device))


def mixed_objective(policy: Objective, opd: Objective, teacher_coef: float) -> Objective:
    """The policy loss plus ``teacher_coef`` times the OPD term (verifier reward and teacher at once)."""

    unit = getattr(policy, "unit", "token")

    def objective(student, mb: MicroBatch, signal: Signal, diagnostics_k: int = 0):
        loss, stats, _ = policy(student, mb, signal)
        t_loss, t_stats, scan = opd(student, mb, signal, diagnostics_k)
        # the engine weights the sum by the policy's unit; the OPD term is a token mean, so it is re-weighted
        # to its own share of the step's tokens
        rescale = mb.share["token"] / mb.share[unit] if mb.share and mb.share[unit] else 1.0
        total = loss + teacher_coef * rescale * t_loss
        return total, {**stats, "teacher_loss": t_stats["loss"], "policy_loss": float(loss.detach()),
                       "loss": float(total.detach())}, scan

    objective.unit = unit
    return objective


def rl_objective(cfg, *, reference=None, vocab: int | None = None):
    """The policy objective of ``cfg`` (GRPO/GSPO, clip, KL to ``reference``, MIS), plus the OPD teacher term
    weighted by ``teacher_coef`` when the feedback also carries a teacher (mixed feedback)."""
    kw: dict[str, Any] = {}
    if cfg.kl_coef and reference is not None:
        kw.update(reference=reference, kl_coef=cfg.kl_coef, vocab=vocab)
    if cfg.mis:
        kw["mis"] = cfg.mis
    policy = policy_objective(cfg.loss, clip_low=cfg.clip_low or None, clip_high=cfg.clip_high or None,
                              old=cfg.old, **kw)
    if not cfg.teacher_coef:
        return policy
    return mixed_objective(policy, opd_objective(cfg), cfg.teacher_coef)
