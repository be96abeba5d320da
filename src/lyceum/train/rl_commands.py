"""`lyceum rl train`: curriculum RL with a verifier, on the same on-policy engine as distillation.

Nothing heavy is imported here; the handler imports torch/transformers when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lyceum.train.config_flags import add_config_flags, config_from_args

# help for the RL settings; the engine's settings take their help from distill_commands.HELP
RL_HELP = {
    "loss": "grpo (token-level clipped ratio) or gspo (sequence-level, length-normalised ratio)",
    "clip_low": "lower clip range of the ratio (0: the loss's default, GRPO 0.2 / GSPO 3e-4)",
    "clip_high": "upper clip range of the ratio (0: the loss's default, GRPO 0.2 / GSPO 4e-4)",
    "scale_by_std": "divide advantages by the group std (false: Dr. GRPO)",
    "kl_coef": "weight of the k3 KL to the frozen starting student",
    "old": "behaviour log-probs: current (on-policy) or sampler (recorded while sampling)",
    "mis_low": "masked importance sampling: lower bound of the sequence ratio (both 0: off)",
    "mis_high": "masked importance sampling: upper bound of the sequence ratio",
    "teacher_coef": "mixed feedback: weight of the OPD teacher term (needs --teacher)",
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
    "verifier": "verifier that rewards answers: lab or olympiad",
}


def register(verbs) -> None:
    from lyceum.train.config import HELP, RLConfig

    p = verbs.add_parser(
        "train", help="curriculum RL (GRPO/GSPO) of a local model with a verifier",
        description="RL with verifier rewards on the on-policy engine: the pass-rate filter drops prompts the "
                    "model always or never solves, a curriculum starts on the easiest difficulty bucket and "
                    "opens harder ones as the training reward rises, and GRPO or GSPO updates the model on "
                    "group-normalised advantages. Optional: KL to the starting model, masked importance "
                    "sampling, and mixed feedback with a teacher's OPD term.")
    p.add_argument("--student", required=True, help="model folder to train (HF format)")
    p.add_argument("--prompts", required=True,
                   help="prompt file: JSONL rows with 'prompt' plus what the verifier needs (and a difficulty field)")
    p.add_argument("--eval-prompts", help="held-out prompts graded before, during and after training")
    p.add_argument("--teacher", help="teacher model folder for mixed feedback (with --teacher-coef)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/rl (an existing run resumes)")
    p.add_argument("--config", help="YAML/JSON file of settings")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out and start over")
    add_config_flags(p, RLConfig, {**HELP, **RL_HELP})
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from lyceum.tables import markdown_table
    from lyceum.train.config import RLConfig
    from lyceum.train.report import summary_rows
    from lyceum.train.rl import rl_train
    from lyceum.train.rl_report import stage_table, write_rl_report

    cfg = config_from_args(args, RLConfig)
    result = rl_train(args.student, args.prompts, args.out, cfg, eval_rows=args.eval_prompts,
                      teacher=args.teacher, resume=not args.restart)
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
    print(f"\nrun folder: {result.run.path}  (trained model: {result.run.path / 'checkpoint' / 'model'})")
    return 0
