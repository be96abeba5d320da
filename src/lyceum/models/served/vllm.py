"""vLLM's OpenAI-compatible server: sampling and teacher scoring through ``/v1/completions`` with token-id
prompts, LoRA through ``/v1/load_lora_adapter``, and the HTTP control plane of its weight-transfer API.

Wire format read from vLLM's source (github.com/vllm-project/vllm, main as of 2026):
- request ``vllm/entrypoints/openai/completion/protocol.py`` (``CompletionRequest``, commit 002032ee): ``prompt``
  may be a list of token ids or a list of such lists; ``logprobs`` (int), ``prompt_logprobs`` (int, -1 = all),
  ``return_tokens_as_token_ids``, ``return_token_ids``, ``seed``, ``stop_token_ids``, ``n``;
- response ``CompletionResponseChoice``: ``token_ids`` (with ``return_token_ids``), ``logprobs`` =
  ``CompletionLogProbs`` {``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``}, and
  ``prompt_logprobs``: per prompt position ``None`` (position 0) or ``{token_id: Logprob}``, a ``Logprob`` being
  ``{"logprob", "rank", "decoded_token"}`` (``vllm/logprobs.py``); JSON turns the int keys into strings. The
  realised prompt token is always in its position's dict, with its true rank, beside the top ``prompt_logprobs``;
- ``vllm/entrypoints/openai/completion/serving.py`` (``request_output_to_completion_response``,
  ``_create_completion_logprobs``): choices are prompt-major (``index = len(choices)``), a token is written
  ``"token_id:{id}"`` under ``return_tokens_as_token_ids``, and -inf log-probs are clamped to -9999.0.
- weight transfer ``vllm/entrypoints/serve/dev/rlhf/api_router.py`` (commit 0100a212; the routes exist only with
  ``VLLM_SERVER_DEV_MODE=1``) and ``examples/rl/rlhf_http_nccl.py``: ``GET /get_world_size``, ``POST
  /init_weight_transfer_engine {"init_info": ...}``, ``/pause``, ``/start_weight_update``, ``/update_weights
  {"update_info": {"names", "dtype_names", "shapes", "packed"}}``, ``/finish_weight_update {"weight_version"}``,
  ``/resume``, ``GET /weight_info``. The tensors themselves travel over NCCL or CUDA IPC (GPU only).
- weights from disk ``vllm/entrypoints/serve/dev/rpc/api_router.py`` (commit cd20a578; ``VLLM_SERVER_DEV_MODE=1``):
  ``POST /collective_rpc {"method", "args", "kwargs", "timeout"}`` runs ``method`` on every worker (arguments are
  passed as given; the route documents string arguments only) and answers ``{"results": [...]}`` (or an empty 200
  when the call returns None). The worker's ``reload_weights(*args, **kwargs)`` (``vllm/v1/worker/gpu_worker.py``)
  forwards to ``GPUModelRunner.reload_weights(weights_iterator=None, weights_path=None, is_checkpoint_format=True)``
  (``vllm/v1/worker/gpu_model_runner.py``, vLLM main 2026): with ``weights_path`` it points the model config at that
  folder and streams its checkpoint through the model's own ``load_weights`` (layerwise reload, so quantised and
  repacked layers are processed again). Older vLLMs' ``Worker.reload_weights(self)`` took no argument and re-read
  the folder the server started from: there the call fails (HTTP 500). ``POST /reset_prefix_cache``
  (``vllm/entrypoints/serve/dev/cache/api_router.py``) then drops KV blocks the old weights computed. The
  weight-transfer routes above move tensors over NCCL / CUDA IPC only; there is no documented disk variant, so
  this pair is vLLM's route for a trainer that shares a disk with the server (NeMo-RL's remote vLLM client sends
  the same body).
- LoRA ``vllm/entrypoints/serve/lora/api_router.py`` (commit 27873cab; routes mounted only with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, the server started with ``--enable-lora``) and
  ``vllm/entrypoints/openai/models/serving.py`` (``OpenAIServingModels``, commit 4fe45004):
  ``POST /v1/load_lora_adapter {"lora_name", "lora_path", "load_inplace"}`` answers a plain-text 200; a name already
  loaded is refused (400) unless ``load_inplace`` is true, which reloads it under the same ``lora_int_id``; a bad
  folder is a 400 (404 when no adapter is found there). ``POST /v1/unload_lora_adapter {"lora_name"}`` answers 404
  for an unknown name. A completion picks an adapter by ``model = lora_name``; a ``model`` that is neither the base
  nor a loaded adapter is a 404 ``NotFoundError`` (``OpenAIServing._check_model``).

vLLM has no request field for log-probs of *given* ids at prompt positions (``logprob_token_ids`` covers generated
positions only), so this teacher answers the sampled and teacher-top-k supports (``teacher.teacher_request``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.models.served.sampling import Completion
from lyceum.models.served.teacher import PositionScores, logprob_or_floor
from lyceum.models.served.transport import MalformedReply, ServedEndpoint, post_parsed


class VLLMServer:
    """A student sampler and/or teacher behind ``vllm serve MODEL``."""

    kind = "vllm"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, concurrency: int = 8,
                 max_retries: int = 4, timeout: float = 120.0, backoff: float = 0.5, batch_size: int = 8):
        if not model:
            raise UserError("no model name given for the vLLM server: pass the name it serves (--served-model-name)")
        self.endpoint = ServedEndpoint(base_url, api_key, concurrency, max_retries, timeout, backoff)
        self.model, self.batch_size = model, max(1, batch_size)

    # ---- sampling

    async def sample(self, prompts: Sequence[Sequence[int]], *, n: int = 1, max_new_tokens: int = 256,
                     temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                     stop_ids: Sequence[int] | None = None, model: str | None = None) -> list[Completion]:
        """``n`` completions per prompt (rows prompt-major), each with its token ids and sampled log-probs.

        One request per prompt, sent concurrently; prompt ``i`` is seeded with ``seed + i``. ``model`` picks a
        loaded LoRA adapter by its name. The log-probs are those of the sampling distribution at temperature 1
        and top_p 1; otherwise start the server with ``--logprobs-mode processed_logprobs``."""

        async def one(i: int, ids: Sequence[int]) -> list[Completion]:
            body = {"model": model or self.model, "prompt": [int(t) for t in ids], "n": n,
                    "max_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "logprobs": 0,
                    "return_token_ids": True, "return_tokens_as_token_ids": True}
            if seed is not None:
                body["seed"] = int(seed) + i
            if stop_ids is not None:
                body["stop_token_ids"] = [int(s) for s in stop_ids]
                if not stop_ids:  # no stop ids at all, as LocalLM.sample(stop_ids=[]): decode past EOS too
                    body["ignore_eos"] = True  # CompletionRequest.ignore_eos (vllm/entrypoints/openai/protocol.py)
            return await post_parsed(self.endpoint, "/v1/completions", body, lambda r: _completions(r, i, n))

        rows = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        return [c for row in rows for c in row]

    # ---- teacher scoring

    async def score(self, sequences: list[list[int]], first: list[int], *, topk: int = 0,
                    given: list[list[list[int]]] | None = None) -> list[PositionScores]:
        """Teacher log-probs of ``seq[j]`` for ``j >= first`` (and the top ``topk`` at each), via prompt_logprobs.

        Sequences go ``batch_size`` to a request (a list of token-id prompts), requests concurrently."""
        if given is not None:
            raise UserError("vLLM's /v1/completions cannot return log-probs of given token ids at prompt positions; "
                            "serve the teacher with SGLang for the student-top-k, intersection and union supports")

        async def batch(a: int) -> list[PositionScores]:
            seqs, firsts = sequences[a: a + self.batch_size], first[a: a + self.batch_size]
            # max_tokens=1: vLLM generates at least one token; its prompt_logprobs are what we read
            body = {"model": self.model, "prompt": [[int(t) for t in s] for s in seqs], "max_tokens": 1,
                    "temperature": 0.0, "prompt_logprobs": int(topk)}
            return await post_parsed(self.endpoint, "/v1/completions", body,
                                     lambda r: _prompt_scores(r, seqs, firsts, topk))

        parts = await asyncio.gather(*(batch(a) for a in range(0, len(sequences), self.batch_size)))
        return [s for part in parts for s in part]

    # ---- weight sync from disk

    async def reload_weights_from_disk(self, path: str | Path) -> None:
        """Every worker reloads its weights from ``path`` (a folder the server can read), then the prefix cache,
        whose KV entries the old weights computed, is dropped. Dev-mode routes (``VLLM_SERVER_DEV_MODE=1``):
        ``POST /collective_rpc {"method": "reload_weights", "kwargs": {"weights_path"}}`` (the worker's
        ``reload_weights(weights_path=...)``, see the module docstring for the source) and ``POST
        /reset_prefix_cache``. A vLLM whose worker method takes no ``weights_path`` answers HTTP 500."""
        await self.endpoint.post("/collective_rpc", {"method": "reload_weights",
                                                     "kwargs": {"weights_path": str(path)}})
        await self.endpoint.post("/reset_prefix_cache")

    async def push_from_disk(self, lm, folder: str | Path, *, weight_version: str | None = None) -> None:
        """Save the trainer's ``LocalLM`` to ``folder`` (on a disk the server shares) and have the server load it.
        vLLM keeps no weight version on this route; ``weight_version`` is accepted for SGLang's signature."""
        await asyncio.to_thread(lm.save, folder)
        await self.reload_weights_from_disk(Path(folder).resolve())

    # ---- LoRA

    async def load_lora_adapter(self, name: str, path: str | Path, *, load_inplace: bool = False) -> str:
        """Load the peft adapter in ``path`` (a folder the server can read) as ``name``; completions then pick it
        with ``model=name``. ``load_inplace`` reloads a name already loaded (refused with HTTP 400 otherwise).

        The trainer loads each pushed version under a fresh name instead: vLLM's prefix-cache block hashes carry
        the adapter's name (``vllm/v1/core/kv_cache_utils.py`` ``_gen_lora_extra_hash_keys``; its ``lora_int_id``
        in older versions), both of which an in-place reload keeps, so KV blocks the old adapter computed could be
        served to the new one. A fresh name gets fresh hashes and works on every vLLM that has the route."""
        body: dict[str, Any] = {"lora_name": name, "lora_path": str(path)}
        if load_inplace:
            body["load_inplace"] = True
        return await self.endpoint.post("/v1/load_lora_adapter", body)

    async def unload_lora_adapter(self, name: str) -> str:
        return await self.endpoint.post("/v1/unload_lora_adapter", {"lora_name": name})

    def adapter_request(self, name: str) -> dict[str, Any]:
        """The ``sample`` keyword that selects a loaded adapter: vLLM reads it from the request's ``model``."""
        return {"model": name}


