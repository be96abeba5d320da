"""`lyceum rl train`: curriculum RL with a verifier, on the same on-policy engine as distillation.

Nothing heavy is imported here; the handler imports torch/transformers when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lyceum.train.config_flags import add_config_flags, config_from_args
from lyceum.train.data_flags import add_data_flags, prompt_rows


def register(verbs) -> None:
    from lyceum.train.config import HELP, RL_HELP, RLConfig
    from lyceum.train.distill_commands import ALIASES

    p = verbs.add_parser(
        "train", help="curriculum RL (GRPO/GSPO) of a local model with a verifier",
        description="RL with verifier rewards on the on-policy engine: the pass-rate filter drops prompts the "
                    "model always or never solves, a curriculum starts on the easiest difficulty bucket and "
                    "opens harder ones as the training reward rises, and GRPO or GSPO updates the model on "
                    "group-normalised advantages. Optional: KL to the starting model, masked importance "
                    "sampling, and mixed feedback with a teacher's OPD term.")
    p.add_argument("--student", required=True, help="model folder to train (HF format)")
    p.add_argument("--prompts",
                   help="prompt file: JSONL rows with 'prompt' (and 'images'), what the verifier needs and a "
                        "difficulty field; or use --data")
    p.add_argument("--eval-prompts", help="held-out prompts graded before, during and after training")
    p.add_argument("--teacher", help="teacher model folder for mixed feedback (with --teacher-coef)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/rl (an existing run resumes)")
    p.add_argument("--config", help="YAML/JSON file of settings")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out and start over")
    add_config_flags(p, RLConfig, {**HELP, **RL_HELP}, ALIASES)  # --rollouts-per-prompt under torchrun
    from lyceum.train.served_teacher import add_teacher_flags

    add_teacher_flags(p, required_teacher=False)  # mixed feedback's teacher behind vLLM / SGLang
    add_data_flags(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from lyceum.models.vlm import is_vision_model
    from lyceum.tables import markdown_table
    from lyceum.train.config import RLConfig
    from lyceum.train.report import summary_rows
    from lyceum.train.rl import rl_train
    from lyceum.train.rl_report import stage_table, write_rl_report
    from lyceum.train.served_teacher import teacher_from_args

    cfg = config_from_args(args, RLConfig)
    prompts, eval_prompts, cfg, notes = prompt_rows(args, cfg, images=is_vision_model(args.student))
    for line in notes:
        print(line)
    result = rl_train(args.student, prompts, args.out, cfg, eval_rows=eval_prompts,
                      teacher=teacher_from_args(args) or args.teacher, resume=not args.restart)
    if not result.train.main:  # the other processes of a multi-process run: the first one reports
        return 0
    write_rl_report(result, title=f"Curriculum RL: {Path(args.out).name}")
    if result.filter:
        f = result.filter
        print(f"pass-rate filter: kept {f['kept']}/{f['total']} prompts "
              f"({f['too_easy']} too easy, {f['unsolved']} never solved)")
    print(stage_table(result.curriculum.stage_summaries()))
    rows = summary_rows(result.train)
    if rows:
        print()
        print(markdown_table(["", "before", "after"], rows))
    from lyceum.train.distill_commands import trained_output

    print(f"\nrun folder: {result.run.path}  ({trained_output(result.run.path, 'trained model')})")
    return 0
