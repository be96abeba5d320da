"""Policy-gradient losses for RL with a verifier: GRPO and GSPO on group-normalised advantages.

A batch holds G rollouts per prompt (a *group*). Each rollout gets one scalar reward; its advantage is the
reward minus the group mean, divided by the group std (a group where all rewards agree carries no signal).

    A_i = (r_i - mean_g r) / (std_g r + eps)

GRPO (token level, PPO clip on each token's ratio):

    rho_t = exp(logp_t - old_logp_t)
    loss  = token-mean over all response tokens of  -min(rho_t A_i, clip(rho_t, 1 - e_lo, 1 + e_hi) A_i)

GSPO (sequence level; the P1-VL recipe): one length-normalised ratio per rollout

    s_i  = exp( mean_t (logp_t - old_logp_t) )
    loss = mean over rollouts of  -min(s_i A_i, clip(s_i, 1 - e_lo, 1 + e_hi) A_i)

with GSPO's much tighter clip range (3e-4 / 4e-4 in the GSPO paper) because s_i is a geometric mean. Every
term of GSPO, its KL included, is a mean over rollouts (verl's ``seq-mean-token-mean``), so the engine can
weight micro-batches by their share of the rollouts and the gradient does not depend on the micro-batching.

Both take an optional KL to a frozen reference policy with the k3 estimator (unbiased, always >= 0)

    kl_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1

and optional per-rollout weights, which is how sequence-level masked importance sampling (``mis_weights``)
enters when the rollouts came from a different engine (e.g. vLLM) than the one computing ``old_logp``.

Each loss returns ``(loss, stats)`` like ``lyceum.train.losses.opd_loss``. All tensors: ``logp``, ``old_logp``, ``ref_logp``, ``mask`` are ``[B, T]`` over response tokens (mask 1 for
real tokens); ``advantages`` and ``weights`` are ``[B]``.
"""

from __future__ import annotations

import torch

LOSSES = ("grpo", "gspo")

# default clip ranges per loss: (low, high)
DEFAULT_CLIP = {"grpo": (0.2, 0.2), "gspo": (3e-4, 4e-4)}


def group_advantages(rewards: torch.Tensor, groups: torch.Tensor | int, *, scale_by_std: bool = True,
                     eps: float = 1e-6) -> torch.Tensor:
    """Reward minus its group's mean, over the group's sample std (Bessel-corrected, as GRPO/verl do).

    ``groups`` is either a group id per rollout (``[B]`` ints) or a group size G when the batch is laid out as
    consecutive groups of G. A group of one has no spread: its advantage is 0. ``scale_by_std=False`` gives the
    Dr. GRPO variant (mean-centred only).
    """
    rewards = rewards.float()
    if isinstance(groups, int):
        if rewards.numel() % groups:
            raise ValueError(f"{rewards.numel()} rewards do not split into groups of {groups}")
        groups = torch.arange(rewards.numel(), device=rewards.device) // groups
    adv = torch.zeros_like(rewards)
    for g in torch.unique(groups):
        idx = groups == g
        r = rewards[idx]
        if r.numel() < 2:
            continue
        centred = r - r.mean()
        adv[idx] = centred / (r.std() + eps) if scale_by_std else centred
    return adv


