"""Teacher-aligned prompt selection: template re-wrapping, ranking by the diagnostics, the OOD share."""

import copy
import json

import pytest
import torch

from lyceum.cli import main
from lyceum.errors import UserError
from lyceum.lab.tasks import ALPHABET, Problem, examples, make_problems
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.runs import read_jsonl
from lyceum.train.recipes.select_prompts import (
    PromptScore,
    align_template,
    rank_scores,
    score_prompts,
    select,
    selection_table,
)

# tiny models: one thread is much faster than several fighting over a small shared CPU
torch.set_num_threads(1)


def test_lab_template_alignment_rewrites_the_prompt_and_keeps_the_source():
    rows = examples([Problem((12, 34))], template="qa")
    aligned = align_template(rows, "lab:add")
    assert aligned[0]["prompt"] == "add 12 and 34.\n"
    assert aligned[0]["source_prompt"] == "Q: 12+34\nA: "
    assert aligned[0]["answer"] == 46


def test_format_string_template_wraps_the_question():
    rows = align_template([{"prompt": "2+2", "question": "what is 2+2?"}], "Problem: {question}\nAnswer: ")
    assert rows[0]["prompt"] == "Problem: what is 2+2?\nAnswer: "
    with pytest.raises(UserError, match="question"):
        align_template(rows, "no placeholder")


def test_rank_scores_averages_percentile_ranks_of_the_signals():
    scores = [PromptScore(0, "a", 0.9, 0.9, -1.0), PromptScore(1, "b", 0.5, 0.4, -0.5),
              PromptScore(2, "c", 0.1, 0.2, -3.0)]
    rank_scores(scores)
    # a: ranks (1, 1, 0.5); b: (0.5, 0.5, 1); c: (0, 0, 0)
    assert [s.score for s in scores] == pytest.approx([2.5 / 3, 2 / 3, 0.0])
    assert [s.rank for s in scores] == [1, 2, 3]
    rank_scores(scores, {"overlap_ratio": 0, "overlap_mass": 0})
    assert [s.rank for s in scores] == [2, 1, 3]


def test_select_keeps_the_top_and_mixes_in_an_ood_share():
    scores = rank_scores([PromptScore(i, str(i), i / 10, i / 10, -float(10 - i)) for i in range(10)])
    kept = select(scores, keep_fraction=0.5, ood_share=0.4, seed=0)
    top = [s.index for s in kept if s.selected == "top"]
    ood = [s.index for s in kept if s.selected == "ood"]
    assert top == [9, 8, 7]
    assert len(ood) == 2 and all(i <= 6 for i in ood)
    assert "| 1 | top |" in selection_table(scores)


def perturbed_pair():
    """A student and a teacher identical except for the embeddings of '.' and newline."""
    tok = char_tokenizer(ALPHABET)
    student = build_tiny("llama", tokenizer=tok, hidden=32, layers=1, heads=2, seed=0)
    teacher = copy.deepcopy(student)
    changed = [tok.convert_tokens_to_ids(c) for c in ".\n"]
    emb = teacher.model.get_input_embeddings().weight
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        emb[changed] += 3.0 * torch.randn(len(changed), emb.shape[1], generator=g)
    return student, teacher


def test_selection_keeps_the_prompts_where_the_diagnostics_favour_the_teacher():
    # "add" prompts end on ".\n", whose embeddings the teacher has changed: at the state that predicts the
    # first response token the teacher disagrees; "qa" prompts end on "A: " and the models agree there
    student, teacher = perturbed_pair()
    problems = make_problems(6, digits=2, seed=3)
    rows = examples(problems[:3], template="add") + examples(problems[3:], template="qa")
    scores = score_prompts(student, teacher, rows, n=2, max_new_tokens=1, k=4)
    assert [s.overlap_ratio for s in scores[3:]] == [1.0, 1.0, 1.0]
    assert max(s.overlap_ratio for s in scores[:3]) < 0.5
    kept = select(scores, keep_fraction=0.5, ood_share=0.0)
    assert sorted(s.index for s in kept) == [3, 4, 5]


def test_select_prompts_command_writes_the_prompt_file_and_the_table(tmp_path, capsys):
    student, teacher = perturbed_pair()
    student.save(tmp_path / "student")
    teacher.save(tmp_path / "teacher")
    rows = examples(make_problems(4, digits=2, seed=5), template="qa")
    (tmp_path / "pool.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code = main(["distill", "select-prompts", "--student", str(tmp_path / "student"), "--teacher",
                 str(tmp_path / "teacher"), "--prompts", str(tmp_path / "pool.jsonl"), "--out", str(tmp_path / "sel"),
                 "--template", "lab:add", "--keep-fraction", "0.5", "--ood-share", "0", "--n", "1",
                 "--max-new-tokens", "2", "--k", "4", "--device", "cpu"])
    assert code == 0
    kept = read_jsonl(tmp_path / "sel" / "prompts.jsonl")
    assert len(kept) == 2 and all(r["prompt"].startswith("add ") and r["selection"] == "top" for r in kept)
    assert len(read_jsonl(tmp_path / "sel" / "selection.jsonl")) == 4
    assert "| rank | kept |" in (tmp_path / "sel" / "selection.md").read_text()
    assert "kept 2 of 4 prompts" in capsys.readouterr().out
