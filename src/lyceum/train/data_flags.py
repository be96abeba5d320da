"""Where a training command's prompts come from: ``--prompts FILE`` or ``--data KIND DIR`` (+ exam filters).

Shared by `rl train` and `distill train`:

    lyceum rl train --student models/tiny-vl --data hipho ../shared/data/hipho --exams IPhO_2025 --out runs/rl

``--data hipho DIR`` turns the HiPhO exams in DIR into prompt rows with their diagrams (for a vision-language
student; a text student gets rows whose text says the figures are not shown), rewarded by the ``hipho``
verifier (the mean over sub-answers of the olympiad grader's verdicts) unless ``--verifier`` says otherwise,
with each problem's points as the curriculum's difficulty (3 buckets unless ``--n-buckets`` says otherwise; the
pass-rate filter, ``--pass-rate-k``, drops what the student always or never solves first). ``--eval-exams``
grades held-out exams of DIR (without ``--exams``, training uses every other exam).

Nothing heavy is imported here.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lyceum.errors import UserError

# curriculum buckets of a data set's difficulty (HiPhO: points) when --n-buckets is not given
DATA_BUCKETS = 3


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """``--data KIND DIR``, ``--exams``, ``--eval-exams``, ``--modality`` (``--prompts`` is the command's own)."""
    g = p.add_argument_group("prompts from a data set (instead of --prompts)")
    g.add_argument("--data", nargs=2, metavar=("KIND", "DIR"),
                   help="a data set folder as prompts: hipho DIR (HiPhO exams, with their diagrams)")
    g.add_argument("--exams", help="with --data: comma-separated exam names to train on (default: all)")
    g.add_argument("--eval-exams", help="with --data: comma-separated exam names graded as held-out evaluation")
    g.add_argument("--modality", action="append",
                   help="with --data hipho: keep one modality (repeatable), e.g. 'text+data figure'")


def prompt_rows(args: argparse.Namespace, cfg: Any, *, images: bool) -> tuple[Any, Any, Any, list[str]]:
    """(prompts, eval prompts, cfg, log lines) from the flags: a file path or data-set rows for each.

    ``images``: whether the student takes images (data-set rows then carry them). With ``--data`` and no
    verifier set, the data set's verifier is used (``cfg`` is returned updated).
    """
    from lyceum.train.schedules import DATA_VERIFIERS, load_data

    data = getattr(args, "data", None)
    if data is None:
        for flag in ("exams", "eval_exams", "modality"):
            if getattr(args, flag, None):
                raise UserError(f"--{flag.replace('_', '-')} filters a data set; give it with --data KIND DIR")
        if not args.prompts:
            raise UserError("give the prompts: --prompts FILE, or --data KIND DIR (e.g. --data hipho DIR)")
        return args.prompts, args.eval_prompts, cfg, []
    if args.prompts:
        raise UserError("give either --prompts or --data, not both")
    kind, folder = data
    rows, summary = load_data(kind, folder, exams=args.exams, modalities=args.modality, images=images)
    notes = [f"{kind} training prompts: {summary}"]
    evals = args.eval_prompts
    if args.eval_exams:
        if evals:
            raise UserError("give either --eval-prompts or --eval-exams, not both")
        held_out = {e.strip() for e in args.eval_exams.split(",") if e.strip()}
        overlap = sorted({r.get("exam") for r in rows} & held_out)
        if overlap and args.exams:
            raise UserError(f"exam {overlap[0]} is both a training and an evaluation exam; hold it out of --exams")
        if overlap:  # no --exams: train on every exam but the held-out ones
            rows = [r for r in rows if r.get("exam") not in held_out]
            notes.append(f"held {', '.join(overlap)} out of training")
            if not rows:
                raise UserError("no training exam is left once the --eval-exams are held out")
        evals, eval_summary = load_data(kind, folder, exams=args.eval_exams, modalities=args.modality, images=images)
        notes.append(f"{kind} evaluation prompts: {eval_summary}")
    if not _given(args, "verifier"):
        cfg = dataclasses.replace(cfg, verifier=DATA_VERIFIERS.get(kind, cfg.verifier))
    if hasattr(cfg, "n_buckets") and not cfg.n_buckets and not _given(args, "n_buckets"):
        # HiPhO points take dozens of distinct values: a stage each would never reach the hard problems
        cfg = dataclasses.replace(cfg, n_buckets=DATA_BUCKETS)
        notes.append(f"curriculum: {DATA_BUCKETS} difficulty buckets by the problems' points (--n-buckets)")
    return rows, evals, cfg, notes


def _given(args: argparse.Namespace, name: str) -> bool:
    """Whether the user set a setting, by flag or in the --config file."""
    from lyceum.runs import load_config

    if f"cfg_{name}" in vars(args):
        return True
    return bool(getattr(args, "config", None)) and name in load_config(args.config)

