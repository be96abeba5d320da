"""Per-token divergences between a student and a teacher, and the on-policy distillation loss built on them.

Notation follows PAPERS.md §1: at every position t of a student rollout, p_t is the student's next-token
distribution, q_t the teacher's, and y_t the token the student actually sampled. Logits at position t predict
``tokens[:, t]`` (the caller has already shifted them).

``divergence`` returns one number per position, ``[B, T]``:

- support ``sampled``: log p(y_t) - log q(y_t), the one-sample estimate of reverse KL (reverse KL only);
- ``student_topk`` / ``teacher_topk`` / ``intersection`` / ``union`` / ``symmetric_difference`` (in exactly
  one of the two top-k sets; the paper's mechanism ablation): both distributions renormalised on the support
  set S_t, then the divergence of the renormalised pair;
- ``full``: the exact divergence over the whole vocabulary, computed a chunk of positions at a time by an
  autograd Function that recomputes the softmax in backward, so no ``B x T x V`` float32 tensor is ever held
  (``opd_loss`` goes one better: its token mean is the last operation, so the gradient is computed in the
  forward pass and nothing is recomputed).

Kinds: ``reverse_kl`` = KL(p || q), ``forward_kl`` = KL(q || p), ``jsd`` = the generalised Jensen-Shannon
divergence in TRL's GKD convention: beta = 0 is forward KL, beta = 1 is reverse KL, otherwise with the mixture
m = (1 - beta) p + beta q it is beta KL(q || m) + (1 - beta) KL(p || m).

Inputs are logits ``[B, T, V]`` or a ``Head`` (the lm-head input ``[B, T, H]`` and its weight): with a Head
the logits are computed chunk by chunk inside the loss and never exist in full, which is what keeps the
151k-vocabulary case small. The teacher may also be a ``sparse.SparseTeacher``: a served teacher's answers (log q
of the sampled token, its top-k, log q at given ids), read directly for every support but ``full``. The teacher
never receives a gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lyceum.errors import UserError
from lyceum.train.logits import (  # noqa: F401  (Head, positions, ... are part of this module's interface)
    CHUNK_BYTES,
    Head,
    chunk_logits,
    chunk_rows,
    entropy,
    iter_chunk_logits,
    positions,
    source,
    topk,
    vocab_size,
    workspace,
)
from lyceum.train.scan import ScanSink, TokenScan, joint_pass, scan_at
from lyceum.train.sparse import SparseTeacher, is_sparse

SUPPORTS = (
    "sampled",
    "student_topk",
    "teacher_topk",
    "intersection",
    "union",
    "symmetric_difference",
    "full",
)
KINDS = ("reverse_kl", "forward_kl", "jsd")
MODES = ("direct", "pg", "pg_renormalised")
# the dual clip of the paper code's PPO loss (verl's clip_ratio_c): a negative advantage never weighs more than
# this many times its value, however large the ratio
DUAL_CLIP = 3.0

def _vocab(x, w) -> int:
    return int(w.shape[0]) if w is not None else int(x.shape[-1])


def _route_grad(grads, x, w, b, bi, ti, g_z):
    """Send dLoss/dlogits for a chunk of positions to the source tensors (logits, or hidden + head)."""
    gx, gw, gb = grads
    if w is None:
        if gx is not None:
            gx[bi, ti] = g_z.to(gx.dtype)
        return
    if gx is not None:
        gx[bi, ti] = (g_z.to(w.dtype) @ w).to(gx.dtype)
    if gw is not None:
        gw.addmm_(g_z.T, x[bi, ti].float())
    if gb is not None:
        gb.add_(g_z.sum(0))


def _new_grads(ctx, x, w, b):
    need = ctx.needs_input_grad
    gx = torch.zeros_like(x) if need[0] else None
    gw = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if w is not None and need[1] else None
    gb = torch.zeros(b.shape, dtype=torch.float32, device=b.device) if b is not None and need[2] else None
    return gx, gw, gb


def _finish_grads(ctx, grads, w, b):
    gx, gw, gb = grads
    return (
        gx,
        gw.to(w.dtype) if gw is not None else None,
        gb.to(b.dtype) if gb is not None else None,
    )


def _save_autocast(ctx, x) -> None:
    # Backward recomputes logits; it must do so under the same autocast state as the forward did, or the
    # recomputed softmax would not match the normaliser saved in forward.
    kind = x.device.type
    ctx.autocast = (kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))


def _autocast_as_forward(ctx):
    kind, enabled, dtype = ctx.autocast
    return torch.autocast(device_type=kind, dtype=dtype, enabled=enabled)


# ---------------------------------------------------------------------------------------------------------
# The per-position divergence of two full distributions, and its gradient with respect to the student logits.


def _where0(cond, value):
    return torch.where(cond, value, value.new_zeros(()))


def _divergence_rows(lp, lq, kind: str, beta: float, want_grad: bool, p=None, q=None):
    """D[n] and (optionally) dD/dz_student[n, V] from log-probabilities lp, lq of shape [n, V] (float32).

    p and q default to exp(lp), exp(lq); a restricted support passes them with zeros outside the support (and
    finite lp, lq there) so that autograd never multiplies 0 by an infinite log.
    The gradient uses dD/dz_j = p_j (g_j - sum_i p_i g_i) with g = dD/dp: for reverse KL g = log p - log q + 1,
    for forward KL g = -q / p, for the JSD g = (1 - beta)(log p - log m).
    """
    if kind == "jsd" and beta == 0.0:
        kind = "forward_kl"
    if kind == "jsd" and beta == 1.0:
        kind = "reverse_kl"
    p = lp.exp() if p is None else p
    if kind == "reverse_kl":
        d = _where0(p > 0, p * (lp - lq)).sum(-1)
        return d, _nan0(p * (lp - lq - d[:, None]), p) if want_grad else None
    q = lq.exp() if q is None else q
    if kind == "forward_kl":
        d = _where0(q > 0, q * (lq - lp)).sum(-1)
        return d, (p - q) if want_grad else None
    lm = torch.logaddexp(lp + math.log1p(-beta), lq + math.log(beta))
    d = beta * _where0(q > 0, q * (lq - lm)).sum(-1) + (1 - beta) * _where0(p > 0, p * (lp - lm)).sum(-1)
    if not want_grad:
        return d, None
    g = _where0(p > 0, (1 - beta) * (lp - lm))
    return d, p * (g - (p * g).sum(-1, keepdim=True))


def _nan0(grad, p):
    # Where p underflows to 0 and log q is -inf the product is nan; such entries carry no gradient.
    return torch.where(p > 0, grad, grad.new_zeros(()))


class _Scratch:
    """Three float32 ``[chunk, V]`` buffers reused by every chunk of one call.

    A fresh 64 MB tensor per operation per chunk costs, on a CPU, an mmap, page faults and an munmap each
    time; the full divergence fills these in place instead (logits, in-place log-softmax, divergence, gradient),
    and they come from ``logits.workspace``, so on a CPU the next call reuses the same pages.
    """

    def __init__(self, rows: int, vocab: int, device):
        self.bufs = list(workspace(3 * rows * vocab, device).view(3, rows, vocab).unbind(0))

    def views(self, n: int):
        return [buf[:n] for buf in self.bufs]


def _logits_into(out, x, w, b, bi, ti) -> torch.Tensor:
    """float32 logits at positions (bi, ti), written into ``out`` [n, V]."""
    rows = x[bi, ti]
    if w is None:
        out.copy_(rows)
    elif rows.dtype == w.dtype == torch.float32 and not torch.is_autocast_enabled(rows.device.type):
        torch.mm(rows, w.T, out=out)
    else:
        out.copy_(rows @ w.T)
    if b is not None:
        out.add_(b)
    return out


def _log_softmax_(z, scratch) -> torch.Tensor:
    """log-softmax of z [n, V] in place, using ``scratch`` (same shape) for exp; returns the row sums of
    exp(z - max), so that scratch / sums is the softmax."""
    z.sub_(z.amax(-1, keepdim=True))
    torch.exp(z, out=scratch)
    sums = scratch.sum(-1, keepdim=True)
    z.sub_(sums.log())
    return sums


def _full_chunk(
    scratch: _Scratch,
    student,
    teacher,
    bi,
    ti,
    kind: str,
    beta: float,
    want_grad: bool,
    sink=None,
    at: int = 0,
):
    """Divergence [n] at a chunk of positions and, optionally, dD/dz_student [n, V] (a view of the scratch
    buffers: consume it before the next chunk). A ``scan.ScanSink`` reads the chunk's log-probs on the way
    (positions ``at`` onwards), reusing the softmaxes computed here. Assumes finite logits (what language
    models produce)."""
    lp, lq, p = scratch.views(bi.numel())
    reverse = kind == "reverse_kl" or (kind == "jsd" and beta == 1.0)
    sums_t = _log_softmax_(_logits_into(lq, *teacher, bi, ti), p)
    t_entropy = None
    if sink is not None and reverse:  # p holds exp(log q) * sums_t until the student overwrites it
        t_entropy = entropy(lq, p).div_(sums_t.view(-1))
    sums = _log_softmax_(_logits_into(lp, *student, bi, ti), p)
    if not reverse:
        if sink is not None:
            sink.add(at, lp, lq)
        return _divergence_rows(lp, lq, kind, beta, want_grad)
    p.div_(sums)
    if sink is not None:
        sink.add(at, lp, lq, p=p, teacher_entropy=t_entropy)
    diff = torch.sub(lp, lq, out=lq)  # log p - log q
    d = torch.bmm(p.unsqueeze(1), diff.unsqueeze(2)).view(-1)  # sum_v p (log p - log q), no [n, V] product
    if not want_grad:
        return d, None
    return d, diff.sub_(d[:, None]).mul_(p)  # p (log p - log q - D)


class _FullDivergence(torch.autograd.Function):
    """Exact divergence over the vocabulary at the given positions, chunked, softmax recomputed in backward."""

    @staticmethod
    def forward(ctx, x, w, b, tx, tw, tb, bi, ti, kind, beta, chunk):
        out = torch.empty(bi.numel(), dtype=torch.float32, device=bi.device)
        scratch = _Scratch(min(chunk, max(bi.numel(), 1)), _vocab(x, w), x.device)
        for s in range(0, bi.numel(), chunk):
            cb, ct = bi[s : s + chunk], ti[s : s + chunk]
            out[s : s + chunk] = _full_chunk(scratch, (x, w, b), (tx, tw, tb), cb, ct, kind, beta, False)[0]
        ctx.save_for_backward(x, w, b, tx, tw, tb, bi, ti)
        ctx.kind, ctx.beta, ctx.chunk = kind, beta, chunk
        _save_autocast(ctx, x)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w, b, tx, tw, tb, bi, ti = ctx.saved_tensors
        grads = _new_grads(ctx, x, w, b)
        scratch = _Scratch(min(ctx.chunk, max(bi.numel(), 1)), _vocab(x, w), x.device)
        for s in range(0, bi.numel(), ctx.chunk):
            g = grad_out[s : s + ctx.chunk]
            if not torch.any(g):
                continue
            cb, ct = bi[s : s + ctx.chunk], ti[s : s + ctx.chunk]
            with _autocast_as_forward(ctx):
                _, dz = _full_chunk(scratch, (x, w, b), (tx, tw, tb), cb, ct, ctx.kind, ctx.beta, True)
            _route_grad(grads, x, w, b, cb, ct, dz.mul_(g[:, None]))
        return (*_finish_grads(ctx, grads, w, b), None, None, None, None, None, None, None, None)


class _FullDivergenceMean(torch.autograd.Function):
    """Token mean of the exact divergence over the given positions, and the per-position values (no grad).

    The mean is the last operation of the loss, so the gradient is known in the forward pass: it is computed
    chunk by chunk right there and stored, and backward only scales it. Same memory as recomputing in backward,
    one LM-head/softmax pass fewer.
    """

    @staticmethod
    def forward(ctx, x, w, b, tx, tw, tb, bi, ti, kind, beta, chunk, sink):
        n = bi.numel()
        per_position = torch.empty(n, dtype=torch.float32, device=bi.device)
        want_grad = any(ctx.needs_input_grad[:3])
        grads = _new_grads(ctx, x, w, b) if want_grad else (None, None, None)
        scratch = _Scratch(min(chunk, max(n, 1)), _vocab(x, w), x.device)
        for s in range(0, n, chunk):
            cb, ct = bi[s : s + chunk], ti[s : s + chunk]
            d, dz = _full_chunk(scratch, (x, w, b), (tx, tw, tb), cb, ct, kind, beta, want_grad, sink, s)
            per_position[s : s + chunk] = d
            if want_grad:
                _route_grad(grads, x, w, b, cb, ct, dz.div_(max(n, 1)))
        ctx.save_for_backward(*(_finish_grads(ctx, grads, w, b) if want_grad else grads))
        ctx.mark_non_differentiable(per_position)
        return per_position.sum() / max(n, 1), per_position

    @staticmethod
    def backward(ctx, grad_loss, _):
        def scaled(g):
            return None if g is None else (g if float(grad_loss) == 1.0 else g * grad_loss.to(g.dtype))

        return (*(scaled(g) for g in ctx.saved_tensors), None, None, None, None, None, None, None, None, None)


class _GatherLogprob(torch.autograd.Function):
    """log softmax(z)[idx] at the given positions ([n, K]); the normaliser is computed chunk by chunk."""

    @staticmethod
    def forward(ctx, x, w, b, bi, ti, idx, chunk):
        out = torch.empty(idx.shape, dtype=torch.float32, device=idx.device)
        lse = torch.empty(bi.numel(), dtype=torch.float32, device=idx.device)
        for s in range(0, bi.numel(), chunk):
            z = chunk_logits(x, w, b, bi[s : s + chunk], ti[s : s + chunk])
            lse[s : s + chunk] = torch.logsumexp(z, -1)
            out[s : s + chunk] = z.gather(1, idx[s : s + chunk]) - lse[s : s + chunk, None]
        ctx.save_for_backward(x, w, b, bi, ti, idx, lse)
        ctx.chunk = chunk
        _save_autocast(ctx, x)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w, b, bi, ti, idx, lse = ctx.saved_tensors
        grads = _new_grads(ctx, x, w, b)
        for s in range(0, bi.numel(), ctx.chunk):
            g = grad_out[s : s + ctx.chunk]
            if not torch.any(g):
                continue
            cb, ct = bi[s : s + ctx.chunk], ti[s : s + ctx.chunk]
            with _autocast_as_forward(ctx):
                z = chunk_logits(x, w, b, cb, ct)
            soft = (z - lse[s : s + ctx.chunk, None]).exp()
            dz = soft.mul_(-g.sum(-1, keepdim=True)).scatter_add_(1, idx[s : s + ctx.chunk], g)
            _route_grad(grads, x, w, b, cb, ct, dz)
        return (*_finish_grads(ctx, grads, w, b), None, None, None, None)


class _HeadGather(torch.autograd.Function):
    """Logits at a few vocabulary ids per position, straight from hidden states: [n, K], float32."""

    @staticmethod
    def forward(ctx, h, w, b, bi, ti, idx, chunk):
        out = torch.empty(idx.shape, dtype=torch.float32, device=idx.device)
        for s in range(0, bi.numel(), chunk):
            hc = h[bi[s : s + chunk], ti[s : s + chunk]]
            ic = idx[s : s + chunk]
            z = torch.einsum("nh,nkh->nk", hc.float(), w[ic].float())
            out[s : s + chunk] = z + b[ic].float() if b is not None else z
        ctx.save_for_backward(h, w, b, bi, ti, idx)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        h, w, b, bi, ti, idx = ctx.saved_tensors
        gh, gw, gb = _new_grads(ctx, h, w, b)
        for s in range(0, bi.numel(), ctx.chunk):
            e = s + ctx.chunk
            cb, ct, ic, g = bi[s:e], ti[s:e], idx[s:e], grad_out[s:e]
            if gh is not None:
                gh[cb, ct] = torch.einsum("nk,nkh->nh", g, w[ic].float()).to(gh.dtype)
            if gw is not None:
                hc = h[cb, ct].float()
                gw.index_add_(0, ic.reshape(-1), (g[:, :, None] * hc[:, None, :]).reshape(-1, h.shape[-1]))
            if gb is not None:
                gb.index_add_(0, ic.reshape(-1), g.reshape(-1))
        return (*_finish_grads(ctx, (gh, gw, gb), w, b), None, None, None, None)


def _detached(src):
    return tuple(None if t is None else t.detach() for t in source(src))


def _apply(fn, src, *args, grad: bool):
    if not grad:
        with torch.no_grad():
            return fn.apply(*_detached(src), *args)
    return fn.apply(*source(src), *args)


def logprobs_at(src, bi, ti, idx, *, chunk: int, grad: bool = True) -> torch.Tensor:
    """log p(v) under the full softmax, at vocabulary ids ``idx`` [n, K] of positions (bi, ti): [n, K]."""
    return _apply(_GatherLogprob, src, bi, ti, idx, chunk, grad=grad)


def logits_at(src, bi, ti, idx, *, chunk: int, grad: bool = True) -> torch.Tensor:
    """Raw logits at vocabulary ids ``idx`` [n, K] of positions (bi, ti): [n, K] float32."""
    x, w, _ = source(src)
    if w is not None:
        return _apply(_HeadGather, src, bi, ti, idx, chunk, grad=grad)
    z = x if grad else x.detach()
    return z[bi[:, None], ti[:, None], idx].float()


def token_logprobs(logits_or_head, tokens: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
    """log p(tokens[b, t]) at every position, ``[B, T]``, without materialising a full log-softmax."""
    B, T = tokens.shape
    bi, ti = positions(None, (B, T), tokens.device)
    chunk = chunk_rows(bi.numel(), vocab_size(logits_or_head), chunk_size)
    x = source(logits_or_head)[0]
    lp = logprobs_at(logits_or_head, bi, ti, tokens[bi, ti][:, None], chunk=chunk, grad=x.requires_grad)
    return lp[:, 0].reshape(B, T)


# ---------------------------------------------------------------------------------------------------------
# Top-k supports.


def topk_ids(src, bi, ti, k: int, chunk: int) -> torch.Tensor:
    """Ids of the k largest logits (= k most probable tokens) at each position: [n, k]."""
    out = torch.empty((bi.numel(), k), dtype=torch.long, device=bi.device)
    for s, e, z in iter_chunk_logits(src, bi, ti, chunk):
        out[s:e] = topk(z, k)[1]
    return out


def support_candidates(s_ids: torch.Tensor, t_ids: torch.Tensor, support: str):
    """Candidate ids [n, C] and which of them are in the support [n, C] (bool), from the two top-k id sets.

    Union lists the student's k ids then the teacher's k ids, marking teacher ids the student also has as not
    in the support, so every id in the set appears exactly once; the symmetric difference lists both and
    marks every shared id as out.
    """
    if support == "student_topk":
        return s_ids, torch.ones_like(s_ids, dtype=torch.bool)
    if support == "teacher_topk":
        return t_ids, torch.ones_like(t_ids, dtype=torch.bool)
    if support == "intersection":
        return s_ids, (s_ids[:, :, None] == t_ids[:, None, :]).any(-1)
    if support == "union":
        t_new = ~(t_ids[:, :, None] == s_ids[:, None, :]).any(-1)
        return torch.cat([s_ids, t_ids], 1), torch.cat([torch.ones_like(t_new), t_new], 1)
    if support == "symmetric_difference":
        s_only = ~(s_ids[:, :, None] == t_ids[:, None, :]).any(-1)
        t_only = ~(t_ids[:, :, None] == s_ids[:, None, :]).any(-1)
        return torch.cat([s_ids, t_ids], 1), torch.cat([s_only, t_only], 1)
    raise ValueError(support)


def _renormalised(z: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Log-probabilities renormalised over the valid candidates ([n, C]); rows with none are left all-valid
    (the caller zeroes them) so no -inf/-inf = nan reaches autograd."""
    empty = ~valid.any(-1, keepdim=True)
    return z.masked_fill(~(valid | empty), float("-inf")).log_softmax(-1)


