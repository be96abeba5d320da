"""Three speed-ups proposed for lyceum's OPD step, applied by monkeypatching so they can be measured first.

The ``lyceum_proposed`` side of ``opd_vs_trl.py`` runs the same engine step as the ``lyceum`` side with these
applied; once their owners merge them into ``lyceum.models.local``, ``lyceum.train.losses`` and
``lyceum.train.engine`` this file and that side can go. Each one is exact (same math), see docs/performance.md:

1. ``models.local._draw``: sample by inverse CDF (float64 cumulative sum + ``searchsorted``) instead of
   ``torch.multinomial``, whose per-entry exponential draws dominate a CPU decode step at 151k vocabulary.
2. ``train.losses._FullDivergenceMean.forward`` (reverse KL from LM-head inputs): three ``[chunk, V]`` buffers
   allocated once per call and in-place softmax / divergence / gradient, instead of ~8 fresh 64 MB tensors per
   chunk (each an mmap, page faults and an munmap).
3. ``torch.optim.AdamW`` with ``fused=True`` (one kernel per step instead of a foreach chain).
"""

from __future__ import annotations

import torch


def inverse_cdf_draw(logits: torch.Tensor, temperature: float, top_p: float, gen, _fallback):
    """One token per row and its log-prob, drawn by inverse CDF; other cases go to the original ``_draw``."""
    if temperature == 0 or top_p < 1:
        return _fallback(logits, temperature, top_p, gen)
    z = logits if temperature == 1 else logits / temperature
    m = z.amax(-1, keepdim=True)
    cdf = torch.sub(z, m).exp_().cumsum(-1, dtype=torch.float64)
    total = cdf[:, -1:]
    u = torch.rand(z.shape[0], 1, generator=gen, dtype=torch.float64, device=z.device) * total
    tok = torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=z.shape[-1] - 1)
    lse = m.squeeze(-1) + total.squeeze(-1).log().to(z.dtype)
    return tok, z.gather(-1, tok[:, None]).squeeze(-1) - lse


def reverse_kl_forward(ctx, x, w, b, tx, tw, tb, bi, ti, kind, beta, chunk, _fallback):
    """``_FullDivergenceMean.forward`` for reverse KL between two LM heads, in place on three buffers."""
    from lyceum.train import losses

    reverse = kind == "reverse_kl" or (kind == "jsd" and beta == 1.0)
    if not (reverse and w is not None and tw is not None and b is None and tb is None
            and not torch.is_autocast_enabled(x.device.type)):
        return _fallback(ctx, x, w, b, tx, tw, tb, bi, ti, kind, beta, chunk)
    n, V = bi.numel(), w.shape[0]
    per_position = torch.empty(n, dtype=torch.float32, device=bi.device)
    want_grad = any(ctx.needs_input_grad[:3])
    grads = losses._new_grads(ctx, x, w, b) if want_grad else (None, None, None)
    gx, gw, _ = grads
    rows = max(1, min(chunk, n))
    bufs = [torch.empty(rows, V, dtype=torch.float32, device=x.device) for _ in range(3)]
    wf, twf = w.float(), tw.float()
    for s in range(0, n, rows):
        cb, ct = bi[s: s + rows], ti[s: s + rows]
        k = cb.numel()
        lp, lq, p = (buf[:k] for buf in bufs)
        torch.mm(tx[cb, ct].float(), twf.T, out=lq)
        lq.sub_(lq.amax(-1, keepdim=True))
        torch.exp(lq, out=p)
        lq.sub_(p.sum(-1, keepdim=True).log_())                      # log q
        xs = x[cb, ct].float()
        torch.mm(xs, wf.T, out=lp)
        lp.sub_(lp.amax(-1, keepdim=True))
        torch.exp(lp, out=p)
        z = p.sum(-1, keepdim=True)
        lp.sub_(z.log())                                              # log p
        p.div_(z)                                                     # p
        diff = torch.sub(lp, lq, out=lq)                              # log p - log q
        d = torch.bmm(p.unsqueeze(1), diff.unsqueeze(2)).view(k)      # KL(p || q) per position
        per_position[s: s + k] = d
        if want_grad:
            g = diff.sub_(d[:, None]).mul_(p).div_(max(n, 1))         # d mean / d student logits
            if gx is not None:
                gx[cb, ct] = (g @ wf).to(gx.dtype)
            if gw is not None:
                gw.addmm_(g.T, xs)
    ctx.save_for_backward(*(losses._finish_grads(ctx, grads, w, b) if want_grad else grads))
    ctx.mark_non_differentiable(per_position)
    return per_position.sum() / max(n, 1), per_position


class FusedAdamW(torch.optim.AdamW):
    def __init__(self, params, *args, **kwargs):
        kwargs.setdefault("fused", True)
        super().__init__(params, *args, **kwargs)


def apply() -> list[str]:
    """Patch this process; returns what was patched (the benchmark records it)."""
    from functools import partial

    from lyceum.models import local
    from lyceum.train import losses

    done = []
    if not getattr(local._draw, "_proposed", False):
        draw = partial(inverse_cdf_draw, _fallback=local._draw)
        draw._proposed = True
        local._draw = draw
        done.append("inverse-CDF sampling")
    fn = losses._FullDivergenceMean
    if not getattr(fn.forward, "_proposed", False):
        fwd = partial(reverse_kl_forward, _fallback=fn.forward)
        fwd._proposed = True
        fn.forward = staticmethod(fwd)
        done.append("in-place reverse-KL chunks")
    if torch.optim.AdamW is not FusedAdamW:
        torch.optim.AdamW = FusedAdamW
        done.append("fused AdamW")
    return done
