"""The recipe contrasts (lab/recipe_contrasts.py): their registry, their extra models' recipes, and argument checks.

Running a contrast needs the lab's trained models (minutes of SFT on this CPU); `lyceum lab reproduce`
runs them. These tests check what can be checked without training.
"""

import pytest
import torch

from lyceum.errors import UserError
from lyceum.lab.models import RECIPES, recipe_hash
from lyceum.lab.recipe_contrasts import CONTRASTS, extra_recipes, run_contrasts


def test_the_three_contrasts_of_the_issue_are_registered():
    assert list(CONTRASTS) == ["cold_start", "prompt_template", "curriculum"]


def test_template_models_are_the_lab_recipes_with_their_data_spread_over_templates():
    extra = extra_recipes()
    student, teacher = extra["student_qa"], extra["teacher_add"]
    assert (student.recipe.init_from, student.recipe.steps) == (RECIPES["student"].init_from, RECIPES["student"].steps)
    assert (teacher.recipe.init_from, teacher.recipe.steps) == (RECIPES["teacher"].init_from, RECIPES["teacher"].steps)
    rows = teacher.rows()
    assert len(rows) == teacher.recipe.rows
    share_add = sum(r["prompt"].startswith("add ") for r in rows) / len(rows)
    assert share_add == pytest.approx(0.9)
    assert sum(r["prompt"].startswith("Q: ") for r in student.rows()) / len(rows) == pytest.approx(0.7)
    # a fingerprint of its own, so a lab model is never mistaken for it
    assert student.fingerprint() != teacher.fingerprint()
    assert student.fingerprint().split("-")[0] not in {recipe_hash(r) for r in RECIPES.values()}


def test_unknown_contrast_names_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="cold_start, prompt_template, curriculum"):
        run_contrasts(tmp_path, names=["cold_start", "nonsense"])
    assert not any(tmp_path.iterdir())


@pytest.fixture
def shipped_lab(monkeypatch, tmp_path):
    """The lab's shipped models (built models go to a temporary cache); skip where the lab ships none."""
    from lyceum.lab.models import SHIPPED_DIR, is_current

    if not all(is_current(SHIPPED_DIR / n, n) for n in ("base", "student")):
        pytest.skip("the lab's base/student checkpoints are not shipped in this tree (lyceum lab make-models)")
    monkeypatch.setenv("LYCEUM_LAB_MODELS", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    return tmp_path


def test_curriculum_contrast_runs_both_arms_at_the_same_rollout_budget(shipped_lab):
    result = CONTRASTS["curriculum"](shipped_lab / "out", quick=True, log=lambda *_: None)
    assert result.numbers["curriculum_rollouts"] == result.numbers["uniform_rollouts"]
    assert result.numbers["uniform_stages"] == 1.0
    assert "| stage |" in result.markdown and "P1-VL" in result.markdown
    assert all(p.exists() for p in result.plots)


def test_prompt_template_contrast_distils_on_both_templates(shipped_lab):
    result = CONTRASTS["prompt_template"](shipped_lab / "out", quick=True, log=lambda *_: None)
    arms = sorted(p.name for p in (shipped_lab / "out").iterdir() if p.is_dir())
    assert arms == ["student_template", "teacher_template"]
    assert {"teacher_template_overlap_initial", "teacher_template_accuracy_add_after",
            "student_template_overlap_initial", "student_template_accuracy_qa_after"} <= set(result.numbers)
    assert "prompts in the teacher's template" in result.markdown
