"""SGLang's native server: sampling and teacher scoring through ``/generate`` with ``input_ids``, weight sync
through ``/update_weights_from_disk``, LoRA through ``/load_lora_adapter``.

Wire format read from SGLang's source (github.com/sgl-project/sglang, main as of 2026):
- request ``python/sglang/srt/managers/io_struct.py`` (``GenerateReqInput``, commit f11d231c): ``input_ids`` (a
  list of ids or a batch of them), ``sampling_params`` (``max_new_tokens`` may be 0: a prefill-only scoring call,
  ``python/sglang/srt/sampling/sampling_params.py`` ``verify``), ``return_logprob``, ``logprob_start_len`` (per
  request or one int; -1 = output tokens only), ``top_logprobs_num``, ``token_ids_logprob`` (per request: ids
  whose log-probs are returned at every position);
- response ``python/sglang/srt/managers/tokenizer_manager.py`` (``add_logprob_to_meta_info``,
  ``detokenize_logprob_tokens``): ``{"text", "output_ids", "meta_info": {"id", "finish_reason": {"type": "stop"
  | "length" | "abort", ...}, "prompt_tokens", "completion_tokens", "input_token_logprobs",
  "output_token_logprobs", "input_top_logprobs", "output_top_logprobs", "input_token_ids_logprobs",
  "output_token_ids_logprobs", ...}}``, each log-prob entry a ``[logprob, token_id, text-or-null]`` triple and
  each top / given list one list of triples per position; a batch (or ``n`` > 1) answers a list of such dicts;
- ``python/sglang/srt/managers/scheduler_output_processor_mixin.py`` (``_process_input_token_logprobs``): input
  entries are aligned with ``input_ids[logprob_start_len:]`` and entry 0 is always None (the first returned
  position is not scored), so to score token ``j`` onwards we send ``logprob_start_len = j - 1``;
- weight sync ``UpdateWeightFromDiskReqInput {"model_path", "load_format", "abort_all_requests",
  "weight_version", ...}`` answered ``{"success", "message", "num_paused_requests"}`` (HTTP 400 when not
  successful);
- LoRA ``python/sglang/srt/entrypoints/http_server.py`` (``/load_lora_adapter``, ``/unload_lora_adapter``; the
  server started with ``--enable-lora``): ``LoadLoRAAdapterReqInput {"lora_name", "lora_path", "pinned"}`` and
  ``UnloadLoRAAdapterReqInput {"lora_name"}`` answered ``LoRAUpdateOutput {"success", "error_message",
  "loaded_adapters"}`` (HTTP 400 when not successful). ``python/sglang/srt/lora/lora_registry.py``: a name already
  registered is refused ("LoRA with name ... already exists"), so a new version needs a new name; unloading waits
  for the requests still using the adapter. ``/generate`` picks an adapter by name in its ``lora_path`` field; a
  name not loaded is a ValueError ("The following requested LoRA adapters are not loaded"), answered HTTP 400.
``/update_weights_from_tensor`` takes tensors pickled by SGLang's ``MultiprocessingSerializer`` (CUDA IPC handles
or shared-memory file handles): it only works from a process on the same machine as the server, with SGLang
installed, so it is documented in docs/serving.md and not wrapped here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.models.served.sampling import Completion
from lyceum.models.served.teacher import PositionScores, logprob_or_floor
from lyceum.models.served.transport import MalformedReply, ServedEndpoint, post_parsed


class SGLangServer:
    """A student sampler and/or teacher behind ``python -m sglang.launch_server --model-path MODEL``."""

    kind = "sglang"

    def __init__(self, base_url: str, *, api_key: str | None = None, concurrency: int = 8, max_retries: int = 4,
                 timeout: float = 120.0, backoff: float = 0.5, batch_size: int = 8):
        self.endpoint = ServedEndpoint(base_url, api_key, concurrency, max_retries, timeout, backoff)
        self.batch_size = max(1, batch_size)

    # ---- sampling

    async def sample(self, prompts: Sequence[Sequence[int]], *, n: int = 1, max_new_tokens: int = 256,
                     temperature: float = 1.0, top_p: float = 1.0, stop_ids: Sequence[int] | None = None,
                     lora_path: str | None = None) -> list[Completion]:
        """``n`` completions per prompt (rows prompt-major) with their token ids and sampled log-probs; one
        request per prompt, sent concurrently. ``lora_path`` names a loaded adapter."""

        async def one(i: int, ids: Sequence[int]) -> list[Completion]:
            params: dict[str, Any] = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                                      "n": n}
            if stop_ids is not None:
                params["stop_token_ids"] = [int(s) for s in stop_ids]
                if not stop_ids:  # no stop ids at all, as LocalLM.sample(stop_ids=[]): decode past EOS too
                    params["ignore_eos"] = True  # SamplingParams.ignore_eos (python/sglang/srt/sampling/sampling_params.py)
            body: dict[str, Any] = {"input_ids": [int(t) for t in ids], "sampling_params": params,
                                    "return_logprob": True, "logprob_start_len": -1}
            if lora_path is not None:
                body["lora_path"] = lora_path
            return await post_parsed(self.endpoint, "/generate", body, lambda r: _completions(r, i, n))

        rows = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        return [c for row in rows for c in row]

    # ---- teacher scoring

    async def score(self, sequences: list[list[int]], first: list[int], *, topk: int = 0,
                    given: list[list[list[int]]] | None = None) -> list[PositionScores]:
        """Teacher log-probs of ``seq[j]`` for ``j >= first``; with ``topk`` the top ids at each position; with
        ``given`` (per sequence, per position, a list of ids) the log-probs of those ids. A prefill-only call
        (``max_new_tokens`` 0); sequences go ``batch_size`` to a request, requests concurrently."""
        if any(f < 1 for f in first):
            raise UserError("a sequence's first token has no prefix to score it from")

        async def batch(a: int) -> list[PositionScores]:
            seqs, firsts = sequences[a: a + self.batch_size], first[a: a + self.batch_size]
            asks = given[a: a + self.batch_size] if given is not None else None
            body: dict[str, Any] = {"input_ids": [[int(t) for t in s] for s in seqs],
                                    "sampling_params": {"max_new_tokens": 0}, "return_logprob": True,
                                    "logprob_start_len": [f - 1 for f in firsts], "top_logprobs_num": int(topk)}
            if asks is not None:  # one id list per request: the union of the ids asked at its positions
                body["token_ids_logprob"] = [sorted({int(t) for pos in ask for t in pos}) for ask in asks]
            return await post_parsed(self.endpoint, "/generate", body,
                                     lambda r: _input_scores(r, seqs, firsts, topk, asks is not None))

        parts = await asyncio.gather(*(batch(a) for a in range(0, len(sequences), self.batch_size)))
        return [s for part in parts for s in part]

    # ---- weight sync

    async def update_weights_from_disk(self, model_path: str | Path, *, weight_version: str | None = None,
                                       load_format: str | None = None, abort_all_requests: bool = False) -> dict:
        """Reload the served model's weights from a folder the server can read (same architecture)."""
        body: dict[str, Any] = {"model_path": str(model_path), "abort_all_requests": abort_all_requests}
        if weight_version is not None:
            body["weight_version"] = weight_version
        if load_format is not None:
            body["load_format"] = load_format

        def parse(reply):
            if not reply.get("success"):
                raise MalformedReply(reply.get("message", "no success flag"))
            return reply

        return await post_parsed(self.endpoint, "/update_weights_from_disk", body, parse)

    async def push_from_disk(self, lm, folder: str | Path, *, weight_version: str | None = None) -> dict:
        """Save the trainer's ``LocalLM`` to ``folder`` (on a disk the server shares) and have the server load it."""
        await asyncio.to_thread(lm.save, folder)
        return await self.update_weights_from_disk(Path(folder).resolve(), weight_version=weight_version)

    # ---- LoRA

    async def load_lora_adapter(self, name: str, path: str | Path, *, pinned: bool = False) -> dict:
        """Load the peft adapter in ``path`` (a folder the server can read) as ``name``; ``/generate`` then picks
        it with ``lora_path=name``. A name already loaded is refused: load each version under a new name."""
        return await post_parsed(self.endpoint, "/load_lora_adapter",
                                 {"lora_name": name, "lora_path": str(path), "pinned": pinned}, _lora_update)

    async def unload_lora_adapter(self, name: str) -> dict:
        return await post_parsed(self.endpoint, "/unload_lora_adapter", {"lora_name": name}, _lora_update)

    def adapter_request(self, name: str) -> dict[str, Any]:
        """The ``sample`` keyword that selects a loaded adapter: SGLang reads its name from ``lora_path``."""
        return {"lora_path": name}


