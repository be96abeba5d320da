"""Chunked access to logits, shared by the losses and the diagnostics scan.

A logits *source* is either logits ``[B, T, V]`` or a ``Head`` (the LM-head input ``[B, T, H]`` and its weight):
with a Head the logits are computed a chunk of positions at a time and never exist in full, which is what
keeps the 151k-vocabulary case small. Positions are parallel index tensors ``(bi, ti)`` so that non-contiguous
slices (``logits[:, p - 1 : -1]``) are never copied whole by a reshape.

The chunk size comes from ``lyceum.models.local.CHUNK_BYTES`` (one float32 ``[chunk, V]`` tensor is about that
many bytes), the same budget the model's own scoring uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lyceum.errors import UserError
from lyceum.models.local import CHUNK_BYTES

__all__ = ["CHUNK_BYTES", "Head", "chunk_logits", "chunk_rows", "entropy", "head_source", "iter_chunk_logits",
           "positions", "response_head", "source", "topk", "vocab_size", "workspace"]

# per CPU device: one float32 buffer the chunk loops carve their [chunk, V] scratch tensors from (``workspace``)
_WORKSPACE: dict[str, torch.Tensor] = {}

# vocabulary entries per block of the two-level top-k (``topk``)
TOPK_BLOCK = 64


@dataclass(frozen=True)
class Head:
    """Logits not computed yet: ``logits = hidden @ weight.T + bias``.

    hidden is ``[B, T, H]``, weight ``[V, H]`` (the lm-head / tied embedding), bias ``[V]`` or None.
    """

    hidden: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None = None


def head_source(lm, hidden: torch.Tensor, vocab: int):
    """The LM head applied lazily: a ``Head`` over the first ``vocab`` output rows.

    Families that scale or soft-cap their logits get real logits instead (correct, but ``[b, L, V]``).
    """
    cfg = lm.model.config
    scale = getattr(cfg, "logit_scale", None)
    if getattr(cfg, "final_logit_softcapping", None) or (isinstance(scale, (int, float)) and scale != 1):
        return lm.logits(hidden)[..., :vocab]
    head = lm.model.get_output_embeddings()
    bias = head.bias[:vocab] if getattr(head, "bias", None) is not None else None
    # the loss multiplies hidden by the weight outside autocast, so they must share a dtype
    return Head(hidden.to(head.weight.dtype), head.weight[:vocab], bias)


def response_head(lm, input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int, vocab: int):
    """``head_source`` of ``lm`` at the positions that predict ``input_ids[:, start:]`` (one body pass, no grad)."""
    with torch.no_grad():
        hidden = lm.hidden_states(input_ids.to(lm.device), attention_mask.to(lm.device))[:, start - 1: -1]
    return head_source(lm, hidden, vocab)


def source(src) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(x, w, b)``: x is logits (w None) or hidden states with LM-head weight w and optional bias b."""
    if isinstance(src, Head):
        return src.hidden, src.weight, src.bias
    return src, None, None


def vocab_size(src) -> int:
    x, w, _ = source(src)
    return int(w.shape[0]) if w is not None else int(x.shape[-1])


def chunk_logits(x, w, b, bi, ti) -> torch.Tensor:
    """float32 logits [n, V] at positions (bi, ti)."""
    z = x[bi, ti]
    if w is not None:
        z = z @ w.T
        if b is not None:
            z = z + b
    return z.float()


def chunk_rows(n_rows: int, vocab: int, chunk_size: int | None) -> int:
    """Positions per chunk: ``chunk_size`` if given, else as many as fit ``CHUNK_BYTES`` of float32 logits."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise UserError(f"chunk_size must be a positive number of positions, got {chunk_size}")
        return chunk_size
    return max(1, CHUNK_BYTES // (4 * vocab))


def positions(mask: torch.Tensor | None, shape, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (batch, time) indices of the positions to compute: all of them, or those where mask is true."""
    if mask is None:
        mask = torch.ones(shape, dtype=torch.bool, device=device)
    bi, ti = mask.bool().nonzero(as_tuple=True)
    return bi, ti


