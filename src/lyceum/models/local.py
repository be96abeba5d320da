"""Local HF causal LMs: load one from a folder or build a tiny one, then sample from it and score with it.

    lm = load_local("models/student")                 # any HF causal-LM directory (config + weights + tokenizer)
    lm = build_tiny("llama", tokenizer=tok, hidden=64, layers=2, heads=4, seed=0)
    s = lm.sample(["12+34="], max_new_tokens=32, n=4, seed=0)    # s.tokens, s.logprobs, s.mask, s.finish_reasons
    ids, mask, start = s.sequences()
    sc = lm.score(ids, mask, start=start, topk=16)                # sc.logprobs [B, T-start], sc.topk_ids, ...

Sampling is our own loop rather than ``model.generate``: the prompt batch is prefilled once (left padding,
real position ids), the KV cache is repeated ``n`` times instead of re-running the prompt, then one token per
step; a row that emits a stop token leaves the batch (and the cache) at once. The log-prob returned for each
token is that of the distribution it was drawn from, so a policy-gradient ratio against it is exact.

Scoring runs the transformer body once, then applies the LM head to the final hidden states in chunks of
positions, only at non-padding positions; no ``B x T x V`` float32 tensor is ever alive.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from lyceum.errors import UserError

# An LM head this large is streamed as W @ h.T when decoding on a CPU (see LocalLM._decode_step).
HEAD_STREAM_BYTES = 8 * 2**20

# The module that loads image-text-to-text folders (load_local hands them over; it subclasses LocalLM)
VISION_MODULE = "lyceum.models.vlm"

# Positions per LM-head chunk are chosen so one chunk of float32 logits is about this many bytes (the one
# definition: the training losses and scan chunk by the same budget, lyceum.train.logits).
CHUNK_BYTES = 64 * 2**20


# --------------------------------------------------------------------------------------------------- devices


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} was asked for, but this torch build sees no CUDA GPU; use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return dev


_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
           "half": torch.float16, "fp32": torch.float32, "float32": torch.float32, "float": torch.float32}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"`` means bf16 on a GPU that supports it, float32 otherwise (CPU bf16 is slow and lossy)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in _DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


# --------------------------------------------------------------------------------------------------- records


@dataclass
class Samples:
    """A batch of sampled responses; row ``i`` answers ``prompts[prompt_index[i]]``.

    ``prompt_ids``/``prompt_mask`` are left-padded ``[N, P]``; ``tokens``/``logprobs``/``mask`` are right-padded
    ``[N, L]``. ``mask`` covers the response tokens including the stop token (it is an action the policy took).
    """

    prompts: list[Any]
    prompt_index: torch.Tensor  # [N] long
    prompt_ids: torch.Tensor  # [N, P] long, left-padded
    prompt_mask: torch.Tensor  # [N, P] long
    tokens: torch.Tensor  # [N, L] long, right-padded with pad id
    logprobs: torch.Tensor  # [N, L] float32, log-prob under the sampling distribution
    mask: torch.Tensor  # [N, L] float32
    finish_reasons: list[str]  # "stop" | "length"
    texts: list[str] = field(default_factory=list)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(-1).long()

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def sequences(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Prompt + response as one left/right-padded batch: ``(input_ids, attention_mask, response_start)``."""
        ids = torch.cat([self.prompt_ids, self.tokens], 1)
        mask = torch.cat([self.prompt_mask, self.mask.long()], 1)
        return ids, mask, self.prompt_ids.shape[1]

    def select(self, rows: torch.Tensor | Sequence[int]) -> Samples:
        rows = torch.as_tensor(rows, dtype=torch.long)
        pick = rows.tolist()
        return Samples(self.prompts, self.prompt_index[rows], self.prompt_ids[rows], self.prompt_mask[rows],
                       self.tokens[rows], self.logprobs[rows], self.mask[rows],
                       [self.finish_reasons[i] for i in pick], [self.texts[i] for i in pick] if self.texts else [])


