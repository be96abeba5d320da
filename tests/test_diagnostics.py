"""The paper's diagnostics on small examples whose values are worked out by hand."""

import math

import pytest
import torch

from lyceum.train.diagnostics import (
    auroc,
    gap_recovery,
    response_thirds,
    sequence_reward,
    topk_diagnostics,
)
from lyceum.train.logits import Head
from lyceum.train.scan import token_diagnostics


def logits(probs):
    return torch.tensor(probs, dtype=torch.float32).log()


def entropy(ps):
    return -sum(p * math.log(p) for p in ps)


P_A = [0.4, 0.3, 0.2, 0.05, 0.05]  # S^p = {0, 1}
Q_A = [0.1, 0.5, 0.3, 0.05, 0.05]  # S^q = {1, 2}; shared: {1}
P_B = [0.6, 0.2, 0.1, 0.05, 0.05]  # teacher identical at this position


def two_positions_and_a_masked_one():
    s = logits([P_A, P_B, [0.9, 0.025, 0.025, 0.025, 0.025]])[None]
    t = logits([Q_A, P_B, [0.025, 0.025, 0.025, 0.025, 0.9]])[None]
    return s, t, torch.tensor([[1, 1, 0]])


def test_diagnostics_match_hand_computed_values():
    s, t, mask = two_positions_and_a_masked_one()
    d = token_diagnostics(s, t, mask, k=2)

    # Position A: one of two top-2 ids shared; p(1) = 0.3, q(1) = 0.5; on S^p, p_bar = [4/7, 3/7] and
    # q_bar = [1/6, 5/6], so the shared token's advantage is (3/7) ln((5/6) / (3/7)) = (3/7) ln(35/18).
    # Position B: identical distributions: full overlap, masses 0.8, advantage 0, no entropy gap.
    assert d["tokens"] == 2
    assert d["overlap_ratio"] == pytest.approx((0.5 + 1.0) / 2)
    assert d["overlap_mass_student"] == pytest.approx((0.3 + 0.8) / 2, abs=1e-6)
    assert d["overlap_mass_teacher"] == pytest.approx((0.5 + 0.8) / 2, abs=1e-6)
    assert d["overlap_advantage"] == pytest.approx((3 / 7 * math.log(35 / 18) + 0.0) / 2, abs=1e-6)
    assert d["entropy_student"] == pytest.approx((entropy(P_A) + entropy(P_B)) / 2, abs=1e-6)
    assert d["entropy_teacher"] == pytest.approx((entropy(Q_A) + entropy(P_B)) / 2, abs=1e-6)
    assert d["entropy_gap"] == pytest.approx(abs(entropy(Q_A) - entropy(P_A)) / 2, abs=1e-6)


def test_entropy_gap_is_a_mean_of_absolute_differences_not_a_difference_of_means():
    # The teacher is sharper at the first position and flatter at the second: the mean entropies agree,
    # the per-position gap does not cancel.
    sharp, flat = [0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]
    d = token_diagnostics(logits([flat, sharp])[None], logits([sharp, flat])[None], torch.ones(1, 2), k=1)
    assert d["entropy_student"] == pytest.approx(d["entropy_teacher"], abs=1e-6)
    assert d["entropy_gap"] == pytest.approx(entropy(flat) - entropy(sharp), abs=1e-6)


def test_overlap_advantage_leaves_out_positions_with_nothing_shared():
    # Second position: top-1 of student (id 0) and teacher (id 4) differ; its advantage is undefined.
    s, t, _ = two_positions_and_a_masked_one()
    d = token_diagnostics(s[:, 1:], t[:, 1:], torch.tensor([[1, 1]]), k=1)
    assert d["overlap_ratio"] == 0.5
    assert d["overlap_advantage"] == pytest.approx(0.0, abs=1e-7)
    only_disjoint = token_diagnostics(s[:, 2:], t[:, 2:], torch.tensor([[1]]), k=1)
    assert math.isnan(only_disjoint["overlap_advantage"])
    assert only_disjoint["overlap_mass_student"] == 0.0


def test_response_thirds_split_each_response_by_rank():
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1]])
    assert response_thirds(mask).tolist() == [
        [0, 0, 0, 1, 1, 2, 2],
        [-1, -1, 0, 1, 2, -1, -1],
        [-1, -1, -1, -1, -1, -1, 0],
    ]


