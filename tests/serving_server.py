"""A real local HTTP server that speaks vLLM's and SGLang's wire formats, backed by a local model.

Tests point the real served clients (``lyceum.models.served``) at it, so token-id prompts, log-prob nesting,
batching, retries and weight pushes all go over a socket in the servers' own JSON shapes. The model behind it is
a ``lyceum.models.local.LocalLM``: its sampler draws the completions, one plain forward pass gives every log-prob.

Routes and shapes, with the source they follow (vLLM and SGLang main as of 2026):
- vLLM ``POST /v1/completions``: ``vllm/entrypoints/openai/completion/protocol.py`` (``CompletionRequest``,
  ``CompletionResponse``, ``CompletionResponseChoice``, ``CompletionLogProbs``) and ``.../completion/serving.py``
  (``request_output_to_completion_response``, ``_create_completion_logprobs``): token-id prompts, ``n``,
  ``logprobs`` (the sampled token plus the top ``logprobs`` per step, keys ``"token_id:{id}"`` under
  ``return_tokens_as_token_ids``), ``prompt_logprobs`` (``None`` at position 0, then ``{id: {"logprob", "rank",
  "decoded_token"}}`` holding the realised token with its true rank and the top k), ``token_ids`` /
  ``prompt_token_ids`` under ``return_token_ids``, choices prompt-major. Sampled log-probs are the model's own at
  temperature 1 (vLLM's default ``--logprobs-mode raw_logprobs``).
- vLLM weight-transfer control plane: ``vllm/entrypoints/serve/dev/rlhf/api_router.py`` (``/pause``,
  ``/resume``, ``/init_weight_transfer_engine``, ``/start_weight_update``, ``/update_weights``,
  ``/finish_weight_update``, ``/get_world_size``, ``/weight_info``). The tensors travel over NCCL / CUDA IPC on a
  real server; this server has no data plane, it answers and records the control calls only.
- LoRA (``ServingServer(lm, lora=True)``: a server started with ``--enable-lora``, for vLLM also with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; without it vLLM's routes answer 404). vLLM ``POST
  /v1/load_lora_adapter {"lora_name", "lora_path", "load_inplace"}`` / ``/v1/unload_lora_adapter {"lora_name"}``
  (``vllm/entrypoints/serve/lora/api_router.py`` commit 27873cab, ``vllm/entrypoints/openai/models/serving.py``
  ``OpenAIServingModels`` commit 4fe45004): plain-text 200s; a name already loaded is a 400 unless
  ``load_inplace``; a folder without an adapter a 404, another load failure a 400; unloading an unknown name a
  404; a completion whose ``model`` is neither the served name nor a loaded adapter a 404 ``NotFoundError``.
  SGLang ``POST /load_lora_adapter {"lora_name", "lora_path", "pinned"}`` / ``/unload_lora_adapter``
  (``python/sglang/srt/entrypoints/http_server.py``, ``lora/lora_registry.py``): ``{"success", "error_message",
  "loaded_adapters"}``, HTTP 400 when not successful (a name already loaded, an unknown name to unload); a
  ``/generate`` whose ``lora_path`` names no loaded adapter is a 400. An adapter is the peft folder loaded onto a
  copy of the served base model (``peft.PeftModel.from_pretrained``), unmerged, as the trainer computes it.
- SGLang ``POST /generate``: ``python/sglang/srt/managers/io_struct.py`` (``GenerateReqInput``),
  ``tokenizer_manager.py`` (``add_logprob_to_meta_info``: ``[logprob, token_id, null]`` triples) and
  ``scheduler_output_processor_mixin.py`` (input entries aligned with ``input_ids[logprob_start_len:]``, entry 0
  None; ``logprob_start_len = -1`` means ``len(input_ids) - 1``). A single request with ``n`` > 1 or a batch of
  ``input_ids`` answers a list.
- vLLM dev-mode ``POST /collective_rpc {"method", "args", "kwargs", "timeout"}``
  (``vllm/entrypoints/serve/dev/rpc/api_router.py`` commit cd20a578: 400 without ``method``, the worker's
  exception a 500, ``{"results": [one per worker]}``) for the worker method ``reload_weights(weights_path=...,
  is_checkpoint_format=True)`` (``vllm/v1/worker/gpu_worker.py`` forwarding to ``GPUModelRunner.reload_weights``;
  loads the folder with ``load_local``), and ``POST /reset_prefix_cache`` (no prefix cache here: answered 200).
- SGLang ``POST /update_weights_from_disk`` (``UpdateWeightFromDiskReqInput`` -> ``{"success", "message",
  "num_paused_requests"}``, HTTP 400 when it fails): loads the folder with ``load_local`` and serves it.

Faults (for retry tests): ``server.inject({"status": 503})``, ``{"delay": 2.0}`` (answers late, after the client
timed out), ``{"garbage": True}`` (a 200 with a body that is not JSON); optionally ``"path": "/generate"``. Each
injected fault is used by one request; the request is then answered normally when sent again.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

from lyceum.models.local import LocalLM, load_local


class ServingServer:
    def __init__(self, lm: LocalLM, model_name: str = "tiny", engine: str | None = None, batch_window: float = 0.0,
                 lora: bool = False, max_lora_rank: int = 16):
        """``engine="sglang"`` also answers SGLang's ``GET /get_model_info`` (how clients tell the two apart).
        ``batch_window`` > 0: SGLang sampling requests that arrive within that many seconds of each other are
        decoded as one batch, as a real engine's continuous batching would (for benchmarks; unseeded only).
        ``lora``: serve LoRA adapters loaded at run time (``--enable-lora --max-lora-rank max_lora_rank``)."""
        self.lm, self.model_name, self.engine, self.batch_window = lm, model_name, engine, batch_window
        self.lora, self.max_lora_rank = lora, max_lora_rank
        self.adapters: dict[str, LocalLM] = {}  # loaded LoRA adapters by name: the base model plus that adapter
        self.adapter_paths: dict[str, str] = {}
        self.adapter_loads = 0
        self._request = threading.local()  # the model the request on this handler thread asked for
        self._jobs: list[dict[str, Any]] = []
        self._jobs_lock = threading.Lock()
        self.weight_version: str | None = None
        self.reloads = 0  # weight loads from disk (either server's route)
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (path, body) of every POST, in arrival order
        self.answered: dict[str, int] = {}  # path -> requests answered with 200
        self.in_flight = self.max_in_flight = 0
        self._faults: deque = deque()
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # one forward pass at a time (torch on 2 shared cores)
        # Every forward pass runs on this one thread, as a real server's engine loop does: the HTTP handlers are
        # new threads per connection, and CPU kernels may split work differently per thread, so a seeded
        # sample could otherwise differ by the last bit between two identical requests.
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send_json(self, status: int, body: Any) -> None:
                self.send_raw(status, json.dumps(body).encode(), "application/json")

            def send_raw(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def do_GET(self):
                path = self.path.split("?")[0].rstrip("/")
                if path == "/v1/models":
                    self.send_json(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})
                elif path in ("/health", "/health_generate"):
                    self.send_json(200, {})
                elif path == "/get_world_size":
                    self.send_json(200, {"world_size": 1})
                elif path == "/get_model_info" and server.engine == "sglang":
                    self.send_json(200, {"model_path": server.model_name, "tokenizer_path": server.model_name,
                                         "is_generation": True, "weight_version": server.weight_version})
                elif path == "/weight_info":
                    self.send_json(200, {"weight_version": server.weight_version})
                else:
                    self.send_json(404, {"detail": "Not Found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0].rstrip("/")
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    self.send_json(400, {"detail": "Invalid JSON format"})
                    return
                with server._lock:
                    server.requests.append((self.path, body))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    fault = server._take_fault(path)
                try:
                    if fault is not None:
                        if fault.get("delay"):
                            time.sleep(fault["delay"])
                        elif fault.get("garbage"):
                            self.send_raw(200, b"<html>upstream hiccup</html>", "application/json")
                            return
                        else:
                            status = fault.get("status", 500)
                            self.send_json(status, {"object": "error", "message": f"injected HTTP {status}",
                                                    "type": "InternalServerError", "code": status})
                            return
                    status, reply = server._route(path, body, self.path)
                    if status == 200:
                        with server._lock:
                            server.answered[path] = server.answered.get(path, 0) + 1
                    if reply is None:  # vLLM answers some control routes with an empty 200
                        self.send_raw(status, b"", "text/plain")
                    elif isinstance(reply, str):  # vLLM's LoRA routes answer plain text
                        self.send_raw(status, reply.encode(), "text/plain; charset=utf-8")
                    else:
                        self.send_json(status, reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # ---- control

    def start(self) -> ServingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._engine_thread.shutdown(wait=False)

    def inject(self, *faults: dict[str, Any]) -> ServingServer:
        with self._lock:
            self._faults.extend(faults)
        return self

    def _take_fault(self, path: str) -> dict[str, Any] | None:
        for f in list(self._faults):
            if f.get("path") in (None, path):
                self._faults.remove(f)
                return f
        return None

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    # ---- routing

    def _route(self, path: str, body: dict[str, Any], full_path: str) -> tuple[int, Any]:
        if path == "/v1/completions":
            return self._vllm_completions(body)
        if path == "/generate":
            try:
                return self._sglang_generate(body)
            finally:
                self._request.lm = None
        if path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter") and self.lora:
            return self._vllm_lora(path, body)
        if path in ("/load_lora_adapter", "/unload_lora_adapter"):
            return self._sglang_lora(path, body)
        if path == "/update_weights_from_disk":
            return self._update_from_disk(body)
        if path == "/collective_rpc":
            return self._collective_rpc(body)
        if path == "/reset_prefix_cache":
            return 200, None
        control = {"/pause": {"status": "paused"}, "/resume": {"status": "resumed"},
                   "/init_weight_transfer_engine": {"message": "Weight transfer initialized"},
                   "/start_weight_update": {"message": "Weight update started"},
                   "/update_weights": {"message": "Weights updated"},
                   "/finish_weight_update": {"message": "Weight update finished"}}
        if path in control:
            if path == "/init_weight_transfer_engine" and "init_info" not in body:
                return 400, {"detail": "Missing 'init_info' in request body"}
            if path == "/update_weights" and "update_info" not in body:
                return 400, {"detail": "Missing 'update_info' in request body"}
            if path == "/finish_weight_update":
                self.weight_version = body.get("weight_version")
            return 200, control[path]
        return 404, {"detail": "Not Found"}

    # ---- the model

    @torch.no_grad()
    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        """log p(. | ids[:t+1]) for every t: ``[len(ids), V]`` from one forward pass of the unpadded sequence."""
        lm = self._model()

        def forward():
            with self._model_lock, torch.no_grad():
                x = torch.tensor([ids], device=lm.device)
                hidden = lm.hidden_states(x)
                return lm.logits(hidden)[0].float().log_softmax(-1).cpu()
        return self._engine_thread.submit(forward).result()

    def _sample(self, ids: list[int], n: int, max_new: int, temperature: float, top_p: float, seed, stops,
                ignore_eos: bool = False):
        lm = self._model()

        def draw():
            with self._model_lock:
                # EOS always stops unless ignore_eos (vLLM's and SGLang's sampling params); stop ids add to it
                eos = [] if ignore_eos else list(lm.stop_ids)
                stop_ids = eos + [int(s) for s in stops or [] if int(s) not in eos]
                return lm.sample([ids], max_new_tokens=max_new, n=n, temperature=temperature, top_p=top_p,
                                 seed=seed, stop_ids=stop_ids)
        s = self._engine_thread.submit(draw).result()
        rows = []
        for r in range(n):
            L = int(s.lengths[r])
            rows.append((s.tokens[r, :L].tolist(), s.logprobs[r, :L].tolist(), s.finish_reasons[r]))
        return rows

    def _sample_batched(self, ids, n, max_new, temperature, top_p, seed, stops, ignore_eos: bool = False):
        """``_sample`` for one prompt, decoded together with the other requests of the same settings that arrive
        within ``batch_window``: the first to arrive waits the window, then samples every queued prompt at once."""
        lm = self._model()
        key = (id(lm), n, max_new, temperature, top_p, tuple(stops or ()), ignore_eos)  # one batch: one model
        job = {"key": key, "ids": ids, "done": threading.Event(), "rows": None, "error": None}
        with self._jobs_lock:
            leader = not any(j["key"] == key for j in self._jobs)
            self._jobs.append(job)
        if not leader:
            job["done"].wait()
            if job["error"] is not None:
                raise job["error"]
            return job["rows"]
        time.sleep(self.batch_window)
        with self._jobs_lock:
            batch = [j for j in self._jobs if j["key"] == key]
            self._jobs = [j for j in self._jobs if j["key"] != key]
        try:
            with self._model_lock:
                eos = [] if ignore_eos else list(lm.stop_ids)
                stop_ids = eos + [int(x) for x in stops or [] if int(x) not in eos]
                out = lm.sample([j["ids"] for j in batch], max_new_tokens=max_new, n=n, temperature=temperature,
                                top_p=top_p, stop_ids=stop_ids)
            for b, j in enumerate(batch):
                j["rows"] = []
                for r in range(b * n, (b + 1) * n):
                    L = int(out.lengths[r])
                    j["rows"].append((out.tokens[r, :L].tolist(), out.logprobs[r, :L].tolist(), out.finish_reasons[r]))
        except Exception as e:  # noqa: BLE001 - every waiting request answers with the batch's error
            for j in batch:
                j["error"] = e
        for j in batch:
            j["done"].set()
        if job["error"] is not None:
            raise job["error"]
        return job["rows"]

    def _decode(self, t: int) -> str:
        tok = self.lm.tokenizer
        return tok.convert_ids_to_tokens(int(t)) if tok is not None else str(t)

    # ---- vLLM

    def _vllm_completions(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("model")
        lm = self.adapters.get(name) if name is not None else None
        if lm is None and self.lora and name not in (None, self.model_name):
            # OpenAIServing._check_model: neither the served name nor a loaded adapter
            return 404, {"error": {"message": f"The model `{name}` does not exist.", "type": "NotFoundError",
                                   "param": "model", "code": 404}}
        self._request.lm = lm
        try:
            return self._vllm_completions_with(body)
        finally:
            self._request.lm = None

    def _vllm_completions_with(self, body: dict[str, Any]) -> tuple[int, Any]:
        prompt = body.get("prompt")
        if not isinstance(prompt, list) or not prompt:
            return 400, {"object": "error", "message": "this test server takes token-id prompts", "code": 400}
        prompts = [prompt] if isinstance(prompt[0], int) else prompt
        if body.get("echo"):
            return 400, {"object": "error", "message": "echo is not served by this test server", "code": 400}
        n, max_tokens = int(body.get("n", 1)), int(body.get("max_tokens") or 16)
        temperature = 1.0 if body.get("temperature") is None else float(body["temperature"])
        top_p = 1.0 if body.get("top_p") is None else float(body["top_p"])
        k_out, k_prompt = body.get("logprobs"), body.get("prompt_logprobs")
        as_ids, want_ids = bool(body.get("return_tokens_as_token_ids")), bool(body.get("return_token_ids"))
        choices, completion_tokens, prompt_tokens = [], 0, 0
        for p_idx, ids in enumerate(prompts):
            ids = [int(t) for t in ids]
            prompt_tokens += len(ids)
            seed = body.get("seed")
            rows = self._sample(ids, n, max_tokens, temperature, top_p, seed, body.get("stop_token_ids"),
                                bool(body.get("ignore_eos")))
            prompt_lp = self._prompt_logprobs(ids, int(k_prompt)) if k_prompt is not None else None
            for toks, lps, reason in rows:
                completion_tokens += len(toks)
                logprobs = None
                if k_out is not None:
                    raw = temperature != 1.0 or top_p != 1.0  # raw_logprobs: the model's, before sampling params
                    # at temperature 1 with no top-k asked the sampler's own log-probs are the whole answer: no
                    # second forward pass (a real engine does not make one either)
                    full = (self._logprobs(ids + toks)[len(ids) - 1: len(ids) - 1 + len(toks)]
                            if raw or int(k_out) > 0 else None)
                    logprobs = self._completion_logprobs(toks, full, lps, int(k_out), as_ids, raw)
                choices.append({
                    "index": len(choices), "text": "".join(self._decode(t) for t in toks),
                    "logprobs": logprobs, "finish_reason": reason, "stop_reason": None,
                    "token_ids": toks if want_ids else None, "prompt_logprobs": prompt_lp,
                    "prompt_token_ids": ids if want_ids else None,
                })
        return 200, {"id": f"cmpl-{len(self.requests)}", "object": "text_completion", "created": int(time.time()),
                     "model": body.get("model") or self.model_name, "choices": choices,
                     "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                               "total_tokens": prompt_tokens + completion_tokens}}

    def _completion_logprobs(self, toks, full, sampled_lps, k, as_ids, raw):
        def name(t):
            return f"token_id:{t}" if as_ids else self._decode(t)

        tokens, token_lps, top, offsets, offset = [], [], [], [], 0
        for j, t in enumerate(toks):
            lp = float(full[j, t]) if raw else float(sampled_lps[j])
            tokens.append(name(t))
            token_lps.append(max(lp, -9999.0))
            own = float(full[j, t]) if full is not None else float(sampled_lps[j])
            step = {name(t): max(own, -9999.0)}  # the sampled token first, then the top k
            if k > 0:
                v, i = full[j].topk(k)
                for val, tid in zip(v.tolist(), i.tolist()):
                    step.setdefault(name(tid), max(val, -9999.0))
            top.append(step)
            offsets.append(offset)
            offset += len(name(t))
        return {"text_offset": offsets, "token_logprobs": token_lps, "tokens": tokens, "top_logprobs": top}

    def _prompt_logprobs(self, ids: list[int], k: int):
        full = self._logprobs(ids)
        out: list[Any] = [None]
        for j in range(1, len(ids)):
            row, t = full[j - 1], ids[j]
            entry = {str(t): {"logprob": float(row[t]), "rank": int((row > row[t]).sum()) + 1,
                              "decoded_token": self._decode(t)}}
            kk = row.numel() if k == -1 else k
            if kk > 0:
                v, i = row.topk(kk)
                for r, (val, tid) in enumerate(zip(v.tolist(), i.tolist())):
                    entry.setdefault(str(tid), {"logprob": val, "rank": r + 1, "decoded_token": self._decode(tid)})
            out.append(entry)
        return out

    # ---- SGLang

    def _sglang_generate(self, body: dict[str, Any]) -> tuple[int, Any]:
        inp = body.get("input_ids")
        if not isinstance(inp, list) or not inp:
            return 400, {"object": "error", "message": "this test server takes input_ids", "code": 400}
        single = isinstance(inp[0], int)
        batch = [inp] if single else inp

        def per(name, default):
            v = body.get(name, default)
            return [v] * len(batch) if single or not isinstance(v, list) else v

        loras = per("lora_path", None)
        missing = {x for x in loras if x is not None and x not in self.adapters}
        if missing:  # TokenizerManager / LoRARegistry: a ValueError, answered HTTP 400
            return 400, {"error": {"message": f"The following requested LoRA adapters are not loaded: {missing}\n"
                                              f"Loaded adapters: {set(self.adapters)}."}}
        params = body.get("sampling_params") or {}
        n, max_new = int(params.get("n", 1)), int(params.get("max_new_tokens", 128))
        temperature, top_p = float(params.get("temperature", 1.0)), float(params.get("top_p", 1.0))
        want = bool(body.get("return_logprob"))
        starts = per("logprob_start_len", -1)
        tops = per("top_logprobs_num", 0)
        given = body.get("token_ids_logprob")
        givens = [given] if single else (given or [None] * len(batch))
        outs = []
        for b, ids in enumerate(batch):
            ids = [int(t) for t in ids]
            self._request.lm = self.adapters.get(loras[b]) if loras[b] is not None else None
            start = len(ids) - 1 if starts[b] is None or starts[b] == -1 else int(starts[b])
            sample = self._sample_batched if self.batch_window and single else self._sample
            rows = (sample(ids, n, max_new, temperature, top_p, None, params.get("stop_token_ids"),
                           bool(params.get("ignore_eos")))
                    if max_new > 0 else [([], [], "length")] * n)
            for toks, lps, reason in rows:
                finish = ({"type": "stop", "matched": toks[-1]} if reason == "stop"
                          else {"type": "length", "length": max_new})
                meta: dict[str, Any] = {"id": f"req-{len(self.requests)}-{len(outs)}", "finish_reason": finish,
                                        "prompt_tokens": len(ids), "completion_tokens": len(toks),
                                        "cached_tokens": 0, "weight_version": self.weight_version, "e2e_latency": 0.0}
                if want:
                    meta.update(self._sglang_logprobs(ids, toks, lps, start, int(tops[b] or 0), givens[b]))
                outs.append({"text": "".join(self._decode(t) for t in toks), "output_ids": toks, "meta_info": meta})
        return 200, outs[0] if single and n == 1 else outs

    def _sglang_logprobs(self, ids, toks, lps, start, k, given):
        if toks and start == len(ids) - 1 and k == 0 and given is None:  # sampling: the sampler's log-probs
            return {"input_token_logprobs": [[None, ids[start], None]],
                    "output_token_logprobs": [[float(lp), int(t), None] for t, lp in zip(toks, lps)]}
        full = self._logprobs(ids + toks) if toks else self._logprobs(ids)

        def triples(row, id_list):
            return [[float(row[t]), int(t), None] for t in id_list]

        meta: dict[str, Any] = {
            "input_token_logprobs": [[None, ids[start], None]] + [[float(full[j - 1, ids[j]]), ids[j], None]
                                                                  for j in range(start + 1, len(ids))],
            "output_token_logprobs": [[float(lp), int(t), None] for t, lp in zip(toks, lps)],
        }
        out_rows = [full[len(ids) - 1 + j] for j in range(len(toks))]
        if k > 0:
            def top(row):
                v, i = row.topk(k)
                return [[val, tid, None] for val, tid in zip(v.tolist(), i.tolist())]

            meta["input_top_logprobs"] = [None] + [top(full[j - 1]) for j in range(start + 1, len(ids))]
            meta["output_top_logprobs"] = [top(r) for r in out_rows]
        if given is not None:
            meta["input_token_ids_logprobs"] = [None] + [triples(full[j - 1], given) for j in range(start + 1, len(ids))]
            meta["output_token_ids_logprobs"] = [triples(r, given) for r in out_rows]
        return meta

    def _collective_rpc(self, body: dict[str, Any]) -> tuple[int, Any]:
        """vLLM dev mode: the one worker method a trainer calls here, ``reload_weights(weights_path=...)``.
        A real worker also reloads its starting folder when called without ``weights_path``; this server has no
        folder of its own, so it answers that call (and any other method) as a worker exception: HTTP 500."""
        if body.get("method") is None:
            return 400, {"detail": "Missing 'method' in request body"}
        kwargs = body.get("kwargs") or {}
        if (body["method"] != "reload_weights" or body.get("args") or "weights_path" not in kwargs
                or set(kwargs) - {"weights_path", "is_checkpoint_format"}):
            return 500, {"object": "error", "message": f"unsupported rpc {body['method']!r} {kwargs}", "code": 500}
        try:
            self._load(kwargs["weights_path"])
        except Exception as e:  # noqa: BLE001 - a worker exception surfaces as HTTP 500 in vLLM
            return 500, {"object": "error", "message": str(e), "code": 500}
        return 200, {"results": [None]}  # reload_weights returns None on the (one) worker

    def _load(self, path: str) -> None:
        new = load_local(path)
        with self._model_lock:
            self.lm.model = new.model.to(self.lm.device)
        self.reloads += 1

    def _update_from_disk(self, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            new = load_local(body.get("model_path", ""))
        except Exception as e:  # noqa: BLE001 - answered as SGLang does: success false, HTTP 400
            return 400, {"success": False, "message": f"Failed to update weights: {e}", "num_paused_requests": 0}
        with self._model_lock:
            self.lm.model = new.model.to(self.lm.device)
        self.reloads += 1
        self.weight_version = body.get("weight_version", self.weight_version)
        return 200, {"success": True, "message": "Succeeded to update model weights.", "num_paused_requests": 0}

    # ---- LoRA

    def _model(self) -> LocalLM:
        """The model the request on this thread asked for: a loaded adapter, else the served base model."""
        return getattr(self._request, "lm", None) or self.lm

    def _load_adapter(self, path: str) -> LocalLM:
        """The base model with the peft adapter in ``path``; ValueError / FileNotFoundError as a server refuses it."""
        import peft

        folder = Path(path)
        if not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"No adapter found for {path}")
        rank = int(json.loads((folder / "adapter_config.json").read_text()).get("r", 0))
        if rank > self.max_lora_rank:
            raise ValueError(f"LoRA rank {rank} is greater than max_lora_rank {self.max_lora_rank}.")
        with self._model_lock:
            base = copy.deepcopy(self.lm.model)
        with warnings.catch_warnings():  # peft asks transformers 5 about checkpointing by a deprecated name
            warnings.simplefilter("ignore", FutureWarning)
            wrapped = peft.PeftModel.from_pretrained(base, str(folder))  # injected in place, unmerged, eval mode
        lm = copy.copy(self.lm)
        lm.model, lm.adapter = wrapped.get_base_model().eval(), wrapped
        return lm

    def _vllm_lora(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        name, folder = body.get("lora_name"), body.get("lora_path")

        def error(status: int, kind: str, message: str):
            return status, {"error": {"message": message, "type": kind, "param": None, "code": status}}

        if path == "/v1/unload_lora_adapter":
            if not name:
                return error(400, "InvalidUserInput", "'lora_name' needs to be provided to unload a LoRA adapter.")
            if self.adapters.pop(name, None) is None:
                return error(404, "NotFoundError", f"The lora adapter '{name}' cannot be found.")
            return 200, f"Success: LoRA adapter '{name}' removed successfully."
        if not name or not folder:
            return error(400, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided.")
        if name in self.adapters and not body.get("load_inplace"):
            return error(400, "InvalidUserInput", f"The lora adapter '{name}' has already been loaded. If you want "
                                                  "to load the adapter in place, set 'load_inplace' to True.")
        try:
            self.adapters[name] = self._load_adapter(folder)
            self.adapter_paths[name] = str(folder)
        except FileNotFoundError as e:
            return error(404, "NotFoundError", str(e))
        except Exception as e:  # noqa: BLE001 - any other load failure is a 400 BadRequestError
            return error(400, "BadRequestError", str(e))
        self.adapter_loads += 1
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def _sglang_lora(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("lora_name")

        def answer(error: str | None):
            loaded = {k: self.adapter_paths[k] for k in self.adapters}
            if error is None:
                return 200, {"success": True, "error_message": None, "loaded_adapters": loaded}
            return 400, {"success": False, "error_message": error, "loaded_adapters": None}

        if not self.lora:
            return answer("LoRA is not enabled. Please set `--enable-lora` to enable LoRA.")
        if path == "/unload_lora_adapter":
            if self.adapters.pop(name, None) is None:
                return answer(f"LoRA with name {name} does not exist. Loaded LoRAs: {set(self.adapters)}")
            return answer(None)
        if name in self.adapters:
            return answer(f"LoRA with name {name} already exists. Loaded LoRAs: {set(self.adapters)}")
        try:
            self.adapters[name] = self._load_adapter(body.get("lora_path", ""))
            self.adapter_paths[name] = str(body.get("lora_path", ""))
        except Exception as e:  # noqa: BLE001 - the scheduler's load error comes back as success false
            return answer(f"Failed to load LoRA adapter {name}: {e}")
        self.adapter_loads += 1
        return answer(None)