def _in_inference_mode(sample):
    """Run a sampling method under ``torch.inference_mode`` and return its ``Samples`` as ordinary tensors.

    Inference mode skips autograd's per-op bookkeeping (version counters, views), about a tenth of a CPU decode
    loop's time; its tensors may not be saved for backward, and the rollouts' ids go into the loss, hence the
    copies (a few KB).
    """
    @functools.wraps(sample)
    def run(*args, **kwargs) -> Samples:
        with torch.inference_mode():
            out = sample(*args, **kwargs)
        return replace(out, **{f.name: getattr(out, f.name).clone() for f in fields(out)
                               if isinstance(getattr(out, f.name), torch.Tensor)})
    return run


@dataclass
class Scores:
    """Per-position scores of ``input_ids[:, start:]``; entries at padding positions (``mask == 0``) are zero."""

    logprobs: torch.Tensor  # [B, T'] log p(x_t | x_<t) of the realised tokens
    mask: torch.Tensor  # [B, T'] float32
    topk_ids: torch.Tensor | None = None  # [B, T', k]
    topk_logprobs: torch.Tensor | None = None  # [B, T', k]
    given_logprobs: torch.Tensor | None = None  # [B, T', K] log-probs of the ids passed as given_ids


# --------------------------------------------------------------------------------------------------- model


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, so a padded row is computed exactly as it would be alone."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class LocalLM:
    """A causal LM with its tokenizer on one device. ``model`` is a plain HF ``PreTrainedModel``."""

    model: Any
    tokenizer: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # peft's wrapper when the model carries LoRA adapters (lyceum.train.lora): save() then writes them alone
    adapter: Any = None

    # ---- ids

    @property
    def text_config(self) -> Any:
        """The config that holds the language model's ids (a VLM nests it; VisionLM overrides this)."""
        return self.model.config

    @property
    def pad_id(self) -> int:
        for v in (getattr(self.tokenizer, "pad_token_id", None), getattr(self.text_config, "pad_token_id", None),
                  getattr(self.tokenizer, "eos_token_id", None), getattr(self.text_config, "eos_token_id", None)):
            if isinstance(v, list):
                v = v[0] if v else None
            if v is not None:
                return int(v)
        return 0

    @property
    def stop_ids(self) -> list[int]:
        ids: list[int] = []
        for v in (getattr(self.tokenizer, "eos_token_id", None), getattr(self.text_config, "eos_token_id", None)):
            for x in (v if isinstance(v, (list, tuple)) else [v]):
                if x is not None and int(x) not in ids:
                    ids.append(int(x))
        return ids

    @property
    def vocab_size(self) -> int:
        """Rows of the output layer (may exceed the tokenizer's size: checkpoints pad it for speed)."""
        return int(self.model.get_output_embeddings().weight.shape[0])

    def encode(self, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
        """Token ids for each prompt: strings go through the tokenizer (with its special tokens, e.g. BOS)."""
        out = []
        for p in prompts:
            if isinstance(p, str):
                if self.tokenizer is None:
                    raise UserError("this model has no tokenizer; pass prompts as lists of token ids")
                out.append(list(self.tokenizer(p).input_ids))
            else:
                out.append([int(x) for x in p])
            if not out[-1]:
                raise UserError("a prompt is empty; every prompt needs at least one token")
        return out

    def decode(self, ids: Sequence[int]) -> str:
        if self.tokenizer is None:
            return " ".join(str(int(i)) for i in ids)
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        quiet_transformers()
        # with LoRA adapters: adapter_config.json + adapter weights only
        (self.adapter if self.adapter is not None else self.model).save_pretrained(path)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(path)
        return path

    # ---- forward pieces (the trainer reuses these to compute losses chunk by chunk)

    def _cache_kw(self) -> str:
        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final (normed) hidden states ``[B, T, H]`` of the transformer body, without the LM head."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                    position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        return out.last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM head (+ the logit scaling/soft-capping some families use) on hidden states, in float32."""
        logits = self.model.get_output_embeddings()(hidden).float()
        cfg = self.model.config
        scale = getattr(cfg, "logit_scale", None)
        if isinstance(scale, (int, float)) and scale != 1:
            logits = logits * scale
        cap = getattr(cfg, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    # ---- sampling

    def _decode_step(self):
        """``step(input_ids, attention_mask, position_ids, cache) -> logits [B, V]`` of the last position.

        Decoding a few rows is bound by reading the LM head's weight once per token. On a CPU, ``W @ h.T``
        streams that weight about twice as fast as ``linear(h, W)`` (``benchmarks/decode_step.py``), so a large
        head (``HEAD_STREAM_BYTES`` and up, no bias, no logit scaling) is applied that way; small heads and other
        families keep the model's own forward.
        """
        kw = self._cache_kw()
        head = self.model.get_output_embeddings()
        cfg = self.model.config
        scale = getattr(cfg, "logit_scale", None)
        plain = (getattr(head, "bias", None) is None and not getattr(cfg, "final_logit_softcapping", None)
                 and not (isinstance(scale, (int, float)) and scale != 1))
        weight = head.weight
        if not (plain and weight.device.type == "cpu" and weight.numel() * weight.element_size() >= HEAD_STREAM_BYTES):
            def step(input_ids, attention_mask, position_ids, cache):
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 use_cache=True, logits_to_keep=1, **{kw: cache})
                return out.logits[:, -1]
            return step

        def streamed(input_ids, attention_mask, position_ids, cache):
            out = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                        use_cache=True, **{kw: cache})
            # [B, V] rows contiguous again: draw_tokens reduces along V, which strided rows make ~2x slower
            return (weight @ out.last_hidden_state[:, -1].T).T.contiguous()
        return streamed


    @_in_inference_mode
    def sample(self, prompts: Sequence[str] | Sequence[Sequence[int]], max_new_tokens: int = 256, *,
               temperature: float = 1.0, top_p: float = 1.0, n: int = 1, seed: int | None = None,
               stop_ids: Sequence[int] | None = None) -> Samples:
        """Sample ``n`` responses per prompt (rows ordered prompt-major: prompt 0's n rows first).

        ``temperature=0`` is greedy decoding; its log-probs are then those of the model at temperature 1.
        ``seed`` makes the draw reproducible without touching the global RNG; ``None`` uses the global RNG.
        """
        check_sampling(max_new_tokens, n, temperature, top_p)
        return self._sample_loop(prompts, self.encode(prompts), None, max_new_tokens, temperature=temperature,
                                 top_p=top_p, n=n, seed=seed, stop_ids=stop_ids)

    def _decoder(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, extra: Any):
        """``(prefill, step)`` of the decode loop. ``prefill(cache) -> (logits [B, V], next position [B])`` runs
        the left-padded prompts; ``step(tok, attn, pos, cache) -> logits`` feeds one token per row at ``pos``.
        A subclass with other inputs (``VisionLM``: images, 3-D positions) overrides this and nothing else."""
        step = self._decode_step()

        def prefill(cache):
            pos = position_ids_from_mask(prompt_mask)
            logits = step(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos, cache=cache)
            return logits, pos[:, -1] + 1

        def next_token(tok, attn, pos, cache):
            return step(input_ids=tok[:, None], attention_mask=attn, position_ids=pos[:, None], cache=cache)

        return prefill, next_token

    def _samples(self, fields: dict[str, Any], extra: Any) -> Samples:
        return Samples(**fields)

    def _sample_loop(self, prompts: Sequence[Any], encoded: list[list[int]], extra: Any, max_new_tokens: int, *,
                     temperature: float, top_p: float, n: int, seed: int | None,
                     stop_ids: Sequence[int] | None) -> Samples:
        """The one decode loop (``sample``'s and ``VisionLM.sample``'s): prompts prefilled once, left-padded,
        the cache repeated ``n`` times, then one token per step; a row that stops leaves the batch at once."""
        stops = torch.tensor(list(stop_ids) if stop_ids is not None else self.stop_ids, dtype=torch.long,
                             device=self.device)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(seed))

        B, P, pad = len(encoded), max(len(e) for e in encoded), self.pad_id
        prompt_ids = torch.full((B, P), pad, dtype=torch.long)
        prompt_mask = torch.zeros((B, P), dtype=torch.long)
        for i, e in enumerate(encoded):
            prompt_ids[i, P - len(e):] = torch.tensor(e)
            prompt_mask[i, P - len(e):] = 1
        prompt_ids, prompt_mask = prompt_ids.to(self.device), prompt_mask.to(self.device)

        from transformers import DynamicCache

        was_training = self.model.training
        self.model.eval()
        try:
            cache = DynamicCache(config=self.model.config)
            prefill, next_token = self._decoder(prompt_ids, prompt_mask, extra)
            logits, next_pos = prefill(cache)
            if n > 1:  # the prompt is computed once; its cache is shared by the n samples
                cache.batch_repeat_interleave(n)
                logits = logits.repeat_interleave(n, 0)
            N = B * n
            attn = prompt_mask.repeat_interleave(n, 0)
            next_pos = next_pos.repeat_interleave(n, 0)
            tokens = torch.full((N, max_new_tokens), pad, dtype=torch.long, device=self.device)
            logprobs = torch.zeros((N, max_new_tokens), dtype=torch.float32, device=self.device)
            lengths = torch.full((N,), max_new_tokens, dtype=torch.long, device=self.device)
            stopped = torch.zeros(N, dtype=torch.bool, device=self.device)
            active = torch.arange(N, device=self.device)  # rows still generating, in cache order
            for t in range(max_new_tokens):
                tok, lp = draw_tokens(logits.float(), temperature, top_p, gen)
                tokens[active, t], logprobs[active, t] = tok, lp
                done = torch.isin(tok, stops)
                if done.any():
                    lengths[active[done]] = t + 1
                    stopped[active[done]] = True
                    keep = (~done).nonzero().squeeze(1)
                    if keep.numel() == 0:
                        break
                    cache.batch_select_indices(keep)
                    active, tok, attn, next_pos = active[keep], tok[keep], attn[keep], next_pos[keep]
                if t == max_new_tokens - 1:
                    break
                attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], 1)
                logits = next_token(tok, attn, next_pos, cache)
                next_pos = next_pos + 1
        finally:
            self.model.train(was_training)

        L = int(lengths.max())
        steps = torch.arange(L, device=self.device)
        mask = (steps[None, :] < lengths[:, None]).float()
        tokens = tokens[:, :L].masked_fill(mask == 0, pad)
        logprobs = logprobs[:, :L] * mask
        reasons = ["stop" if s else "length" for s in stopped.tolist()]
        rows = [tokens[i, : int(lengths[i])].tolist() for i in range(N)]
        texts = [self.decode(r) for r in rows]
        fields = {"prompts": list(prompts), "prompt_index": torch.arange(B, device=self.device).repeat_interleave(n),
                  "prompt_ids": prompt_ids.repeat_interleave(n, 0), "prompt_mask": prompt_mask.repeat_interleave(n, 0),
                  "tokens": tokens, "logprobs": logprobs, "mask": mask, "finish_reasons": reasons, "texts": texts}
        return self._samples(fields, extra)

    # ---- scoring

    @torch.no_grad()
    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, start: int = 1,
              topk: int = 0, given_ids: torch.Tensor | None = None, chunk_size: int | None = None) -> Scores:
        """Log-probs of ``input_ids[:, start:]`` given their prefixes, chunk by chunk over non-padding positions.

        Optionally also the ``topk`` most likely ids with their log-probs and the log-probs of ``given_ids``
        (``[B, T-start, K]``): what a served teacher answers (``lyceum.models.served``), so in-process and served
        scoring share one record. ``chunk_size`` is positions per LM-head call (default: about ``CHUNK_BYTES``
        of float32 logits). The training diagnostics (top-k overlap, entropies) are the loss scan's job
        (``lyceum.train.scan.token_scan``), not this method's.
        """
        if not 1 <= start < input_ids.shape[1] + 1:
            raise ValueError(f"start must be in [1, {input_ids.shape[1]}], got {start}")
        input_ids = input_ids.to(self.device)
        attention_mask = (torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(self.device))
        hidden = self.hidden_states(input_ids, attention_mask)[:, start - 1: -1]
        targets = input_ids[:, start:]
        mask = attention_mask[:, start:].float()
        B, T = targets.shape
        flat = mask.reshape(-1).nonzero().squeeze(1)  # only real tokens reach the LM head
        h = hidden.reshape(B * T, -1)[flat]
        tgt = targets.reshape(-1)[flat]
        giv = given_ids.to(self.device).reshape(B * T, -1)[flat] if given_ids is not None else None

        lp = torch.zeros(B * T, device=self.device)
        tk_ids = torch.zeros(B * T, topk, dtype=torch.long, device=self.device) if topk else None
        tk_lp = torch.zeros(B * T, topk, device=self.device) if topk else None
        g_lp = torch.zeros(B * T, giv.shape[1], device=self.device) if giv is not None else None
        step = chunk_size or max(1, CHUNK_BYTES // (4 * self.vocab_size))
        for a in range(0, h.shape[0], step):
            rows = flat[a: a + step]
            logp = self.logits(h[a: a + step])
            logp -= torch.logsumexp(logp, -1, keepdim=True)  # in place: one [chunk, V] tensor, not two
            lp[rows] = logp.gather(-1, tgt[a: a + step, None]).squeeze(-1)
            if topk:
                tk_lp[rows], tk_ids[rows] = logp.topk(topk, -1)
            if giv is not None:
                g_lp[rows] = logp.gather(-1, giv[a: a + step])
            del logp

        def shape(x):
            return None if x is None else x.reshape(B, T, *x.shape[1:])

        return Scores(shape(lp), mask, shape(tk_ids), shape(tk_lp), shape(g_lp))


def check_sampling(max_new_tokens: int, n: int, temperature: float, top_p: float) -> None:
    """Refuse sampling settings that cannot work, in one sentence each (before any prompt is encoded)."""
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if n < 1:
        raise UserError(f"n (samples per prompt) must be at least 1, got {n}")
    if temperature < 0 or not (0 < top_p <= 1):
        raise UserError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature} and {top_p}")


