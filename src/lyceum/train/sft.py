"""Supervised fine-tuning on prompt/response rows: the trainer that makes the lab's students and teachers.

    history = sft(lm, rows, SFTConfig(steps=800, lr=3e-3))      # rows: {"prompt": ..., "response": ...}

The loss is the token-mean cross-entropy of the response and the end-of-text token that follows it; prompt
tokens are context only. Batches are drawn from shuffled passes over ``rows`` under ``seed``, so the same
model, rows and config give the same weights. Cold-start recipes reuse it to SFT a student on teacher samples.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lyceum.errors import UserError
from lyceum.runs import ProgressBar


@dataclass
class SFTConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 50


def encode_rows(tokenizer: Any, rows: list[dict]) -> list[tuple[list[int], int]]:
    """Each row as (prompt ids + response ids + eos, number of prompt ids)."""
    if not rows:
        raise UserError("SFT needs at least one prompt/response row")
    missing = [i for i, r in enumerate(rows) if "prompt" not in r or "response" not in r]
    if missing:
        raise UserError(f"SFT row {missing[0]} needs both 'prompt' and 'response'")
    prompts = tokenizer([r["prompt"] for r in rows]).input_ids
    responses = tokenizer([r["response"] for r in rows], add_special_tokens=False).input_ids
    eos = tokenizer.eos_token_id
    return [(p + c + [eos], len(p)) for p, c in zip(prompts, responses)]


def collate(encoded: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask and labels (-100 on prompt and padding)."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (seq, n_prompt) in enumerate(encoded):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, n_prompt: len(seq)] = torch.tensor(seq[n_prompt:])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def response_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Token-mean cross-entropy over the labelled (response) tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)


def _lr_factor(cfg: SFTConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / span))


def sft(lm: Any, rows: list[dict], cfg: SFTConfig | None = None, *, desc: str = "sft",
        on_log: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``lm.model`` in place on ``rows``; returns the logged history (step, loss, lr).

    ``lm`` is a ``lyceum.models.local.LocalLM`` (a plain HF model and its tokenizer). Warm-up then cosine
    decay of the learning rate, AdamW, gradient clipping.
    """
    cfg = cfg or SFTConfig()
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise UserError("SFT needs steps >= 1, batch_size >= 1 and a positive learning rate")
    encoded = encode_rows(lm.tokenizer, rows)
    model = lm.model
    device = next(model.parameters()).device
    pad = lm.tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.98))
    rng = random.Random(cfg.seed)
    order: list[int] = []
    history, window = [], []
    model.train()
    try:
        with ProgressBar(cfg.steps, desc=desc) as bar:
            for step in range(cfg.steps):
                picked = []
                while len(picked) < cfg.batch_size:  # shuffled passes over the rows
                    if not order:
                        order = list(range(len(encoded)))
                        rng.shuffle(order)
                    picked.append(order.pop())
                batch = {k: v.to(device) for k, v in collate([encoded[i] for i in picked], pad).items()}
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * _lr_factor(cfg, step)
                loss = response_loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                last = float(loss.detach())
                window.append(last)
                if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                    rec = {"step": step + 1, "loss": sum(window) / len(window), "lr": optimizer.param_groups[0]["lr"]}
                    window = []
                    history.append(rec)
                    if on_log:
                        on_log(rec)
                bar.update(1, info=f"loss {last:.4f}")
    finally:
        model.eval()
    return history


@torch.no_grad()
def mean_loss(lm: Any, rows: list[dict], batch_size: int = 128) -> float:
    """Token-mean response loss of ``lm`` on ``rows`` (no training), e.g. to check SFT helped."""
    encoded = encode_rows(lm.tokenizer, rows)
    device = next(lm.model.parameters()).device
    total, count = 0.0, 0
    lm.model.eval()
    for a in range(0, len(encoded), batch_size):
        batch = {k: v.to(device) for k, v in collate(encoded[a: a + batch_size], lm.tokenizer.pad_token_id).items()}
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(response_loss(lm.model, batch)) * n
        count += n
    return total / max(count, 1)
