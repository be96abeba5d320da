"""Per-token divergences and the OPD loss, checked against a straightforward full-softmax reference."""

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from lyceum.errors import UserError
from lyceum.train.diagnostics import sequence_reward
from lyceum.train.losses import Head, divergence, opd_loss, opd_loss_with_scan, token_logprobs
from lyceum.train.scan import token_diagnostics

TOPK = ["student_topk", "teacher_topk", "intersection", "union", "symmetric_difference"]
KINDS = [("reverse_kl", 0.5), ("forward_kl", 0.5), ("jsd", 0.5), ("jsd", 0.2), ("jsd", 0.0), ("jsd", 1.0)]


# The reference: full float64 softmax over the vocabulary, support as a [B, T, V] mask, both distributions
# renormalised on it. Written independently of the implementation (masks over V, not candidate slots).


def _kl(a, b, m):
    la = torch.log(torch.where(m, a, torch.ones_like(a)))
    lb = torch.log(torch.where(m, b, torch.ones_like(b)))
    return torch.where(m, a * (la - lb), torch.zeros_like(a)).sum(-1)


def reference(s, t, tokens, support, k, kind, beta):
    p, q = s.double().softmax(-1), t.double().softmax(-1)
    if support == "sampled":
        y = tokens[..., None]
        return (p.gather(-1, y).log() - q.gather(-1, y).log())[..., 0]
    sp = torch.zeros_like(p, dtype=torch.bool).scatter_(-1, s.topk(k, -1).indices, True)
    tp = torch.zeros_like(p, dtype=torch.bool).scatter_(-1, t.topk(k, -1).indices, True)
    m = {
        "student_topk": sp,
        "teacher_topk": tp,
        "intersection": sp & tp,
        "union": sp | tp,
        "symmetric_difference": sp ^ tp,
        "full": torch.ones_like(sp),
    }[support]
    pb = torch.where(m, p, 0) / torch.where(m, p, 0).sum(-1, keepdim=True).clamp_min(1e-300)
    qb = torch.where(m, q, 0) / torch.where(m, q, 0).sum(-1, keepdim=True).clamp_min(1e-300)
    if kind == "reverse_kl" or (kind == "jsd" and beta == 1.0):
        return _kl(pb, qb, m)
    if kind == "forward_kl" or (kind == "jsd" and beta == 0.0):
        return _kl(qb, pb, m)
    mix = (1 - beta) * pb + beta * qb
    return beta * _kl(qb, mix, m) + (1 - beta) * _kl(pb, mix, m)


def random_batch(B=3, T=7, V=23, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, T, V, generator=g) * 2
    t = torch.randn(B, T, V, generator=g) * 2
    tokens = torch.randint(0, V, (B, T), generator=g)
    return s, t, tokens