def draw_tokens(logits: torch.Tensor, temperature: float, top_p: float,
          gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row and its log-prob under the distribution it was drawn from.

    Inverse-CDF sampling (one uniform per row against float64 cumulative sums, ``_inverse_cdf``) rather than
    ``torch.multinomial``, which on CPU draws one random number per vocabulary entry: at a 151k vocabulary
    that is ~7x slower per decode step. The distribution is the same.
    """
    if temperature == 0:
        logp = torch.log_softmax(logits, -1)
        tok = logp.argmax(-1)
        return tok, logp.gather(-1, tok[:, None]).squeeze(-1)
    z = logits if temperature == 1 else logits / temperature
    if top_p < 1:
        srt, idx = z.sort(-1, descending=True)
        probs = srt.softmax(-1)
        drop = (probs.cumsum(-1) - probs) > top_p  # keep the smallest prefix whose mass reaches top_p
        z = z.scatter(-1, idx, srt.masked_fill(drop, float("-inf")))
    top = z.amax(-1, keepdim=True)
    weights = torch.sub(z, top).exp_()
    u = torch.rand(z.shape[0], 1, generator=gen, dtype=torch.float64, device=z.device)
    tok, total = _inverse_cdf(weights, u)
    lse = top.squeeze(-1) + total.squeeze(-1).log().to(z.dtype)
    return tok, z.gather(-1, tok[:, None]).squeeze(-1) - lse


# vocabulary entries per block of the two-level inverse CDF
CDF_BLOCK = 512


def _inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row, the first index whose float64 cumulative weight reaches ``u`` times the row total, and the
    total ([N, 1]).

    Two levels instead of one sequential cumulative sum over the whole vocabulary: block sums, their cumulative
    sum, then the cumulative sum inside the one block the draw lands in, with no [N, V] float64 temporary
    (``benchmarks/decode_step.py``). Same distribution and, up to float64 rounding at a block boundary, the same
    token as the one-level search (tested).
    """
    n, V = weights.shape
    if V <= CDF_BLOCK:  # one block: the plain cumulative sum
        cdf = weights.cumsum(-1, dtype=torch.float64)
        total = cdf[:, -1:]
        return torch.searchsorted(cdf, u * total).squeeze(-1).clamp_(max=V - 1), total
    full = V - V % CDF_BLOCK
    sums = weights[:, :full].view(n, -1, CDF_BLOCK).sum(-1, dtype=torch.float64)  # [N, V // B], no copy
    if full < V:  # the last, shorter block
        sums = torch.cat([sums, weights[:, full:].sum(-1, keepdim=True, dtype=torch.float64)], 1)
    blocks = sums.cumsum(-1)
    total = blocks[:, -1:]
    target = u * total
    b = torch.searchsorted(blocks, target).clamp_(max=blocks.shape[1] - 1)  # [N, 1]
    before = torch.where(b > 0, blocks.gather(1, (b - 1).clamp(min=0)), torch.zeros_like(target))
    ids = b * CDF_BLOCK + torch.arange(CDF_BLOCK, device=weights.device)  # [N, B]
    inside = weights.gather(1, ids.clamp(max=V - 1)).masked_fill_(ids >= V, 0)
    local = inside.cumsum(-1, dtype=torch.float64) + before
    j = torch.searchsorted(local, target).clamp_(max=CDF_BLOCK - 1)
    tok = (b * CDF_BLOCK + j).squeeze(-1).clamp_(max=V - 1)
    return tok, total


# --------------------------------------------------------------------------------------------------- loading


def quiet_transformers() -> None:
    """Our own progress bars report long loops; transformers' per-file loading bars would only add noise."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_local(path: str | Path, device: str | torch.device | None = None,
               dtype: str | torch.dtype | None = None) -> LocalLM:
    """Load an HF causal LM and its tokenizer from a local directory (nothing is downloaded).

    A folder whose config describes an image-text-to-text model (``models.vlm.is_vision_model``) loads as a
    ``VisionLM`` (``load_vlm``), so every command that takes a model folder takes a Qwen-VL one too.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"model directory not found: {path}")
    if not path.is_dir():
        raise UserError(f"{path} is a file; give the directory that holds the model's config.json")
    if not (path / "config.json").exists():
        raise UserError(f"{path} is not a Hugging Face model directory (no config.json)")
    # Qwen2-VL / Qwen2.5-VL / Qwen3-VL: the model with its image processor. models.vlm subclasses LocalLM, so it
    # is named here and imported when a folder needs it (as models/__init__ names its modules), not imported
    vlm = importlib.import_module(VISION_MODULE)
    if vlm.is_vision_model(path):
        return vlm.load_vlm(path, device=device, dtype=dtype)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dt, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load a causal language model from {path}: {first}") from e
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"{path} has no usable tokenizer files (tokenizer.json / tokenizer_config.json)") from e
    _prepare_tokenizer(tok)
    return LocalLM(model.to(dev).eval(), tok, dev)


