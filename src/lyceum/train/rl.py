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

Optional: a KL term to a frozen copy of the starting student (``kl_coef``), sequence-level masked importance
sampling against the sampler's log-probs (``mis_low``/``mis_high``, for rollouts from another engine), and
mixed feedback (``teacher`` + ``teacher_coef``): the OPD loss of the teacher added to the policy loss.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.train.config import OPDConfig


@dataclass
class RLConfig(OPDConfig):
    """The engine's settings (``OPDConfig``) plus the RL ones. ``n`` is the group size without a curriculum."""

    lr: float = 1e-5
    verifier: str | None = "lab"
    # --- policy loss (lyceum.train.rl_losses)
    loss: str = "gspo"  # grpo | gspo
    clip_low: float = 0.0  # 0: the loss's default (GRPO 0.2; GSPO 3e-4)
    clip_high: float = 0.0  # 0: the loss's default (GRPO 0.2; GSPO 4e-4)
    scale_by_std: bool = True  # False: Dr. GRPO advantages (mean-centred only)
    kl_coef: float = 0.0  # k3 KL to a frozen copy of the starting student
    old: str = "current"  # behaviour log-probs: current (on-policy, ratio 1) | sampler (recorded at sampling)
    mis_low: float = 0.0  # sequence-level masked importance sampling bounds; both 0: off
    mis_high: float = 0.0
    teacher_coef: float = 0.0  # mixed feedback: weight of the OPD teacher term (needs a teacher)
    # --- curriculum (lyceum.train.curriculum)
    curriculum: bool = True  # False: uniform sampling over the whole filtered pool
    pass_rate_k: int = 8  # rollouts per prompt to estimate pass rates (0: no filtering)
    max_pass_rate: float = 0.7
    drop_unsolved: bool = True
    difficulty_key: str = "difficulty"  # row field giving difficulty (else the pass rate is used)
    n_buckets: int = 0  # 0: one bucket per distinct difficulty value (3 when using pass rates)
    thresholds: str = "0.6"  # per-stage reward that opens the next bucket (comma list; the last repeats)
    group_sizes: str = ""  # per-stage rollouts per prompt (comma list; empty: n)
    stage_max_new_tokens: str = ""  # per-stage max response length (comma list; empty: max_new_tokens)
    window: int = 4  # steps of training reward averaged before a stage may advance

    def __post_init__(self) -> None:
        super().__post_init__()
        from lyceum.train.rl_losses import LOSSES

        if self.loss not in LOSSES:
            raise UserError(f"unknown RL loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.old not in ("current", "sampler"):
            raise UserError(f"old must be current or sampler, got {self.old!r}")
        if (self.mis_low or self.mis_high) and not 0 <= self.mis_low < self.mis_high:
            raise UserError(f"masked importance sampling needs 0 <= mis_low < mis_high, got "
                            f"{self.mis_low} and {self.mis_high}")
        if self.pass_rate_k < 0 or self.window < 1 or self.n_buckets < 0:
            raise UserError("pass_rate_k and n_buckets must be >= 0 and window >= 1")
        for name in ("thresholds", "group_sizes", "stage_max_new_tokens"):
            _floats(getattr(self, name), name)

    @property
    def mis(self) -> tuple[float, float] | None:
        return (self.mis_low, self.mis_high) if self.mis_high else None


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None


# ---------------------------------------------------------------------------------------------------------
# objectives


def rl_objective(cfg: RLConfig, *, reference=None, vocab: int | None = None):
    """The policy objective of ``cfg`` (GRPO/GSPO, clip, KL to ``reference``, MIS), plus the OPD teacher term
    weighted by ``teacher_coef`` when the feedback also carries a teacher (mixed feedback)."""
    from lyceum.train.engine import opd_objective, policy_objective

    kw: dict[str, Any] = {}
    if cfg.kl_coef and reference is not None:
        kw.update(reference=reference, kl_coef=cfg.kl_coef, vocab=vocab)
    if cfg.mis:
        kw["mis"] = cfg.mis
    policy = policy_objective(cfg.loss, clip_low=cfg.clip_low or None, clip_high=cfg.clip_high or None,
                              old=cfg.old, **kw)
    if not cfg.teacher_coef:
        return policy
    opd = opd_objective(cfg)

    def mixed(student, mb, signal):
        loss, stats = policy(student, mb, signal)
        t_loss, t_stats = opd(student, mb, signal)
        total = loss + cfg.teacher_coef * t_loss
        return total, {**stats, "teacher_loss": t_stats["loss"], "policy_loss": float(loss.detach()),
                       "loss": float(total.detach())}

    return mixed


# ---------------------------------------------------------------------------------------------------------
# curriculum set-up


def estimate_pass_rates(student, rows: list[dict], verifier, *, k: int, max_new_tokens: int, seed: int = 0,
                        batch_size: int = 64, autocast=None) -> list[float]:
    """Each row's mean verifier reward over ``k`` sampled student responses (temperature 1)."""
    from contextlib import nullcontext

    from lyceum.runs import progress
    from lyceum.train.curriculum import pass_rates
    from lyceum.train.verifier_feedback import reward

    autocast = autocast or nullcontext
    per_call = max(1, batch_size // k)

    def generate(prompts: list[str], k: int) -> list[list[str]]:
        out: list[list[str]] = []
        chunks = [prompts[a:a + per_call] for a in range(0, len(prompts), per_call)]
        for c, chunk in enumerate(progress(chunks, desc="pass rates")):
            with autocast():
                s = student.sample(chunk, max_new_tokens, n=k, seed=seed + c)
            out += [s.texts[j * k:(j + 1) * k] for j in range(len(chunk))]
        return out

    return pass_rates(rows, generate, lambda row, text: reward(verifier, row, text), k)


def build_curriculum(rows: list[dict], cfg: RLConfig, *, rank: int = 0, world_size: int = 1):
    """Buckets from ``rows`` and the stages of ``cfg`` (or the uniform baseline when ``cfg.curriculum`` is off)."""
    from lyceum.train.curriculum import Curriculum, difficulty_buckets, stages_from_config

    buckets = difficulty_buckets(rows, key=cfg.difficulty_key, n_buckets=cfg.n_buckets or None)
    groups = [int(x) for x in _floats(cfg.group_sizes, "group_sizes")] or [cfg.n]
    lengths = [int(x) for x in _floats(cfg.stage_max_new_tokens, "stage_max_new_tokens")] or [cfg.max_new_tokens]
    common = {"prompts_per_step": cfg.prompts_per_step, "seed": cfg.seed, "rank": rank,
              "world_size": world_size}
    if not cfg.curriculum:
        return Curriculum.uniform(buckets, group_size=groups[0], max_new_tokens=lengths[0], **common)
    stages = stages_from_config(len(buckets), thresholds=_floats(cfg.thresholds, "thresholds") or [0.6],
                                group_sizes=groups, max_new_tokens=lengths)
    return Curriculum(buckets, stages, window=cfg.window, **common)


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
    from lyceum.runs import read_jsonl, write_jsonl
    from lyceum.train.checkpoint import has_checkpoint
    from lyceum.train.curriculum import filter_by_pass_rate
    from lyceum.train.distill import open_run
    from lyceum.train.engine import autocast_for, init_distributed, pick_device, train, uses_bf16
    from lyceum.train.feedback import MixedFeedback, TeacherFeedback, VerifierFeedback
    from lyceum.train.schedules import load_prompts
    from lyceum.train.verifier_feedback import get_verifier

    cfg = cfg or RLConfig()
    if not cfg.verifier:
        raise UserError("RL needs a verifier to reward the answers; set verifier (e.g. --verifier lab)")
    if cfg.teacher_coef and teacher is None:
        raise UserError("teacher_coef > 0 (mixed feedback) needs a teacher model (--teacher)")
    verifier = get_verifier(cfg.verifier)
    device = pick_device(cfg)
    dist = init_distributed(device)
    autocast = autocast_for(cfg, device)
    rows = prompts if isinstance(prompts, list) else load_prompts(prompts)
    evals = eval_rows if isinstance(eval_rows, list) or eval_rows is None else load_prompts(eval_rows)
    run = open_run(out, {"student": str(student) if not isinstance(student, LocalLM) else "(in memory)",
                         "teacher": None if teacher is None else str(teacher),
                         "prompts": str(prompts) if not isinstance(prompts, list) else f"{len(rows)} rows",
                         **vars(cfg)})
    s = student if isinstance(student, LocalLM) else load_local(student, device=device, dtype="fp32")
    vocab = s.vocab_size
    t = None
    if teacher is not None and cfg.teacher_coef:
        t = teacher if isinstance(teacher, LocalLM) else load_local(
            teacher, device=device, dtype="bf16" if uses_bf16(cfg, device) else "fp32")
        vocab = check_pair(s, t)
    # the reference for the KL term is the starting student, frozen: load it before any update
    reference = None
    if cfg.kl_coef:
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
        longest = int(max(_floats(cfg.stage_max_new_tokens, "stage_max_new_tokens") or [cfg.max_new_tokens]))
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
    result = train(s, feedback, schedule, cfg, run, objective=rl_objective(cfg, reference=reference, vocab=vocab),
                   vocab=vocab, eval_rows=evals, verifier=verifier, autocast=autocast, dist=dist,
                   resume=resume, desc=desc)
    # 4. per-stage summaries
    if dist.main:
        run.write_json("curriculum.json", {"filter": report, "stages": curriculum.stage_summaries()})
    return RLResult(result, curriculum, report)


def stage_table(stages: list[dict]) -> str:
    """The per-stage summary as a markdown table."""
    lines = ["| stage | open buckets | first step | steps | reward | zero-variance groups | response length |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for s in stages:
        cells = [s["stage"], s["open_buckets"], s["first_step"], s["steps"], s["reward"],
                 s["zero_variance_share"], s["response_length"]]
        lines.append("| " + " | ".join("-" if c is None else (f"{c:.3f}" if isinstance(c, float) else str(c))
                                       for c in cells) + " |")
    return "\n".join(lines)


def plot_rl(run, *, smooth: int = 5) -> list[Path]:
    """``reward.png``: training reward and zero-variance group share over steps, stage changes marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lyceum.tables import series as _series
    from lyceum.tables import smooth as _smooth

    rows = run.read_metrics()
    xs, ys = _series(rows, "reward")
    if not xs:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    (line,) = ax.plot(xs, _smooth(ys, smooth), label="training reward")
    ax.plot(xs, ys, color=line.get_color(), alpha=0.2, linewidth=0.8)
    zx, zy = _series(rows, "zero_variance_share")
    if zx:
        ax.plot(zx, _smooth(zy, smooth), label="zero-variance groups", linestyle=":")
    stages = [(r["step"], r["stage"]) for r in rows if r.get("event") == "train" and "stage" in r]
    # a row's stage is the one after that step was observed: the next step is the first of the new stage
    for (_, before), (step, after) in itertools.pairwise(stages):
        if after != before:
            ax.axvline(step + 0.5, color="gray", linestyle="--", linewidth=0.8)
            ax.text(step + 0.5, 1.0, f" stage {after}", fontsize=7, va="top")
    ax.set(title="RL: training reward", xlabel="step", ylabel="share", ylim=(-0.02, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run.path / "reward.png", dpi=110)
    plt.close(fig)
    return [run.path / "reward.png"]


def write_rl_report(result: RLResult, *, title: str) -> Path:
    """``report.md`` of an RL run: the engine's summary, the pass-rate filter, the stages, the plots."""
    from lyceum.train.report import plot_run, write_report

    f = result.filter
    intro = []
    if f:
        intro.append(f"Pass-rate filter ({f['rollouts']} rollouts): kept {f['kept']} of {f['total']} prompts, "
                     f"dropped {f['too_easy']} too easy and {f['unsolved']} never solved.")
    intro += ["", "### Curriculum stages", "", stage_table(result.curriculum.stage_summaries())]
    plots = plot_rl(result.run) + plot_run(result.run)
    return write_report(result.run, result.train, title=title, intro="\n".join(intro), plots=plots)
