"""Runs of the engine in one of several processes, for tests/test_multirank.py (gloo on the CPU).

    python tests/multirank_worker.py OUT STEPS [--plain]                      one process: OUT/fsdp to STEPS
    torchrun --standalone --nproc_per_node 2 tests/multirank_worker.py OUT STEPS     two processes

``OUT/fsdp`` is on-policy distillation with ``fsdp=True`` (``--plain``: without) and a checkpoint at the end,
continued from its checkpoint (saved at either number of processes, with or without FSDP) up to STEPS
optimizer steps. Two processes also run
- ``OUT/plain``: the same distillation without FSDP (the all-reduce path), 2 steps;
- ``OUT/curriculum``: RL with a curriculum whose verifier rewards every rollout of rank 0 and none of rank 1;
  each process writes its curriculum's stage log to ``curriculum/stages-rank<R>.json``.
Rollouts are near-greedy (temperature 1e-3), so the same prompt gets the same answer in any process and a
one-process run on the same global batches is the reference (``reference_run``).

    python tests/multirank_worker.py OUT STEPS --lora                        (one or two processes, as above)

``OUT/lora`` is the same distillation with LoRA adapters on the student saved in ``OUT/base``, under FSDP,
continued from its checkpoint up to STEPS; afterwards every weight of the sharded student is gathered into
``OUT/lora/shards-after.pt``. Two processes also run ``OUT/rl-lora``: RL with LoRA, a KL term to the base model
(adapters off) and FSDP (``lora_rl_run``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.runs import RunDir
from lyceum.train.config import OPDConfig, RLConfig
from lyceum.train.devices import init_distributed
from lyceum.train.engine import opd_objective, train
from lyceum.train.feedback import TeacherFeedback
from lyceum.train.schedules import UniformSchedule

torch.set_num_threads(1)


def tiny(seed, sharpen=1.0, stop_like=None):
    """A random tiny model; ``stop_like``: it ends its answer where it would write that token (answers of the
    same prompts then differ in length, so the processes' token counts differ)."""
    lm = build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=2, heads=2, seed=seed)
    with torch.no_grad():
        lm.model.lm_head.weight.mul_(sharpen)
        if stop_like is not None:
            lm.model.lm_head.weight[lm.stop_ids[0]] = lm.model.lm_head.weight[stop_like] * 1.05
    return lm


def prompts():
    return examples(make_problems(24, digits=(1, 3), seed=0))


def opd_cfg(world: int, **kw) -> OPDConfig:
    base = {"steps": 3, "prompts_per_step": 4 // world, "n": 2, "max_new_tokens": 10, "temperature": 1e-3,
            "lr": 1e-2, "k": 8, "micro_batch_size": 2, "diagnostics_k": 4, "eval_every": 0,
            "checkpoint_every": 0, "device": "cpu"}
    return OPDConfig(**{**base, **kw})


def opd_run(out: Path, cfg: OPDConfig, *, rank: int = 0, world: int = 1, dist=None, resume: bool = True):
    student, teacher = tiny(0, stop_like=49), tiny(1, sharpen=6.0)
    run = RunDir.open(out, vars(cfg))
    schedule = UniformSchedule(prompts(), prompts_per_step=cfg.prompts_per_step, group_size=cfg.n,
                               max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, rank=rank, world_size=world)
    return train(student, TeacherFeedback(teacher, student.vocab_size), schedule, cfg, run,
                 objective=opd_objective(cfg), dist=dist, resume=resume), student


LORA = {"lora_r": 4, "lora_alpha": 8.0, "lora_targets": "q_proj,v_proj,down_proj", "lr": 5e-2}


