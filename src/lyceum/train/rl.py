"""Curriculum RL with a verifier on the on-policy engine (the P1-VL recipe): same loop, different feedback.

    result = rl_train("models/student", "prompts.jsonl", "runs/rl", RLConfig(verifier="lab", loss="gspo"))

What happens, top to bottom:
1. the student answers every prompt ``pass_rate_k`` times; prompts it always solves (> ``max_pass_rate``)
   or never solves are dropped (``curriculum.filter_by_pass_rate``); the pool is saved in the run folder;
2. the pool is cut into difficulty buckets, easiest first (a row field such as the lab's ``digits``, or the
   pass rate);
3. ``engine.train`` runs with a ``Curriculum`` as the prompt schedule, the verifier as feedback (reward =
   mean over sub-answers, group-normalised advantages) and a GRPO/GSPO objective; the curriculum opens the
   next bucket when the training reward crosses the stage threshold, with the stage's group size and length;
4. per-stage summaries (reward, zero-variance group share, response length) go to ``curriculum.json``.

Optional: a KL term to a frozen copy of the starting student (``kl_coef``; with LoRA the base weights with
adapters off, no copy), sequence-level masked importance
sampling against the sampler's log-probs (``mis_low``/``mis_high``, for rollouts from another engine), and
mixed feedback (``teacher`` + ``teacher_coef``): the OPD loss of the teacher added to the policy loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.train.config import RLConfig, number_list
from lyceum.train.curriculum import build_curriculum, estimate_pass_rates
from lyceum.train.objectives import rl_objective
from lyceum.train.rl_report import plot_rl, stage_table, write_rl_report

# RLConfig, rl_objective, the curriculum set-up and the report moved to their own modules; these names stay
# importable from here for callers of the one-module version
__all__ = ["RLConfig", "RLResult", "build_curriculum", "estimate_pass_rates", "plot_rl", "rl_objective", "rl_train",
           "stage_table", "write_rl_report"]


# ---------------------------------------------------------------------------------------------------------
# the run


@dataclass
class RLResult:
    train: Any  # engine.TrainResult
    curriculum: Any  # the Curriculum (its stage summaries)
    filter: dict[str, int] | None  # what pass-rate filtering kept

    @property
    def run(self):
        return self.train.run


def rl_train(student: str | Path | Any, prompts: str | Path | list[dict], out: str | Path,
             cfg: RLConfig | None = None, *, eval_rows: str | Path | list[dict] | None = None,
             teacher: str | Path | Any | None = None, resume: bool = True, desc: str = "rl") -> RLResult:
    """RL-train ``student`` (a model folder or a loaded ``LocalLM``, trained in place) on ``prompts``."""
    from lyceum.models.local import LocalLM, check_pair, load_local
    from lyceum.models.vlm import freeze_student_vision
    from lyceum.runs import RunDir, read_jsonl, write_jsonl
    from lyceum.train.checkpoint import has_checkpoint
    from lyceum.train.curriculum import filter_by_pass_rate
    from lyceum.train.devices import autocast_for, init_distributed, pick_device, uses_bf16
    from lyceum.train.engine import train
    from lyceum.train.feedback import MixedFeedback, ServedTeacherFeedback, TeacherFeedback, VerifierFeedback
    from lyceum.train.rollout import check_images_fit
    from lyceum.train.schedules import load_prompts
    from lyceum.train.served_rollouts import sampler_for_run
    from lyceum.train.served_teacher import describe, is_served
    from lyceum.train.verifiers import get_verifier

    cfg = cfg or RLConfig()
    if not cfg.verifier:
        raise UserError("RL needs a verifier to reward the answers; set verifier (e.g. --verifier lab)")
    if cfg.teacher_coef and teacher is None:
        raise UserError("teacher_coef > 0 (mixed feedback) needs a teacher model (--teacher or --teacher-url)")
    served = None
    if is_served(teacher) and cfg.teacher_coef:  # refuses a support the server cannot answer, before loading
        served = ServedTeacherFeedback(teacher, 0, support=cfg.support, k=cfg.k,
                                       diagnostics_k=cfg.diagnostics_k if cfg.diagnostics_every else 0)
    verifier = get_verifier(cfg.verifier)
    device = pick_device(cfg)
    dist = init_distributed(device)
    autocast = autocast_for(cfg, device)
    rows = prompts if isinstance(prompts, list) else load_prompts(prompts)
    evals = eval_rows if isinstance(eval_rows, list) or eval_rows is None else load_prompts(eval_rows)
    run = RunDir.open(out, {"student": str(student) if not isinstance(student, LocalLM) else "(in memory)",
                         "teacher": None if teacher is None else describe(teacher),
                         "prompts": str(prompts) if not isinstance(prompts, list) else f"{len(rows)} rows",
                         **vars(cfg)})
    s = student if isinstance(student, LocalLM) else load_local(student, device=device, dtype="fp32")
    frozen = freeze_student_vision(s, cfg.freeze_vision)  # before the optimizer collects what trains
    if frozen and dist.main:
        run.log(f"vision encoder {'frozen' if cfg.freeze_vision else 'trained'}: {frozen['trainable']:,} "
                f"trainable and {frozen['frozen']:,} frozen parameters")
    check_images_fit(s, rows + (evals or []))
    vocab = s.vocab_size
    t = None
    if served is not None:
        served.vocab = vocab
    elif teacher is not None and cfg.teacher_coef:
        t = teacher if isinstance(teacher, LocalLM) else load_local(
            teacher, device=device, dtype="bf16" if uses_bf16(cfg, device) else "fp32")
        vocab = check_pair(s, t)
    # the reference for the KL term is the starting student, frozen: load it before any update. With LoRA it
    # is the student itself with its adapters switched off (objectives.reference_logprobs), not a second copy
    reference = None
    if cfg.kl_coef and cfg.lora_r:
        reference = s
    elif cfg.kl_coef:
        import copy

        reference = copy.deepcopy(s)
        reference.model.eval().requires_grad_(False)

    # 1. pass-rate filtering, once per run (a resumed run reads the pool it saved)
    pool_file, filter_file = run.path / "pool.jsonl", run.path / "pass_rates.json"
    resuming = resume and has_checkpoint(run.path / "checkpoint")
    report = None
    if resuming and pool_file.exists():
        pool = read_jsonl(pool_file)
        report = json.loads(filter_file.read_text()) if filter_file.exists() else None
    elif cfg.pass_rate_k:
        # the longest budget of the run, so a hard prompt is not judged unsolved for being cut short
        longest = int(max(number_list(cfg.stage_max_new_tokens, "stage_max_new_tokens") or [cfg.max_new_tokens]))
        rates = estimate_pass_rates(s, rows, verifier, k=cfg.pass_rate_k, max_new_tokens=longest,
                                    seed=cfg.seed, batch_size=cfg.eval_batch_size, autocast=autocast)
        pool, rep = filter_by_pass_rate(rows, rates, max_rate=cfg.max_pass_rate, drop_unsolved=cfg.drop_unsolved)
        report = {"kept": rep.kept, "too_easy": rep.too_easy, "unsolved": rep.unsolved, "total": rep.total,
                  "rollouts": rep.total * cfg.pass_rate_k}
        if dist.main:
            write_jsonl(pool_file, pool)
            run.write_json("pass_rates.json", report)
            run.log("pass-rate filter: " + rep.summary())
    else:
        pool = rows

    # 2-3. curriculum + engine
    schedule = build_curriculum(pool, cfg, rank=dist.rank, world_size=dist.world_size)
    curriculum = schedule
    if cfg.length_schedule:  # a step-based length schedule overrides the stages' lengths
        from lyceum.train.recipes.length import LengthSchedule

        schedule = LengthSchedule(schedule, cfg.length_schedule)
    feedback = VerifierFeedback(verifier, scale_by_std=cfg.scale_by_std)
    if t is not None:
        feedback = MixedFeedback(feedback, TeacherFeedback(t, vocab, autocast))
    elif served is not None:
        feedback = MixedFeedback(feedback, served)
    result = train(s, feedback, schedule, cfg, run, objective=rl_objective(cfg, reference=reference, vocab=vocab),
                   vocab=vocab, eval_rows=evals, verifier=verifier, autocast=autocast, dist=dist,
                   resume=resume, desc=desc, sampler=sampler_for_run(cfg, s, run, dist))
    # 4. per-stage summaries
    if dist.main:
        run.write_json("curriculum.json", {"filter": report, "stages": curriculum.stage_summaries()})
    return RLResult(result, curriculum, report)


