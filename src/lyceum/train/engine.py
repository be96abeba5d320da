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
``lyceum.train.devices``; with ``cfg.fsdp`` the student is sharded across the processes (``lyceum.train.fsdp``).
Under several processes the loss is normalised over every process's tokens (or rollouts, for a sequence-level
objective such as GSPO) and every process logs and decides on the whole step's numbers
(``lyceum.train.step_stats``). What it minimises: ``lyceum.train.objectives``. How it samples:
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
from lyceum.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint, save_sharded_checkpoint
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
from lyceum.train.memory import describe_student, prepare_student
from lyceum.train.objectives import Objective, opd_objective, policy_objective  # noqa: F401 (re-exported)
from lyceum.train.rollout import (  # noqa: F401
    Rollouts,
    Sampler,
    StepRollouts,
    as_sampler,
    evaluate,
    micro_batches,
    rollout,
)
from lyceum.train.scan import token_scan
from lyceum.train.schedules import PromptSchedule
from lyceum.train.step_stats import StepPart, gather, global_units, merge, units
from lyceum.train.trackers import close_trackers, open_trackers

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
    prepare_student(student, cfg)  # gradient checkpointing, LoRA adapters (lyceum.train.memory), before sharding
    sharded = None
    if getattr(cfg, "fsdp", False):  # shard before the optimizer exists, so its state is sharded too
        from lyceum.train.fsdp import shard

        sharded = shard(student, bf16=uses_bf16(cfg, student.device))
    plain = sharded.full if sharded else student  # the whole model: decodes, evaluates, is saved
    sampler = sampler or as_sampler(plain, autocast, ignore_eos=getattr(cfg, "ignore_eos", False))
    model = student.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    torch.manual_seed(cfg.seed)
    evals = Evaluations(plain, eval_rows if dist.main else None, verifier,
                        cfg.eval_max_new_tokens or cfg.max_new_tokens, cfg.eval_batch_size, autocast,
                        reference_accuracy)
    start, history = _resume(run, student, optimizer, scheduler, schedule, evals, sharded) if resume else (0, [])
    if sharded and start:
        sampler.push_weights(plain.model)
    if dist.main:  # metrics keep only the steps up to `start`; says "resuming at step N" or "starting over"
        run.continue_from(start or None, checkpoint=run.path / "checkpoint")
        open_trackers(cfg.report_to, run, config=vars(cfg), start_step=start)  # mirrors of metrics.jsonl
        run.log(describe_student(student))
    if hasattr(sampler, "begin"):  # a served sampler: the server starts from the trainer's weights
        sampler.begin(plain.model, start)
        evals.sampler = sampler  # and evaluates them, so the trainer never decodes
    if start == 0 and not evals.evals:
        evals.run(0, run)
    # --max-staleness 1 with in-process rollouts: the next batch is decoded before this step's update, so a
    # served teacher scores it (feedback.prefetch) while this step trains (rollout.StepRollouts)
    ahead = getattr(sampler, "ahead", getattr(cfg, "max_staleness", 0) >= 1)
    source = StepRollouts(sampler, schedule, steps=cfg.steps, seed_of=lambda s: step_seed(cfg.seed, s, dist.rank),
                          temperature=cfg.temperature, top_p=cfg.top_p, ahead=ahead,
                          on_batch=getattr(feedback, "prefetch", None))

    with ProgressBar(cfg.steps, desc=desc, completed=start) if dist.main else nullcontext() as bar, source:
        for step in range(start, cfg.steps):
            t0 = time.time()
            # 1. rollout: the student answers this step's prompts (served: maybe generated during the last step)
            model.eval()
            ro = source.get(step)
            # 2. feedback: a verifier's rewards now; the teacher scores each micro-batch inside the loss loop
            if verifier is not None:
                ro.rewards = verifier_rewards(verifier, ro)
            prepared = feedback.prepare(ro)
            record: dict[str, Any] = {"event": "train", "step": step + 1}
            t1 = time.time()
            # 3. loss and its gradient, micro-batch by micro-batch (diagnostics read off the loss's own pass)
            model.train()
            want_diag = bool(cfg.diagnostics_every) and (step % cfg.diagnostics_every == 0 or step + 1 == cfg.steps)
            times: dict[str, float] = {}
            if sharded and dist.world_size > 1:
                from lyceum.train.fsdp import check_same_batches

                check_same_batches(len(ro), cfg.micro_batch_size)
            # the shares are of all processes' units and the processes' gradients are averaged: times world size
            sums, weights, seq_reward = accumulate_sums(
                student, ro, feedback, objective, vocab=vocab, micro_batch_size=cfg.micro_batch_size,
                autocast=autocast, diagnostics_k=cfg.diagnostics_k if want_diag else 0, times=times,
                totals=global_units(dist, ro.samples.mask), scale=float(dist.world_size),
                forward=sharded.forward if sharded else None)
            # 4. optimizer step
            t_opt = time.time()
            if dist.world_size > 1 and not sharded:  # FSDP reduce-scatters (averages) the gradients itself
                average_gradients(params, dist.world_size)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)  # over all shards under FSDP
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if sharded:
                from lyceum.train.fsdp import full_tensor, local_bytes

                grad_norm = full_tensor(grad_norm)
                sharded.gather()
            sampler.push_weights(plain.model)
            t2 = time.time()
            # 5. log the whole step: every process's part, merged the same way on every process
            times.update(rollout=t1 - t0, update=t2 - t1, optimizer=t2 - t_opt, step=t2 - t0)
            part = StepPart(sums, weights, prepared, ro.samples.lengths.tolist(),
                            [r == "stop" for r in ro.samples.finish_reasons],
                            None if ro.rewards is None else ro.rewards.tolist(), seq_reward.tolist(), times)
            merged = merge(gather(dist, part))
            record.update(merged["prepared"])
            record.update(merged["stats"])
            record.update(step_record(merged, grad_norm, scheduler.get_last_lr()[0]))
            if sharded:
                record.update(local_bytes(model, optimizer))
            if ro.policy_version is not None:  # served rollouts: how many updates behind the sampler's weights were
                record.update(staleness=step - ro.policy_version, policy_version=ro.policy_version,
                              weight_pushes=getattr(sampler, "pushes", 0),
                              time_push=round(getattr(sampler, "push_seconds", 0.0), 3))
            _log_rewards(record, merged, evals)
            advanced = schedule.observe(step, record)  # the same record on every process: the same decision
            if advanced and dist.main:
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
            extra = {"schedule": schedule.state_dict(), "evals": evals.evals, "history": history,
                     "config": vars(cfg), "reference_accuracy": evals.reference_accuracy}
            if sharded and cfg.checkpoint_every >= 0 and (due or done == cfg.steps):
                save_sharded_checkpoint(run.path / "checkpoint", sharded=sharded, optimizer=optimizer,
                                        scheduler=scheduler, step=done, extra=extra, main=dist.main)
            elif dist.main and cfg.checkpoint_every >= 0 and (due or done == cfg.steps):
                save_checkpoint(run.path / "checkpoint", student=student, optimizer=optimizer, scheduler=scheduler,
                                step=done, extra=extra)

    model.eval()
    close_trackers(run)
    barrier(dist)
    if sharded:  # the caller's student ends as the whole trained model, as without --fsdp
        student.model = plain.model
        student.adapter = plain.adapter  # with LoRA: the gathered copy's peft wrapper (saves the adapters alone)
    return TrainResult(run, cfg.steps, evals.evals, _window_mean(history[:SUMMARY_WINDOW]),
                       _window_mean(history[-SUMMARY_WINDOW:]), evals.reference_accuracy, dist.main)


