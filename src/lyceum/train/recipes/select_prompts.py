"""Teacher-aligned prompts: the teacher's own template, and the prompts where teacher and student already agree.

The paper's second recovery recipe (PAPERS.md §1): OPD works better on prompts wrapped in the teacher's own
template and drawn from the teacher's own post-training distribution, with some out-of-distribution prompts
mixed in. Two steps:

1. Template alignment (``align_template``): re-wrap every prompt in the teacher's template -- a lab template
   (``lab:add``), a format string with ``{question}``, or ``chat`` (the teacher tokenizer's chat template).
2. Content selection (``score_prompts`` + ``select``): the student answers each candidate a few times; the
   teacher scores the student's tokens; per prompt we take the top-k overlap ratio and the student-side
   overlap mass at those states (the paper's compatibility signals) and the teacher's mean log-likelihood of
   the prompt itself (how "at home" the teacher is with it). Each signal becomes a percentile rank over the
   pool; the score is their weighted mean. The top of the ranking is kept, and a share of the kept set is
   drawn at random from the rest (the out-of-distribution share).

    rows = align_template(load_prompts("pool.jsonl"), "lab:add")
    scored = score_prompts(student, teacher, rows, n=2, max_new_tokens=32, k=4)
    chosen = select(scored, keep_fraction=0.5, ood_share=0.2, seed=0)
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from lyceum.errors import UserError

SIGNALS = ("overlap_ratio", "overlap_mass", "teacher_logprob")

# template families "<family>:<name>": render(question, name) -> prompt, named as "package.module:function" and
# imported only when used (train imports no task package)
TEMPLATE_RENDERERS = {"lab": "lyceum.lab.hooks:render_template"}


# ---------------------------------------------------------------------------------------------------------
# template alignment


def question_of(row: dict) -> str:
    """The bare question of a prompt row: its ``question`` field, or the prompt text itself."""
    return str(row.get("question") or row["prompt"])


def align_template(rows: list[dict], template: str, *, tokenizer=None) -> list[dict]:
    """Each row re-wrapped in ``template``; the original prompt is kept as ``source_prompt``.

    ``lab:<name>`` re-renders a lab addition prompt in lab template <name>; ``chat`` applies the tokenizer's
    chat template to the question as one user turn; anything else is a format string with ``{question}``.
    """
    family, _, name = template.partition(":")
    if name and family in TEMPLATE_RENDERERS:
        from lyceum.train.verifiers import resolve

        render = resolve(TEMPLATE_RENDERERS[family], "prompt template")
        return [{**r, "prompt": render(question_of(r), name), "source_prompt": r["prompt"]} for r in rows]
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UserError("the 'chat' template needs a teacher tokenizer that has a chat template")
        return [{**r, "source_prompt": r["prompt"], "prompt": tokenizer.apply_chat_template(
            [{"role": "user", "content": question_of(r)}], tokenize=False, add_generation_prompt=True)}
            for r in rows]
    if "{question}" not in template:
        raise UserError("a prompt template must contain {question} (or be 'chat' or 'lab:<name>')")
    return [{**r, "prompt": template.replace("{question}", question_of(r)), "source_prompt": r["prompt"]}
            for r in rows]


# ---------------------------------------------------------------------------------------------------------
# content selection


@dataclass
class PromptScore:
    """One candidate prompt and why it was (not) selected."""

    index: int
    prompt: str
    overlap_ratio: float
    overlap_mass: float
    teacher_logprob: float  # teacher's mean log-prob per prompt token
    score: float = 0.0
    rank: int = 0
    selected: str = ""  # "top" | "ood" | ""

    def to_dict(self) -> dict:
        return asdict(self)


def score_prompts(student, teacher, rows: list[dict], *, n: int = 2, max_new_tokens: int = 64, k: int = 4,
                  seed: int = 0, batch_size: int = 32, weights: dict[str, float] | None = None) -> list[PromptScore]:
    """The three signals for each row, from ``n`` student rollouts per prompt scored by both models.

    ``student`` and ``teacher`` are ``LocalLM``s sharing a vocabulary (the teacher may be a served teacher's
    client, ``served_teacher.served_teacher``: its side then comes from the server's answers). Returns the rows' scores in input order,
    already ranked (``score``, ``rank``) with ``weights`` (see ``rank_scores``).
    """
    import torch

    from lyceum.models.local import check_pair
    from lyceum.train.diagnostics import topk_diagnostics
    from lyceum.train.logits import response_head
    from lyceum.train.rollout import sample_batches
    from lyceum.train.scan import token_scan
    from lyceum.train.served_teacher import is_served, served_scan

    if not rows:
        raise UserError("there are no candidate prompts to score")
    served = is_served(teacher)  # a vLLM / SGLang client: the teacher's side comes from its answers
    vocab = student.vocab_size if served else check_pair(student, teacher)
    k = min(k, student.vocab_size)
    out: list[PromptScore] = []
    for a, samples in sample_batches(student, [r["prompt"] for r in rows], n=n, max_new_tokens=max_new_tokens,
                                     prompts_per_call=batch_size, seed=seed,
                                     desc="select-prompts: scoring candidates"):
        chunk = rows[a: a + batch_size]
        ids, attention, start = samples.sequences()
        mask = attention[:, start:].to(student.device)
        s_head = response_head(student, ids, attention, start, vocab)
        if served:
            scan = served_scan(s_head, teacher, ids, attention, start, vocab, None, mask, k)
        else:
            scan = token_scan(s_head, response_head(teacher, ids, attention, start, vocab), None, mask, k)
        # the teacher's likelihood of the prompt text itself; a row's first real token has no prefix to be
        # predicted from (it would be read off a padding column), so it is left out
        p_ids, p_mask = samples.prompt_ids[::n], samples.prompt_mask[::n]
        if served:  # a server scores unpadded rows: move each prompt to the left, its first token at column 0
            p_ids, p_mask = _left_aligned(p_ids, p_mask)
            prompt_lp = _served_prompt_scores(teacher, p_ids, p_mask)
            first = torch.zeros_like(p_mask, dtype=torch.bool)
        else:
            prompt_lp = teacher.score(p_ids, p_mask, start=1)
            first = (p_mask.cumsum(-1) == 1) & (p_mask == 1)
        counted = (prompt_lp.mask > 0) & ~first[:, 1:].to(prompt_lp.mask.device)
        lp_sum = torch.where(counted, prompt_lp.logprobs, torch.zeros_like(prompt_lp.logprobs)).sum(-1).cpu()
        lp_tokens = counted.sum(-1).clamp(min=1).cpu()
        owner = samples.prompt_index.cpu()
        for j, row in enumerate(chunk):
            sel = (owner == j).nonzero().squeeze(1)
            m = mask.cpu()[sel]
            d = topk_diagnostics(scan.student_topk_ids.cpu()[sel], scan.student_topk_logprobs.cpu()[sel],
                                 scan.teacher_topk_ids.cpu()[sel], scan.teacher_logprobs_at_student_topk.cpu()[sel],
                                 scan.student_entropy.cpu()[sel], scan.teacher_entropy.cpu()[sel], m)
            ratio = d["overlap_ratio"] if m.sum() > 0 else float("nan")
            mass = d["overlap_mass_student"] if m.sum() > 0 else float("nan")
            out.append(PromptScore(len(out), row["prompt"], _nan0(ratio), _nan0(mass),
                                   float(lp_sum[j] / lp_tokens[j])))
    return rank_scores(out, weights)


def _left_aligned(ids, mask):
    """Left-padded rows moved to start at column 0 (padding after them), so a row's first token is at column 0."""
    import torch

    out_ids, out_mask = torch.zeros_like(ids), torch.zeros_like(mask)
    for i in range(ids.shape[0]):
        real = ids[i][mask[i].bool()]
        out_ids[i, : real.numel()], out_mask[i, : real.numel()] = real, 1
    return out_ids, out_mask


def _served_prompt_scores(server, ids, mask):
    from lyceum.models.chat import run_sync
    from lyceum.models.served import served_scores

    return run_sync(served_scores(server, ids, mask, start=1))


def _nan0(x: float) -> float:
    return 0.0 if math.isnan(x) else float(x)


def _percentiles(values: list[float]) -> list[float]:
    """Each value's percentile rank in [0, 1] (ties share their mean rank); 1 is the best."""
    if len(values) == 1:
        return [1.0]
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 / (len(values) - 1)
        i = j + 1
    return ranks


def rank_scores(scores: list[PromptScore], weights: dict[str, float] | None = None) -> list[PromptScore]:
    """Set ``score`` (weighted mean of the signals' percentile ranks) and ``rank`` (1 = best) on each entry.

    Default weights: 1 for each signal. A weight of 0 leaves a signal out.
    """
    weights = {name: 1.0 for name in SIGNALS} | (weights or {})
    unknown = sorted(set(weights) - set(SIGNALS))
    if unknown:
        raise UserError(f"unknown selection signal(s) {', '.join(unknown)}; use {', '.join(SIGNALS)}")
    total = sum(weights.values())
    if total <= 0:
        raise UserError("the selection weights must not all be zero")
    pct = {name: _percentiles([getattr(s, name) for s in scores]) for name in SIGNALS}
    for i, s in enumerate(scores):
        s.score = sum(weights[name] * pct[name][i] for name in SIGNALS) / total
    for r, s in enumerate(sorted(scores, key=lambda s: (-s.score, s.index)), 1):
        s.rank = r
    return scores


def select(scores: list[PromptScore], *, keep_fraction: float = 0.5, ood_share: float = 0.1,
           seed: int = 0) -> list[PromptScore]:
    """Mark the kept prompts: the best ``(1 - ood_share)`` of the kept count, plus random ones from the rest.

    The kept count is ``round(keep_fraction * len(scores))`` (at least 1). Returns the kept entries, best first
    and the out-of-distribution ones after them.
    """
    if not 0 < keep_fraction <= 1:
        raise UserError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if not 0 <= ood_share < 1:
        raise UserError(f"ood_share must be in [0, 1), got {ood_share}")
    n_keep = max(1, round(keep_fraction * len(scores)))
    n_ood = min(round(ood_share * n_keep), len(scores) - 1)
    ordered = sorted(scores, key=lambda s: s.rank)
    top, rest = ordered[:n_keep - n_ood], ordered[n_keep - n_ood:]
    ood = sorted(random.Random(seed).sample(rest, n_ood), key=lambda s: s.rank)
    for s in scores:
        s.selected = ""
    for s in top:
        s.selected = "top"
    for s in ood:
        s.selected = "ood"
    return top + ood


def selection_table(scores: list[PromptScore], *, max_rows: int | None = None) -> str:
    """A markdown table of every candidate in rank order: its signals, score and whether it was kept."""
    lines = ["| rank | kept | score | overlap ratio | overlap mass | teacher log-prob | prompt |",
             "|---:|:---:|---:|---:|---:|---:|:---|"]
    ordered = sorted(scores, key=lambda s: s.rank)
    for s in ordered[:max_rows]:
        prompt = s.prompt.replace("\n", "\\n").replace("|", "\\|")
        prompt = prompt if len(prompt) <= 60 else prompt[:57] + "..."
        lines.append(f"| {s.rank} | {s.selected or '-'} | {s.score:.3f} | {s.overlap_ratio:.3f} | "
                     f"{s.overlap_mass:.3f} | {s.teacher_logprob:.3f} | `{prompt}` |")
    if max_rows is not None and len(ordered) > max_rows:
        lines.append(f"| ... | | | | | | {len(ordered) - max_rows} more |")
    return "\n".join(lines)