def _support_divergence(lp_bar, lq_bar, valid, kind, beta) -> torch.Tensor:
    """Divergence of the renormalised pair on the support; 0 at positions whose support is empty."""
    lp, lq = _where0(valid, lp_bar), _where0(valid, lq_bar)
    p, q = _where0(valid, lp.exp()), _where0(valid, lq.exp())
    d, _ = _divergence_rows(lp, lq, kind, beta, want_grad=False, p=p, q=q)
    # An empty support (disjoint top-k sets for the intersection, identical ones for the symmetric
    # difference) leaves nothing to compare: the position reads 0 and passes no gradient.
    return _where0(valid.any(-1), d)


def _check(support, kind, beta, k, student, teacher):
    if support not in SUPPORTS:
        raise UserError(f"unknown support {support!r}; choose one of {', '.join(SUPPORTS)}")
    if kind not in KINDS:
        raise UserError(f"unknown divergence kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not 0.0 <= beta <= 1.0:
        raise UserError(f"jsd beta must be between 0 and 1, got {beta}")
    if support != "sampled" and support != "full" and k < 1:
        raise UserError(f"top-k supports need k >= 1, got {k}")
    if support == "sampled" and kind != "reverse_kl":
        raise UserError(
            f"support 'sampled' only estimates reverse KL (log p(y) - log q(y) for y drawn from the student); "
            f"use a top-k or full support for {kind}"
        )
    if is_sparse(teacher) and support == "full":
        raise UserError("the full support needs the teacher's whole distribution at every position, which a served "
                        "teacher does not return; use sampled or a top-k support")
    vs, vt = vocab_size(student), teacher.vocab if is_sparse(teacher) else vocab_size(teacher)
    if vs != vt:
        raise UserError(
            f"student and teacher vocabularies differ ({vs} vs {vt}); on-policy distillation needs a shared tokenizer"
        )


@dataclass
class _PerToken:
    """What divergence() computed at the selected positions, kept for the loss and its stats."""

    d: torch.Tensor  # [n] divergence per position
    bi: torch.Tensor
    ti: torch.Tensor
    chunk: int
    logp: torch.Tensor | None = None  # sampled: log p(y) [n]
    logq: torch.Tensor | None = None  # sampled: log q(y) [n]
    cand: torch.Tensor | None = None  # top-k: candidate ids [n, C]
    valid: torch.Tensor | None = None  # top-k: in support [n, C]
    lp_bar: torch.Tensor | None = None  # top-k: renormalised log p [n, C]
    lq_bar: torch.Tensor | None = None  # top-k: renormalised log q [n, C]
    mean: torch.Tensor | None = None  # full with token_mean: the differentiable token mean of d
    scan: TokenScan | None = None


def _per_token(
    student, teacher, tokens, mask, support, k, kind, beta, chunk_size, token_mean=False, scan_k=0
) -> _PerToken:
    """The per-position divergence; with ``scan_k`` > 0 also a ``TokenScan`` (top-``scan_k`` diagnostics)
    read off the same passes over the heads."""
    _check(support, kind, beta, k, student, teacher)
    x = source(student)[0]
    B, T = x.shape[:2]
    if mask is None:
        mask = torch.ones((B, T), dtype=torch.bool, device=x.device)
    bi, ti = positions(mask, (B, T), x.device)
    V = vocab_size(student)
    chunk = chunk_rows(bi.numel(), V, chunk_size)
    y = tokens[bi, ti] if tokens is not None else None
    sink = ScanSink(bi.numel(), min(scan_k, V), y, x.device) if scan_k > 0 else None

    def done(pt: _PerToken) -> _PerToken:
        pt.scan = sink.result(bi, ti, mask) if sink is not None else None
        return pt

    if is_sparse(teacher):
        return _sparse_per_token(student, teacher, y, bi, ti, mask, support, min(k, V), kind, beta, chunk, scan_k)

    if support == "full" and (token_mean or sink is not None):
        mean, d = _FullDivergenceMean.apply(
            *source(student), *_detached(teacher), bi, ti, kind, float(beta), chunk, sink
        )
        return done(_PerToken(d, bi, ti, chunk, mean=mean))
    if support == "full":
        d = _FullDivergence.apply(*source(student), *_detached(teacher), bi, ti, kind, float(beta), chunk)
        return _PerToken(d, bi, ti, chunk)
    if support == "sampled":
        if tokens is None:
            raise UserError("support 'sampled' needs the sampled tokens")
        lp = logprobs_at(student, bi, ti, y[:, None], chunk=chunk)[:, 0]
        lq = logprobs_at(teacher, bi, ti, y[:, None], chunk=chunk, grad=False)[:, 0]
        if sink is not None:
            joint_pass(student, teacher, bi, ti, chunk, 0, sink)
        return done(_PerToken(lp - lq, bi, ti, chunk, logp=lp, logq=lq))
    k = min(k, V)
    if sink is not None:
        s_ids, t_ids = joint_pass(student, teacher, bi, ti, chunk, k, sink)
    else:
        s_ids = topk_ids(student, bi, ti, k, chunk) if support != "teacher_topk" else None
        t_ids = topk_ids(teacher, bi, ti, k, chunk) if support != "student_topk" else None
    cand, valid = support_candidates(
        s_ids if s_ids is not None else t_ids, t_ids if t_ids is not None else s_ids, support
    )
    lp_bar = _renormalised(logits_at(student, bi, ti, cand, chunk=chunk), valid)
    lq_bar = _renormalised(logits_at(teacher, bi, ti, cand, chunk=chunk, grad=False), valid)
    d = _support_divergence(lp_bar, lq_bar, valid, kind, float(beta))
    return done(_PerToken(d, bi, ti, chunk, cand=cand, valid=valid, lp_bar=lp_bar, lq_bar=lq_bar))


def _weigh(x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return x if w is None else x * w


def _sparse_per_token(student, teacher: SparseTeacher, y, bi, ti, mask, support, k, kind, beta, chunk,
                      scan_k) -> _PerToken:
    """``_per_token`` against a served teacher's answers: the teacher's side of each support is read from them
    (no teacher head, no dense logits); the student's side is computed exactly as against a local teacher."""
    teacher = teacher.to(bi.device)
    if support == "sampled":
        if y is None:
            raise UserError("support 'sampled' needs the sampled tokens")
        lp = logprobs_at(student, bi, ti, y[:, None], chunk=chunk)[:, 0]
        lq = teacher.token_logprobs[bi, ti].float()
        pt = _PerToken(lp - lq, bi, ti, chunk, logp=lp, logq=lq)
    else:
        s_ids = None
        if support != "teacher_topk":
            # the ids the teacher was asked about are the student's top-k, read off this same head (sorted): use
            # them, so a precision difference between that read and this one cannot leave an id unanswered
            s_ids = (teacher.given_ids[bi, ti, :k].long() if teacher.given_size >= k
                     else topk_ids(student, bi, ti, k, chunk))
        t_ids = teacher.top(bi, ti, k)[0].long() if support != "student_topk" else None
        cand, valid = support_candidates(
            s_ids if s_ids is not None else t_ids, t_ids if t_ids is not None else s_ids, support
        )
        lp_bar = _renormalised(logits_at(student, bi, ti, cand, chunk=chunk), valid)
        lq_bar = _renormalised(teacher.logprobs_at(bi, ti, cand, valid), valid)
        d = _support_divergence(lp_bar, lq_bar, valid, kind, float(beta))
        pt = _PerToken(d, bi, ti, chunk, cand=cand, valid=valid, lp_bar=lp_bar, lq_bar=lq_bar)
    if scan_k > 0:
        pt.scan = scan_at(student, teacher, y, bi, ti, mask, scan_k, chunk)
    return pt


def _scatter(values: torch.Tensor, bi, ti, shape) -> torch.Tensor:
    out = values.new_zeros(shape)
    return out.index_put((bi, ti), values)


def divergence(
    student_logits,
    teacher_logits,
    tokens: torch.Tensor | None,
    *,
    support: str,
    k: int = 16,
    kind: str = "reverse_kl",
    beta: float = 0.5,
    mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Per-position divergence between student and teacher, ``[B, T]`` float32, differentiable in the student.

    ``student_logits``/``teacher_logits`` are logits ``[B, T, V]`` or ``Head``s; ``tokens`` ``[B, T]`` are the
    sampled ids (needed for ``support="sampled"`` only). Positions where ``mask`` is false are not computed and
    read 0. A position whose support is empty (``intersection`` of disjoint top-k sets, ``symmetric_difference``
    of identical ones) reads 0 and passes no gradient. ``chunk_size`` (positions per chunk) defaults to ~64 MB of float32 logits.
    """
    x = source(student_logits)[0]
    pt = _per_token(student_logits, teacher_logits, tokens, mask, support, k, kind, beta, chunk_size)
    return _scatter(pt.d, pt.bi, pt.ti, tuple(x.shape[:2]))


# ---------------------------------------------------------------------------------------------------------
# The loss: direct gradient of the divergence, or the policy-gradient form of the paper's code.


def opd_loss(
    student_logits,
    teacher_logits,
    tokens: torch.Tensor | None,
    mask: torch.Tensor,
    *,
    support: str,
    k: int = 16,
    kind: str = "reverse_kl",
    beta: float = 0.5,
    mode: str = "direct",
    old_logprobs: torch.Tensor | None = None,
    clip: float = 0.2,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The on-policy distillation loss (a token-mean over ``mask``) and a dict of float stats.

    mode ``direct``: the gradient of the per-token divergence. For ``sampled`` the divergence is a one-sample
    estimate whose own gradient (grad log p(y)) is zero in expectation, so the loss uses the score-function
    surrogate sg(l_t) * log p(y_t): same value as mean l_t, gradient l_t * grad log p(y_t).

    mode ``pg`` (reverse KL only), the paper's code (thunlp/OPD ``compute_distillation_reward`` and verl's dual-clip
    PPO loss): per-token candidates v with advantage A(v) and ratio r = p(v) / p_old(v), loss
    -min(r A, clip(r, 1 - clip, 1 + clip) A), and for A < 0 at most -3 A (``DUAL_CLIP``). Sampled support: the one
    candidate y_t, A = -(log p_old(y_t) - log q(y_t)), ``old_logprobs`` [B, T] (default: the current log-probs,
    detached, so r = 1). Top-k supports: A(v) = -w(v)(log p_old(v) - log q(v)) with FULL-softmax log-probs at the
    candidate ids and w = p_old renormalised on the support (the raw p_old(v) for ``symmetric_difference``, as the
    paper code's ``union-intersection``); the per-token loss sums over the candidates. ``old_logprobs`` for top-k
    is ``[B, T, C]`` in the candidate layout of ``support_candidates`` (default: current, detached).

    mode ``pg_renormalised`` (reverse KL only), ours: the same surrogate with one clip and, on top-k supports,
    A(v) = -w(v)(log p_bar(v) - log q_bar(v)) with both distributions renormalised on the support, the log-ratio
    whose expectation is the renormalised KL the ``direct`` mode follows (its gradient is closer to that KL's).

    Full support, both pg modes: the on-policy surrogate's gradient is the exact reverse-KL gradient, so it is
    computed as ``direct``.

    Stats: loss, divergence (masked mean), tokens, and for top-k supports support_size / empty_support, for
    pg advantage / clip_fraction.
    """
    loss, stats, _ = opd_loss_with_scan(
        student_logits,
        teacher_logits,
        tokens,
        mask,
        support=support,
        k=k,
        kind=kind,
        beta=beta,
        mode=mode,
        old_logprobs=old_logprobs,
        clip=clip,
        chunk_size=chunk_size,
        diagnostics_k=0,
    )
    return loss, stats


def opd_loss_with_scan(
    student_logits,
    teacher_logits,
    tokens: torch.Tensor | None,
    mask: torch.Tensor,
    *,
    support: str,
    k: int = 16,
    kind: str = "reverse_kl",
    beta: float = 0.5,
    mode: str = "direct",
    old_logprobs: torch.Tensor | None = None,
    clip: float = 0.2,
    chunk_size: int | None = None,
    diagnostics_k: int = 16,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float], TokenScan | None]:
    """``opd_loss`` plus a ``TokenScan`` of top-``diagnostics_k`` quantities (None when it is 0), read off the
    same passes over the two heads as the loss, so ``scan.diagnostics()`` and ``scan.sequence_reward()`` cost
    no extra projection of either head (with ``sampled`` the teacher's pass is shared, the student's is not).

    ``weights`` ``[B]``: one factor per rollout on its tokens' loss terms (masked importance sampling of
    rollouts from another engine, ``rl_losses.mis_weights``); the divergence stat stays unweighted.
    """
    if mode not in MODES:
        raise UserError(f"unknown update mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode != "direct" and kind != "reverse_kl":
        raise UserError(
            f"the policy-gradient mode uses the reverse-KL advantage -(log p - log q), not {kind!r}"
        )
    mask = mask.bool()
    pt = _per_token(
        student_logits, teacher_logits, tokens, mask, support, k, kind, beta, chunk_size, True, diagnostics_k
    )
    n = pt.d.numel()
    denom = max(n, 1)
    stats: dict[str, float] = {"tokens": float(n), "divergence": float(pt.d.detach().sum()) / denom}
    if pt.valid is not None:
        stats["support_size"] = float(pt.valid.sum()) / denom
        stats["empty_support"] = float((~pt.valid.any(-1)).sum()) / denom

    row_w = None if weights is None else weights.to(pt.d.device, torch.float32)[pt.bi]
    if mode == "direct" or support == "full":
        if pt.mean is not None and row_w is None:
            loss = pt.mean
        elif pt.mean is not None:  # the fused mean cannot weigh rows: one more pass, differentiable per position
            d = _FullDivergence.apply(*source(student_logits), *_detached(teacher_logits), pt.bi, pt.ti, kind,
                                      float(beta), pt.chunk)
            loss = (d * row_w).sum() / denom
        elif support == "sampled":
            l = pt.d.detach()
            loss = _weigh(l + l * (pt.logp - pt.logp.detach()), row_w).sum() / denom
        else:
            loss = _weigh(pt.d, row_w).sum() / denom
        stats["loss"] = float(loss.detach())
        return loss, stats, pt.scan

    paper = mode == "pg"
    if support == "sampled":
        logp = pt.logp
        old = old_logprobs[pt.bi, pt.ti].float() if old_logprobs is not None else logp.detach()
        adv = -(old - pt.logq).detach()
        valid = torch.ones_like(logp, dtype=torch.bool)
    else:
        logp = logprobs_at(student_logits, pt.bi, pt.ti, pt.cand, chunk=pt.chunk)
        old = old_logprobs[pt.bi, pt.ti].float() if old_logprobs is not None else logp.detach()
        valid = pt.valid
        if paper:
            if is_sparse(teacher_logits):
                lq = teacher_logits.to(pt.bi.device).logprobs_at(pt.bi, pt.ti, pt.cand, valid)
            else:
                lq = logprobs_at(teacher_logits, pt.bi, pt.ti, pt.cand, chunk=pt.chunk, grad=False)
            w = old.exp() if support == "symmetric_difference" else _renormalised(old, valid).exp()
            adv = _where0(valid, -(_where0(valid, w) * (old - lq)).detach())
        else:
            w = pt.lp_bar.exp().detach()
            adv = _where0(pt.valid, -(w * (pt.lp_bar - pt.lq_bar)).detach())
    ratio = (logp - old).exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip, 1 + clip) * adv
    surrogate = -torch.minimum(unclipped, clipped)
    if paper:
        dual = (adv < 0) & (surrogate > -DUAL_CLIP * adv)
        surrogate = torch.where(adv < 0, torch.minimum(surrogate, -DUAL_CLIP * adv), surrogate)
    surrogate = _where0(valid, surrogate)
    per_token = surrogate.sum(-1) if surrogate.dim() == 2 else surrogate
    loss = _weigh(per_token, row_w).sum() / denom
    n_valid = max(int(valid.sum()), 1)
    stats["loss"] = float(loss.detach())
    stats["advantage"] = float(_where0(valid, adv).sum()) / n_valid
    stats["clip_fraction"] = float((valid & (clipped < unclipped)).sum()) / n_valid
    if paper:
        stats["dual_clip_fraction"] = float((valid & dual).sum()) / n_valid
    return loss, stats, pt.scan