def _resume(run: RunDir, student: LocalLM, optimizer, scheduler, schedule: PromptSchedule,
            evals: Evaluations, sharded=None) -> tuple[int, list[dict]]:
    """Restore the state of ``<run>/checkpoint`` if there is one: (steps done, diagnostics history)."""
    ckpt = run.path / "checkpoint"
    if not has_checkpoint(ckpt):
        return 0, []
    start, extra = load_checkpoint(ckpt, student=student, optimizer=optimizer, scheduler=scheduler,
                                   sharded=sharded)
    schedule.load_state_dict(extra.get("schedule", {}))
    evals.evals = extra.get("evals", [])
    evals.reference_accuracy = extra.get("reference_accuracy", evals.reference_accuracy)
    return start, extra.get("history", [])


def step_record(merged: dict[str, Any], grad_norm, lr: float) -> dict[str, Any]:
    """A step's numbers about all processes' rollouts, its update and where its time went (``step_stats.merge``)."""
    lengths, times = merged["lengths"], merged["times"]
    n = max(len(lengths), 1)
    tokens = int(sum(lengths))
    return {
        "grad_norm": float(grad_norm), "lr": lr,
        "response_length": sum(lengths) / n,
        "stop_rate": sum(merged["stops"]) / n,
        "rollouts": len(lengths), "tokens": tokens,
        "time_rollout": round(times["rollout"], 3), "time_update": round(times["update"], 3),
        "time_teacher": round(times.get("teacher", 0.0), 3), "time_loss": round(times.get("loss", 0.0), 3),
        "time_optimizer": round(times["optimizer"], 3),
        "tokens_per_s": tokens / max(times["step"], 1e-9),
    }


def _log_rewards(record: dict[str, Any], merged: dict[str, Any], evals: Evaluations) -> None:
    """The sequence reward, and with a verifier the rollouts' accuracy and the reward's AUROC for it."""
    from lyceum.train.diagnostics import auroc

    seq_reward = torch.tensor(merged["seq_reward"], dtype=torch.float32)
    if not torch.isnan(seq_reward).all():
        record["sequence_reward"] = float(seq_reward.nanmean())
    if merged["rewards"] is None:
        return
    rewards = torch.tensor(merged["rewards"], dtype=torch.float32)
    record["train_accuracy"] = float(rewards.mean())
    have = ~torch.isnan(seq_reward)
    if have.any():
        correct = (rewards[have] >= 0.5).tolist()
        record["auroc"] = auroc(seq_reward[have].tolist(), correct)
        evals.pool(seq_reward[have].tolist(), correct)


