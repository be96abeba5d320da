"""Verifier rewards: the mean over sub-answers, the lab verifier, the registry."""

import pytest

from lyceum.errors import UserError
from lyceum.lab.hooks import lab_verifier
from lyceum.lab.tasks import Problem, render_prompt, render_response
from lyceum.train.verifiers import get_verifier, reward, rewards


def test_reward_is_the_mean_over_sub_answers():
    two_of_three = lambda row, resp: [True, False, True]
    assert reward(two_of_three, {}, "") == pytest.approx(2 / 3)
    assert reward(lambda row, resp: 1.0, {}, "") == 1.0
    assert reward(lambda row, resp: [], {}, "") == 0.0


def test_lab_verifier_rewards_a_correct_scratchpad_in_either_pattern():
    p = Problem((347, 589))
    row = {"prompt": render_prompt(p)}
    assert lab_verifier(row, render_response(p, "R")) == 1.0
    assert lab_verifier(row, render_response(p, "L")) == 1.0
    assert lab_verifier(row, "7+9+0=16|#935") == 0.0
    assert rewards(get_verifier("lab"), [row, row], ["#936", "no answer"]) == [1.0, 0.0]


def test_unknown_verifier_is_a_user_error():
    with pytest.raises(UserError, match="lab, olympiad"):
        get_verifier("judge")


def test_olympiad_verifier_gives_partial_credit_per_sub_answer():
    row = {"prompt": "...", "answer": ["3.00 \\times 10^{8}", "2 m g"],
           "answer_type": ["Numerical Value", "Expression"]}
    verifier = get_verifier("olympiad")
    both = "so \\boxed{3.0 \\times 10^8} and \\boxed{2mg}"
    first_only = "so \\boxed{2.999e8} and \\boxed{m g}"
    assert verifier(row, both) == [True, True]
    assert reward(verifier, row, first_only) == 0.5
    assert reward(verifier, row, "no boxed answer") == 0.0
