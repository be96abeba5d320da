"""The on-policy engine: prompts -> student rollouts -> feedback -> per-token loss -> optimizer step -> log.

One loop serves on-policy distillation (the feedback is a teacher scoring the student's tokens) and RL (the
feedback is a verifier's reward); what changes is the ``Feedback`` and the ``Objective``, never the loop.

    result = train(student, TeacherFeedback(teacher, vocab), schedule, cfg, run,
                   objective=opd_objective(cfg), eval_rows=rows, verifier=verifier, reference_accuracy=0.9)

Every step logs to ``<run>/metrics.jsonl``: the loss and its stats, gradient norm, learning rate, response
length, the paper's token diagnostics (overlap ratio/mass/advantage, entropies, per response third) whenever
the feedback carries a teacher, the sequence-mean reward, with a verifier the rollouts' accuracy and the AUROC
of the sequence reward for telling right rollouts from wrong ones, and where the step's time went
(``time_rollout``, ``time_teacher``, ``time_loss``, ``time_optimizer``). Evaluations (greedy accuracy, gap
recovery, pooled AUROC) are logged as rows with ``"event": "eval"`` (``lyceum.train.evaluation``).

Where it computes (device, bf16 autocast, several processes under ``accelerate launch``/``torchrun``):
``lyceum.train.devices``. What it minimises: ``lyceum.train.objectives``. How it samples:
``lyceum.train.rollout`` (a served vLLM / SGLang backend plugs in as ``sampler=``).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from lyceum.models.local import LocalLM
from lyceum.runs import ProgressBar, RunDir
from lyceum.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from lyceum.train.config import OPDConfig
from lyceum.train.devices import (  # noqa: F401 (re-exported: callers import them from the engine)
    Dist,
    autocast_for,
    average_gradients,
    barrier,
    init_distributed,
    pick_device,
    uses_bf16,
)
from lyceum.train.evaluation import Evaluations
from lyceum.train.feedback import Feedback, head_source, verifier_rewards
from lyceum.train.objectives import Objective, opd_objective, policy_objective  # noqa: F401 (re-exported)
from lyceum.train.rollout import Rollouts, Sampler, as_sampler, evaluate, micro_batches, rollout  # noqa: F401
from lyceum.train.scan import token_scan
from lyceum.train.schedules import PromptSchedule

# diagnostics averaged over this many steps at the start and the end of a run for the summary
SUMMARY_WINDOW = 5
DIAGNOSTICS = ("overlap_ratio", "overlap_mass_student", "overlap_mass_teacher", "overlap_advantage",
               "entropy_student", "entropy_teacher", "entropy_gap")


@dataclass
class TrainResult:
    run: RunDir
    steps: int
    evals: list[dict[str, Any]] = field(default_factory=list)
    initial: dict[str, float] = field(default_factory=dict)  # diagnostics over the first steps
    final: dict[str, float] = field(default_factory=dict)  # diagnostics over the last steps
    reference_accuracy: float | None = None
    main: bool = True  # False in the other processes of a multi-process run (they log nothing)

    @property
    def accuracy_before(self) -> float | None:
        return self.evals[0]["accuracy"] if self.evals else None

    @property
    def accuracy_after(self) -> float | None:
        return self.evals[-1]["accuracy"] if self.evals else None

    @property
    def gap_recovery(self) -> float | None:
        return self.evals[-1].get("gap_recovery") if self.evals else None


def make_optimizer(params: list[torch.nn.Parameter], cfg: OPDConfig) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel where every parameter allows it (same math, ~6x less optimizer time)."""
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    try:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), fused=fused)
    except (RuntimeError, TypeError):  # a dtype/device combination the fused kernel does not cover
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))