def accumulate_gradients(student: LocalLM, ro: Rollouts, feedback: Feedback, objective: Objective, *,
                         vocab: int, micro_batch_size: int, autocast=nullcontext, diagnostics_k: int = 16,
                         times: dict[str, float] | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """Backpropagate the step's loss, one micro-batch at a time (gradients add up in ``.grad``).

    Each micro-batch's loss is weighted by its share of the step's loss units (``objective.unit``: response
    tokens for a token mean, the default; rollouts for a sequence mean such as GSPO's), so the accumulated
    gradient is that of the whole step's loss whatever the micro-batch size. With a teacher in the feedback
    and ``diagnostics_k`` > 0 it also computes the token diagnostics and each rollout's sequence-mean reward
    mean_t(log q - log p) (nan where not computed), from the scan the OPD loss reads off its own chunk loop.
    Returns (weighted stats, rewards); ``times`` receives the seconds spent in the teacher (``teacher``) and
    in the student's forward, loss and backward (``loss``).
    """
    sums, weights, seq_reward = accumulate_sums(student, ro, feedback, objective, vocab=vocab,
                                                micro_batch_size=micro_batch_size, autocast=autocast,
                                                diagnostics_k=diagnostics_k, times=times)
    return {k: v / weights[k] for k, v in sums.items() if weights[k] > 0}, seq_reward


def accumulate_sums(student: LocalLM, ro: Rollouts, feedback: Feedback, objective: Objective, *, vocab: int,
                    micro_batch_size: int, autocast=nullcontext, diagnostics_k: int = 16,
                    times: dict[str, float] | None = None, totals: dict[str, float] | None = None,
                    scale: float = 1.0, forward=None) -> tuple[dict[str, float], dict[str, float], torch.Tensor]:
    """``accumulate_gradients`` before its stats are normalised: (share-weighted stat sums, shares, rewards).

    ``totals`` are the step's loss units over every process (``step_stats.global_units``; default this
    process's), ``scale`` multiplies every loss (the number of processes, whose gradients are averaged), and
    ``forward(fn)`` runs a micro-batch's forward (``fsdp.Sharded.forward``: inside the FSDP root, which then
    also holds the diagnostics scan, as the gathered weights are released by the backward).
    """
    times = {} if times is None else times
    totals = totals or units(ro.samples.mask)
    unit = getattr(objective, "unit", "token")
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    seq_reward = torch.full((len(ro),), math.nan)

    def add(stats: dict[str, float], w: float) -> None:
        for k, v in stats.items():
            if k != "tokens" and not math.isnan(v):
                sums[k] = sums.get(k, 0.0) + w * v
                weights[k] = weights.get(k, 0.0) + w

    for mb in micro_batches(ro, micro_batch_size):
        mb = mb.to(student.device)
        mb.share = {u: v / max(totals[u], 1) for u, v in units(mb.response_mask).items()}

        kept: dict[str, Any] = {}  # what the scan after the backward needs (kept out of FSDP's output hooks)

        def compute(mb=mb, kept=kept):
            t0 = time.time()
            with autocast():
                hidden = student.hidden_states(mb.ids, mb.mask, **mb.body_inputs())[:, mb.start - 1: -1]
            src = head_source(student, hidden, vocab)
            t1 = time.time()
            # a served teacher asked for log q at the student's top-k ids reads them off the student's head
            signal = feedback(mb, student=src) if getattr(feedback, "needs_student", False) else feedback(mb)
            t2 = time.time()
            want = diagnostics_k if signal.teacher is not None else 0
            with autocast():
                loss, stats, scan = objective(src, mb, signal, want)
            if want and scan is None and forward is not None:
                scan = token_scan(src, signal.teacher, mb.tokens, mb.response_mask, want)
            kept.update(src=src, signal=signal, want=want)
            return loss, stats, scan, (t0, t1, t2)

        loss, stats, scan, (t0, t1, t2) = forward(compute) if forward else compute()
        src, signal, want = kept["src"], kept["signal"], kept["want"]
        (loss * (mb.share[unit] * scale)).backward()
        diagnostics: dict[str, float] = {}
        if want:
            if scan is None:  # the objective did not scan the teacher (a policy loss): one pass of its own
                scan = token_scan(src, signal.teacher, mb.tokens, mb.response_mask, want)
            diagnostics = scan.diagnostics()
            seq_reward[mb.index.cpu()] = scan.sequence_reward().float().cpu()
        times["teacher"] = times.get("teacher", 0.0) + t2 - t1
        times["loss"] = times.get("loss", 0.0) + (t1 - t0) + (time.time() - t2)
        add({k: v for k, v in stats.items() if k not in diagnostics}, mb.share[unit])
        add(diagnostics, mb.share["token"])
    return sums, weights, seq_reward


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
