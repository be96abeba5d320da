"""What a served teacher can answer, and its answers as the tensors the in-process teacher gives.

A served teacher never hands over its logits. What comes back per scored position is at most: the log-prob of the
realised token, the top-k ids and log-probs, and (SGLang only) the log-probs of ids we name. Which OPD supports
that covers (``lyceum.train.losses.SUPPORTS``):

| support                          | needs from the teacher                        | vLLM | SGLang |
|----------------------------------|-----------------------------------------------|------|--------|
| sampled                          | log q(y_t) of the sampled token               | yes  | yes    |
| teacher_topk                     | teacher top-k ids and log-probs               | yes  | yes    |
| student_topk                     | log q at the student's top-k ids              | no   | yes    |
| intersection / union / sym. diff.| teacher top-k + log q at the student's top-k  | no   | yes    |
| full                             | the whole distribution                        | no   | no     |

``served_scores`` asks the server for exactly what a support needs and returns a ``lyceum.models.local.Scores``
laid out like ``LocalLM.score(input_ids, mask, start=..., topk=..., given_ids=...)``, so code written against the
in-process teacher reads served answers unchanged. ``dense_teacher_logits`` turns those answers into logits the
unchanged OPD loss accepts (exact on every id the support touches; see its docstring for the cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from lyceum.errors import UserError

SERVER_KINDS = ("vllm", "sglang")
# the supports each server answers exactly; everything else is refused before a request is sent
ANSWERABLE = {
    "vllm": ("sampled", "teacher_topk"),
    "sglang": ("sampled", "teacher_topk", "student_topk", "intersection", "union", "symmetric_difference"),
}
# the paper's diagnostics (lyceum.train.diagnostics) and what each needs from the teacher
DIAGNOSTIC_NEEDS = {
    "overlap_ratio": "topk",
    "overlap_mass_student": "topk",
    "overlap_mass_teacher": "topk",
    "overlap_advantage": "given",  # q renormalised on the student's top-k: log q at ids we name
    "sequence_reward": "token",
    "entropy_teacher": "full",
    "entropy_gap": "full",
}
_CAN = {"vllm": {"token", "topk"}, "sglang": {"token", "topk", "given"}}


@dataclass(frozen=True)
class TeacherRequest:
    """What to ask a served teacher for at every scored position."""

    topk: int = 0  # teacher top-k ids and log-probs (0: none)
    given: bool = False  # log-probs of the student's top-k ids (SGLang's token_ids_logprob)


def teacher_request(server: str, support: str, k: int) -> TeacherRequest:
    """The request a support needs from ``server``; refuses, in one sentence, what the server cannot answer."""
    if server not in SERVER_KINDS:
        raise UserError(f"unknown server kind {server!r}; use one of {', '.join(SERVER_KINDS)}")
    if support == "full":
        raise UserError(f"the full support needs the teacher's whole distribution at every position, which a "
                        f"{_name(server)} server does not return; use sampled or a top-k support with a served teacher")
    if support not in ANSWERABLE["sglang"]:
        raise UserError(f"unknown support {support!r} for a served teacher; use one of "
                        f"{', '.join(ANSWERABLE[server])}")
    if support not in ANSWERABLE[server]:
        raise UserError(f"the {support} support needs the teacher's log-probs at the student's top-k ids, and vLLM's "
                        f"/v1/completions cannot return log-probs of given ids at prompt positions (prompt_logprobs "
                        f"gives only the top k and the realised token); serve the teacher with SGLang "
                        f"(token_ids_logprob) or use {' or '.join(ANSWERABLE[server])}")
    if support != "sampled" and k < 1:
        raise UserError(f"top-k supports need k >= 1, got {k}")
    return TeacherRequest(topk=k if support in ("teacher_topk", "intersection", "union", "symmetric_difference") else 0,
                          given=support in ("student_topk", "intersection", "union", "symmetric_difference"))


def served_diagnostics(server: str) -> tuple[str, ...]:
    """The diagnostics computable from what ``server`` returns (the others need the teacher's full distribution)."""
    return tuple(name for name, need in DIAGNOSTIC_NEEDS.items() if need in _CAN[server])


def _name(server: str) -> str:
    return {"vllm": "vLLM", "sglang": "SGLang"}.get(server, server)


# --------------------------------------------------------------------------------------------------- answers


@dataclass
class PositionScores:
    """A served teacher's answers for one sequence at positions ``first .. len(ids) - 1``.

    Entry ``i`` is about token ``ids[first + i]`` given ``ids[:first + i]``."""

    token_logprobs: list[float]
    topk_ids: list[list[int]] | None = None
    topk_logprobs: list[list[float]] | None = None
    given: list[dict[int, float]] | None = None  # id -> log-prob, for the ids asked at that position


class ServedTeacher(Protocol):
    kind: str

    async def score(self, sequences: list[list[int]], first: list[int], *, topk: int = 0,
                    given: list[list[list[int]]] | None = None) -> list[PositionScores]: ...


def _rows(input_ids: torch.Tensor, mask: torch.Tensor, start: int):
    """Per row: the unpadded ids, the index (in them) of the first scored token, the scored columns."""
    out = []
    for i in range(input_ids.shape[0]):
        real = mask[i].nonzero().squeeze(1)
        cols = real[real >= start]
        first = int((real < start).sum())
        if cols.numel() and first < 1:
            raise UserError("a served teacher cannot score a sequence's first token (it has no prefix); "
                            "start scoring after at least one prompt token")
        out.append((input_ids[i, real].tolist(), first, cols))
    return out


async def served_scores(teacher: ServedTeacher, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                        *, start: int = 1, topk: int = 0, given_ids: torch.Tensor | None = None):
    """``LocalLM.score`` with the teacher behind a server: same arguments, same ``Scores`` layout.

    ``input_ids``/``attention_mask`` may be left- and right-padded (``Samples.sequences()``); each row is sent
    without its padding. ``given_ids`` ``[B, T - start, K]`` are asked for at each position (SGLang only).
    Entropy is not available from a server. Positions with ``mask == 0`` read zero, as locally.
    """
    from lyceum.models.local import Scores

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    input_ids, attention_mask = input_ids.cpu(), attention_mask.cpu()
    rows = _rows(input_ids, attention_mask, start)
    B, T = input_ids.shape[0], input_ids.shape[1] - start
    given = None
    if given_ids is not None:
        given_ids = given_ids.cpu()
        given = [given_ids[i, cols - start].tolist() for i, (_, _, cols) in enumerate(rows)]
    keep = [i for i, (_, _, cols) in enumerate(rows) if cols.numel()]
    answers = await teacher.score([rows[i][0] for i in keep], [rows[i][1] for i in keep], topk=topk,
                                  given=[given[i] for i in keep] if given is not None else None)
    logprobs = torch.zeros(B, T)
    tk_ids = torch.zeros(B, T, topk, dtype=torch.long) if topk else None
    tk_lp = torch.zeros(B, T, topk) if topk else None
    g_lp = torch.zeros(B, T, given_ids.shape[-1]) if given_ids is not None else None
    for i, ans in zip(keep, answers):
        cols = rows[i][2] - start
        n = cols.numel()
        if len(ans.token_logprobs) != n:
            raise UserError(f"the teacher server scored {len(ans.token_logprobs)} positions of a sequence where "
                            f"{n} were asked for")
        logprobs[i, cols] = torch.tensor(ans.token_logprobs, dtype=torch.float32)
        if topk:
            tk_ids[i, cols] = torch.tensor(ans.topk_ids, dtype=torch.long).reshape(n, topk)
            tk_lp[i, cols] = torch.tensor(ans.topk_logprobs, dtype=torch.float32).reshape(n, topk)
        if g_lp is not None:
            g_lp[i, cols] = torch.tensor([[pos[t] for t in ids] for pos, ids in zip(ans.given, given[i])],
                                         dtype=torch.float32).reshape(n, -1)
    return Scores(logprobs, attention_mask[:, start:].float(), tk_ids, tk_lp, g_lp)


def dense_teacher_logits(scores, targets: torch.Tensor, vocab: int, given_ids: torch.Tensor | None = None,
                         floor: float = -1e4) -> torch.Tensor:
    """Teacher "logits" ``[B, T, vocab]`` that the unchanged OPD loss reads exactly on every id a served answer
    covers: the realised tokens (``targets``), the top-k and the given ids carry their served log-probs; the
    remaining probability mass is spread evenly over the other ids. Each row then sums to one, so its log-softmax
    is the served log-probs themselves, and its top-k ids are the served top-k (an unseen id cannot outrank the
    k-th, since the even share of the rest is at most the largest unseen probability).

    This is the bridge for small vocabularies and tests: it holds one ``[B, T, V]`` float32 tensor, which at a
    151k vocabulary is ~0.6 MB per position. Large runs need the loss to read the sparse answers directly (the
    integration step in docs/serving.md). Positions outside ``scores.mask`` are all ``floor`` but one zero logit.
    """
    B, T = targets.shape
    out = torch.full((B, T, vocab), float("nan"))
    known = torch.zeros((B, T, vocab), dtype=torch.bool)

    def put(ids, values):
        out.scatter_(-1, ids, values)
        known.scatter_(-1, ids, torch.ones_like(ids, dtype=torch.bool))

    put(targets[..., None].long(), scores.logprobs[..., None].float())
    if scores.topk_ids is not None:
        put(scores.topk_ids.long(), scores.topk_logprobs.float())
    if given_ids is not None:
        put(given_ids.long(), scores.given_logprobs.float())
    mass = torch.where(known, out.exp(), torch.zeros(())).sum(-1)  # [B, T]
    n_unknown = (~known).sum(-1).clamp(min=1)
    rest = ((1 - mass).clamp(min=0) / n_unknown).log().clamp(min=floor)
    out = torch.where(known, out, rest[..., None].expand_as(out))
    pad = scores.mask == 0
    if pad.any():
        out[pad] = floor
        out[pad, 0] = 0.0
    return out.clamp(min=floor)


def logprob_or_floor(x: float | None, floor: float = -9999.0) -> float:
    """Servers write -inf as -9999.0 (vLLM clamps for JSON); keep one convention on our side."""
    if x is None or (isinstance(x, float) and math.isinf(x)):
        return floor
    return float(x)