def _completions(reply: dict[str, Any], prompt_index: int, n: int) -> list[Completion]:
    choices = sorted(reply["choices"], key=lambda c: c["index"])
    if len(choices) != n:
        raise MalformedReply(f"{len(choices)} choices for n={n}")
    out = []
    for c in choices:
        lp = c.get("logprobs") or {}
        values = lp.get("token_logprobs")
        ids = c.get("token_ids")
        if ids is None:  # older servers: ids only through return_tokens_as_token_ids
            ids = [int(t.split(":", 1)[1]) for t in lp["tokens"]]
        if values is None or len(values) != len(ids):
            raise MalformedReply("token_logprobs and token ids differ in length")
        reason = c.get("finish_reason")
        if reason not in ("stop", "length"):
            raise MalformedReply(f"finish_reason {reason!r}")
        out.append(Completion(prompt_index, [int(t) for t in ids], [logprob_or_floor(v) for v in values], reason))
    return out


def _prompt_scores(reply: dict[str, Any], seqs, firsts, topk: int) -> list[PositionScores]:
    choices = sorted(reply["choices"], key=lambda c: c["index"])
    if len(choices) != len(seqs):
        raise MalformedReply(f"{len(choices)} choices for {len(seqs)} prompts")
    out = []
    for c, ids, first in zip(choices, seqs, firsts):
        plp = c["prompt_logprobs"]
        if plp is None or len(plp) != len(ids):
            raise MalformedReply("prompt_logprobs missing or of the wrong length")
        tok, top_ids, top_lp = [], [], []
        for j in range(first, len(ids)):
            entries = {int(t): e for t, e in plp[j].items()}
            tok.append(logprob_or_floor(entries[int(ids[j])]["logprob"]))
            if topk:
                ranked = sorted(((e["rank"], -e["logprob"], t) for t, e in entries.items() if e["rank"] <= topk))
                if len(ranked) < topk:
                    raise MalformedReply(f"position {j} has {len(ranked)} of the top {topk} log-probs")
                ranked = ranked[:topk]
                top_ids.append([t for _, _, t in ranked])
                top_lp.append([logprob_or_floor(-v) for _, v, _ in ranked])
        out.append(PositionScores(tok, top_ids if topk else None, top_lp if topk else None))
    return out


