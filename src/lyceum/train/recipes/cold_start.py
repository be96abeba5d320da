"""Off-policy cold start: SFT the student on the teacher's own (verified) answers, then distil on-policy.

The paper's first recovery recipe (PAPERS.md §1): when the student's thinking pattern differs from the
teacher's, OPD starts from a low top-k overlap and reaches a lower ceiling. Rejection-sampled teacher
responses move the student toward the teacher's pattern first, so OPD then starts from a higher overlap.

    result = cold_start("models/student", "models/teacher", "prompts.jsonl", "runs/cold",
                        ColdStartConfig(verifier="lab", samples_per_prompt=4, sft_steps=200))

Three stages, each resumable (a finished stage is skipped when the command runs again):

    1. teacher samples   <out>/teacher_samples.jsonl (every sample + its reward), <out>/sft_data.jsonl (kept)
    2. SFT               <out>/sft/model (the cold-started student), <out>/sft/sft.json (loss before/after)
    3. OPD               <out>/opd/ (an ordinary engine run from the SFT checkpoint; resumes by itself)

The kept/total ratio of stage 1 is logged in ``<out>/metrics.jsonl`` and the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.train.config import OPDConfig


@dataclass
class ColdStartConfig(OPDConfig):
    """The OPD stage's settings (``OPDConfig``) plus the sampling and SFT stages'."""

    verifier: str | None = "lab"
    samples_per_prompt: int = 4  # M teacher responses per prompt
    sample_temperature: float = 1.0
    sample_max_new_tokens: int = 0  # 0: max_new_tokens
    sample_prompts: int = 0  # teacher-sample only the first N prompts (0: all)
    min_reward: float = 1.0  # keep a teacher response whose verifier reward is at least this
    require_stop: bool = True  # keep only responses that ended by themselves (not cut off at the length limit)
    sft_steps: int = 200
    sft_lr: float = 1e-3
    sft_batch_size: int = 32
    sft_warmup_steps: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples_per_prompt < 1 or self.sft_steps < 1 or self.sft_batch_size < 1:
            raise UserError("samples_per_prompt, sft_steps and sft_batch_size must be at least 1")
        if self.sample_temperature <= 0 or self.sft_lr <= 0:
            raise UserError("sample_temperature and sft_lr must be positive")


@dataclass
class ColdStartResult:
    run: Any  # RunDir of the whole recipe (<out>)
    kept: int
    total: int
    sft_loss_before: float
    sft_loss_after: float
    opd: Any  # engine.TrainResult of the OPD stage
    skipped: list[str] = field(default_factory=list)  # stages found finished and not run again

    @property
    def kept_ratio(self) -> float:
        return self.kept / self.total if self.total else 0.0


def teacher_samples(teacher, rows: list[dict], verifier, *, m: int, max_new_tokens: int, temperature: float = 1.0,
                    seed: int = 0, batch_size: int = 64) -> list[dict]:
    """``m`` sampled teacher responses per row, each with its verifier reward (rejection sampling's input)."""
    from lyceum.train.rollout import sample_batches
    from lyceum.train.verifiers import reward

    out = []
    for a, s in sample_batches(teacher, [r["prompt"] for r in rows], n=m, max_new_tokens=max_new_tokens,
                               prompts_per_call=max(1, batch_size // m), temperature=temperature, seed=seed,
                               desc="cold start: teacher samples"):
        for i, text in enumerate(s.texts):
            row = rows[a + int(s.prompt_index[i])]
            out.append({**row, "response": text, "reward": reward(verifier, row, text),
                        "finish": s.finish_reasons[i]})
    return out


def keep_correct(samples: list[dict], *, min_reward: float = 1.0, require_stop: bool = True) -> list[dict]:
    """Rejection sampling: the samples the verifier accepts (and, by default, that ended by themselves)."""
    return [s for s in samples
            if s["reward"] >= min_reward and (not require_stop or s.get("finish", "stop") == "stop")]


def cold_start(student: str | Path, teacher: str | Path | Any, prompts: str | Path | list[dict], out: str | Path,
               cfg: ColdStartConfig | None = None, *, eval_rows: str | Path | list[dict] | None = None,
               log=print) -> ColdStartResult:
    """Run (or resume) the three stages; the OPD stage is ``lyceum.train.distill.distill`` from the SFT model."""
    from lyceum.models.local import load_local
    from lyceum.runs import RunDir, read_jsonl, write_jsonl
    from lyceum.train.devices import pick_device
    from lyceum.train.distill import distill
    from lyceum.train.schedules import load_prompts
    from lyceum.train.served_teacher import describe, is_served
    from lyceum.train.sft import SFTConfig, mean_loss, sft
    from lyceum.train.verifiers import get_verifier

    cfg = cfg or ColdStartConfig()
    if not cfg.verifier:
        raise UserError("the cold start keeps only correct teacher answers; set a verifier (e.g. --verifier lab)")
    verifier = get_verifier(cfg.verifier)
    if is_served(teacher):  # the OPD stage's support must be one the server answers: refused before stage 1
        from lyceum.models.served import teacher_request

        teacher_request(teacher.kind, cfg.support, cfg.k)
    rows = prompts if isinstance(prompts, list) else load_prompts(prompts)
    run = RunDir.open(out, {"student": str(student), "teacher": describe(teacher),
                         "prompts": str(prompts) if not isinstance(prompts, list) else f"{len(rows)} rows",
                         **vars(cfg)})
    device = pick_device(cfg)
    skipped = []

    # 1. the teacher answers; the verifier keeps the correct answers
    samples_file, data_file = run.path / "teacher_samples.jsonl", run.path / "sft_data.jsonl"
    if data_file.exists() and samples_file.exists():
        samples, kept = read_jsonl(samples_file), read_jsonl(data_file)
        skipped.append("teacher samples")
    else:
        if is_served(teacher):  # the server samples; the student's tokenizer (shared) encodes and decodes
            from lyceum.models.served import ServedSampler

            t = ServedSampler(teacher, load_local(student, device=device))
        else:
            t = load_local(teacher, device=device)
        pool = rows[:cfg.sample_prompts] if cfg.sample_prompts else rows
        samples = teacher_samples(t, pool, verifier, m=cfg.samples_per_prompt,
                                  max_new_tokens=cfg.sample_max_new_tokens or cfg.max_new_tokens,
                                  temperature=cfg.sample_temperature, seed=cfg.seed, batch_size=cfg.eval_batch_size)
        kept = keep_correct(samples, min_reward=cfg.min_reward, require_stop=cfg.require_stop)
        del t
        write_jsonl(samples_file, samples)
        write_jsonl(data_file, kept)  # written last: its presence marks the stage as done
        run.log_metrics({"event": "teacher_samples", "kept": len(kept), "total": len(samples),
                         "kept_ratio": len(kept) / max(len(samples), 1)})
    log(f"cold start 1/3: kept {len(kept)} of {len(samples)} teacher samples "
        f"({100 * len(kept) / max(len(samples), 1):.1f}%)")
    if not kept:
        raise UserError("the verifier accepted none of the teacher's samples; there is nothing to SFT on "
                        "(check the verifier, or sample more per prompt)")

    # 2. SFT the student on the kept answers
    sft_dir, sft_file = run.path / "sft", run.path / "sft" / "sft.json"
    if sft_file.exists() and (sft_dir / "model" / "config.json").exists():
        record = json.loads(sft_file.read_text())
        skipped.append("sft")
    else:
        s = load_local(student, device=device, dtype="fp32")
        before = mean_loss(s, kept)
        history = sft(s, [{"prompt": r["prompt"], "response": r["response"]} for r in kept],
                      SFTConfig(steps=cfg.sft_steps, batch_size=cfg.sft_batch_size, lr=cfg.sft_lr,
                                warmup_steps=min(cfg.sft_warmup_steps, cfg.sft_steps), seed=cfg.seed,
                                log_every=max(1, cfg.sft_steps // 10)), desc="cold start: sft")
        after = mean_loss(s, kept)
        s.save(sft_dir / "model")
        record = {"loss_before": before, "loss_after": after, "history": history, "rows": len(kept)}
        sft_file.write_text(json.dumps(record, indent=2))
        run.log_metrics({"event": "sft", "loss_before": before, "loss_after": after, "rows": len(kept)})
        del s
    log(f"cold start 2/3: SFT loss on the teacher data {record['loss_before']:.4f} -> {record['loss_after']:.4f}")

    # 3. on-policy distillation from the cold-started student (the engine resumes its own run)
    log("cold start 3/3: on-policy distillation from the SFT checkpoint")
    opd = distill(sft_dir / "model", teacher, rows, run.path / "opd", cfg, eval_rows=eval_rows, desc="cold start: opd")
    result = ColdStartResult(run, len(kept), len(samples), record["loss_before"], record["loss_after"], opd, skipped)
    write_report(result)
    return result


def write_report(result: ColdStartResult) -> Path:
    """``<out>/report.md``: the three stages' numbers, then the OPD stage's own report table."""
    from lyceum.tables import markdown_table
    from lyceum.train.report import summary_rows

    parts = ["# Off-policy cold start, then on-policy distillation", "",
             "| stage | result |", "|---|---|",
             (f"| 1. teacher samples (rejection sampling) | kept {result.kept} of {result.total} "
             f"({100 * result.kept_ratio:.1f}%) |"),
             (f"| 2. SFT on the kept samples | response loss {result.sft_loss_before:.4f} -> "
             f"{result.sft_loss_after:.4f} |"),
             f"| 3. OPD from the SFT checkpoint | run folder `opd/` ({result.opd.steps} steps) |", "",
             "## OPD stage", "",
             markdown_table(["", "before / initial", "after / final"], summary_rows(result.opd)), ""]
    return result.run.write_text("report.md", "\n".join(parts))
