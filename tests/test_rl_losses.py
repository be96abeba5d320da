"""GRPO/GSPO losses, advantages, k3 KL and masked importance sampling against hand-computed values."""

import math

import pytest
import torch

from lyceum.train.rl_losses import (
    group_advantages,
    grpo_loss,
    gspo_loss,
    k3_kl,
    mis_weights,
    policy_loss,
    zero_variance_share,
)

# toy batch: two rollouts, three response positions, the second rollout is two tokens long
RATIOS = [[1.5, 1.0, 0.5], [1.1, 0.7, 1.0]]
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
ADV = torch.tensor([1.0, -2.0])


def toy_logps():
    old = torch.log(torch.tensor([[0.5, 0.4, 0.6], [0.3, 0.2, 0.9]]))
    logp = (old + torch.log(torch.tensor(RATIOS))).requires_grad_(True)
    return logp, old


def test_group_advantages_are_centred_and_scaled_by_the_sample_std():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), 3)
    # group 1: mean 1/3, sample std sqrt(1/3); group 2: all equal -> no signal
    s = math.sqrt(1 / 3)
    expected = [(2 / 3) / s, (-1 / 3) / s, (-1 / 3) / s, 0.0, 0.0, 0.0]
    assert adv.tolist() == pytest.approx(expected, abs=1e-5)


def test_group_advantages_accept_group_ids_and_the_unscaled_variant():
    adv = group_advantages(torch.tensor([1.0, 3.0, 0.0, 2.0]), torch.tensor([7, 7, 9, 9]), scale_by_std=False)
    assert adv.tolist() == [-1.0, 1.0, -1.0, 1.0]


def test_zero_variance_share_counts_groups_with_identical_rewards():
    assert zero_variance_share(torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0]), 2) == pytest.approx(2 / 3)


def test_grpo_loss_matches_the_hand_computed_clipped_surrogate():
    logp, old = toy_logps()
    loss, stats = grpo_loss(logp, old, ADV, MASK, clip_low=0.2, clip_high=0.2)
    # row 1 (A=+1): ratio 1.5 clipped to 1.2 -> -1.2; ratio 1 -> -1; ratio 0.5 (below, A>0 keeps it) -> -0.5
    # row 2 (A=-2): ratio 1.1 -> +2.2; ratio 0.7 clipped to 0.8 -> min(-1.4, -1.6) = -1.6 -> +1.6; pad ignored
    assert loss.item() == pytest.approx((-1.2 - 1.0 - 0.5 + 2.2 + 1.6) / 5, abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(2 / 5)
    loss.backward()
    # clipped tokens get no gradient; the others get -ratio * A / (number of tokens)
    expected = [[0.0, -1.0 / 5, -0.5 / 5], [2.2 / 5, 0.0, 0.0]]
    assert logp.grad.tolist() == [pytest.approx(r, abs=1e-6) for r in expected]


def test_gspo_loss_uses_one_length_normalised_ratio_per_rollout():
    logp, old = toy_logps()
    loss, stats = gspo_loss(logp, old, ADV, MASK, clip_low=3e-4, clip_high=4e-4)
    s1 = (1.5 * 1.0 * 0.5) ** (1 / 3)   # geometric mean of the token ratios over 3 tokens
    s2 = (1.1 * 0.7) ** (1 / 2)         # over its 2 real tokens
    # row 1: A=+1, s1 < 1-3e-4, min(s1, 0.9997) = s1 (unclipped); row 2: A=-2, min(-2 s2, -2*0.9997) clipped
    assert -2 * s2 > -2 * (1 - 3e-4)      # so row 2's minimum is the clipped term
    row1, row2 = -s1, 2 * (1 - 3e-4)
    assert loss.item() == pytest.approx((row1 + row2) / 2, abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    loss.backward()
    # d(-s1)/dlogp_t = -s1 / 3 for each of row 1's tokens, halved by the mean over two rollouts
    assert logp.grad[0].tolist() == pytest.approx([-s1 / 6] * 3, abs=1e-6)
    assert logp.grad[1].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)


def test_k3_kl_matches_its_formula_and_is_zero_at_the_reference():
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    # exp(log .5) - log .5 - 1
    assert k3_kl(logp, ref).item() == pytest.approx(0.5 - math.log(0.5) - 1, abs=1e-6)
    assert k3_kl(ref, ref).item() == 0.0


def test_kl_term_is_added_with_its_coefficient():
    logp, old = toy_logps()
    ref = old.clone()
    plain, _ = grpo_loss(logp, old, ADV, MASK)
    with_kl, kl_stats = grpo_loss(logp, old, ADV, MASK, ref_logp=ref, kl_coef=0.1)
    kl = sum(r - math.log(r) - 1 for r in (1 / 1.5, 1.0, 1 / 0.5, 1 / 1.1, 1 / 0.7)) / 5  # ref/policy = 1/ratio
    assert kl_stats["kl_ref"] == pytest.approx(kl, abs=1e-6)
    assert with_kl.item() == pytest.approx(plain.item() + 0.1 * kl, abs=1e-6)


def test_on_policy_ratio_of_one_gives_the_plain_policy_gradient():
    logp = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_(True)
    loss, _ = policy_loss("gspo", logp, logp.detach(), torch.tensor([2.0]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(-2.0)
    loss.backward()
    assert logp.grad.tolist() == [[-1.0, -1.0]]  # -A / |y| per token


def test_mis_masks_rollouts_whose_engine_mismatch_is_too_large():
    rollout = torch.zeros(3, 2)
    train = torch.log(torch.tensor([[1.5, 1.5], [3.0, 3.0], [0.4, 0.4]]))
    w = mis_weights(train, rollout, torch.ones(3, 2), low=0.5, high=2.0)
    assert w.tolist() == pytest.approx([1.5, 0.0, 0.0])


def test_mis_weights_scale_each_rollouts_loss():
    logp, old = toy_logps()
    base, _ = gspo_loss(logp, old, ADV, MASK, clip_low=0.5, clip_high=0.5)
    weighted, _ = gspo_loss(logp, old, ADV, MASK, clip_low=0.5, clip_high=0.5,
                           weights=torch.tensor([1.0, 0.0]))
    s1 = (1.5 * 0.5) ** (1 / 3)
    assert base.item() != pytest.approx(weighted.item())
    assert weighted.item() == pytest.approx(-s1 / 2, abs=1e-6)


def test_unknown_loss_name_is_refused():
    with pytest.raises(ValueError, match="grpo, gspo"):
        policy_loss("ppo", *toy_logps(), ADV, MASK)
