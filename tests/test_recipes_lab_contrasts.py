"""The lab contrasts of issue 6: their registry, their extra models' recipes, and argument checks.

Running a contrast needs the lab's trained models (minutes of SFT on this CPU); `lyceum lab reproduce`
runs them. These tests check what can be checked without training.
"""

import pytest

from lyceum.errors import UserError
from lyceum.lab.models import RECIPES, recipe_hash
from lyceum.train.recipes.lab_contrasts import CONTRASTS, extra_recipes, run_contrasts


def test_the_three_contrasts_of_the_issue_are_registered():
    assert list(CONTRASTS) == ["cold_start", "prompt_template", "curriculum"]


def test_the_template_teacher_is_the_lab_teacher_recipe_in_the_other_template():
    extra = extra_recipes()
    teacher = extra["teacher_add"]
    assert (teacher.init_from, teacher.template, teacher.digits) == ("base", "add", (1, 4))
    # a recipe fingerprint of its own, so a lab model of another name is never mistaken for it
    assert recipe_hash(teacher) not in {recipe_hash(r) for r in RECIPES.values()}


def test_unknown_contrast_names_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="cold_start, prompt_template, curriculum"):
        run_contrasts(tmp_path, names=["cold_start", "nonsense"])
    assert not any(tmp_path.iterdir())
