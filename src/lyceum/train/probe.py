"""Preflight probe: before any training, how well does each candidate teacher fit this student?

The student answers the prompts (``n`` rollouts each, temperature 1), every teacher scores the student's own
tokens, and the paper's diagnostics (PAPERS.md §1) are computed at those student-visited states: top-k overlap,
overlap mass, overlap-token advantage, entropies and their gap, and the sequence reward
r(y) = mean_t(log q - log p). With a verifier, the student's accuracy and the reward's AUROC for telling correct
from incorrect rollouts are added.

    results = probe(student, {"rl-teacher": t1, "big-sft": t2}, prompts, n=4, max_new_tokens=256, k=16)
    print(format_probe(results))

Teachers are ranked by overlap ratio (the paper's compatibility signal: compatible teachers start around 72%
and successful runs climb past 91%), ties within 0.01 broken by the higher sequence reward. Each result carries
a plain-language reading built from the thresholds below. k should stay well below the number of tokens that
are plausible at a step; with a tiny vocabulary use a small k (e.g. 4), or every top-k set holds every
plausible token and the overlap says little.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from lyceum.errors import UserError
from lyceum.tables import fmt_share
from lyceum.train.diagnostics import auroc
from lyceum.train.logits import response_head
from lyceum.train.scan import token_scan

# Thresholds of the reading, on the diagnostics' token means.
OVERLAP_HIGH = 0.7  # the paper's compatible runs start at ~72% top-k overlap
OVERLAP_LOW = 0.5  # fewer than half the top-k candidates shared: the models prefer different continuations
ENTROPY_GAP_LARGE = 0.5  # nats per token between H(q) and H(p): one model is far more certain than the other
ADVANTAGE_NEGATIVE = (
    -0.1
)  # overlap-token advantage below this: the student is over-confident where they agree


@dataclass
class ProbeResult:
    """One teacher's fit to the student. ``diagnostics`` holds the ``token_diagnostics`` keys."""

    teacher: str
    rank: int
    diagnostics: dict[str, float]
    reward_mean: float  # mean over rollouts of r(y) = mean_t(log q - log p); 0 is a teacher that agrees
    reward_std: float
    reward_auroc: float  # nan without a verifier, or when all rollouts are right (or all wrong)
    student_accuracy: float  # nan without a verifier
    rollouts: int
    tokens: int
    reading: str

    def to_dict(self) -> dict:
        return asdict(self)


def read_diagnostics(d: dict[str, float]) -> str:
    """A plain-language reading of the diagnostics, from the thresholds at the top of this module."""
    ratio, gap, adv = d["overlap_ratio"], d["entropy_gap"], d["overlap_advantage"]
    unknown_gap = math.isnan(gap)  # a served teacher does not return its entropy
    gap = 0.0 if unknown_gap else gap
    if ratio < OVERLAP_LOW and gap >= ENTROPY_GAP_LARGE:
        text = (
            "low overlap and large entropy gap: thinking patterns look incompatible; consider a cold start "
            "(SFT on the teacher's own responses) or prompts in the teacher's template"
        )
    elif ratio < OVERLAP_LOW:
        text = (
            "low overlap: the teacher prefers different next tokens than the student; expect a slow start "
            "and consider a cold start"
        )
    elif ratio >= OVERLAP_HIGH and gap < ENTROPY_GAP_LARGE:
        text = "compatible: the teacher's top candidates mostly match the student's; a good teacher to start from"
    elif gap >= ENTROPY_GAP_LARGE:
        text = (
            "overlap is fair but the entropy gap is large: one model is far more certain than the other; "
            "check that the gap shrinks in the first steps"
        )
    else:
        text = "partial overlap: distillation may work; check that the overlap rises in the first steps"
    if not math.isnan(adv) and adv < ADVANTAGE_NEGATIVE:
        text += f"; the student is over-confident on the shared tokens (overlap advantage {adv:.2f})"
    if unknown_gap:
        text += " (entropy gap unknown: the served teacher does not return its entropy)"
    return text