def test_buckets_average_the_first_middle_and_last_third_of_each_response():
    same, diff_s, diff_t = [0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]
    # Row 0 (6 tokens): top-1 agrees, agrees | disagrees, disagrees | agrees, agrees.
    # Row 1 (3 tokens from position 1): agrees | agrees | disagrees.
    s = logits([[same, same, diff_s, diff_s, same, same, same], [same, same, same, diff_s, same, same, same]])
    t = logits([[same, same, diff_t, diff_t, same, same, same], [same, same, same, diff_t, same, same, same]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0, 0]])
    d = token_diagnostics(s, t, mask, k=1)
    assert d["overlap_ratio/first"] == pytest.approx(3 / 3)
    assert d["overlap_ratio/middle"] == pytest.approx(1 / 3)
    assert d["overlap_ratio/last"] == pytest.approx(2 / 3)
    assert d["overlap_ratio"] == pytest.approx(6 / 9)
    assert set(d) >= {f"{m}/{b}" for m in ("entropy_gap", "overlap_mass_teacher") for b in ("first", "last")}


def test_chunking_and_head_inputs_do_not_change_the_numbers():
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(2, 9, 6, generator=g), torch.randn(40, 6, generator=g)
    th, tw = torch.randn(2, 9, 6, generator=g), torch.randn(40, 6, generator=g)
    mask = torch.ones(2, 9)
    mask[1, 6:] = 0
    whole = token_diagnostics(h @ w.T, th @ tw.T, mask, k=4)
    chunked = token_diagnostics(Head(h, w), Head(th, tw), mask, k=4, chunk_size=2)
    assert whole.keys() == chunked.keys()
    for key in whole:
        assert chunked[key] == pytest.approx(whole[key], abs=1e-5, nan_ok=True), key


def test_sequence_reward_is_the_mean_teacher_minus_student_logprob_over_the_response():
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    lq = torch.tensor([[-0.5, -1.0, -9.0], [-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(sequence_reward(lp, lq, mask), torch.tensor([(0.5 + 1.0) / 2, -1.0 / 3]))


def test_auroc_on_a_hand_example():
    # Positive/negative pairs: (0.35 vs 0.1) yes, (0.35 vs 0.4) no, (0.8 vs both) yes -> 3 of 4.
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auroc(torch.tensor([0.8, 0.35, 0.4, 0.1]), torch.tensor([True, True, False, False])) == 0.75


def test_auroc_counts_ties_as_half_and_is_nan_with_one_class():
    assert auroc([0.5, 0.5, 0.9], [0, 1, 1]) == pytest.approx((0.5 + 1.0) / 2)
    assert auroc([3.0, 1.0, 2.0], [1, 0, 0]) == 1.0
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))


def test_gap_recovery():
    assert gap_recovery(0.2, 0.5, 0.8) == pytest.approx(0.5)
    assert gap_recovery(0.3, 0.2, 0.8) == pytest.approx(-0.2)
    assert math.isnan(gap_recovery(0.5, 0.6, 0.5))


def test_topk_diagnostics_from_scorer_outputs_equal_the_logit_version():
    # What a scorer returns (top-k ids and full-softmax log-probs, the teacher's log-probs at the student's
    # top-k ids, entropies) carries everything the diagnostics need.
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 6, 30, generator=g) * 2, torch.randn(2, 6, 30, generator=g) * 2
    mask = torch.ones(2, 6)
    mask[0, :2] = 0
    lp, lq = s.log_softmax(-1), t.log_softmax(-1)
    s_logp, s_ids = lp.topk(5, -1)
    t_ids = lq.topk(5, -1).indices
    ent_s, ent_t = -(lp.exp() * lp).sum(-1), -(lq.exp() * lq).sum(-1)
    from_scores = topk_diagnostics(s_ids, s_logp, t_ids, lq.gather(-1, s_ids), ent_s, ent_t, mask)
    from_logits = token_diagnostics(s, t, mask, k=5)
    assert from_scores.keys() == from_logits.keys()
    for key in from_logits:
        assert from_scores[key] == pytest.approx(from_logits[key], abs=1e-5, nan_ok=True), key
