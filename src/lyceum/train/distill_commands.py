"""`lyceum distill ...`: train (on-policy distillation), probe (preflight teacher fit); `distill demo` is the lab's
(registered by ``lyceum.lab.commands.register_demo``).

Nothing heavy is imported here; each handler imports torch/transformers when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lyceum.train.config import HELP, OPDConfig
from lyceum.train.config_flags import add_config_flags, config_from_args
from lyceum.train.data_flags import add_data_flags, prompt_rows
from lyceum.train.served_teacher import add_teacher_flags, teacher_from_args

# longer spellings, e.g. for launchers (torchrun, accelerate) whose own flags would swallow an abbreviation
ALIASES = {"n": ["--rollouts-per-prompt"]}


def register(verbs) -> None:
    p = verbs.add_parser("train", help="on-policy distillation of a local student from a local teacher",
                         description="Distil a teacher into a student on-policy: the student answers the prompts, "
                                     "the teacher scores every token of its answers, the student follows the "
                                     "per-token reverse KL. Both are local Hugging Face model folders sharing "
                                     "one tokenizer. Several GPUs: `accelerate launch -m lyceum distill train ...`.")
    p.add_argument("--student", required=True, help="student model folder (HF format)")
    p.add_argument("--teacher", help="teacher model folder (HF format, same tokenizer); or --teacher-url")
    p.add_argument("--prompts", help="prompt file: JSONL with a 'prompt' field (and 'images'), or one per line; "
                                      "or use --data")
    p.add_argument("--eval-prompts", help="held-out prompts graded by --verifier before, during and after")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/my-run (an existing run resumes)")
    p.add_argument("--config", help="YAML/JSON file of training settings")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out and start over")
    add_config_flags(p, OPDConfig, HELP, ALIASES)
    add_teacher_flags(p)
    add_data_flags(p)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("probe", help="score student rollouts under each candidate teacher before training",
                         description="Preflight probe: the student answers the prompts, each teacher scores the "
                                     "student's tokens, and the paper's diagnostics (top-k overlap, overlap mass, "
                                     "entropy gap, ...) say which teacher fits, in plain words.")
    p.add_argument("--student", required=True, help="student model folder")
    p.add_argument("--teacher", action="append", help="teacher model folder (repeat for several); or --teacher-url")
    p.add_argument("--prompts", required=True, help="prompt file (JSONL with 'prompt', or one per line)")
    p.add_argument("--limit", type=int, default=64, help="use the first N prompts (default 64)")
    p.add_argument("--n", type=int, default=4, help="rollouts per prompt (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="maximum response length (default 256)")
    p.add_argument("--k", type=int, default=16, help="top-k of the overlap diagnostics (default 16)")
    p.add_argument("--verifier", help="verifier for accuracy and reward AUROC (e.g. lab)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the results as JSON to this file")
    add_teacher_flags(p)
    p.set_defaults(func=cmd_probe)

    p = verbs.add_parser("merge", help="fold a LoRA run's adapters into its base model (a plain HF folder)",
                         description="Merge the LoRA adapters a run trained (--lora-r) into the base model they were "
                                     "trained on and save a plain Hugging Face model folder, loadable without "
                                     "peft. Works for `distill train` and `rl train` runs alike.")
    p.add_argument("--adapter", required=True, help="a LoRA run folder, or its checkpoint/adapter folder")
    p.add_argument("--out", required=True, help="folder for the merged model")
    p.add_argument("--base", help="base model folder (default: the one recorded in adapter_config.json)")
    p.set_defaults(func=cmd_merge)

    from lyceum.train.recipe_commands import register_recipes  # cold-start, select-prompts (issue 6)

    register_recipes(verbs)


def cmd_train(args: argparse.Namespace) -> int:
    from lyceum.models.vlm import is_vision_model
    from lyceum.tables import markdown_table
    from lyceum.train.distill import distill
    from lyceum.train.report import plot_run, summary_rows, write_report

    cfg = config_from_args(args, OPDConfig)
    prompts, eval_prompts, cfg, notes = prompt_rows(args, cfg, images=is_vision_model(args.student))
    for line in notes:
        print(line)
    teacher = teacher_from_args(args) or args.teacher
    result = distill(args.student, teacher, prompts, args.out, cfg, eval_rows=eval_prompts,
                     resume=not args.restart)
    if not result.main:
        return 0
    plots = plot_run(result.run)
    write_report(result.run, result, title=f"On-policy distillation: {Path(args.out).name}", plots=plots)
    print(markdown_table(["", "before / initial", "after / final"], summary_rows(result)))
    print(f"\nrun folder: {result.run.path}  ({trained_output(result.run.path, 'distilled student')})")
    return 0


def trained_output(run_path: Path, what: str) -> str:
    """Where a run's trained weights are: the model folder, or with LoRA the adapters and how to merge them."""
    adapter = run_path / "checkpoint" / "adapter"
    if adapter.is_dir():
        return f"LoRA adapters: {adapter}; merge: lyceum distill merge --adapter {run_path} --out MODEL_DIR"
    return f"{what}: {run_path / 'checkpoint' / 'model'}"


def cmd_merge(args: argparse.Namespace) -> int:
    from lyceum.train.lora import merge_adapter

    out = merge_adapter(args.adapter, args.out, base=args.base)
    print(f"merged model: {out}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from lyceum.errors import UserError
    from lyceum.models.local import load_local
    from lyceum.runs import write_jsonl
    from lyceum.train.probe import format_probe, probe
    from lyceum.train.schedules import load_prompts

    counts = {"--limit": args.limit, "--n": args.n, "--k": args.k, "--max-new-tokens": args.max_new_tokens}
    for flag, value in counts.items():
        if value < 1:  # checked before the models load (seconds to minutes)
            raise UserError(f"{flag} must be at least 1, got {value}")
    served = teacher_from_args(args, allow_both=True)
    rows = load_prompts(args.prompts)[: args.limit]
    student = load_local(args.student, device=args.device)
    teachers = {}
    if served is not None:
        from lyceum.train.served_teacher import describe

        teachers[describe(served)] = served
    for path in args.teacher or []:
        name = Path(path).name or str(path)
        while name in teachers:
            name += "'"
        teachers[name] = load_local(path, device=args.device)
    verify = None
    if args.verifier:
        from lyceum.train.verifiers import get_verifier, reward

        verifier = get_verifier(args.verifier)
        by_prompt = {r["prompt"]: r for r in rows}
        verify = lambda prompt, text: reward(verifier, by_prompt[prompt], text)
    results = probe(student, teachers, [r["prompt"] for r in rows], n=args.n, max_new_tokens=args.max_new_tokens,
                    k=args.k, seed=args.seed, verify=verify)
    print(format_probe(results))
    if args.out:
        write_jsonl(args.out, [r.to_dict() for r in results])
    return 0