def zero_variance_share(rewards: torch.Tensor, groups: torch.Tensor | int) -> float:
    """The share of groups whose rollouts all got the same reward (no gradient signal in GRPO/GSPO)."""
    if isinstance(groups, int):
        groups = torch.arange(rewards.numel(), device=rewards.device) // groups
    ids = torch.unique(groups)
    flat = sum(bool((rewards[groups == g] == rewards[groups == g][0]).all()) for g in ids)
    return flat / max(len(ids), 1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference) at the sampled tokens (Schulman's estimator)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def _seq_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each row's real tokens -> ``[B]``."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              clip_low: float = 0.2, clip_high: float = 0.2, ref_logp: torch.Tensor | None = None,
              kl_coef: float = 0.0, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO: PPO-clipped surrogate on each token's ratio, token-mean over the whole batch (DAPO style)."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype)[:, None]
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights.to(logp.dtype)[:, None]
    loss = _masked_mean(per_token, mask)
    metrics = {"clip_fraction": float(_masked_mean((clipped < unclipped).to(logp.dtype), mask)),
               "ratio_mean": float(_masked_mean(ratio.detach(), mask))}
    if ref_logp is not None and kl_coef:
        kl = _masked_mean(k3_kl(logp, ref_logp), mask)
        loss = loss + kl_coef * kl
        metrics["kl_ref"] = float(kl.detach())
    metrics["pg_loss"] = float(_masked_mean(per_token.detach(), mask))
    metrics["loss"] = float(loss.detach())
    return loss, metrics


def gspo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              clip_low: float = 3e-4, clip_high: float = 4e-4, ref_logp: torch.Tensor | None = None,
              kl_coef: float = 0.0, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """GSPO: one length-normalised ratio per rollout, clipped, mean over rollouts."""
    mask = mask.to(logp.dtype)
    log_ratio = _seq_mean(logp - old_logp, mask)
    ratio = torch.exp(log_ratio)
    adv = advantages.to(logp.dtype)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv
    per_seq = -torch.minimum(unclipped, clipped)
    if weights is not None:
        per_seq = per_seq * weights.to(logp.dtype)
    has_tokens = (mask.sum(-1) > 0).to(logp.dtype)
    loss = (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1)
    metrics = {"clip_fraction": float(((clipped < unclipped).to(logp.dtype) * has_tokens).sum()
                                  / has_tokens.sum().clamp(min=1)),
               "ratio_mean": float(ratio.detach().mean())}
    if ref_logp is not None and kl_coef:
        kl = (_seq_mean(k3_kl(logp, ref_logp), mask) * has_tokens).sum() / has_tokens.sum().clamp(min=1)
        loss = loss + kl_coef * kl
        metrics["kl_ref"] = float(kl.detach())
    metrics["pg_loss"] = float(per_seq.detach().mean())
    metrics["loss"] = float(loss.detach())
    return loss, metrics


def policy_loss(kind: str, logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, *, clip_low: float | None = None, clip_high: float | None = None,
                **kwargs) -> tuple[torch.Tensor, dict[str, float]]:
    """``grpo_loss`` or ``gspo_loss`` by name, each with its own default clip range."""
    if kind not in LOSSES:
        raise ValueError(f"unknown RL loss {kind!r}; choose one of {', '.join(LOSSES)}")
    lo, hi = DEFAULT_CLIP[kind]
    fn = grpo_loss if kind == "grpo" else gspo_loss
    return fn(logp, old_logp, advantages, mask, clip_low=lo if clip_low is None else clip_low,
              clip_high=hi if clip_high is None else clip_high, **kwargs)


def mis_weights(train_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor, *,
                low: float = 0.5, high: float = 2.0, length_normalise: bool = True) -> torch.Tensor:
    """Sequence-level masked importance sampling weights ``[B]`` for rollouts sampled by another engine.

    The rollout engine (say vLLM) and the trainer give slightly different log-probs for the same tokens, so the
    rollouts are a little off-policy. Per rollout, rho = pi_train(y) / pi_rollout(y) (length-normalised: the
    geometric mean per token, so long responses are not masked just for being long). Rollouts with rho inside
    [low, high] are re-weighted by rho; those outside are masked out (weight 0) rather than truncated, because
    a large mismatch means the sample says little about the trainer's policy. No gradient flows through it.
    """
    mask = mask.to(train_logp.dtype)
    diff = ((train_logp - rollout_logp).detach() * mask).sum(-1)
    if length_normalise:
        diff = diff / mask.sum(-1).clamp(min=1)
    rho = torch.exp(diff)
    keep = (rho >= low) & (rho <= high)
    return torch.where(keep, rho, torch.zeros_like(rho))
