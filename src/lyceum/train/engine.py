"""The on-policy engine: prompts -> student rollouts -> feedback -> per-token loss -> optimizer step.

One loop serves on-policy distillation (the feedback is a teacher scoring the student's tokens) and RL (the
feedback is a verifier's reward); what changes is the ``Feedback`` and the ``Objective``, never the loop.

    result = train(student, TeacherFeedback(teacher, vocab), schedule, cfg, run,
                   objective=opd_objective(cfg), eval_rows=rows, verifier=verifier, reference_accuracy=0.9)

Every step logs to ``<run>/metrics.jsonl``: the loss and its stats, gradient norm, learning rate, response
length, the paper's token diagnostics (overlap ratio/mass/advantage, entropies, per response third) whenever
the feedback carries a teacher, the sequence-mean reward, and with a verifier the rollouts' accuracy and the
AUROC of the sequence reward for telling right rollouts from wrong ones. Evaluations (greedy accuracy, gap
recovery, pooled AUROC) are logged as rows with ``"event": "eval"``.

Several GPUs: start the same command under ``accelerate launch`` (or ``torchrun``). Each process rolls out its
own slice of the prompts, gradients are averaged across processes before the optimizer step, and only the
first process logs, evaluates and saves.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from lyceum.models.local import LocalLM
from lyceum.runs import ProgressBar, RunDir, write_jsonl
from lyceum.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from lyceum.train.config import OPDConfig
from lyceum.train.feedback import Feedback, head_source, verifier_rewards
from lyceum.train.objectives import Objective, opd_objective, policy_objective  # noqa: F401 (re-exported)
from lyceum.train.rollout import Rollouts, micro_batches, rollout
from lyceum.train.scan import token_scan
from lyceum.train.schedules import PromptSchedule

# diagnostics averaged over this many steps at the start and the end of a run for the summary
SUMMARY_WINDOW = 5
DIAGNOSTICS = ("overlap_ratio", "overlap_mass_student", "overlap_mass_teacher", "overlap_advantage",
               "entropy_student", "entropy_teacher", "entropy_gap")


# ------------------------------------------------------------------------------------------------ devices


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join the process group that ``accelerate launch``/``torchrun`` set up through the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


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


def _average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    at = 0
    for g in grads:
        g.copy_(flat[at: at + g.numel()].view_as(g))
        at += g.numel()


# ------------------------------------------------------------------------------------------------ evaluation


def evaluate(lm: LocalLM, rows: list[dict], verifier, *, max_new_tokens: int, batch_size: int = 64,
             autocast=nullcontext) -> dict[str, float]:
    """Greedy accuracy (mean verifier reward) of ``lm`` on ``rows``, with mean response length."""
    correct, lengths, stops = [], [], []
    for a in range(0, len(rows), batch_size):
        chunk = rows[a: a + batch_size]
        with autocast():
            ro = rollout(lm, chunk, n=1, max_new_tokens=max_new_tokens, temperature=0.0)
        correct += verifier_rewards(verifier, ro).tolist()
        lengths += ro.samples.lengths.tolist()
        stops += [r == "stop" for r in ro.samples.finish_reasons]
    n = max(len(rows), 1)
    return {"accuracy": sum(correct) / n, "response_length": sum(lengths) / n, "stop_rate": sum(stops) / n}


# ------------------------------------------------------------------------------------------------ the loop


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


def _lr_lambda(cfg: OPDConfig):
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
          resume: bool = True, desc: str = "train") -> TrainResult:
    """Train ``student`` in place for ``cfg.steps`` optimizer steps; resume from ``<run>/checkpoint`` if there.

    ``reference_accuracy`` (the teacher's, for OPD) turns evaluations into gap recoveries.
    """
    from lyceum.train.diagnostics import auroc, gap_recovery

    dist = dist or Dist()
    autocast = autocast or nullcontext
    vocab = vocab or student.vocab_size
    model = student.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    torch.manual_seed(cfg.seed)
    ckpt = run.path / "checkpoint"
    start, evals, since_eval, history = 0, [], {"reward": [], "correct": []}, []
    if resume and has_checkpoint(ckpt):
        start, extra = load_checkpoint(ckpt, student=student, optimizer=optimizer, scheduler=scheduler)
        schedule.load_state_dict(extra.get("schedule", {}))
        evals, history = extra.get("evals", []), extra.get("history", [])
        reference_accuracy = extra.get("reference_accuracy", reference_accuracy)
        if dist.main:
            # drop what the interrupted run logged after its last checkpoint: those steps run again
            kept = [r for r in run.read_metrics() if r.get("step", 0) <= start]
            write_jsonl(run.path / "metrics.jsonl", kept)
            run.log(f"resumed from {ckpt} at step {start}")
    result = TrainResult(run, start, evals, reference_accuracy=reference_accuracy)
    eval_tokens = cfg.eval_max_new_tokens or cfg.max_new_tokens

    def do_eval(step: int) -> None:
        if not (dist.main and eval_rows and verifier):
            return
        model.eval()
        rec = {"event": "eval", "step": step,
               **evaluate(student, eval_rows, verifier, max_new_tokens=eval_tokens,
                          batch_size=cfg.eval_batch_size, autocast=autocast)}
        if reference_accuracy is not None:
            rec["reference_accuracy"] = reference_accuracy
            before = evals[0]["accuracy"] if evals else rec["accuracy"]
            rec["gap_recovery"] = gap_recovery(before, rec["accuracy"], reference_accuracy)
        if since_eval["reward"]:
            rec["auroc"] = auroc(since_eval["reward"], since_eval["correct"])
            since_eval["reward"].clear()
            since_eval["correct"].clear()
        evals.append(rec)
        run.log_metrics(rec)
        run.log(f"eval at step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in rec.items()
                                                     if isinstance(v, float)))

    if start == 0 and not evals:
        do_eval(0)

    with ProgressBar(cfg.steps, desc=desc, completed=start) if dist.main else nullcontext() as bar:
        for step in range(start, cfg.steps):
            t0 = time.time()
            rows = schedule.next_batch(step)
            model.eval()
            with autocast():
                ro = rollout(student, rows, n=schedule.group_size(step), max_new_tokens=schedule.max_new_tokens(step),
                             temperature=cfg.temperature, top_p=cfg.top_p, seed=step_seed(cfg.seed, step, dist.rank))
            if verifier is not None:
                ro.rewards = verifier_rewards(verifier, ro)
            record: dict[str, Any] = {"event": "train", "step": step + 1}
            record.update(feedback.prepare(ro))
            t1 = time.time()

            model.train()
            want_diag = bool(cfg.diagnostics_every) and (step % cfg.diagnostics_every == 0 or step + 1 == cfg.steps)
            stats, seq_reward = accumulate_gradients(student, ro, feedback, objective, vocab=vocab,
                                                     micro_batch_size=cfg.micro_batch_size, autocast=autocast,
                                                     diagnostics_k=cfg.diagnostics_k if want_diag else 0)
            if dist.world_size > 1:
                _average_gradients(params, dist.world_size)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            t2 = time.time()

            record.update(stats)
            lengths = ro.samples.lengths.float()
            record.update({
                "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0],
                "response_length": float(lengths.mean()),
                "stop_rate": sum(r == "stop" for r in ro.samples.finish_reasons) / len(ro),
                "rollouts": len(ro), "tokens": ro.tokens,
                "time_rollout": round(t1 - t0, 3), "time_update": round(t2 - t1, 3),
                "tokens_per_s": ro.tokens / max(t2 - t0, 1e-9),
            })
            if not torch.isnan(seq_reward).all():
                record["sequence_reward"] = float(seq_reward.nanmean())
            if ro.rewards is not None:
                record["train_accuracy"] = float(ro.rewards.mean())
                have = ~torch.isnan(seq_reward)
                if have.any():
                    correct = (ro.rewards[have] >= 0.5).tolist()
                    record["auroc"] = auroc(seq_reward[have].tolist(), correct)
                    since_eval["reward"] += seq_reward[have].tolist()
                    since_eval["correct"] += correct
            if schedule.observe(step, record):
                run.log(f"schedule advanced after step {step + 1}")
            record.update(schedule.metrics())
            if any(k in record for k in DIAGNOSTICS):
                history.append({k: record[k] for k in DIAGNOSTICS if k in record})
            if dist.main:
                run.log_metrics(record)
                bar.update(1, info=_progress_info(record, evals))

            done = step + 1
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                do_eval(done)
            if done == cfg.steps:
                do_eval(done)
            due = cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0
            if dist.main and cfg.checkpoint_every >= 0 and (due or done == cfg.steps):
                save_checkpoint(ckpt, student=student, optimizer=optimizer, scheduler=scheduler, step=done,
                                extra={"schedule": schedule.state_dict(), "evals": evals, "history": history,
                                       "reference_accuracy": reference_accuracy, "config": vars(cfg)})

    model.eval()
    if dist.world_size > 1:  # nobody leaves before the first process has written the final checkpoint
        from torch import distributed as torch_dist

        torch_dist.barrier()
    result.steps = cfg.steps
    result.main = dist.main
    result.initial = _window_mean(history[:SUMMARY_WINDOW])
    result.final = _window_mean(history[-SUMMARY_WINDOW:])
    return result


def accumulate_gradients(student: LocalLM, ro: Rollouts, feedback: Feedback, objective: Objective, *,
                         vocab: int, micro_batch_size: int, autocast=nullcontext,
                         diagnostics_k: int = 16) -> tuple[dict[str, float], torch.Tensor]:
    """Backpropagate the step's token-mean loss, one micro-batch at a time (gradients add up in ``.grad``).

    Each micro-batch's loss is weighted by its share of the step's response tokens, so the accumulated
    gradient is that of the token mean over the whole step whatever the micro-batch size. With a teacher in
    the feedback and ``diagnostics_k`` > 0 it also computes the token diagnostics and each rollout's
    sequence-mean reward mean_t(log q - log p) (nan where not computed), from the scan the OPD loss reads off
    its own chunk loop. Returns (token-weighted stats, rewards).
    """
    total = max(ro.tokens, 1)
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    seq_reward = torch.full((len(ro),), math.nan)
    for mb in micro_batches(ro, micro_batch_size):
        mb = mb.to(student.device)
        w = mb.n_tokens / total
        with autocast():
            hidden = student.hidden_states(mb.ids, mb.mask)[:, mb.start - 1: -1]
        src = head_source(student, hidden, vocab)
        signal = feedback(mb)
        want = diagnostics_k if signal.teacher is not None else 0
        with autocast():
            loss, stats, scan = objective(src, mb, signal, want)
        (loss * w).backward()
        if want:
            if scan is None:  # the objective did not scan the teacher (a policy loss): one pass of its own
                scan = token_scan(src, signal.teacher, mb.tokens, mb.response_mask, want)
            stats = {**stats, **scan.diagnostics()}
            seq_reward[mb.index.cpu()] = scan.sequence_reward().float().cpu()
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