def probe(
    student,
    teachers: dict,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    n: int = 4,
    max_new_tokens: int = 256,
    k: int = 16,
    temperature: float = 1.0,
    seed: int | None = 0,
    verify: Callable[[str, str], float] | None = None,
    chunk_size: int | None = None,
) -> list[ProbeResult]:
    """Score ``n`` student rollouts per prompt under every teacher; results ranked best fit first.

    ``student`` and the ``teachers`` values are ``lyceum.models.local.LocalLM``s sharing one vocabulary; a teacher
    may also be a served teacher's client (``served_teacher.served_teacher``), whose diagnostics lack the entropies.
    ``verify(prompt, response_text)`` (optional) scores a rollout; >= 0.5 counts as correct.
    """
    from lyceum.models.local import check_pair
    from lyceum.runs import progress

    if not teachers:
        raise UserError("the probe needs at least one teacher")
    if not prompts:
        raise UserError("the probe needs at least one prompt")
    if k < 1:
        raise UserError(f"the probe needs k >= 1, got {k}")
    from lyceum.train.served_teacher import is_served, served_scan

    for teacher in teachers.values():
        if not is_served(teacher):
            check_pair(student, teacher)
    k = min(k, student.vocab_size)

    samples = student.sample(prompts, max_new_tokens, temperature=temperature, n=n, seed=seed)
    ids, attention, start = samples.sequences()
    mask = attention[:, start:].to(student.device)
    tokens = ids[:, start:].to(student.device)
    correct = None
    if verify is not None:
        prompt_of = samples.prompt_index.tolist()
        correct = [
            float(verify(samples.prompts[i], text)) >= 0.5 for i, text in zip(prompt_of, samples.texts)
        ]

    results = []
    for name, teacher in progress(list(teachers.items()), desc="probe: scoring under each teacher"):
        if is_served(teacher):  # the teacher's side from the server's answers (no entropy: nan)
            vocab = student.vocab_size
            scan = served_scan(response_head(student, ids, attention, start, vocab), teacher, ids, attention, start,
                               vocab, tokens, mask, k)
        else:
            vocab = check_pair(student, teacher)
            scan = token_scan(response_head(student, ids, attention, start, vocab),
                              response_head(teacher, ids, attention, start, vocab), tokens, mask, k,
                              chunk_size=chunk_size)
        d = scan.diagnostics()
        reward = scan.sequence_reward().cpu().double()
        results.append(
            ProbeResult(
                teacher=name,
                rank=0,
                diagnostics=d,
                reward_mean=float(reward.mean()),
                reward_std=float(reward.std(unbiased=False)),
                reward_auroc=auroc(reward, correct) if correct is not None else math.nan,
                student_accuracy=sum(correct) / len(correct) if correct is not None else math.nan,
                rollouts=len(samples),
                tokens=int(mask.sum()),
                reading=read_diagnostics(d),
            )
        )
    return rank_results(results)


def rank_results(results: list[ProbeResult]) -> list[ProbeResult]:
    """Best fit first: higher overlap ratio, and within 0.01 of overlap the higher sequence reward."""
    ordered = sorted(
        results, key=lambda r: (-round(r.diagnostics["overlap_ratio"] * 100), -r.reward_mean, r.teacher)
    )
    for i, r in enumerate(ordered, 1):
        r.rank = i
    return ordered


def format_probe(results: list[ProbeResult]) -> str:
    """A text table, one row per teacher in rank order, then each teacher's reading."""
    with_verifier = any(not math.isnan(r.student_accuracy) for r in results)
    header = [
        "#",
        "teacher",
        "overlap",
        "first",
        "last",
        "mass p",
        "mass q",
        "adv",
        "H(p)",
        "H(q)",
        "gap",
        "reward",
    ]
    if with_verifier:
        header += ["AUROC"]
    rows = []
    for r in results:
        d = r.diagnostics
        row = [
            str(r.rank),
            r.teacher,
            fmt_share(d["overlap_ratio"], digits=2),
            fmt_share(d["overlap_ratio/first"], digits=2),
            fmt_share(d["overlap_ratio/last"], digits=2),
            fmt_share(d["overlap_mass_student"], digits=2),
            fmt_share(d["overlap_mass_teacher"], digits=2),
            fmt_share(d["overlap_advantage"], digits=3),
            fmt_share(d["entropy_student"], digits=2),
            fmt_share(d["entropy_teacher"], digits=2),
            fmt_share(d["entropy_gap"], digits=2),
            fmt_share(r.reward_mean, digits=3),
        ]
        if with_verifier:
            row += [fmt_share(r.reward_auroc, digits=2)]
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out.append("")
    if results:
        r0 = results[0]
        note = f"{r0.rollouts} student rollouts, {r0.tokens} response tokens"
        if with_verifier:
            note += f", student accuracy {fmt_share(r0.student_accuracy, digits=2)}"
        out.append(note + "; overlap first/last = first and last third of each response.")
    out += [f"{r.teacher}: {r.reading}" for r in results]
    return "\n".join(out)