@pytest.mark.parametrize("support", [*TOPK, "full"])
@pytest.mark.parametrize("kind,beta", KINDS)
def test_every_support_and_kind_matches_the_full_softmax_reference(support, kind, beta):
    s, t, tokens = random_batch()
    got = divergence(s, t, tokens, support=support, k=4, kind=kind, beta=beta, chunk_size=5)
    want = reference(s, t, tokens, support, 4, kind, beta)
    assert got.shape == (3, 7)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_sampled_support_is_the_log_ratio_of_the_sampled_token():
    s, t, tokens = random_batch()
    got = divergence(s, t, tokens, support="sampled", chunk_size=4)
    torch.testing.assert_close(
        got.double(), reference(s, t, tokens, "sampled", 0, "", 0), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("kind", ["forward_kl", "jsd"])
def test_sampled_support_refuses_anything_but_reverse_kl(kind):
    s, t, tokens = random_batch()
    with pytest.raises(UserError, match="only estimates reverse KL"):
        divergence(s, t, tokens, support="sampled", kind=kind)


@pytest.mark.parametrize("support", [*TOPK, "full"])
@pytest.mark.parametrize("kind,beta", [("reverse_kl", 0.5), ("forward_kl", 0.5), ("jsd", 0.3)])
def test_direct_gradient_equals_autograd_of_the_reference(support, kind, beta):
    s, t, tokens = random_batch(seed=1)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, :2] = False
    mask[2, 5:] = False

    s1 = s.clone().requires_grad_()
    loss, _ = opd_loss(s1, t, tokens, mask, support=support, k=4, kind=kind, beta=beta, chunk_size=3)
    loss.backward()

    s2 = s.double().requires_grad_()
    ref = reference(s2, t, tokens, support, 4, kind, beta)
    ((ref * mask).sum() / mask.sum()).backward()

    torch.testing.assert_close(
        loss.double(), ((ref * mask).sum() / mask.sum()).detach(), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(s1.grad.double(), s2.grad, atol=1e-5, rtol=1e-5)


def test_direct_sampled_loss_is_the_score_function_surrogate():
    # value: the mean log-ratio; gradient: log-ratio times grad log p(y), token-mean.
    s, t, tokens = random_batch(B=1, T=2, V=5, seed=2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    s1 = s.clone().requires_grad_()
    loss, stats = opd_loss(s1, t, tokens, mask, support="sampled")
    loss.backward()
    lp, lq = s.log_softmax(-1), t.log_softmax(-1)
    ratio = (lp - lq).gather(-1, tokens[..., None])[..., 0]
    want_grad = ratio[..., None] * (torch.nn.functional.one_hot(tokens, 5) - lp.exp()) / 2
    assert stats["loss"] == pytest.approx(float(ratio.mean()), abs=1e-6)
    torch.testing.assert_close(s1.grad, want_grad, atol=1e-6, rtol=1e-5)


def test_empty_intersection_reads_zero_and_passes_no_gradient():
    # top-2 of the student is {0, 1}, of the teacher {3, 4}: nothing shared.
    s = torch.tensor([[[5.0, 4.0, 0.0, -1.0, -2.0]]], requires_grad=True)
    t = torch.tensor([[[-2.0, -1.0, 0.0, 4.0, 5.0]]])
    d = divergence(s, t, None, support="intersection", k=2)
    d.sum().backward()
    assert d.item() == 0.0
    assert torch.count_nonzero(s.grad) == 0
    _, stats = opd_loss(s, t, None, torch.ones(1, 1), support="intersection", k=2)
    assert stats["empty_support"] == 1.0


def test_symmetric_difference_of_identical_top_k_sets_reads_zero():
    s = torch.tensor([[[5.0, 4.0, 0.0, -1.0, -2.0]]], requires_grad=True)
    t = torch.tensor([[[4.0, 5.0, -3.0, 0.0, 1.0]]])
    d = divergence(s, t, None, support="symmetric_difference", k=2)
    d.sum().backward()
    assert d.item() == 0.0
    assert torch.count_nonzero(s.grad) == 0


def test_masked_positions_read_zero():
    s, t, tokens = random_batch()
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[1, 3] = True
    d = divergence(s, t, tokens, support="full", mask=mask)
    assert torch.count_nonzero(d) == 1
    assert d[1, 3].item() == pytest.approx(
        reference(s, t, tokens, "full", 0, "reverse_kl", 0)[1, 3].item(), abs=1e-5
    )


def test_k_larger_than_the_vocabulary_is_the_full_divergence():
    s, t, tokens = random_batch(V=6)
    torch.testing.assert_close(
        divergence(s, t, tokens, support="student_topk", k=50), divergence(s, t, tokens, support="full")
    )


def test_non_contiguous_logit_slices_work():
    s, t, tokens = random_batch(T=9)
    got = divergence(s[:, 1:-1], t[:, 1:-1], tokens[:, 1:-1], support="full", chunk_size=4)
    want = reference(s[:, 1:-1], t[:, 1:-1], tokens[:, 1:-1], "full", 0, "reverse_kl", 0)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("support", ["full", "union", "sampled"])
def test_head_input_matches_logits_and_its_gradients(support):
    # A Head computes logits chunk by chunk from hidden states; value and gradients (hidden, weight, bias)
    # must match the same computation on materialised logits.
    g = torch.Generator().manual_seed(3)
    B, T, H, V = 2, 5, 8, 19
    h = torch.randn(B, T, H, generator=g, requires_grad=True)
    w = torch.randn(V, H, generator=g, requires_grad=True)
    b = torch.randn(V, generator=g, requires_grad=True)
    th, tw = torch.randn(B, T, H, generator=g), torch.randn(V, H, generator=g)
    tokens = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4] = False

    loss, _ = opd_loss(Head(h, w, b), Head(th, tw), tokens, mask, support=support, k=3, chunk_size=3)
    loss.backward()
    grads = [x.grad.clone() for x in (h, w, b)]
    for x in (h, w, b):
        x.grad = None
    loss2, _ = opd_loss(h @ w.T + b, th @ tw.T, tokens, mask, support=support, k=3)
    loss2.backward()

    torch.testing.assert_close(loss, loss2, atol=1e-5, rtol=1e-5)
    for got, x in zip(grads, (h, w, b)):
        torch.testing.assert_close(got, x.grad, atol=1e-5, rtol=1e-4)


def test_token_logprobs_match_log_softmax_and_its_gradient():
    s, _, tokens = random_batch()
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    got = token_logprobs(s1, tokens, chunk_size=4)
    want = s2.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
    torch.testing.assert_close(got, want)
    (got * torch.arange(7)).sum().backward()
    (want * torch.arange(7)).sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad)


