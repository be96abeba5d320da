"""`lyceum lab reproduce` (lab/contrasts.py) and the lab CLI: the report's plumbing, its verdict rules, the verbs."""

import json

import pytest

from lyceum.cli import main
from lyceum.lab import contrasts as reproduce
from lyceum.lab import models

OWN = [c.name for c in reproduce.contrasts()]


def _arm(before, after, teacher, overlap=0.7):
    gap = None if teacher == before else (after - before) / (teacher - before)
    return {"accuracy_before": before, "accuracy_after": after, "teacher_accuracy": teacher, "gap_recovery": gap,
            "initial": {"overlap_ratio": overlap}, "final": {}, "error": None}


def test_pattern_verdict_needs_both_lower_overlap_and_a_worse_student():
    compatible, incompatible = "compatible (pattern R)", "incompatible (pattern L)"
    verdict, why = reproduce._judge_patterns({compatible: _arm(0.3, 0.6, 0.99, 0.70),
                                              incompatible: _arm(0.3, 0.1, 0.99, 0.55)})
    assert verdict == "agrees" and "0.700 (R) vs 0.550 (L)" in why
    verdict, _ = reproduce._judge_patterns({compatible: _arm(0.3, 0.6, 0.99, 0.70),
                                            incompatible: _arm(0.3, 0.58, 0.99, 0.55)})
    assert verdict == "partly agrees"  # lower overlap, but a 2-point difference is a tie, not a worse student
    verdict, _ = reproduce._judge_patterns({compatible: _arm(0.3, 0.6, 0.99, 0.50),
                                            incompatible: _arm(0.3, 0.58, 0.99, 0.55)})
    assert verdict == "does not agree"


def test_capability_verdict_compares_gap_recoveries():
    new, big = "new capability (R, harder data)", "bigger, student's data only"
    verdict, why = reproduce._judge_capability({new: _arm(0.3, 0.7, 0.9), big: _arm(0.3, 0.35, 0.9)})
    assert verdict == "agrees" and "66.7% (new capability) vs 8.3%" in why
    assert reproduce._judge_capability({new: _arm(0.3, 0.7, 0.9), big: _arm(0.3, 0.7, 0.9)})[0] == "does not agree"
    assert reproduce._judge_capability({new: _arm(0.3, 0.7, 0.9), big: _arm(0.3, 0.3, 0.3)})[0] == "n/a"


def test_mechanism_verdict_is_undecided_without_the_symmetric_difference_support():
    arms = {"student top-k": _arm(0.3, 0.6, 0.99), "overlap only (intersection)": _arm(0.3, 0.6, 0.99),
            "symmetric difference only": {**_arm(0.3, 0.3, 0.99), "error": "unknown support"}}
    assert reproduce._judge_mechanism(arms)[0] == "n/a"


@pytest.mark.timeout(240)
def test_quick_reproduce_writes_the_report_plots_and_numbers(tmp_path):
    report = reproduce.reproduce(tmp_path, quick=True, only=OWN, log=lambda _: None)
    text = report.read_text()
    for c in reproduce.contrasts():
        assert f"## {c.title}" in text
        assert (tmp_path / f"{c.name}.png").stat().st_size > 0
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    assert numbers["contrasts"] == OWN
    # arms that coincide run once: the compatible teacher with the default support is in all four contrasts
    assert sorted(numbers["outcomes"]) == sorted({a.key for c in reproduce.contrasts() for a in c.arms})
    assert len(numbers["outcomes"]) == 7
    assert numbers["outcomes"]["teacher_l"]["teacher"] == "teacher_l"
    for o in numbers["outcomes"].values():
        assert o["error"] is None and o["accuracy_before"] is not None
        assert abs(sum(o["patterns_after"].values()) - 1.0) < 1e-9  # the distilled student was graded too
    # the report is a pure function of numbers.json and the run folders
    before = text
    assert reproduce.write_report(tmp_path).read_text() == before
    assert "Quick run" in text


def test_reproduce_refuses_unknown_contrasts(tmp_path):
    assert main(["lab", "reproduce", "--out", str(tmp_path), "--only", "nope"]) == 2


def test_tasks_verb_prints_examples(capsys):
    assert main(["lab", "tasks", "-n", "2", "--digits", "3", "--pattern", "L", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("Q: ") and "\\nA: " in line and "#" in line for line in lines)


def test_tasks_verb_writes_a_prompt_file(tmp_path):
    out = tmp_path / "p.jsonl"
    assert main(["lab", "tasks", "-n", "5", "--digits", "1-4", "--operands", "2-3", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and {"prompt", "response", "answer", "digits", "operands"} <= set(rows[0])


def test_models_verb_lists_every_recipe(capsys):
    assert main(["lab", "models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in models.RECIPES)
