"""On-policy distillation of a local student from a local or served teacher: the engine with a teacher as feedback.

    result = distill("models/student", "models/teacher", "prompts.jsonl", "runs/opd", OPDConfig(steps=200),
                     eval_rows=load_prompts("eval.jsonl"))
    result.accuracy_before, result.accuracy_after, result.gap_recovery

The student trains in float32 (bf16 autocast on a GPU); the teacher is loaded in bf16 on a GPU and never
receives a gradient. Both must share one tokenizer (checked up front).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.runs import RunDir
from lyceum.train.config import OPDConfig
from lyceum.train.devices import autocast_for, init_distributed, pick_device, uses_bf16
from lyceum.train.engine import TrainResult, train
from lyceum.train.objectives import opd_objective
from lyceum.train.rollout import evaluate
from lyceum.train.schedules import load_prompts, make_schedule
from lyceum.train.served_rollouts import sampler_for_run


def distill(student: str | Path, teacher: str | Path | Any, prompts: str | Path | list[dict], out: str | Path,
            cfg: OPDConfig | None = None, *, eval_rows: str | Path | list[dict] | None = None,
            resume: bool = True, desc: str = "distill") -> TrainResult:
    """Distil ``teacher`` into ``student`` (model folders) on ``prompts``; the run goes to ``out``.

    ``teacher`` may also be a served teacher's client (``served_teacher.served_teacher(url, engine=...)``): its
    log-probs then come from the server (``feedback.ServedTeacherFeedback``) and no teacher is loaded here."""
    from lyceum.models.local import check_pair, load_local
    from lyceum.models.vlm import freeze_student_vision
    from lyceum.train.checkpoint import has_checkpoint
    from lyceum.train.feedback import ServedTeacherFeedback, TeacherFeedback
    from lyceum.train.rollout import check_images_fit
    from lyceum.train.served_teacher import describe, is_served

    cfg = cfg or OPDConfig()
    objective = opd_objective(cfg)
    served = None
    if is_served(teacher):  # refuses a support the server cannot answer before anything loads
        served = ServedTeacherFeedback(teacher, 0, support=cfg.support, k=cfg.k,
                                       diagnostics_k=cfg.diagnostics_k if cfg.diagnostics_every else 0)
    device = pick_device(cfg)
    dist = init_distributed(device)
    autocast = autocast_for(cfg, device)
    rows = prompts if isinstance(prompts, list) else load_prompts(prompts)
    evals = eval_rows if isinstance(eval_rows, list) or eval_rows is None else load_prompts(eval_rows)
    verifier = None
    if cfg.verifier:
        from lyceum.train.verifiers import get_verifier

        verifier = get_verifier(cfg.verifier)
    if evals and verifier is None:
        raise UserError("evaluation prompts need a verifier to grade them; set verifier (e.g. --verifier lab)")

    run = RunDir.open(out, {"student": str(student), "teacher": describe(teacher),
                         "prompts": str(prompts) if not isinstance(prompts, list) else f"{len(rows)} rows",
                         **vars(cfg)}, fresh=not resume and dist.main)
    resuming = resume and has_checkpoint(run.path / "checkpoint")
    # a resumed run continues from the checkpoint's weights, which load_checkpoint puts in place
    s = load_local(student, device=device, dtype="fp32")
    frozen = freeze_student_vision(s, cfg.freeze_vision)  # before the optimizer collects what trains
    if frozen and dist.main:
        run.log(f"vision encoder {'frozen' if cfg.freeze_vision else 'trained'}: {frozen['trainable']:,} "
                f"trainable and {frozen['frozen']:,} frozen parameters")
    check_images_fit(s, rows + (evals or []))
    if served is not None:
        from lyceum.models.served import ServedSampler

        t = ServedSampler(teacher, s)  # the teacher's own answers (evaluation) come from the server too
        vocab = served.vocab = s.vocab_size
        feedback = served
    else:
        t = load_local(teacher, device=device, dtype="bf16" if uses_bf16(cfg, device) else "fp32")
        vocab = check_pair(s, t)
        feedback = TeacherFeedback(t, vocab, autocast)
    check_images_fit(t, rows + (evals or []))  # a served teacher refuses image rows until it can send them

    teacher_accuracy = None
    if evals and verifier and dist.main and not resuming:
        t_eval = evaluate(t, evals, verifier, max_new_tokens=cfg.eval_max_new_tokens or cfg.max_new_tokens,
                          batch_size=cfg.eval_batch_size, autocast=autocast)
        teacher_accuracy = t_eval["accuracy"]
        run.log_metrics({"event": "eval_teacher", "step": 0, **t_eval})
    schedule = make_schedule(cfg.schedule, rows, prompts_per_step=cfg.prompts_per_step, group_size=cfg.n,
                             max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, rank=dist.rank,
                             world_size=dist.world_size)
    if cfg.length_schedule:
        from lyceum.train.recipes.length import LengthSchedule

        schedule = LengthSchedule(schedule, cfg.length_schedule)
    return train(s, feedback, schedule, cfg, run, objective=objective,
                 vocab=vocab, eval_rows=evals, verifier=verifier, reference_accuracy=teacher_accuracy,
                 autocast=autocast, dist=dist, resume=resume, desc=desc, sampler=sampler_for_run(cfg, s, run, dist))