def test_pg_sampled_matches_a_hand_computation():
    # Token 1: p = [1/4, 1/4, 1/2], q = [1/5, 3/5, 1/5], y = 2, old p(y) = 1/4.
    #   A = -(ln 1/4 - ln 1/5) = -ln 1.25 < 0, ratio = 2: min(2A, 1.2A) = 2A (not clipped), loss = 2 ln 1.25.
    # Token 2: p = [3/5, 1/5, 1/5], q = [2/3, 1/6, 1/6], y = 0, old p(y) = 0.4.
    #   A = -(ln 0.4 - ln 2/3) = ln(5/3) > 0, ratio = 1.5 -> clipped to 1.2, loss = -1.2 ln(5/3), no gradient.
    # Token 3 is masked out.
    s = torch.log(torch.tensor([[[1.0, 1.0, 2.0], [3.0, 1.0, 1.0], [1.0, 9.0, 1.0]]])).requires_grad_()
    t = torch.log(torch.tensor([[[1.0, 3.0, 1.0], [4.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]))
    tokens = torch.tensor([[2, 0, 1]])
    mask = torch.tensor([[1, 1, 0]])
    old = torch.log(torch.tensor([[0.25, 0.4, 0.5]]))

    loss, stats = opd_loss(s, t, tokens, mask, support="sampled", mode="pg", old_logprobs=old, clip=0.2)
    loss.backward()

    assert loss.item() == pytest.approx((2 * math.log(1.25) - 1.2 * math.log(5 / 3)) / 2, abs=1e-6)
    assert stats["clip_fraction"] == 0.5
    assert stats["advantage"] == pytest.approx((-math.log(1.25) + math.log(5 / 3)) / 2, abs=1e-6)
    # d loss / d z for token 1 = (1/2) * (-A * ratio) * (onehot(2) - p) = ln 1.25 * [-1/4, -1/4, 1/2]
    want = torch.zeros(1, 3, 3)
    want[0, 0] = math.log(1.25) * torch.tensor([-0.25, -0.25, 0.5])
    torch.testing.assert_close(s.grad, want, atol=1e-6, rtol=1e-5)


def test_pg_renormalised_topk_weights_each_candidate_by_the_renormalised_student_probability():
    # p = [0.5, 0.3, 0.2], q = [0.2, 0.6, 0.2], student top-2 = {0, 1}:
    # p_bar = [5/8, 3/8], q_bar = [1/4, 3/4], A(0) = -(5/8) ln 2.5, A(1) = -(3/8) ln 0.5, ratio 1.
    # loss = -(A0 + A1) (= KL(p_bar || q_bar)); gradient -sum_v A(v)(e_v - p) reaches the token outside the
    # support through the full softmax, unlike the direct gradient of the renormalised KL.
    p = torch.tensor([0.5, 0.3, 0.2])
    s = p.log().view(1, 1, 3).requires_grad_()
    t = torch.tensor([0.2, 0.6, 0.2]).log().view(1, 1, 3)
    a0, a1 = -(5 / 8) * math.log(2.5), -(3 / 8) * math.log(0.5)

    loss, stats = opd_loss(s, t, None, torch.ones(1, 1), support="student_topk", k=2, mode="pg_renormalised")
    loss.backward()

    assert loss.item() == pytest.approx(-(a0 + a1), abs=1e-6)
    assert stats["clip_fraction"] == 0.0
    want = -torch.tensor([a0, a1, 0.0]) + (a0 + a1) * p
    torch.testing.assert_close(s.grad.view(3), want, atol=1e-6, rtol=1e-5)

    s2 = s.detach().clone().requires_grad_()
    direct, _ = opd_loss(s2, t, None, torch.ones(1, 1), support="student_topk", k=2, mode="direct")
    direct.backward()
    assert direct.item() == pytest.approx(loss.item(), abs=1e-6)
    assert s2.grad.view(3)[2].item() == 0.0


def paper_pg_loss(s, t, ids, old, mask, clip=0.2, clip_ratio_c=3.0):
    """thunlp/OPD, transcribed: compute_distillation_reward (only_stu, student_p weights) + verl's dual-clip
    PPO loss, summed over the support and averaged over the response tokens."""
    S_logp_new = s.log_softmax(-1).gather(-1, ids)  # full-softmax log-probs at the student's top-k ids
    T_on_S = t.log_softmax(-1).gather(-1, ids)
    weights = torch.exp(old - torch.logsumexp(old, -1, keepdim=True))
    rm_scores = -(old - T_on_S) * weights  # the per-candidate reward, used directly as the advantage
    ratio = torch.exp(S_logp_new - old)
    pg_losses1 = -rm_scores * ratio
    pg_losses2 = -rm_scores * torch.clamp(ratio, 1 - clip, 1 + clip)
    clip_pg_losses1 = torch.maximum(pg_losses1, pg_losses2)
    clip_pg_losses2 = torch.min(-rm_scores * clip_ratio_c, clip_pg_losses1)
    pg_losses = torch.where(rm_scores < 0, clip_pg_losses2, clip_pg_losses1).sum(-1)
    return pg_losses[mask.bool()].mean()


def renormalised_pg_loss(s, t, ids, old, mask, clip=0.2):
    """Ours, transcribed: advantages from the log-ratio of the two distributions renormalised on the support
    (current student, no dual clip)."""
    lp_bar = s.gather(-1, ids).log_softmax(-1).detach()
    lq_bar = t.gather(-1, ids).log_softmax(-1)
    adv = -lp_bar.exp() * (lp_bar - lq_bar)
    ratio = torch.exp(s.log_softmax(-1).gather(-1, ids) - old)
    per_token = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    return per_token.sum(-1)[mask.bool()].mean()


@pytest.mark.parametrize("mode, reference", [("pg", paper_pg_loss), ("pg_renormalised", renormalised_pg_loss)])
def test_pg_modes_equal_transcriptions_of_their_formulas(mode, reference):
    # old log-probs away from the current ones, so ratios leave the clip range and (for the paper's form)
    # some negative advantages meet the dual clip
    s, t, _ = random_batch(seed=8)
    mask = torch.ones(3, 7)
    mask[2, 4:] = 0
    ids = s.topk(4, -1).indices
    g = torch.Generator().manual_seed(9)
    old = (s.log_softmax(-1).gather(-1, ids) + 1.5 * torch.randn(ids.shape, generator=g)).detach()
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()

    loss, stats = opd_loss(s1, t, None, mask, support="student_topk", k=4, mode=mode, old_logprobs=old)
    want = reference(s2, t, ids, old, mask)
    loss.backward()
    want.backward()

    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s1.grad, s2.grad, atol=1e-5, rtol=1e-4)
    assert stats["clip_fraction"] > 0
    if mode == "pg":
        assert stats["dual_clip_fraction"] > 0


def test_the_two_pg_modes_differ_on_top_k_supports():
    s, t, _ = random_batch(seed=10)
    mask = torch.ones(3, 7)
    grads = []
    for mode in ("pg", "pg_renormalised"):
        x = s.clone().requires_grad_()
        opd_loss(x, t, None, mask, support="student_topk", k=4, mode=mode)[0].backward()
        grads.append(x.grad.flatten())
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert 0 < cosine < 0.999


def test_pg_full_support_has_the_exact_reverse_kl_gradient():
    s, t, tokens = random_batch(seed=4)
    mask = torch.ones(3, 7)
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    opd_loss(s1, t, tokens, mask, support="full", mode="pg")[0].backward()
    opd_loss(s2, t, tokens, mask, support="full", mode="direct")[0].backward()
    torch.testing.assert_close(s1.grad, s2.grad)


def test_full_loss_gradients_scale_with_the_loss_and_skip_work_without_grad():
    # The full-support loss computes its gradient in the forward pass; backward must still honour the
    # incoming gradient, and a no-grad call just returns the value.
    s, t, tokens = random_batch(seed=5)
    mask = torch.ones(3, 7)
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    (3 * opd_loss(s1, t, tokens, mask, support="full")[0]).backward()
    (3 * divergence(s2, t, tokens, support="full").mean()).backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    with torch.no_grad():
        loss, stats = opd_loss(s, t, tokens, mask, support="full")
    assert loss.item() == pytest.approx(stats["divergence"], abs=1e-6)


@pytest.mark.parametrize("support", ["sampled", "student_topk", "union", "full"])
def test_the_loss_scan_gives_the_diagnostics_and_sequence_reward_without_another_pass(support):
    # opd_loss_with_scan reads the diagnostics' quantities off the loss's own passes over the two heads;
    # they must equal token_diagnostics and sequence_reward computed separately, and the loss opd_loss.
    g = torch.Generator().manual_seed(6)
    h, w = torch.randn(2, 7, 8, generator=g), torch.randn(31, 8, generator=g)
    th, tw = torch.randn(2, 7, 8, generator=g), torch.randn(31, 8, generator=g)
    tokens = torch.randint(0, 31, (2, 7), generator=g)
    mask = torch.ones(2, 7)
    mask[0, :3] = 0
    student, teacher = Head(h.clone().requires_grad_(), w), Head(th, tw)

    loss, _, scan = opd_loss_with_scan(
        student, teacher, tokens, mask, support=support, k=3, diagnostics_k=4, chunk_size=4
    )
    plain, _ = opd_loss(Head(h, w), teacher, tokens, mask, support=support, k=3)
    torch.testing.assert_close(loss, plain)

    want = token_diagnostics(h @ w.T, th @ tw.T, mask, k=4)
    got = scan.diagnostics()
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-5, nan_ok=True), key
    reward = sequence_reward(token_logprobs(h @ w.T, tokens), token_logprobs(th @ tw.T, tokens), mask)
    torch.testing.assert_close(scan.sequence_reward(), reward, atol=1e-5, rtol=1e-5)


