"""The diagnostics scan: per-position quantities read off both heads' log-probs, a chunk at a time.

This is the one place the paper's token diagnostics are computed from logits. The loss fills a ``ScanSink``
inside its own chunk loop (``losses.opd_loss_with_scan``), so with diagnostics on a step projects neither head
an extra time; ``token_scan`` runs the same sink over both heads on its own, for callers with no loss (an RL
step with a teacher in the feedback, the probe, prompt selection).

    scan = token_scan(student_head, teacher_head, tokens, mask, k=16)
    scan.diagnostics()        # diagnostics.METRICS overall and per response third
    scan.sequence_reward()    # mean_t(log q - log p) per rollout
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lyceum.errors import UserError
from lyceum.train.diagnostics import sequence_reward, topk_diagnostics
from lyceum.train.logits import chunk_rows, entropy, iter_chunk_logits, positions, topk, vocab_size


@dataclass
class TokenScan:
    """Per-position quantities read off both heads' log-probs, ``[B, T, ...]`` (zero outside ``mask``): enough
    for ``diagnostics.topk_diagnostics`` and ``sequence_reward`` without projecting either head again. Token
    log-probs are None when the scan was given no tokens."""

    mask: torch.Tensor
    student_topk_ids: torch.Tensor
    student_topk_logprobs: torch.Tensor
    teacher_topk_ids: torch.Tensor
    teacher_logprobs_at_student_topk: torch.Tensor
    student_entropy: torch.Tensor
    teacher_entropy: torch.Tensor
    student_token_logprobs: torch.Tensor | None = None
    teacher_token_logprobs: torch.Tensor | None = None
    unavailable: tuple[str, ...] = ()  # metrics the teacher's answers cannot give (a served teacher): read nan

    def diagnostics(self) -> dict[str, float]:
        """The token diagnostics of these positions (``diagnostics.METRICS``, overall and per third)."""
        out = topk_diagnostics(self.student_topk_ids, self.student_topk_logprobs, self.teacher_topk_ids,
                               self.teacher_logprobs_at_student_topk, self.student_entropy, self.teacher_entropy,
                               self.mask)
        for key in out:
            if key.split("/")[0] in self.unavailable:
                out[key] = float("nan")
        return out

    def sequence_reward(self) -> torch.Tensor:
        """r(y) = mean_t(log q - log p) per rollout, ``[B]``."""
        if self.student_token_logprobs is None:
            raise ValueError("the scan has no token log-probs: it was run without tokens")
        return sequence_reward(self.student_token_logprobs, self.teacher_token_logprobs, self.mask)


class ScanSink:
    """Collects ``TokenScan`` quantities chunk by chunk from the log-softmaxed logits of both heads."""

    def __init__(self, n: int, k: int, tokens: torch.Tensor | None, device):
        self.k = k
        self.tokens = tokens  # [n] sampled ids at the positions, or None
        f32 = {"dtype": torch.float32, "device": device}
        self.s_ids = torch.zeros(n, k, dtype=torch.long, device=device)
        self.t_ids = torch.zeros(n, k, dtype=torch.long, device=device)
        self.s_top, self.t_at_s = torch.zeros(n, k, **f32), torch.zeros(n, k, **f32)
        self.s_ent, self.t_ent = torch.zeros(n, **f32), torch.zeros(n, **f32)
        self.s_tok, self.t_tok = torch.zeros(n, **f32), torch.zeros(n, **f32)

    def add(self, at: int, lp: torch.Tensor, lq: torch.Tensor, *, p: torch.Tensor | None = None,
            teacher_entropy: torch.Tensor | None = None) -> None:
        """Positions ``at .. at + len(lp)``; lp, lq are their full log-softmaxes [m, V] (not modified). A caller
        that already holds the student's softmax ``p`` or the teacher's entropy passes them (no extra pass)."""
        e = at + lp.shape[0]
        values, ids = topk(lp, self.k)
        self.s_ids[at:e], self.s_top[at:e] = ids, values
        self.t_ids[at:e] = topk(lq, self.k)[1]
        self.t_at_s[at:e] = lq.gather(1, ids)
        self.s_ent[at:e] = entropy(lp, p)
        self.t_ent[at:e] = entropy(lq) if teacher_entropy is None else teacher_entropy
        if self.tokens is not None:
            y = self.tokens[at:e, None]
            self.s_tok[at:e], self.t_tok[at:e] = lp.gather(1, y)[:, 0], lq.gather(1, y)[:, 0]

    def result(self, bi, ti, mask: torch.Tensor) -> TokenScan:
        B, T = mask.shape

        def put(values):
            out = values.new_zeros((B, T, *values.shape[1:]))
            out[bi, ti] = values
            return out

        has_tokens = self.tokens is not None
        return TokenScan(mask, put(self.s_ids), put(self.s_top), put(self.t_ids), put(self.t_at_s),
                         put(self.s_ent), put(self.t_ent), put(self.s_tok) if has_tokens else None,
                         put(self.t_tok) if has_tokens else None)


@torch.no_grad()
def joint_pass(student, teacher, bi, ti, chunk: int, k: int, sink: ScanSink | None):
    """One no-grad pass over both heads: each one's top-k ids [n, k] (k = 0: none) and, into ``sink``, the
    scan's quantities."""
    s_ids = torch.empty((bi.numel(), k), dtype=torch.long, device=bi.device)
    t_ids = torch.empty((bi.numel(), k), dtype=torch.long, device=bi.device)
    chunks = zip(iter_chunk_logits(student, bi, ti, chunk), iter_chunk_logits(teacher, bi, ti, chunk))
    for (s, e, zs), (_, _, zt) in chunks:
        if k:
            s_ids[s:e], t_ids[s:e] = topk(zs, k)[1], topk(zt, k)[1]
        if sink is not None:
            sink.add(s, zs.log_softmax(-1), zt.log_softmax(-1))
    return s_ids, t_ids


