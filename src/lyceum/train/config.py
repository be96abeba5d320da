"""The settings of an on-policy run: one flat dataclass of plain values (YAML file, CLI flags, or Python).

    cfg = OPDConfig(steps=200, lr=1e-3, support="student_topk", k=16)
    cfg = config_from_dict(OPDConfig, load_config("opd.yaml"))     # unknown keys are refused by name

Defaults follow the paper's reference setup where it makes sense at any scale (temperature 1.0, 4 rollouts per
prompt, student top-16 reverse KL, token-mean loss, no KL to a reference); learning rate and lengths must be
chosen for the models at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from lyceum.errors import UserError


@dataclass
class OPDConfig:
    # --- run
    steps: int = 100
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 autocast on a bf16 GPU, float32 elsewhere) | bf16 | fp32
    # --- rollouts
    prompts_per_step: int = 16
    n: int = 4  # rollouts per prompt
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    schedule: str = "uniform"  # prompt schedule: uniform (more in lyceum.train.schedules)
    length_schedule: str = ""  # growing max length, STEP:TOKENS milestones, e.g. "0:64,100:128" ("" = fixed)
    # --- loss (lyceum.train.losses.opd_loss)
    support: str = "student_topk"  # sampled | student_topk | teacher_topk | intersection | union | full
    k: int = 16
    kind: str = "reverse_kl"  # reverse_kl | forward_kl | jsd
    beta: float = 0.5  # jsd only
    mode: str = "direct"  # direct | pg
    clip: float = 0.2  # pg only
    # --- optimisation
    lr: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | cosine (after warmup)
    max_grad_norm: float = 1.0
    micro_batch_size: int = 16  # rollouts per forward/backward; gradients accumulate over a step's batches
    # --- diagnostics, evaluation, checkpoints
    diagnostics_k: int = 16
    diagnostics_every: int = 1
    eval_every: int = 20  # 0: only before and after training
    eval_max_new_tokens: int = 0  # 0: same as max_new_tokens
    eval_batch_size: int = 64
    verifier: str | None = None  # a name from lyceum.train.verifier_feedback (e.g. "lab")
    checkpoint_every: int = 50  # 0: only at the end; -1: never

    def __post_init__(self) -> None:
        positive = ("steps", "prompts_per_step", "n", "max_new_tokens", "micro_batch_size", "k", "diagnostics_k",
                    "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.checkpoint_every < -1:
            raise UserError(f"checkpoint_every must be -1 (never), 0 (at the end) or more, got {self.checkpoint_every}")
        for name in ("eval_every", "warmup_steps", "eval_max_new_tokens", "diagnostics_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.lr <= 0:
            raise UserError(f"lr must be positive, got {self.lr}")
        if self.temperature <= 0:
            raise UserError(f"on-policy rollouts need a temperature above 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise UserError(f"dtype must be auto, bf16 or fp32, got {self.dtype!r}")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