def lr_factor(cfg: OPDConfig):
    """The learning-rate multiplier per step: linear warm-up, then constant or cosine to 0."""
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "cosine":
            span = max(1, cfg.steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))
        return 1.0

    return f


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The sampling seed of a step: a pure function, so a resumed run draws the same rollouts."""
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)


def train(student: LocalLM, feedback: Feedback, schedule: PromptSchedule, cfg: OPDConfig, run: RunDir, *,
          objective: Objective, vocab: int | None = None, eval_rows: list[dict] | None = None, verifier=None,
          reference_accuracy: float | None = None, autocast=None, dist: Dist | None = None,
          resume: bool = True, desc: str = "train", sampler: Sampler | None = None) -> TrainResult:
    """Train ``student`` in place for ``cfg.steps`` optimizer steps; resume from ``<run>/checkpoint`` if there.

    ``reference_accuracy`` (the teacher's, for OPD) turns evaluations into gap recoveries. ``sampler`` draws
    the rollouts (default: the student's own decode loop); it is handed the new weights after every step.
    """
    dist = dist or Dist()
    autocast = autocast or nullcontext
    vocab = vocab or student.vocab_size
    sampler = sampler or as_sampler(student, autocast)
    model = student.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    torch.manual_seed(cfg.seed)
    evals = Evaluations(student, eval_rows if dist.main else None, verifier,
                        cfg.eval_max_new_tokens or cfg.max_new_tokens, cfg.eval_batch_size, autocast,
                        reference_accuracy)
    start, history = _resume(run, student, optimizer, scheduler, schedule, evals) if resume else (0, [])
    if dist.main:  # metrics keep only the steps up to `start`; says "resuming at step N" or "starting over"
        run.continue_from(start or None, checkpoint=run.path / "checkpoint")
    if start == 0 and not evals.evals:
        evals.run(0, run)

    with ProgressBar(cfg.steps, desc=desc, completed=start) if dist.main else nullcontext() as bar:
        for step in range(start, cfg.steps):
            t0 = time.time()
            # 1. rollout: the student answers this step's prompts
            rows = schedule.next_batch(step)
            model.eval()
            ro = rollout(sampler, rows, n=schedule.group_size(step), max_new_tokens=schedule.max_new_tokens(step),
                         temperature=cfg.temperature, top_p=cfg.top_p, seed=step_seed(cfg.seed, step, dist.rank))
            # 2. feedback: a verifier's rewards now; the teacher scores each micro-batch inside the loss loop
            if verifier is not None:
                ro.rewards = verifier_rewards(verifier, ro)
            record: dict[str, Any] = {"event": "train", "step": step + 1, **feedback.prepare(ro)}
            t1 = time.time()
            # 3. loss and its gradient, micro-batch by micro-batch (diagnostics read off the loss's own pass)
            model.train()
            want_diag = bool(cfg.diagnostics_every) and (step % cfg.diagnostics_every == 0 or step + 1 == cfg.steps)
            times: dict[str, float] = {}
            stats, seq_reward = accumulate_gradients(student, ro, feedback, objective, vocab=vocab,
                                                     micro_batch_size=cfg.micro_batch_size, autocast=autocast,
                                                     diagnostics_k=cfg.diagnostics_k if want_diag else 0,
                                                     times=times)
            # 4. optimizer step
            t_opt = time.time()
            if dist.world_size > 1:
                average_gradients(params, dist.world_size)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            sampler.push_weights(model)
            t2 = time.time()
            # 5. log
            record.update(stats)
            record.update(step_record(ro, grad_norm, scheduler.get_last_lr()[0], (t0, t1, t_opt, t2), times))
            _log_rewards(record, ro, seq_reward, evals)
            if schedule.observe(step, record):
                run.log(f"schedule advanced after step {step + 1}")
            record.update(schedule.metrics())
            if any(k in record for k in DIAGNOSTICS):
                history.append({k: record[k] for k in DIAGNOSTICS if k in record})
            if dist.main:
                run.log_metrics(record)
                bar.update(1, info=_progress_info(record, evals.evals))

            done = step + 1
            if done == cfg.steps or (cfg.eval_every and done % cfg.eval_every == 0):
                evals.run(done, run)
            due = cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0
            if dist.main and cfg.checkpoint_every >= 0 and (due or done == cfg.steps):
                save_checkpoint(run.path / "checkpoint", student=student, optimizer=optimizer, scheduler=scheduler,
                                step=done, extra={"schedule": schedule.state_dict(), "evals": evals.evals,
                                                  "history": history, "config": vars(cfg),
                                                  "reference_accuracy": evals.reference_accuracy})

    model.eval()
    barrier(dist)
    return TrainResult(run, cfg.steps, evals.evals, _window_mean(history[:SUMMARY_WINDOW]),
                       _window_mean(history[-SUMMARY_WINDOW:]), evals.reference_accuracy, dist.main)


def _resume(run: RunDir, student: LocalLM, optimizer, scheduler, schedule: PromptSchedule,
            evals: Evaluations) -> tuple[int, list[dict]]:
    """Restore the state of ``<run>/checkpoint`` if there is one: (steps done, diagnostics history)."""
    ckpt = run.path / "checkpoint"
    if not has_checkpoint(ckpt):
        return 0, []
    start, extra = load_checkpoint(ckpt, student=student, optimizer=optimizer, scheduler=scheduler)
    schedule.load_state_dict(extra.get("schedule", {}))
    evals.evals = extra.get("evals", [])
    evals.reference_accuracy = extra.get("reference_accuracy", evals.reference_accuracy)
    return start, extra.get("history", [])


def step_record(ro: Rollouts, grad_norm, lr: float, clock: tuple[float, float, float, float],
                times: dict[str, float]) -> dict[str, Any]:
    """A step's numbers about its rollouts, its update and where its time went."""
    t0, t1, t_opt, t2 = clock
    return {
        "grad_norm": float(grad_norm), "lr": lr,
        "response_length": float(ro.samples.lengths.float().mean()),
        "stop_rate": sum(r == "stop" for r in ro.samples.finish_reasons) / len(ro),
        "rollouts": len(ro), "tokens": ro.tokens,
        "time_rollout": round(t1 - t0, 3), "time_update": round(t2 - t1, 3),
        "time_teacher": round(times.get("teacher", 0.0), 3), "time_loss": round(times.get("loss", 0.0), 3),
        "time_optimizer": round(t2 - t_opt, 3),
        "tokens_per_s": ro.tokens / max(t2 - t0, 1e-9),
    }


def _log_rewards(record: dict[str, Any], ro: Rollouts, seq_reward: torch.Tensor, evals: Evaluations) -> None:
    """The sequence reward, and with a verifier the rollouts' accuracy and the reward's AUROC for it."""
    from lyceum.train.diagnostics import auroc

    if not torch.isnan(seq_reward).all():
        record["sequence_reward"] = float(seq_reward.nanmean())
    if ro.rewards is None:
        return
    record["train_accuracy"] = float(ro.rewards.mean())
    have = ~torch.isnan(seq_reward)
    if have.any():
        correct = (ro.rewards[have] >= 0.5).tolist()
        record["auroc"] = auroc(seq_reward[have].tolist(), correct)
        evals.pool(seq_reward[have].tolist(), correct)


def accumulate_gradients(student: LocalLM, ro: Rollouts, feedback: Feedback, objective: Objective, *,
                         vocab: int, micro_batch_size: int, autocast=nullcontext, diagnostics_k: int = 16,
                         times: dict[str, float] | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """Backpropagate the step's token-mean loss, one micro-batch at a time (gradients add up in ``.grad``).

    Each micro-batch's loss is weighted by its share of the step's response tokens, so the accumulated
    gradient is that of the token mean over the whole step whatever the micro-batch size. With a teacher in
    the feedback and ``diagnostics_k`` > 0 it also computes the token diagnostics and each rollout's
    sequence-mean reward mean_t(log q - log p) (nan where not computed), from the scan the OPD loss reads off
    its own chunk loop. Returns (token-weighted stats, rewards); ``times`` receives the seconds spent in the
    teacher (``teacher``) and in the student's forward, loss and backward (``loss``).
    """
    times = {} if times is None else times
    total = max(ro.tokens, 1)
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    seq_reward = torch.full((len(ro),), math.nan)
    for mb in micro_batches(ro, micro_batch_size):
        mb = mb.to(student.device)
        w = mb.n_tokens / total
        t0 = time.time()
        with autocast():
            hidden = student.hidden_states(mb.ids, mb.mask, **mb.body_inputs())[:, mb.start - 1: -1]
        src = head_source(student, hidden, vocab)
        t1 = time.time()
        signal = feedback(mb)
        t2 = time.time()
        want = diagnostics_k if signal.teacher is not None else 0
        with autocast():
            loss, stats, scan = objective(src, mb, signal, want)
        (loss * w).backward()
        if want:
            if scan is None:  # the objective did not scan the teacher (a policy loss): one pass of its own
                scan = token_scan(src, signal.teacher, mb.tokens, mb.response_mask, want)
            stats = {**stats, **scan.diagnostics()}
            seq_reward[mb.index.cpu()] = scan.sequence_reward().float().cpu()
        times["teacher"] = times.get("teacher", 0.0) + t2 - t1
        times["loss"] = times.get("loss", 0.0) + (t1 - t0) + (time.time() - t2)
        for k, v in stats.items():
            if k != "tokens" and not math.isnan(v):
                sums[k] = sums.get(k, 0.0) + w * v
                weights[k] = weights.get(k, 0.0) + w
    return {k: v / weights[k] for k, v in sums.items() if weights[k] > 0}, seq_reward


def _window_mean(rows: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for k in DIAGNOSTICS:
        vals = [r[k] for r in rows if k in r and not math.isnan(r[k])]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out


def _progress_info(record: dict[str, Any], evals: list[dict]) -> str:
    parts = [f"loss {record.get('loss', float('nan')):.4f}"]
    if "overlap_ratio" in record:
        parts.append(f"overlap {record['overlap_ratio']:.3f}")
    if "train_accuracy" in record:
        parts.append(f"train acc {record['train_accuracy']:.2f}")
    if evals:
        parts.append(f"eval acc {evals[-1]['accuracy']:.2f}")
    return "  ".join(parts)
