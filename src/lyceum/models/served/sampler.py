"""A served student sampler with the local sampler's call and record: ``LocalLM.sample`` -> ``Samples``.

    sampler = ServedSampler(SGLangServer("http://gpu0:30000"), student, weights_dir="/shared/ckpt")
    samples = sampler.sample(prompts, max_new_tokens=512, n=4)     # Samples, as student.sample(...) returns
    sampler.push_weights(version="12")                              # the trainer's current weights -> the server

The trainer keeps its ``LocalLM`` (tokenizer, pad and stop ids, the weights it trains); the server draws the
tokens. Log-probs are the server's, i.e. the sampling policy's, which is what importance sampling corrects for.

A LoRA student (``lm.adapter`` set, ``lyceum.train.lora``) pushes its adapters only: each version is saved with
peft's ``save_pretrained`` (a few MB, never the base weights), loaded into the server under a new name
(``load_lora_adapter``), the previous version unloaded, and every later sample asks for the current name (vLLM:
``model``, SGLang: ``lora_path``). The server serves the same base weights the trainer froze.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from lyceum.errors import UserError
from lyceum.models.chat import ChatRequestFailed, run_sync
from lyceum.models.served.sampling import to_samples


class ServedSampler:
    def __init__(self, server, lm, *, weights_dir: str | Path | None = None, push=None):
        """``server``: a ``VLLMServer`` or ``SGLangServer`` serving the student; ``lm``: the trainer's student.

        Weight pushes: ``weights_dir`` (a folder the server can read): SGLang's update_weights_from_disk, vLLM's
        dev-mode reload_weights (each push writes ``weights-<version>`` there and removes the one before); or
        ``push(lm, version)``: a callable doing vLLM's GPU-only NCCL/IPC transfer (``VLLMWeightTransfer``).
        """
        self.server, self.lm = server, lm
        self.weights_dir = Path(weights_dir) if weights_dir is not None else None
        self._push = push
        self.version: str | None = None
        self._last_folder: Path | None = None
        # LoRA students: the name the server knows the current adapters by (None: sample the served model itself).
        # A token per sampler keeps a restarted run from colliding with names an earlier process left loaded.
        self.adapter: str | None = None
        self._adapter_prefix = f"{getattr(server, 'model', None) or 'lyceum'}-lora-{uuid.uuid4().hex[:6]}"

    def sample(self, prompts: Sequence[str] | Sequence[Sequence[int]], max_new_tokens: int = 256, *,
               temperature: float = 1.0, top_p: float = 1.0, n: int = 1, seed: int | None = None,
               stop_ids: Sequence[int] | None = None):
        """``LocalLM.sample`` with the draws made by the server: same arguments (``seed`` reaches vLLM only;
        SGLang's ``/generate`` is not seeded here), same ``Samples`` record, rows prompt-major."""
        if max_new_tokens < 1 or n < 1:
            raise UserError(f"need max_new_tokens >= 1 and n >= 1, got {max_new_tokens} and {n}")
        prompt_ids = self.lm.encode(prompts)
        stops = list(stop_ids) if stop_ids is not None else self.lm.stop_ids
        kw = {"seed": seed} if self.server.kind == "vllm" else {}
        if self.adapter is not None:
            kw.update(self.server.adapter_request(self.adapter))
        rows = run_sync(self.server.sample(prompt_ids, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                           top_p=top_p, stop_ids=stops, **kw))
        return to_samples(list(prompts), prompt_ids, rows, self.lm.pad_id, decode=self.lm.decode)

    def push_weights(self, version: str) -> None:
        """Send the trainer's current weights to the server, tagged ``version``."""
        if self._push is not None:
            self._push(self.lm, version)
        elif getattr(self.lm, "adapter", None) is not None and self.weights_dir is not None:
            self._push_adapter(version)
        elif self.weights_dir is not None:
            folder = self.weights_dir / f"weights-{version}"
            run_sync(self.server.push_from_disk(self.lm, folder, weight_version=version))
            if self._last_folder is not None and self._last_folder != folder:
                shutil.rmtree(self._last_folder, ignore_errors=True)  # the server reads the new folder now
            self._last_folder = folder
        else:
            raise UserError("this served sampler has no weight route: give weights_dir (SGLang "
                            "update_weights_from_disk, vLLM's dev-mode reload_weights) or push= (vLLM's NCCL/IPC "
                            "transfer, GPU only)")
        self.version = version

    def _push_adapter(self, version: str) -> None:
        """Load the trainer's current LoRA adapters as a new version, then unload the one before it."""
        folder = self.weights_dir / f"adapter-{version}"
        self.lm.adapter.save_pretrained(str(folder))  # adapter_config.json + adapter weights only
        name = f"{self._adapter_prefix}-v{version}"
        try:
            run_sync(self.server.load_lora_adapter(name, folder.resolve()))
        except ChatRequestFailed as e:
            # The name is this sampler's own and this version's: if the server already has it, an earlier attempt
            # of this very load got through but its answer was lost (a timeout, then the retry was refused:
            # vLLM "has already been loaded", SGLang "already exists"), and it loaded this same folder.
            if "already" not in str(e):
                raise UserError(f"the rollout server did not load the LoRA adapters ({e}); start it with LoRA "
                                f"enabled: vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora "
                                f"--max-lora-rank (at least --lora-r), SGLang with --enable-lora --max-lora-rank "
                                f"--lora-target-modules all (docs/distill.md)") from None
        old, old_folder = self.adapter, self._last_folder
        self.adapter, self._last_folder = name, folder  # samples ask for the new version from here on
        if old is not None and old != name:
            run_sync(self.server.unload_lora_adapter(old))
        if old_folder is not None and old_folder != folder:
            shutil.rmtree(old_folder, ignore_errors=True)
