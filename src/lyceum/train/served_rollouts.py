"""Served rollouts: the student's samples come from a vLLM or SGLang server; the trainer's weights go back to it.

    sampler = served_rollouts(cfg, student, run.path)   # --rollout-url, --rollout-engine, --rollout-model, ...
    train(student, feedback, schedule, cfg, run, objective=objective, sampler=sampler)

``ServedRollouts`` is a ``rollout.Sampler``. ``sample`` asks the server (``models.served.ServedSampler``: token
ids and the server's per-token log-probs, in the local sampler's ``Samples`` record). ``push_weights`` is called
by the engine after every optimizer step and sends the trainer's weights every ``sync_every``-th one, through
the server's own route: from disk (SGLang ``/update_weights_from_disk``, vLLM's dev-mode ``/collective_rpc``
``reload_weights``; the folder must be one the server can read) or through a ``push=`` callable (vLLM's NCCL /
CUDA-IPC weight transfer, GPU only). A LoRA student sends its adapters only (vLLM ``/v1/load_lora_adapter``,
SGLang ``/load_lora_adapter``, one name per version, the previous one unloaded); the base weights never move.

Policy versions count optimizer steps: ``trainer_version`` those applied to the trainer's weights,
``policy_version`` those applied to the weights the server samples with. The engine logs their difference at
each update as ``staleness``. With ``max_staleness`` >= 1 the engine generates the next step's batch while the
current one trains (``rollout.StepRollouts``); a push waits for the generation in flight, so a batch is never
drawn from two versions.

The sampler and the trainer never agree exactly (other kernels, other precision, and one step of lag when
asynchronous), so masked importance sampling (``rl_losses.mis_weights``) is on by default for served rollouts
(``OPDConfig.mis``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lyceum.errors import UserError


class ServedRollouts:
    """A ``rollout.Sampler`` backed by a server, with policy versions and weight pushes."""

    def __init__(self, served, *, sync_every: int = 1, max_staleness: int = 0, ignore_eos: bool = False):
        """``served``: a ``models.served.ServedSampler`` with a weight route (``weights_dir`` or ``push=``)."""
        self.served, self.ignore_eos = served, ignore_eos
        self.sync_every, self.max_staleness = max(1, int(sync_every)), int(max_staleness)
        self.trainer_version = 0
        self.policy_version = 0
        self.pushes = 0
        self.push_seconds = 0.0  # time spent in pushes (saving + the server's reload), for the step's log
        self._lock = threading.Lock()  # held while generating: a push waits for the batch in flight

    @property
    def ahead(self) -> bool:
        """Whether the engine may generate the next batch while the current one trains."""
        return self.max_staleness >= 1

    def begin(self, model: Any, step: int) -> None:
        """Called by the engine before its first step (``step`` > 0 on resume): the server starts from the
        trainer's weights, whatever folder it was started with."""
        self.trainer_version = int(step)
        self._push()

    def sample(self, prompts: Sequence[Any], *, n: int, max_new_tokens: int, temperature: float = 1.0,
               top_p: float = 1.0, seed: int | None = None):
        with self._lock:
            return self.served.sample(list(prompts), max_new_tokens, temperature=temperature, top_p=top_p, n=n,
                                      seed=seed, stop_ids=[] if self.ignore_eos else None)

    def push_weights(self, model: Any) -> None:
        """One optimizer step was applied to the trainer's weights: push them if this step is a sync step."""
        self.trainer_version += 1
        if self.trainer_version % self.sync_every == 0:
            self._push()

    def _push(self) -> None:
        with self._lock:
            t0 = time.time()
            self.served.push_weights(str(self.trainer_version))
            self.policy_version = self.trainer_version
            self.pushes += 1
            self.push_seconds += time.time() - t0


def detect_engine(url: str, *, api_key: str | None = None) -> tuple[str, str | None]:
    """(``"vllm"`` or ``"sglang"``, the first model name the server lists): SGLang answers ``GET /get_model_info``,
    vLLM does not and lists its served names at ``GET /v1/models``."""
    from lyceum.models.chat import ChatEndpointDown, ChatRequestFailed, run_sync
    from lyceum.models.served.transport import ServedEndpoint

    endpoint = ServedEndpoint(url, api_key, concurrency=1, max_retries=2, timeout=30.0)
    try:
        run_sync(endpoint.get("/get_model_info"))
        return "sglang", None
    except ChatEndpointDown:
        raise
    except ChatRequestFailed:
        pass
    try:
        models = run_sync(endpoint.get("/v1/models"))
        data = models.get("data") if isinstance(models, dict) else None
        return "vllm", (data[0]["id"] if data else None)
    except (ChatRequestFailed, KeyError, TypeError, IndexError) as e:
        raise UserError(f"{url} answers neither SGLang's /get_model_info nor vLLM's /v1/models; "
                        f"pass --rollout-engine vllm or sglang ({e})") from None


def served_rollouts(cfg, student, run_path: str | Path, *, push=None) -> ServedRollouts:
    """The served sampler a config asks for (``cfg.rollout_url`` set): engine detected unless given, weights
    pushed from ``cfg.rollout_weights_dir`` (default ``<run>/served-weights``) unless ``push`` is given."""
    from lyceum.models.served import ServedSampler, SGLangServer, VLLMServer

    engine, model = cfg.rollout_engine, cfg.rollout_model or None
    if engine == "auto":
        engine, listed = detect_engine(cfg.rollout_url)
        model = model or listed
    if engine == "vllm":
        if not model:
            raise UserError("the vLLM rollout server lists no model: pass --rollout-model (its --served-model-name)")
        server = VLLMServer(cfg.rollout_url, model, timeout=cfg.rollout_timeout)
    else:
        server = SGLangServer(cfg.rollout_url, timeout=cfg.rollout_timeout)
    weights_dir = None if push is not None else Path(cfg.rollout_weights_dir or Path(run_path) / "served-weights")
    served = ServedSampler(server, student, weights_dir=weights_dir, push=push)
    return ServedRollouts(served, sync_every=cfg.sync_every, max_staleness=cfg.max_staleness,
                          ignore_eos=getattr(cfg, "ignore_eos", False))


def sampler_for_run(cfg, student, run, dist):
    """What ``distill`` and ``rl_train`` hand the engine: the rollout server's sampler when ``cfg.rollout_url``
    is set (its settings logged to the run), else None (the student samples itself)."""
    if not cfg.rollout_url:
        return None
    if dist.world_size > 1:
        raise UserError("served rollouts (--rollout-url) run with one trainer process; start it without "
                        "torchrun / accelerate launch")
    sampler = served_rollouts(cfg, student, run.path)
    band = "off" if cfg.mis is None else f"{cfg.mis[0]:g}..{cfg.mis[1]:g}"
    pushed = "LoRA adapters" if getattr(cfg, "lora_r", 0) else "weights"
    run.log(f"rollouts from {cfg.rollout_url} ({sampler.served.server.kind}), {pushed} pushed every "
            f"{cfg.sync_every} step(s), max staleness {cfg.max_staleness}, masked importance sampling {band}")
    return sampler
