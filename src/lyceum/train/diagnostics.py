"""The paper's diagnostics of an on-policy distillation run (PAPERS.md §1), at student-visited states.

With p_t the student's and q_t the teacher's next-token distribution at position t, S^p = TopK(p_t, k) and
S^q = TopK(q_t, k):

- overlap_ratio         |S^p ∩ S^q| / k
- overlap_mass_student  sum over S^p ∩ S^q of p_t(v)  (the full, not renormalised, student distribution)
- overlap_mass_teacher  sum over S^p ∩ S^q of q_t(v)
- overlap_advantage     mean over v in S^p ∩ S^q of p_bar(v)(log q_bar(v) - log p_bar(v)), p_bar and q_bar
                        renormalised on S^p (the student top-k support the loss trains on); near 0 is good,
                        strongly negative means an over-confident student. Positions with an empty intersection
                        have no such mean and are left out of its average.
- entropy_student       H(p_t);  entropy_teacher  H(q_t);  entropy_gap  |H(q_t) - H(p_t)| (per position)

Each is a token mean over the mask, overall and per third of each response (``<name>/first``, ``/middle``,
``/last``: the i-th of a response's L response tokens falls in third floor(3 i / L)). The per-position
quantities come from the scan (``lyceum.train.scan``), read off the logits inside the loss's chunk loop; this
module turns them into the numbers above.

Plus the run-level numbers: ``sequence_reward`` (mean_t(log q - log p) per rollout), ``auroc`` of a score for
separating correct from incorrect rollouts, and ``gap_recovery``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lyceum.errors import UserError
from lyceum.train.logits import positions

METRICS = (
    "overlap_ratio",
    "overlap_mass_student",
    "overlap_mass_teacher",
    "overlap_advantage",
    "entropy_student",
    "entropy_teacher",
    "entropy_gap",
)
BUCKETS = ("first", "middle", "last")


def _position_diagnostics(
    s_ids: torch.Tensor,
    s_logp: torch.Tensor,
    t_ids: torch.Tensor,
    t_logp_at_s: torch.Tensor,
    s_entropy: torch.Tensor,
    t_entropy: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Every diagnostic at each of n positions, from top-k quantities: the student's top-k ids [n, k] and their
    log p, the teacher's top-k ids [n, k], the teacher's log q at the student's top-k ids [n, k], and both
    entropies [n]. overlap_advantage is nan where the intersection is empty."""
    k = s_ids.shape[1]
    shared = (s_ids[:, :, None] == t_ids[:, None, :]).any(-1)  # [n, k]: which of S^p are also in S^q
    n_shared = shared.sum(-1)
    lp_bar, lq_bar = s_logp.log_softmax(-1), t_logp_at_s.log_softmax(-1)
    adv_v = torch.where(shared, lp_bar.exp() * (lq_bar - lp_bar), lp_bar.new_zeros(()))
    return {
        "overlap_ratio": n_shared.float() / k,
        "overlap_mass_student": torch.where(shared, s_logp.exp(), 0.0).sum(-1),
        "overlap_mass_teacher": torch.where(shared, t_logp_at_s.exp(), 0.0).sum(-1),
        "overlap_advantage": adv_v.sum(-1) / n_shared.clamp_min(1) + torch.where(n_shared > 0, 0.0, math.nan),
        "entropy_student": s_entropy,
        "entropy_teacher": t_entropy,
        "entropy_gap": (t_entropy - s_entropy).abs(),
    }


def _nanmean(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.double().mean()) if x.numel() else math.nan


def response_thirds(mask: torch.Tensor) -> torch.Tensor:
    """For each position, which third of its response it is in (0, 1, 2), by rank among the masked tokens of
    its row; -1 where the mask is off."""
    m = mask.bool()
    rank = m.long().cumsum(1) - 1
    length = m.sum(1, keepdim=True).clamp_min(1)
    return torch.where(m, (3 * rank) // length, -1)


def _summarise(per_pos: dict[str, torch.Tensor], mask, bi, ti) -> dict[str, float]:
    third = response_thirds(mask)[bi, ti]
    out: dict[str, float] = {"tokens": float(bi.numel())}
    for name in METRICS:
        out[name] = _nanmean(per_pos[name])
        for i, bucket in enumerate(BUCKETS):
            out[f"{name}/{bucket}"] = _nanmean(per_pos[name][third == i])
    return out


@torch.no_grad()
def topk_diagnostics(
    student_topk_ids: torch.Tensor,
    student_topk_logprobs: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_logprobs_at_student_topk: torch.Tensor,
    student_entropy: torch.Tensor,
    teacher_entropy: torch.Tensor,
    mask: torch.Tensor,
) -> dict[str, float]:
    """The token diagnostics from top-k quantities rather than logits (``[B, T, k]`` ids and full-softmax
    log-probs, ``[B, T]`` entropies): the student's top-k and their log p, the teacher's top-k ids, the
    teacher's log q at the student's top-k ids, both entropies. Same keys, same definitions."""
    bi, ti = positions(mask, tuple(mask.shape), mask.device)
    per_pos = _position_diagnostics(
        student_topk_ids[bi, ti],
        student_topk_logprobs[bi, ti].float(),
        teacher_topk_ids[bi, ti],
        teacher_logprobs_at_student_topk[bi, ti].float(),
        student_entropy[bi, ti].float(),
        teacher_entropy[bi, ti].float(),
    )
    return _summarise(per_pos, mask, bi, ti)


def sequence_reward(
    student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """r(y) = mean over the response of (log q(y_t) - log p(y_t)), one per rollout ``[B]``; 0 for an empty one."""
    m = mask.to(student_logprobs.dtype)
    return ((teacher_logprobs - student_logprobs) * m).sum(-1) / m.sum(-1).clamp_min(1)


def auroc(scores: Sequence[float] | torch.Tensor, labels: Sequence[bool] | torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for telling ``labels`` true from false (ties count one half).

    It is the probability that a random positive scores above a random negative; nan when either class is
    missing.
    """
    scores = [float(x) for x in (scores.tolist() if torch.is_tensor(scores) else scores)]
    labels = [bool(x) for x in (labels.tolist() if torch.is_tensor(labels) else labels)]
    if len(scores) != len(labels):
        raise UserError(f"auroc needs one label per score, got {len(scores)} scores and {len(labels)} labels")
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # Mann-Whitney: rank all scores (tied scores share their average rank), sum the positives' ranks.
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    pos_rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (pos_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def gap_recovery(before: float, after: float, teacher: float) -> float:
    """(after - before) / (teacher - before): the share of the student-teacher gap closed; nan with no gap."""
    gap = teacher - before
    if gap == 0:
        return math.nan
    return (after - before) / gap