def _prepare_tokenizer(tok: Any) -> None:
    tok.padding_side = "left"
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token


def build_tiny(arch: str = "llama", *, tokenizer: Any = None, vocab_size: int | None = None, hidden: int = 64,
               layers: int = 2, heads: int = 4, kv_heads: int | None = None, intermediate: int | None = None,
               max_positions: int = 1024, tie_embeddings: bool = False, seed: int = 0,
               device: str | torch.device | None = "cpu", dtype: str | torch.dtype | None = None,
               **config_overrides: Any) -> LocalLM:
    """A randomly initialised Llama- or Qwen2-style model; the same arguments and seed give the same weights.

    The vocabulary comes from ``tokenizer`` (its full size, specials included) or ``vocab_size``.
    """
    if tokenizer is None and vocab_size is None:
        raise UserError("build_tiny needs a tokenizer or a vocab_size")
    if hidden % heads:
        raise UserError(f"hidden size {hidden} must be divisible by the number of heads {heads}")
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    families = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if arch not in families:
        raise UserError(f"unknown tiny architecture {arch!r}; use one of {', '.join(families)}")
    V = vocab_size if vocab_size is not None else len(tokenizer)

    def tid(name: str, default: int) -> int:
        v = getattr(tokenizer, name, None) if tokenizer is not None else None
        return default if v is None else int(v)

    config_cls, model_cls = families[arch]
    config = config_cls(
        vocab_size=V, hidden_size=hidden, intermediate_size=intermediate or 4 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads or heads, max_position_embeddings=max_positions,
        tie_word_embeddings=tie_embeddings, pad_token_id=tid("pad_token_id", 0), bos_token_id=tid("bos_token_id", 1),
        eos_token_id=tid("eos_token_id", 2), **config_overrides)
    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model = model.to(device=dev, dtype=resolve_dtype(dtype, dev)).eval()
    if tokenizer is not None:
        _prepare_tokenizer(tokenizer)
    return LocalLM(model, tokenizer, dev)


