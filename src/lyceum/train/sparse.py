"""A served teacher's sparse answers as a teacher source the OPD loss and the diagnostics read directly.

A served teacher (vLLM, SGLang) never hands over logits: at each scored position it returns the log-prob of the
sampled token, optionally its top-k ids and log-probs, and (SGLang) the log-probs of ids we name. ``SparseTeacher``
holds those answers aligned with the student's response positions ``[b, L]``, so the loss can take the teacher's
side of every support straight from them instead of a ``Head`` or dense ``[b, L, V]`` logits:

    sampled              log q(y_t)                      = token_logprobs
    teacher_topk         the teacher's k ids and log q   = topk_ids / topk_logprobs
    student_topk, ...    log q at the student's top-k    = given_logprobs (the ids asked for: given_ids)

All log-probs are full-softmax log-probs of the teacher; renormalising on a support is shift-invariant, so it
gives exactly what renormalising the teacher's logits gives. Nothing of size V is ever built.

``sparse_scan`` is the diagnostics scan (``scan.TokenScan``) with the teacher's side read from the same answers;
what a server does not return (the teacher's entropy always; q at the student's top-k without given ids) is nan,
and the diagnostics built on it drop out of the step's record (the engine skips nan stats).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lyceum.errors import UserError

# positions per lookup chunk: the match tensor is [chunk, candidates, known ids] booleans
_LOOKUP_CHUNK = 4096


@dataclass
class SparseTeacher:
    """A teacher's answers at the student's response positions; every tensor is ``[b, L, ...]``, zero at padding."""

    token_logprobs: torch.Tensor  # [b, L] log q of the sampled tokens
    tokens: torch.Tensor  # [b, L] the sampled tokens the above are about
    vocab: int  # the shared vocabulary (the student's): ids at or above it are refused
    topk_ids: torch.Tensor | None = None  # [b, L, kt] the teacher's top ids, most probable first
    topk_logprobs: torch.Tensor | None = None  # [b, L, kt]
    given_ids: torch.Tensor | None = None  # [b, L, kg] ids asked for (the student's top-k)
    given_logprobs: torch.Tensor | None = None  # [b, L, kg]
    server: str = ""  # "vllm" / "sglang": named in error messages

    def __post_init__(self):
        if self.topk_ids is not None and self.topk_ids.numel() and int(self.topk_ids.max()) >= self.vocab:
            raise UserError(f"the teacher server returned token id {int(self.topk_ids.max())} in its top-k, outside "
                            f"the student's vocabulary of {self.vocab}; teacher and student must share a tokenizer")

    def to(self, device) -> SparseTeacher:
        move = lambda t: None if t is None else t.to(device)
        return SparseTeacher(move(self.token_logprobs), move(self.tokens), self.vocab, move(self.topk_ids),
                             move(self.topk_logprobs), move(self.given_ids), move(self.given_logprobs), self.server)

    @property
    def topk_size(self) -> int:
        return 0 if self.topk_ids is None else int(self.topk_ids.shape[-1])

    @property
    def given_size(self) -> int:
        return 0 if self.given_ids is None else int(self.given_ids.shape[-1])

    def top(self, bi, ti, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's top-``k`` ids and log-probs at positions (bi, ti): ``[n, k]`` each."""
        if self.topk_size < k:
            raise UserError(f"the served teacher's answers hold its top {self.topk_size} ids per position, and "
                            f"this needs the top {k}")
        return self.topk_ids[bi, ti, :k], self.topk_logprobs[bi, ti, :k].float()

    def logprobs_at(self, bi, ti, idx: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """log q at vocabulary ids ``idx`` ``[n, C]`` of positions (bi, ti), looked up among the ids the server
        answered for (sampled token, top-k, given ids). An id it did not answer for is refused where ``valid`` is
        true (the loss would need it) and reads -9999 elsewhere (masked out by the caller)."""
        parts_ids = [self.tokens[..., None]]
        parts_lp = [self.token_logprobs[..., None]]
        if self.topk_ids is not None:
            parts_ids.append(self.topk_ids)
            parts_lp.append(self.topk_logprobs)
        if self.given_ids is not None:
            parts_ids.append(self.given_ids)
            parts_lp.append(self.given_logprobs)
        known_ids = torch.cat([p.long() for p in parts_ids], -1)
        known_lp = torch.cat([p.float() for p in parts_lp], -1)
        out = torch.empty(idx.shape, dtype=torch.float32, device=idx.device)
        found = torch.empty(idx.shape, dtype=torch.bool, device=idx.device)
        for s in range(0, idx.shape[0], _LOOKUP_CHUNK):
            e = s + _LOOKUP_CHUNK
            kid, klp = known_ids[bi[s:e], ti[s:e]], known_lp[bi[s:e], ti[s:e]]
            match = idx[s:e, :, None] == kid[:, None, :]  # [n, C, known]
            found[s:e] = match.any(-1)
            out[s:e] = klp.gather(1, match.int().argmax(-1))
        missing = ~found if valid is None else (~found & valid)
        if missing.any():
            raise UserError(f"the {self.server or 'served'} teacher's answers lack log q of a token the loss needs "
                            f"(it returned the sampled token, its top {self.topk_size} and {self.given_size} given "
                            f"ids per position); ask for the ids this support needs (teacher_request)")
        return torch.where(found, out, out.new_full((), -9999.0))


def is_sparse(teacher) -> bool:
    return isinstance(teacher, SparseTeacher)


@torch.no_grad()
def sparse_scan(student, teacher: SparseTeacher, tokens: torch.Tensor | None, mask: torch.Tensor, k: int, *,
                chunk_size: int | None = None):
    """``scan.token_scan`` with a served teacher: the student's side from one pass over its head, the teacher's
    from its answers. Teacher top-k ids need a top-``k`` answer (else the overlap diagnostics read nan), q at the
    student's top-k comes from given ids where asked (else from the teacher's top-k where they overlap, nan
    elsewhere), and the teacher's entropy is nan."""
    from lyceum.train.logits import chunk_rows, positions, vocab_size

    if k < 1:
        raise UserError(f"the diagnostics need k >= 1, got {k}")
    bi, ti = positions(mask, tuple(mask.shape), mask.device)
    y = tokens.to(mask.device)[bi, ti] if tokens is not None else None
    return scan_at(student, teacher, y, bi, ti, mask, k, chunk_rows(bi.numel(), vocab_size(student), chunk_size))


@torch.no_grad()
def scan_at(student, teacher: SparseTeacher, y, bi, ti, mask: torch.Tensor, k: int, chunk: int):
    """``sparse_scan`` at positions (bi, ti) of ``mask`` with the sampled tokens ``y`` [n] there (or None)."""
    from lyceum.train.logits import entropy, iter_chunk_logits, vocab_size
    from lyceum.train.scan import TokenScan

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


def _partial_lookup(teacher: SparseTeacher, bi, ti, ids: torch.Tensor) -> torch.Tensor:
    """log q at ``ids`` [n, k] where the answers hold it, nan where they do not."""
    found_lp = teacher.logprobs_at(bi, ti, ids, valid=torch.zeros_like(ids, dtype=torch.bool))
    return torch.where(found_lp <= -9999.0, torch.full_like(found_lp, math.nan), found_lp)