def test_pg_mode_refuses_other_divergences():
    s, t, tokens = random_batch()
    with pytest.raises(UserError, match="reverse-KL advantage"):
        opd_loss(s, t, tokens, torch.ones(3, 7), support="full", kind="jsd", mode="pg")


def test_bad_names_and_mismatched_vocabularies_are_user_errors():
    s, t, tokens = random_batch()
    with pytest.raises(UserError, match="unknown support 'topk'"):
        divergence(s, t, tokens, support="topk")
    with pytest.raises(UserError, match="unknown divergence kind"):
        divergence(s, t, tokens, support="full", kind="kl")
    with pytest.raises(UserError, match="vocabularies differ"):
        divergence(s, t[..., :-1], tokens, support="full")


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import psutil, torch
    from lyceum.train.losses import divergence, opd_loss
    torch.set_num_threads(1)

    def reset_peak():  # Linux: writing 5 to clear_refs resets the high-water mark (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def peak():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    B, T, V = 4, 64, 32000
    s = torch.randn(B, T, V, requires_grad=True)
    t = torch.randn(B, T, V)

    def unchunked(s):
        lp, lq = s.log_softmax(-1), t.log_softmax(-1)
        return (lp.exp() * (lp - lq)).sum(-1)

    def chunked(s):
        return divergence(s, t, None, support="full", chunk_size=16)

    def loss(s):  # the token-mean loss, gradient computed in its forward pass
        return opd_loss(s, t, None, torch.ones(s.shape[:2]), support="full", chunk_size=16)[0]

    # Each reading is the peak resident memory of one forward + backward above the memory resident just before
    # it; the high-water mark is reset first, so earlier transients (imports, the warm-up) are not counted.
    for fn in (chunked, loss, unchunked):
        fn(s[:, :1]).sum().backward()  # warm up kernels and allocator outside the measurement
        s.grad = None
        reset_peak()
        before = psutil.Process().memory_info().rss
        fn(s).sum().backward()
        s.grad = None
        print(peak() - before)
    """
)


def test_chunked_full_divergence_peaks_far_below_the_unchunked_computation():
    # One [4, 64, 32000] float32 tensor is 33 MB. Forward + backward of the unchunked reverse KL holds several;
    # the chunked one holds the gradient (33 MB) plus a few [16, 32000] chunks. A fresh process, so the
    # high-water mark belongs to these computations alone; big buffers are mmapped so freed memory leaves.
    # A clean environment: variables earlier tests leave in this process must not change the child's allocator.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    chunked, loss, unchunked = (int(line) for line in out.stdout.split())
    one = 4 * 64 * 32000 * 4
    assert unchunked > 3 * one
    assert chunked < 1.6 * one and loss < 1.6 * one
    assert chunked < 0.4 * unchunked and loss < 0.4 * unchunked