# --------------------------------------------------------------------------------------------------- pairs


def check_same_vocab(tok_a: Any, tok_b: Any, names: tuple[str, str] = ("student", "teacher")) -> None:
    """Refuse two tokenizers that map tokens to ids differently (per-token distillation compares ids)."""
    va, vb = tok_a.get_vocab(), tok_b.get_vocab()
    if va == vb:
        return
    a, b = names
    only_a = sorted(set(va) - set(vb), key=va.get)
    only_b = sorted(set(vb) - set(va), key=vb.get)
    moved = sorted((t for t in set(va) & set(vb) if va[t] != vb[t]), key=va.get)
    if only_a or only_b:
        tok, side = (only_a[0], a) if only_a else (only_b[0], b)
        detail = f"token {tok!r} exists only in the {side}'s"
    else:
        detail = f"token {moved[0]!r} is id {va[moved[0]]} for the {a} but {vb[moved[0]]} for the {b}"
    raise UserError(f"the {a} and {b} tokenizers differ ({len(va)} vs {len(vb)} tokens; {detail}); "
                    f"on-policy distillation needs one shared vocabulary")


def check_pair(student: LocalLM, teacher: LocalLM) -> int:
    """Check a student/teacher pair can be distilled and return the vocabulary size both logits are cut to."""
    if student.tokenizer is not None and teacher.tokenizer is not None:
        check_same_vocab(student.tokenizer, teacher.tokenizer)
    # checkpoints often pad the output layer past the tokenizer; ids beyond it are never real tokens
    n_tok = len(student.tokenizer) if student.tokenizer is not None else None
    common = min(student.vocab_size, teacher.vocab_size)
    if n_tok is not None and n_tok > common:
        raise UserError(f"the tokenizer has {n_tok} tokens but a model's output layer has only {common} rows")
    if n_tok is None and student.vocab_size != teacher.vocab_size:
        raise UserError(f"the student and teacher output layers differ ({student.vocab_size} vs "
                        f"{teacher.vocab_size} rows) and there is no tokenizer to reconcile them")
    return common