class VLLMWeightTransfer:
    """The HTTP control plane of vLLM's weight-transfer API (server started with ``VLLM_SERVER_DEV_MODE=1`` and
    ``--weight-transfer-config '{"backend": "nccl"}'`` or ``"ipc"``).

    ``push`` runs one update: pause generation, start the update, POST ``/update_weights`` (which blocks on the
    server until the tensors arrive) while ``send()`` pushes the tensors over the data plane, finish with a
    weight version, resume. ``send`` is the GPU-only part (``NCCLWeightTransferEngine.trainer_send_weights`` in
    vLLM's examples); it is not run by this project's CPU tests."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 600.0, max_retries: int = 0):
        # no retries by default: a repeated /update_weights would wait for tensors that were already sent
        self.endpoint = ServedEndpoint(base_url, api_key, concurrency=2, max_retries=max_retries, timeout=timeout)

    async def world_size(self) -> int:
        return int((await self.endpoint.get("/get_world_size"))["world_size"])

    async def init_engine(self, init_info: dict[str, Any]) -> None:
        await self.endpoint.post("/init_weight_transfer_engine", {"init_info": init_info})

    async def weight_version(self) -> str | None:
        return (await self.endpoint.get("/weight_info")).get("weight_version")

    async def push(self, update_info: dict[str, Any], send: Callable[[], None], *, weight_version: str | None = None,
                   pause_mode: str = "keep") -> None:
        """One weight update. ``update_info``: ``{"names", "dtype_names", "shapes", "packed"}`` of the tensors
        ``send()`` will broadcast. ``pause_mode`` "keep" freezes in-flight requests and resumes them after."""
        await self.endpoint.post(f"/pause?mode={pause_mode}")
        try:
            await self.endpoint.post("/start_weight_update")
            sender_error: list[BaseException] = []

            def run_send():
                try:
                    send()
                except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's task
                    sender_error.append(e)

            thread = threading.Thread(target=run_send, daemon=True)
            thread.start()
            await self.endpoint.post("/update_weights", {"update_info": update_info})
            await asyncio.to_thread(thread.join)
            if sender_error:
                raise sender_error[0]
            await self.endpoint.post("/finish_weight_update", {"weight_version": weight_version})
        finally:
            await self.endpoint.post("/resume")
