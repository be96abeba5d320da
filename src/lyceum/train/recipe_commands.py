"""`lyceum distill cold-start` and `lyceum distill select-prompts`: the recovery recipes as commands.

``register_recipes(verbs)`` adds both verbs to the distill system. Nothing heavy is imported here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

COLD_START_HELP = {
    "samples_per_prompt": "teacher responses sampled per prompt (M)",
    "sample_temperature": "temperature of the teacher's samples",
    "sample_max_new_tokens": "max length of the teacher's samples (0: --max-new-tokens)",
    "sample_prompts": "teacher-sample only the first N prompts (0: all)",
    "min_reward": "keep a teacher sample whose verifier reward is at least this",
    "require_stop": "keep only teacher samples that ended by themselves",
    "sft_steps": "SFT steps on the kept samples", "sft_lr": "SFT learning rate",
    "sft_batch_size": "SFT batch size", "sft_warmup_steps": "SFT warm-up steps",
    "verifier": "verifier that accepts teacher samples (e.g. lab)",
}


def register_recipes(verbs) -> None:
    from lyceum.train.config import HELP
    from lyceum.train.config_flags import add_config_flags
    from lyceum.train.recipes.cold_start import ColdStartConfig
    from lyceum.train.served_teacher import add_teacher_flags

    p = verbs.add_parser(
        "cold-start", help="recipe: SFT the student on verified teacher samples, then distil on-policy",
        description="Off-policy cold start for a student whose thinking pattern differs from the teacher's: the "
                    "teacher answers every prompt M times, the verifier keeps the correct answers (kept/total is "
                    "logged), the student is SFT-ed on them, then on-policy distillation continues from that "
                    "checkpoint. Each stage is skipped when the run folder shows it finished, so rerunning the "
                    "command resumes.")
    p.add_argument("--student", required=True, help="student model folder (HF format)")
    p.add_argument("--teacher", help="teacher model folder (same tokenizer); or --teacher-url")
    p.add_argument("--prompts", required=True, help="prompt file (JSONL with 'prompt' + what the verifier needs)")
    p.add_argument("--eval-prompts", help="held-out prompts graded before and after the OPD stage")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/cold-start (rerun to resume)")
    p.add_argument("--config", help="YAML/JSON file of settings")
    add_config_flags(p, ColdStartConfig, {**HELP, **COLD_START_HELP})
    add_teacher_flags(p)
    p.set_defaults(func=cmd_cold_start)

    p = verbs.add_parser(
        "select-prompts", help="recipe: teacher-aligned prompts (teacher template + diagnostics-based selection)",
        description="Re-wrap candidate prompts in the teacher's own template, then score each by the "
                    "teacher-student diagnostics on a few student rollouts (top-k overlap ratio and mass) and by "
                    "the teacher's likelihood of the prompt; keep the top fraction and mix in a share of the "
                    "rest as out-of-distribution prompts. Writes prompts.jsonl and a table explaining the choice.")
    p.add_argument("--student", required=True, help="student model folder")
    p.add_argument("--teacher", help="teacher model folder (same tokenizer); or --teacher-url")
    p.add_argument("--prompts", required=True, help="candidate prompt pool (JSONL with 'prompt', or one per line)")
    p.add_argument("--out", required=True, help="output folder for prompts.jsonl, selection.md, selection.jsonl")
    p.add_argument("--template", help="teacher template: lab:<name>, chat, or a format string with {question}")
    p.add_argument("--keep-fraction", type=float, default=0.5, help="share of candidates kept (default 0.5)")
    p.add_argument("--ood-share", type=float, default=0.1,
                   help="share of the kept prompts drawn from the rest of the pool (default 0.1)")
    p.add_argument("--weights", default="",
                   help="signal weights, e.g. overlap_ratio=1,overlap_mass=1,teacher_logprob=0.5 (default all 1)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N candidates (default all)")
    p.add_argument("--n", type=int, default=2, help="student rollouts per candidate (default 2)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="length of those rollouts (default 64)")
    p.add_argument("--k", type=int, default=16, help="top-k of the overlap diagnostics (default 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    add_teacher_flags(p)
    p.set_defaults(func=cmd_select_prompts)


def cmd_cold_start(args: argparse.Namespace) -> int:
    from lyceum.tables import markdown_table
    from lyceum.train.config_flags import config_from_args
    from lyceum.train.recipes.cold_start import ColdStartConfig, cold_start
    from lyceum.train.report import summary_rows
    from lyceum.train.served_teacher import teacher_from_args

    cfg = config_from_args(args, ColdStartConfig)
    teacher = teacher_from_args(args) or args.teacher
    result = cold_start(args.student, teacher, args.prompts, args.out, cfg, eval_rows=args.eval_prompts)
    if result.skipped:
        print(f"resumed: {', '.join(result.skipped)} already done")
    print(f"teacher samples kept: {result.kept}/{result.total} ({100 * result.kept_ratio:.1f}%)")
    print(f"SFT response loss: {result.sft_loss_before:.4f} -> {result.sft_loss_after:.4f}")
    rows = summary_rows(result.opd)
    if rows:
        print(markdown_table(["OPD stage", "before / initial", "after / final"], rows))
    print(f"\nrun folder: {result.run.path}  (student: {result.run.path / 'opd' / 'checkpoint' / 'model'})")
    return 0


def parse_weights(text: str) -> dict[str, float]:
    from lyceum.errors import UserError

    out = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"a weight is written NAME=NUMBER, got {part!r}") from None
    return out


def cmd_select_prompts(args: argparse.Namespace) -> int:
    from lyceum.errors import UserError
    from lyceum.models.local import load_local
    from lyceum.runs import write_jsonl
    from lyceum.train.recipes.select_prompts import align_template, score_prompts, select, selection_table
    from lyceum.train.schedules import load_prompts

    if args.limit < 0 or args.n < 1 or args.max_new_tokens < 1 or args.k < 1:
        raise UserError("--limit must be >= 0 and --n, --max-new-tokens, --k at least 1")
    from lyceum.train.served_teacher import teacher_from_args

    weights = parse_weights(args.weights)
    served = teacher_from_args(args)
    rows = load_prompts(args.prompts)
    rows = rows[:args.limit] if args.limit else rows
    student = load_local(args.student, device=args.device)
    teacher = served or load_local(args.teacher, device=args.device)
    if args.template:  # a served teacher shares the student's tokenizer (and so its chat template)
        rows = align_template(rows, args.template, tokenizer=student.tokenizer if served else teacher.tokenizer)
    scores = score_prompts(student, teacher, rows, n=args.n, max_new_tokens=args.max_new_tokens, k=args.k,
                           seed=args.seed, weights=weights)
    kept = select(scores, keep_fraction=args.keep_fraction, ood_share=args.ood_share, seed=args.seed)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "prompts.jsonl", [{**rows[s.index], "selection": s.selected, "selection_score": s.score}
                                        for s in kept])
    write_jsonl(out / "selection.jsonl", [s.to_dict() for s in sorted(scores, key=lambda s: s.rank)])
    n_top = sum(s.selected == "top" for s in kept)
    wrapped = f", re-wrapped in the teacher's template `{args.template}`" if args.template else ""
    weights_text = f"weights {weights}" if weights else "equal weights"
    explanation = [
        "# Teacher-aligned prompt selection", "",
        (f"{len(scores)} candidates{wrapped}. Kept {len(kept)}: the {n_top} best by score and {len(kept) - n_top} "
        f"drawn at random from the rest (the out-of-distribution share, {args.ood_share:g})."), "",
        (f"Signals per prompt, from the student's own rollouts scored by the teacher (PAPERS.md §1): *overlap "
        f"ratio* = |top-{args.k}(student) ∩ top-{args.k}(teacher)| / {args.k}; *overlap mass* = the student's "
        f"probability on the shared tokens; *teacher log-prob* = the teacher's mean log-likelihood per prompt "
        f"token (how familiar the prompt looks to the teacher). Score = the weighted mean of each signal's "
        f"percentile rank in the pool ({weights_text})."), "",
        selection_table(scores), ""]
    (out / "selection.md").write_text("\n".join(explanation))
    print(selection_table(scores, max_rows=20))
    print(f"\nkept {len(kept)} of {len(scores)} prompts -> {out / 'prompts.jsonl'} (why: {out / 'selection.md'})")
    return 0
