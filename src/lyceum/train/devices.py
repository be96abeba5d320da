"""Where a run computes: device, dtype/autocast, and the process group of a multi-GPU run.

Several GPUs: start the same command under ``accelerate launch`` (or ``torchrun``). Each process rolls out its
own slice of the prompts, gradients are averaged across processes before the optimizer step, and only the
first process logs, evaluates and saves.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch

from lyceum.train.config import OPDConfig


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join the process group that ``accelerate launch``/``torchrun`` set up through the environment."""
    check_launcher_environment()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if device.type == "cuda":  # NCCL collectives (and FSDP) run on the current device
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def check_launcher_environment() -> None:
    """``accelerate launch --cpu --num_processes N`` starts one process (its multi-CPU mode goes through mpirun,
    which sets no WORLD_SIZE): it only leaves MASTER_ADDR behind. Say so, rather than train as one process."""
    from lyceum.errors import UserError

    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    if cpu and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ:
        raise UserError("accelerate launch --cpu does not start several processes that lyceum can join; on CPUs use "
                        "accelerate launch --multi_gpu --num_processes N ... --device cpu, or torchrun "
                        "--nproc_per_node N")


def pick_device(cfg: OPDConfig) -> torch.device:
    from lyceum.models.local import resolve_device

    device = resolve_device(cfg.device)
    if device.type == "cuda" and cfg.device in ("auto", "cuda") and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def uses_bf16(cfg: OPDConfig, device: torch.device) -> bool:
    """bf16 where it helps (a bf16-capable GPU) or where asked for; plain float32 otherwise."""
    return cfg.dtype == "bf16" or (cfg.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())


def autocast_for(cfg: OPDConfig, device: torch.device):
    if not uses_bf16(cfg, device):
        return nullcontext
    return partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Mean of every process's gradients, in place (one all-reduce of the flattened gradients)."""
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    at = 0
    for g in grads:
        g.copy_(flat[at: at + g.numel()].view_as(g))
        at += g.numel()


def barrier(dist: Dist) -> None:
    """Wait for every process (nobody leaves before the first process has written the final checkpoint)."""
    if dist.world_size > 1:
        from torch import distributed as torch_dist

        torch_dist.barrier()