def lora_run(base: Path, out: Path, steps: int, *, fsdp: bool, rank: int = 0, world: int = 1, dist=None):
    """OPD with LoRA on the student saved in ``base``, run folder ``out``; returns the trained student."""
    from lyceum.models.local import load_local
    from lyceum.train.fsdp import full_tensor

    cfg = opd_cfg(world, steps=steps, fsdp=fsdp, **LORA)
    student = load_local(base, device="cpu", dtype="fp32")
    sharded_model = student.model  # peft injects the adapters into this module and FSDP shards it in place
    run = RunDir.open(out, vars(cfg))
    schedule = UniformSchedule(prompts(), prompts_per_step=cfg.prompts_per_step, group_size=cfg.n,
                               max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, rank=rank, world_size=world)
    train(student, TeacherFeedback(tiny(1, sharpen=6.0), student.vocab_size), schedule, cfg, run,
          objective=opd_objective(cfg), dist=dist)
    if fsdp:  # what the shards hold now, base weights and adapters, gathered (a collective)
        after = {n: full_tensor(p).detach().clone() for n, p in sharded_model.named_parameters()}
        if rank == 0:
            torch.save(after, out / "shards-after.pt")
    return student


def digit_reward(row, response):
    return float(any(c.isdigit() for c in response))


def lora_rl_run(out: Path) -> None:
    """RL with LoRA and a KL term under FSDP: the reference is the sharded student with its adapters off."""
    from lyceum.train.rl import rl_train
    from lyceum.train.verifiers import register_verifier

    register_verifier("has-digit", digit_reward)
    rows = [{"prompt": f"Q: {i}+{i}\nA: ", "difficulty": 1} for i in range(8)]
    cfg = RLConfig(steps=2, prompts_per_step=2, n=2, max_new_tokens=4, verifier="has-digit", loss="grpo",
                   pass_rate_k=0, kl_coef=0.1, eval_every=0, checkpoint_every=-1, micro_batch_size=4,
                   diagnostics_every=0, device="cpu", fsdp=True, temperature=1.0, **LORA)
    rl_train(tiny(0), rows, out, cfg)


def reference_run(out: Path, steps: int):
    """One process, no FSDP, the two processes' prompts together: the trajectory they must reproduce."""
    return opd_run(out, opd_cfg(1, steps=steps))


def rank_reward(row, response):
    return float(os.environ.get("RANK", "0") == "0")


def curriculum_run(out: Path, dist) -> None:
    from lyceum.train.rl import rl_train
    from lyceum.train.verifiers import register_verifier

    register_verifier("rank-zero", rank_reward)
    rows = [{"prompt": f"Q: {i}+{i}\nA: ", "difficulty": 1 + i % 3} for i in range(12)]
    # stage 0 opens at mean reward 0.4, stage 1 at 0.6: all rollouts together average 0.5 (rank 0 alone: 1.0)
    cfg = RLConfig(steps=3, lr=1e-3, prompts_per_step=2, n=2, max_new_tokens=3, verifier="rank-zero", loss="gspo",
                   pass_rate_k=0, thresholds="0.4,0.6", window=1, eval_every=0, checkpoint_every=-1,
                   micro_batch_size=4, diagnostics_every=0, device="cpu")
    result = rl_train(tiny(0), rows, out, cfg)
    (out / f"stages-rank{dist.rank}.json").write_text(json.dumps(result.curriculum.stage_summaries()))


def main() -> None:
    out, steps = Path(sys.argv[1]), int(sys.argv[2])
    dist = init_distributed(torch.device("cpu"))
    world = dist.world_size
    if "--lora" in sys.argv:
        lora_run(out / "base", out / "lora", steps, fsdp=True, rank=dist.rank, world=world, dist=dist)
        if world > 1:
            lora_rl_run(out / "rl-lora")
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        return
    fsdp = "--plain" not in sys.argv
    opd_run(out / "fsdp", opd_cfg(world, steps=steps, fsdp=fsdp), rank=dist.rank, world=world, dist=dist)
    if world > 1:
        opd_run(out / "plain", opd_cfg(world, steps=2), rank=dist.rank, world=world, dist=dist)
        curriculum_run(out / "curriculum", dist)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