def iter_chunk_logits(src, bi, ti, chunk: int):
    """Yield (start, end, float32 logits [end - start, V]) for the positions, a chunk at a time, without grad."""
    x, w, b = source(src)
    with torch.no_grad():
        for s in range(0, bi.numel(), chunk):
            e = min(s + chunk, bi.numel())
            yield s, e, chunk_logits(x, w, b, bi[s:e], ti[s:e])


def entropy(lp: torch.Tensor, p: torch.Tensor | None = None) -> torch.Tensor:
    """H = -sum_v p(v) log p(v) per row of log-probabilities ``lp`` [n, V].

    A caller that already holds the softmax ``p`` passes it: the entropy is then one batched dot product and
    no [n, V] temporary (what the loss's chunk loop does). Without it, p underflowing to 0 next to a log of
    -inf contributes 0, not nan.
    """
    if p is not None:
        return -torch.bmm(p.unsqueeze(1), lp.unsqueeze(2)).view(-1)
    p = lp.exp()
    return -torch.where(p > 0, p * lp, p.new_zeros(())).sum(-1)


def topk(z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``z.topk(k, -1)`` of a ``[n, V]`` tensor: (values, ids), largest first; exact, in two cheap steps.

    On a CPU ``torch.topk`` over a large vocabulary costs several times a plain pass over the row. Instead: the
    maximum of each block of ``TOPK_BLOCK`` entries (one vectorised pass), the k blocks with the largest maxima,
    then the top k among those blocks' entries. Exact: a block holding one of the k largest values has a
    maximum at least as large as the k-th largest value, and at most k blocks have one (each such maximum is
    itself one of the k largest), so the k top blocks hold all of them. Ties may be broken differently from
    ``torch.topk`` (which leaves their order unspecified too). Small rows take ``torch.topk`` directly.
    """
    n, V = z.shape
    nb = V // TOPK_BLOCK
    if nb < 4 * k or z.stride(-1) != 1:
        return z.topk(k, -1)
    full = nb * TOPK_BLOCK
    blocks = z[:, :full].view(n, nb, TOPK_BLOCK)  # no copy
    best = blocks.amax(-1).topk(k, -1).indices  # [n, k]
    ids = (best[:, :, None] * TOPK_BLOCK + torch.arange(TOPK_BLOCK, device=z.device)).view(n, -1)
    if full < V:  # the last, shorter block is always a candidate
        ids = torch.cat([ids, torch.arange(full, V, device=z.device).expand(n, -1)], 1)
    values, j = z.gather(1, ids).topk(k, -1)
    return values, ids.gather(1, j)


def workspace(numel: int, device) -> torch.Tensor:
    """A float32 buffer of ``numel`` elements for scratch use, valid until the next call (one user at a time).

    On a CPU every fresh allocation above 32 MB is a new mapping whose pages the kernel faults in and zeroes on
    first touch: on this project's VM (under load) ``torch.empty(512, 32000).fill_(1)`` took 126 ms against 9 ms
    for the same fill of a kept buffer, more than the arithmetic done in the loss's three chunk buffers. So
    on a CPU the buffer is kept and reused by the next call (grown when a
    larger one is asked for); it is part of the loss's peak memory anyway. Other devices' allocators already
    cache blocks, so there it is a fresh tensor.
    """
    device = torch.device(device)
    if device.type != "cpu":
        return torch.empty(numel, dtype=torch.float32, device=device)
    buf = _WORKSPACE.get(str(device))
    if buf is None or buf.numel() < numel:
        _WORKSPACE.pop(str(device), None)  # free the smaller one before allocating the larger
        buf = _WORKSPACE[str(device)] = torch.empty(numel, dtype=torch.float32, device=device)
    return buf[:numel]
