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

``scan.sparse_scan`` is the diagnostics scan with the teacher's side read from the same answers; what a server
does not return (the teacher's entropy always; q at the student's top-k without given ids) is left out of the
step's record.
"""

from __future__ import annotations

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
