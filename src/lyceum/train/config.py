"""The settings of an on-policy run: flat dataclasses of plain values (YAML file, CLI flags, or Python).

``OPDConfig`` is the engine's; ``RLConfig`` adds the policy loss and the curriculum of ``lyceum.train.rl``.

    cfg = OPDConfig(steps=200, lr=1e-3, support="student_topk", k=16)
    cfg = config_from_dict(OPDConfig, load_config("opd.yaml"))     # unknown keys are refused by name

Defaults follow the paper's reference setup where it makes sense at any scale (temperature 1.0, 4 rollouts per
prompt, student top-16 reverse KL, token-mean loss, no KL to a reference); learning rate and lengths must be
chosen for the models at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from lyceum.errors import UserError

# the default masked-importance-sampling band of served rollouts (a sequence ratio outside it is masked out)
SERVED_MIS = (0.5, 2.0)


@dataclass
class OPDConfig:
    """Every setting is explained once, in ``HELP`` below (also the text of its CLI flag)."""

    # --- run
    steps: int = 100
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    # --- rollouts
    prompts_per_step: int = 16
    n: int = 4
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    schedule: str = "uniform"
    length_schedule: str = ""
    # --- loss (lyceum.train.losses.opd_loss)
    support: str = "student_topk"
    k: int = 16
    kind: str = "reverse_kl"
    beta: float = 0.5
    mode: str = "direct"
    clip: float = 0.2
    # --- optimisation
    lr: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    max_grad_norm: float = 1.0
    micro_batch_size: int = 16
    freeze_vision: bool = True
    # --- diagnostics, evaluation, checkpoints
    diagnostics_k: int = 16
    diagnostics_every: int = 1
    eval_every: int = 20
    eval_max_new_tokens: int = 0
    eval_batch_size: int = 64
    verifier: str | None = None
    checkpoint_every: int = 50
    # --- served rollouts (lyceum.train.served_rollouts) and masked importance sampling (rl_losses.mis_weights)
    rollout_url: str = ""
    rollout_engine: str = "auto"
    rollout_model: str = ""
    rollout_weights_dir: str = ""
    rollout_timeout: float = 1800.0
    sync_every: int = 1
    max_staleness: int = 0
    ignore_eos: bool = False
    mis_low: float = 0.0
    mis_high: float = 0.0
    served_mis: bool = True
    # --- scale
    fsdp: bool = False
    # --- memory and experiment tracking (lyceum.train.memory, lyceum.train.trackers)
    gradient_checkpointing: bool = False
    lora_r: int = 0
    lora_alpha: float = 16.0
    lora_targets: str = "all-linear"
    report_to: str = "none"

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
        if (self.mis_low or self.mis_high) and not 0 <= self.mis_low < self.mis_high:
            raise UserError(f"masked importance sampling needs 0 <= mis_low < mis_high, got "
                            f"{self.mis_low} and {self.mis_high}")
        if self.rollout_engine not in ("auto", "vllm", "sglang"):
            raise UserError(f"rollout_engine must be auto, vllm or sglang, got {self.rollout_engine!r}")
        if self.rollout_timeout <= 0:
            raise UserError(f"rollout_timeout must be positive, got {self.rollout_timeout}")
        if self.sync_every < 1 or self.max_staleness < 0:
            raise UserError(f"need sync_every >= 1 and max_staleness >= 0, got {self.sync_every} and "
                            f"{self.max_staleness}")
        # the sampler lags sync_every - 1 steps between pushes, one more when it generates a step ahead
        lag = self.sync_every - 1 + (1 if self.max_staleness else 0)
        if self.rollout_url and lag > self.max_staleness:
            raise UserError(f"sync_every {self.sync_every} lets the sampler's weights fall {lag} steps behind, "
                            f"more than max_staleness {self.max_staleness}: raise --max-staleness to {lag} or "
                            f"lower --sync-every")
        if self.lora_r < 0 or self.lora_alpha <= 0:
            raise UserError(f"lora_r must be 0 (off) or more and lora_alpha positive, got {self.lora_r} and "
                            f"{self.lora_alpha}")
        if self.lora_r and not self.lora_targets.strip():
            raise UserError("lora_targets is empty; name the modules to adapt (e.g. q_proj,v_proj) or all-linear")
        from lyceum.train.trackers import parse_report_to

        parse_report_to(self.report_to)

    @property
    def mis(self) -> tuple[float, float] | None:
        """The masked-importance-sampling band: mis_low..mis_high when set, else SERVED_MIS for served rollouts
        or rollouts drawn a step ahead (``max_staleness`` >= 1; unless served_mis is off), else None (off)."""
        if self.mis_high:
            return (self.mis_low, self.mis_high)
        return SERVED_MIS if (self.rollout_url or self.max_staleness) and self.served_mis else None

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# One line of help per setting, the one place a setting is explained; the CLI flags are generated from
# OPDConfig and this dict, so they never drift apart.
HELP = {
    "steps": "optimizer steps", "seed": "random seed", "device": "auto, cpu, cuda or cuda:N",
    "dtype": "auto (bf16 autocast on a bf16 GPU), bf16 or fp32",
    "prompts_per_step": "prompts per step (per process)", "n": "rollouts per prompt",
    "max_new_tokens": "maximum response length", "temperature": "sampling temperature of the rollouts",
    "top_p": "nucleus sampling of the rollouts", "schedule": "prompt schedule (uniform; more in lyceum.train.schedules)",
    "length_schedule": "growing max length as STEP:TOKENS milestones, e.g. 0:64,100:128",
    "support": "sampled, student_topk, teacher_topk, intersection, union or full",
    "k": "top-k size of the loss support", "kind": "reverse_kl, forward_kl or jsd", "beta": "jsd mixing weight",
    "mode": "direct (gradient of the divergence), pg (the paper code's update: full-softmax advantages, dual clip) "
            "or pg_renormalised (ours: advantages from the renormalised log-ratio)",
    "clip": "ratio clip of the pg mode", "lr": "learning rate (AdamW)", "weight_decay": "AdamW weight decay",
    "warmup_steps": "linear warm-up steps", "lr_schedule": "constant or cosine",
    "max_grad_norm": "gradient clipping norm", "micro_batch_size": "rollouts per forward/backward (accumulation)",
    "freeze_vision": "vision-language students: the vision encoder gets no gradient (its projector and the "
                     "language model train); false trains the vision tower too (--no-freeze-vision)",
    "diagnostics_k": "k of the top-k overlap diagnostics", "diagnostics_every": "compute diagnostics every N steps",
    "eval_every": "evaluate every N steps (0: only before and after)",
    "eval_max_new_tokens": "response length at evaluation (0: max_new_tokens)",
    "eval_batch_size": "prompts per evaluation batch", "verifier": "verifier for accuracy, by name (lab, olympiad) or as package.module:function",
    "checkpoint_every": "checkpoint every N steps (0: only at the end, -1: never)",
    "rollout_url": "a vLLM or SGLang server that samples the student's rollouts (http://host:port); empty: in-process",
    "rollout_engine": "auto (ask the server), vllm or sglang",
    "rollout_model": "the model name a vLLM server serves (--served-model-name; auto: the first it lists)",
    "rollout_weights_dir": "folder the server can read, for weight pushes from disk (default: <run>/served-weights)",
    "rollout_timeout": "seconds one rollout request may take before it is sent again (a long generation is slow)",
    "sync_every": "push the trainer's weights to the rollout server every N optimizer steps",
    "max_staleness": "0: sample each step's rollouts with the newest weights; 1: generate the next batch while "
                     "this one trains (one step off-policy; in-process rollouts: decode it before this step's "
                     "update, so a served teacher scores it meanwhile); the bound on the logged staleness",
    "ignore_eos": "decode every rollout to its full length, past the end-of-sequence token (vLLM's and SGLang's "
                  "ignore_eos; for measuring speed and memory at a fixed response length, not for training)",
    "mis_low": "masked importance sampling: lower bound of the sequence ratio (both 0: off, or 0.5 with --rollout-url or --max-staleness 1)",
    "mis_high": "masked importance sampling: upper bound of the sequence ratio (both 0: off, or 2 with --rollout-url or --max-staleness 1)",
    "served_mis": "turn masked importance sampling on by default for served rollouts and --max-staleness 1",
    "fsdp": "shard the student, its gradients and optimizer state across the processes of a torchrun / "
            "accelerate launch (FSDP2; checkpoints resume at any number of processes)",
    "gradient_checkpointing": "recompute each decoder layer in the backward pass (the model's own gradient "
                              "checkpointing): less activation memory, about a third more compute",
    "lora_r": "LoRA rank (0: off, train every weight); with LoRA only the adapters train and are saved",
    "lora_alpha": "LoRA scaling numerator (the update is alpha / r times B A)",
    "lora_targets": "modules that get adapters: all-linear (every linear layer but the LM head) or names, "
                    "e.g. q_proj,k_proj,v_proj,o_proj",
    "report_to": "mirror the metrics to none, tensorboard, wandb or both (tensorboard,wandb); metrics.jsonl is "
                 "always written",
}


@dataclass
class RLConfig(OPDConfig):
    """The engine's settings (``OPDConfig``) plus the RL ones, each explained in ``RL_HELP``. ``n`` is the group size
    without a curriculum."""

    lr: float = 1e-5
    verifier: str | None = "lab"
    # --- policy loss (lyceum.train.rl_losses)
    loss: str = "gspo"
    clip_low: float = 0.0
    clip_high: float = 0.0
    scale_by_std: bool = True
    kl_coef: float = 0.0
    old: str = "current"
    teacher_coef: float = 0.0
    # --- curriculum (lyceum.train.curriculum)
    curriculum: bool = True
    pass_rate_k: int = 8
    max_pass_rate: float = 0.7
    drop_unsolved: bool = True
    difficulty_key: str = "difficulty"
    n_buckets: int = 0
    thresholds: str = "0.6"
    group_sizes: str = ""
    stage_max_new_tokens: str = ""
    window: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        from lyceum.train.rl_losses import LOSSES

        if self.loss not in LOSSES:
            raise UserError(f"unknown RL loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.old not in ("current", "sampler"):
            raise UserError(f"old must be current or sampler, got {self.old!r}")
        if self.pass_rate_k < 0 or self.window < 1 or self.n_buckets < 0:
            raise UserError("pass_rate_k and n_buckets must be >= 0 and window >= 1")
        for name in ("thresholds", "group_sizes", "stage_max_new_tokens"):
            number_list(getattr(self, name), name)



def number_list(text: str, name: str) -> list[float]:
    """The numbers of a comma-separated setting such as ``thresholds="0.6,0.8"``."""
    try:
        return [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None


# One line of help per RL setting (the engine's settings are in HELP), the one place each is explained.
RL_HELP = {
    "loss": "grpo (token-level clipped ratio) or gspo (sequence-level, length-normalised ratio)",
    "clip_low": "lower clip range of the ratio (0: the loss's default, GRPO 0.2 / GSPO 3e-4)",
    "clip_high": "upper clip range of the ratio (0: the loss's default, GRPO 0.2 / GSPO 4e-4)",
    "scale_by_std": "divide advantages by the group std (false: Dr. GRPO)",
    "kl_coef": "weight of the k3 KL to the frozen starting student",
    "old": "behaviour log-probs: current (on-policy) or sampler (recorded while sampling)",
    "teacher_coef": "mixed feedback: weight of the OPD teacher term (needs --teacher or --teacher-url)",
    "curriculum": "true: easiest bucket first, widen on reward; false: uniform over the pool",
    "pass_rate_k": "rollouts per prompt for the pass-rate filter (0: no filter)",
    "max_pass_rate": "drop prompts solved more often than this",
    "drop_unsolved": "drop prompts never solved in pass_rate_k tries",
    "difficulty_key": "prompt-row field that grades difficulty (else the pass rate)",
    "n_buckets": "difficulty buckets (0: one per distinct value)",
    "thresholds": "per-stage training reward that opens the next bucket, e.g. 0.6,0.7",
    "group_sizes": "per-stage rollouts per prompt, e.g. 4,8 (empty: --n)",
    "stage_max_new_tokens": "per-stage max response length, e.g. 32,64 (empty: --max-new-tokens)",
    "window": "steps of training reward averaged before a stage may advance",
    "verifier": "verifier that rewards answers: lab, olympiad or package.module:function",
}
