"""Served samples: what a vLLM or SGLang server returns for one completion, and a batch of them as ``Samples``.

``to_samples`` builds exactly the record the local sampler returns (``lyceum.models.local.Samples``: left-padded
prompts, right-padded tokens, per-token log-probs, mask including the stop token), so everything downstream of a
rollout reads served and local samples the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Completion:
    """One sampled completion of ``prompts[prompt_index]``: token ids (the stop token included when it stopped
    on one) and the log-prob of each under the distribution the server drew it from."""

    prompt_index: int
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" | "length"


def to_samples(prompts: Sequence, prompt_ids: Sequence[Sequence[int]], completions: Sequence[Completion],
               pad_id: int, decode: Callable[[list[int]], str] | None = None):
    """A ``Samples`` batch from served completions (rows in the order given; the local sampler's order is
    prompt-major, which is what the served clients return)."""
    from lyceum.models.local import Samples

    N = len(completions)
    P = max(len(prompt_ids[c.prompt_index]) for c in completions)
    L = max(1, max(len(c.token_ids) for c in completions))
    p_ids = torch.full((N, P), pad_id, dtype=torch.long)
    p_mask = torch.zeros((N, P), dtype=torch.long)
    tokens = torch.full((N, L), pad_id, dtype=torch.long)
    logprobs = torch.zeros((N, L))
    mask = torch.zeros((N, L))
    for r, c in enumerate(completions):
        ids = list(prompt_ids[c.prompt_index])
        p_ids[r, P - len(ids):] = torch.tensor(ids)
        p_mask[r, P - len(ids):] = 1
        n = len(c.token_ids)
        if n:
            tokens[r, :n] = torch.tensor(c.token_ids)
            logprobs[r, :n] = torch.tensor(c.logprobs, dtype=torch.float32)
            mask[r, :n] = 1
    texts = [decode(c.token_ids) for c in completions] if decode is not None else []
    index = torch.tensor([c.prompt_index for c in completions], dtype=torch.long)
    return Samples(list(prompts), index, p_ids, p_mask, tokens, logprobs, mask,
                   [c.finish_reason for c in completions], texts)