@torch.no_grad()
def token_scan(student, teacher, tokens: torch.Tensor | None, mask: torch.Tensor, k: int = 16, *,
               chunk_size: int | None = None) -> TokenScan:
    """The scan of two logits sources (``[B, T, V]`` logits or ``logits.Head``s) at the positions of ``mask``.

    ``tokens`` ``[B, T]`` (the sampled ids) add the token log-probs for ``sequence_reward``; None leaves them out.
    A served teacher's answers (``sparse.SparseTeacher``) give the diagnostics they can (``sparse_scan``).
    """
    from lyceum.train.sparse import is_sparse

    if is_sparse(teacher):
        return sparse_scan(student, teacher, tokens, mask, k, chunk_size=chunk_size)
    if vocab_size(student) != vocab_size(teacher):
        raise UserError(f"student and teacher vocabularies differ ({vocab_size(student)} vs "
                        f"{vocab_size(teacher)}); the diagnostics need a shared tokenizer")
    if k < 1:
        raise UserError(f"the diagnostics need k >= 1, got {k}")
    V = vocab_size(student)
    bi, ti = positions(mask, tuple(mask.shape), mask.device)
    chunk = chunk_rows(bi.numel(), V, chunk_size)
    y = tokens.to(mask.device)[bi, ti] if tokens is not None else None
    sink = ScanSink(bi.numel(), min(k, V), y, mask.device)
    joint_pass(student, teacher, bi, ti, chunk, 0, sink)
    return sink.result(bi, ti, mask)


def token_diagnostics(student_logits, teacher_logits, mask: torch.Tensor, k: int = 16, *,
                      chunk_size: int | None = None) -> dict[str, float]:
    """Token-mean diagnostics over ``mask`` (``[B, T]``), overall and per response third, plus ``tokens``.

    ``student_logits``/``teacher_logits`` are ``[B, T, V]`` logits aligned with the mask, or ``logits.Head``s.
    A metric with no tokens to average (an empty bucket, or no shared top-k token anywhere for
    ``overlap_advantage``) is nan.
    """
    return token_scan(student_logits, teacher_logits, None, mask, k, chunk_size=chunk_size).diagnostics()