def _lora_update(reply: Any) -> dict:
    if not reply.get("success"):
        raise MalformedReply(reply.get("error_message") or "no success flag")
    return reply


def _as_list(reply: Any) -> list[dict[str, Any]]:
    return reply if isinstance(reply, list) else [reply]


def _completions(reply: Any, prompt_index: int, n: int) -> list[Completion]:
    outs = _as_list(reply)
    if len(outs) != n:
        raise MalformedReply(f"{len(outs)} outputs for n={n}")
    result = []
    for o in outs:
        meta = o["meta_info"]
        ids = [int(t) for t in o["output_ids"]]
        entries = meta["output_token_logprobs"]
        if len(entries) != len(ids) or any(int(e[1]) != t for e, t in zip(entries, ids)):
            raise MalformedReply("output_token_logprobs do not match output_ids")
        reason = (meta.get("finish_reason") or {}).get("type")
        if reason not in ("stop", "length"):  # "abort": the server gave up on the request; send it again
            raise MalformedReply(f"finish_reason {meta.get('finish_reason')!r}")
        result.append(Completion(prompt_index, ids, [logprob_or_floor(e[0]) for e in entries], reason))
    return result


def _input_scores(reply: Any, seqs, firsts, topk: int, with_given: bool) -> list[PositionScores]:
    outs = _as_list(reply)
    if len(outs) != len(seqs):
        raise MalformedReply(f"{len(outs)} outputs for {len(seqs)} sequences")
    result = []
    for o, ids, first in zip(outs, seqs, firsts):
        meta = o["meta_info"]
        tok_entries = meta["input_token_logprobs"]
        n = len(ids) - first
        if len(tok_entries) != n + 1:  # entry 0 (token first-1) is the unscored None
            raise MalformedReply(f"{len(tok_entries)} input log-probs for {n + 1} positions")
        tok = []
        for e, t in zip(tok_entries[1:], ids[first:]):
            if int(e[1]) != int(t):
                raise MalformedReply("input_token_logprobs are not aligned with input_ids")
            tok.append(logprob_or_floor(e[0]))
        top_ids = top_lp = given = None
        if topk:
            tops = meta["input_top_logprobs"][1:]
            top_ids = [[int(e[1]) for e in pos[:topk]] for pos in tops]
            top_lp = [[logprob_or_floor(e[0]) for e in pos[:topk]] for pos in tops]
            if len(tops) != n or any(len(r) != topk for r in top_ids):
                raise MalformedReply("input_top_logprobs have the wrong shape")
        if with_given:
            rows = meta["input_token_ids_logprobs"][1:]
            if len(rows) != n:
                raise MalformedReply("input_token_ids_logprobs have the wrong length")
            given = [{int(e[1]): logprob_or_floor(e[0]) for e in pos} for pos in rows]
        result.append(PositionScores(tok, top_ids, top_lp, given))
    return result
