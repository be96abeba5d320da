"""``--fsdp``: the student sharded across processes with FSDP2 (``torch.distributed.fsdp.fully_shard``).

    torchrun --nproc_per_node 2 -m lyceum distill train ... --fsdp

Each decoder layer is one FSDP unit and a small root module holds the rest (embeddings, final norm, LM head),
so every process keeps 1/world of the parameters, of their gradients and of the AdamW state (the optimizer is
built on the sharded parameters). On a GPU with bf16 the layers compute in bf16 and gradients are reduced in
float32 (``MixedPrecisionPolicy``); on a CPU the same code runs with the gloo backend, which is how CI tests it.

The engine reads the student in pieces (the body's hidden states, then the LM-head weight chunk by chunk inside
the loss), so a micro-batch's whole forward runs inside one call of the root (``Sharded.forward(fn)``): FSDP
gathers the root's parameters for it and keeps them until the backward has used them.

Decoding runs token by token with a different number of steps on every process, which sharded parameters
cannot do (each layer call is a collective), so rollouts and evaluations use ``Sharded.full``: a plain copy of
the student that ``gather()`` refreshes from the shards after every optimizer step (one parameter at a time).
That copy is also what is saved as the Hugging Face folder. A served sampler (vLLM, SGLang) is handed the same
copy. Checkpoints of the sharded model and optimizer go through ``torch.distributed.checkpoint`` (one file per
process plus metadata) and load at any world size (``save_state`` / ``load_state``).

With LoRA (as torchtune's distributed LoRA recipe and accelerate's FSDP2 path do it) peft injects the adapters
first and each decoder layer is sharded with its adapters inside: FSDP2 keeps frozen and trainable parameters
in one unit, so the base weights are sharded too but get no gradients, the optimizer and the clipping cover
the adapter shards only, and the checkpoints hold the adapters alone (frozen weights are the base model's).
The gathered copy carries its own peft wrapper: ``gather()`` refreshes just the adapters, it saves them alone
(``lyceum distill merge`` folds them in), and it switches them off for an RL KL reference like the student.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lyceum.models.local import LocalLM


class _Root(torch.nn.Module):
    """The FSDP root: its forward runs any function, so each micro-batch's forward is one root call."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, fn):
        return fn()


@dataclass
class Sharded:
    """A student sharded in place (``student.model`` now holds DTensor shards) plus its gathered copy."""

    student: LocalLM
    root: Any  # the FSDP root module around student.model
    full: LocalLM  # plain copy for decoding, evaluation and saving; refreshed by gather()

    def forward(self, fn):
        """``fn()`` inside the root's forward; ``fn`` returns (loss, ...). FSDP hooks its backward on the loss,
        cloned so that the hook is on a tensor of its own (not a view of one the loss computation kept)."""
        def run():
            loss, *rest = fn()
            return (loss.clone(), *rest)

        return self.root(run)

    @torch.no_grad()
    def gather(self) -> LocalLM:
        """Copy the current (sharded) trained weights into ``full``; every process must call it (collective).

        Frozen weights (a LoRA run's base) never change after the copy and are not in checkpoints: gathering
        them every step would move the whole model for nothing."""
        mine = dict(self.full.model.named_parameters())
        for name, p in self.student.model.named_parameters():
            if p.requires_grad:
                mine[name].copy_(full_tensor(p))
        return self.full


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind a DTensor shard (a collective); plain tensors as they are."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def ensure_process_group(device: torch.device) -> None:
    """FSDP needs a process group even in one process: make a one-rank group when no launcher set one up."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if "MASTER_ADDR" in os.environ and "WORLD_SIZE" in os.environ:
        dist.init_process_group(backend)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks FSDP shards one by one: modules of the classes the model marks as not to be split."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        from lyceum.errors import UserError

        raise UserError(f"--fsdp cannot find the decoder layers of {type(model).__name__} "
                        "(it lists no _no_split_modules)")
    return layers


def shard(student: LocalLM, *, bf16: bool) -> Sharded:
    """Shard ``student.model`` in place (decoder layers, then the root) after keeping a plain copy of it."""
    import torch.distributed
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    ensure_process_group(student.device)
    full = plain_copy(student)
    # bf16 compute with float32 gradient reduction on a GPU; a CPU run (gloo) stays float32, under autocast
    gpu_bf16 = bf16 and student.device.type == "cuda"
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if gpu_bf16 else MixedPrecisionPolicy()
    # the mesh on the student's device type (FSDP's default would pick CUDA wherever it exists)
    kw: dict[str, Any] = {"mp_policy": mp,
                          "mesh": init_device_mesh(student.device.type, (torch.distributed.get_world_size(),))}
    for layer in decoder_layers(student.model):
        fully_shard(layer, **kw)
    root = _Root(student.model)
    fully_shard(root, **kw)
    return Sharded(student, root, full)


def plain_copy(student: LocalLM) -> LocalLM:
    """A frozen copy of ``student`` (before sharding); with LoRA, a copy of peft's wrapper and so of its adapters."""
    if student.adapter is None:
        full = LocalLM(copy.deepcopy(student.model), student.tokenizer, student.device)
    else:
        wrapper = copy.deepcopy(student.adapter)
        full = LocalLM(wrapper.get_base_model(), student.tokenizer, student.device)
        full.adapter = wrapper
    full.model.eval().requires_grad_(False)
    return full


def check_same_batches(rollouts: int, micro_batch_size: int) -> None:
    """Every process must run as many forwards as the others (each is a collective), else they would hang."""
    import torch.distributed as dist

    from lyceum.errors import UserError

    n = torch.tensor([rollouts, -rollouts])
    dist.all_reduce(n, op=dist.ReduceOp.MAX)
    if int(n[0]) != -int(n[1]):  # every process knows it, so all stop with the same sentence
        raise UserError(f"--fsdp needs the same number of rollouts on every process; this step has between "
                           f"{-int(n[1])} and {int(n[0])} (micro-batches of {micro_batch_size})")


def local_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this process holds of the parameters and of the optimizer state (its shards, not the whole)."""
    params = sum(local_tensor(p).numel() * p.element_size() for p in model.parameters())
    state = 0
    for s in optimizer.state.values():
        for v in s.values():
            if torch.is_tensor(v):
                state += local_tensor(v).numel() * v.element_size()
    return {"memory_param_bytes": params, "memory_optimizer_bytes": state}


def _options(**kw):
    """Frozen weights stay out of checkpoints (a LoRA run's base model is where they come from on resume)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, **kw)


def save_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Model and optimizer state through torch.distributed.checkpoint (every process writes its shards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer, options=_options())
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(folder))


def load_whole(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict[str, torch.Tensor],
               optim_sd: dict[str, Any]) -> None:
    """Shard a whole state (a checkpoint saved without --fsdp) into model and optimizer; every process calls it.

    ``optim_sd`` is a plain ``optimizer.state_dict()``, whose parameters are numbered in the order of
    ``model.parameters()`` that require a gradient (how the engine builds its optimizer). ``model_sd`` may hold
    the trained weights only (a LoRA run's adapters): the others keep their values."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    by_name = {"state": {names[i]: s for i, s in optim_sd["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in optim_sd["param_groups"]]}
    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=by_name,
                   options=StateDictOptions(full_state_dict=True))


def load_state(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load what ``save_state`` wrote, at this run's world size (DCP reshards), into model and optimizer."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer, options=_options())
    state = {"model": model_sd, "optimizer": optim_sd}
    dcp.load(state, checkpoint_id=str(folder))
    # not strict: the frozen weights are not in the checkpoint (DCP's load has checked the trained ones are)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=_options(strict=False))