# --------------------------------------------------------------------------------------------------- served


@torch.no_grad()
def sparse_scan(student, teacher, tokens: torch.Tensor | None, mask: torch.Tensor, k: int, *,
                chunk_size: int | None = None):
    """``token_scan`` with a served teacher's answers (``sparse.SparseTeacher``): the student's side from one pass
    over its head, the teacher's from the answers. The overlap diagnostics need the teacher's top-``k``,
    ``overlap_advantage`` needs q at the student's top-k (given ids), and the teacher's entropy is never
    answered: what is missing is listed in ``TokenScan.unavailable`` and reads nan."""
    if k < 1:
        raise UserError(f"the diagnostics need k >= 1, got {k}")
    bi, ti = positions(mask, tuple(mask.shape), mask.device)
    y = tokens.to(mask.device)[bi, ti] if tokens is not None else None
    return scan_at(student, teacher, y, bi, ti, mask, k, chunk_rows(bi.numel(), vocab_size(student), chunk_size))


@torch.no_grad()
def scan_at(student, teacher, y, bi, ti, mask: torch.Tensor, k: int, chunk: int):
    """``sparse_scan`` at positions (bi, ti) of ``mask`` with the sampled tokens ``y`` [n] there (or None)."""
    k = min(k, vocab_size(student))
    n = bi.numel()
    dev = mask.device
    s_ids = torch.zeros(n, k, dtype=torch.long, device=dev)
    s_top = torch.zeros(n, k, device=dev)
    s_ent = torch.zeros(n, device=dev)
    s_tok = torch.zeros(n, device=dev)
    for s, e, z in iter_chunk_logits(student, bi, ti, chunk):
        lp = z.log_softmax(-1)
        top = lp.topk(k, -1)
        s_ids[s:e], s_top[s:e], s_ent[s:e] = top.indices, top.values, entropy(lp)
        if y is not None:
            s_tok[s:e] = lp.gather(1, y[s:e, None])[:, 0]
    teacher = teacher.to(dev)
    nan = math.nan
    if teacher.topk_size >= k:
        t_ids = teacher.topk_ids[bi, ti, :k].long()
    else:  # no top-k answer: placeholder ids; the overlap diagnostics are marked unavailable below
        t_ids = torch.full((n, k), -1, dtype=torch.long, device=dev)
    t_at_s = _partial_lookup(teacher, bi, ti, s_ids)
    s_ent_t = torch.full((n,), nan, device=dev)
    t_tok = teacher.token_logprobs[bi, ti].float()

    def put(values):
        out = values.new_zeros((*mask.shape, *values.shape[1:]))
        out[bi, ti] = values
        return out

    unavailable = {"entropy_teacher", "entropy_gap"}
    if teacher.given_size < k:  # renormalising q on S^p needs q at every id of S^p, not just the overlapping ones
        unavailable.add("overlap_advantage")
    if teacher.topk_size < k:
        unavailable |= {"overlap_ratio", "overlap_mass_student", "overlap_mass_teacher", "overlap_advantage"}
    return TokenScan(mask, put(s_ids), put(s_top), put(t_ids), put(t_at_s), put(s_ent), put(s_ent_t),
                     put(s_tok) if y is not None else None, put(t_tok) if y is not None else None,
                     unavailable=tuple(sorted(unavailable)))


def _partial_lookup(teacher, bi, ti, ids: torch.Tensor) -> torch.Tensor:
    """log q at ``ids`` [n, k] where the answers hold it, nan where they do not."""
    found_lp = teacher.logprobs_at(bi, ti, ids, valid=torch.zeros_like(ids, dtype=torch.bool))
    return torch.where(found_lp <= -9999.0, torch.full_like(found_lp, math.nan), found_lp)
