"""The lab's addition tasks: generation, both thinking patterns, and the verifier."""

import pytest

from lyceum.errors import UserError
from lyceum.lab.tasks import (
    ALPHABET,
    Problem,
    detect_pattern,
    examples,
    extract_answer,
    is_correct,
    make_problems,
    parse_prompt,
    render_prompt,
    render_response,
    verify,
)


def test_pattern_r_works_right_to_left_with_explicit_carries():
    assert render_response(Problem((347, 589)), "R") == "7+9+0=16|4+8+1=13|3+5+1=9|#936"


def test_pattern_l_works_left_to_right_with_a_running_value():
    assert render_response(Problem((347, 589)), "L") == "3+5=8:8|4+8=12:92|7+9=16:936|#936"


def test_chained_sum_carries_more_than_one():
    p = Problem((99, 99, 99, 99))
    assert render_response(p, "R") == "9+9+9+9+0=36|9+9+9+9+3=39|#396"
    assert render_response(p, "L") == "9+9+9+9=36:36|9+9+9+9=36:396|#396"


def test_both_patterns_verify_on_every_generated_problem():
    for p in make_problems(300, digits=(1, 5), operands=(2, 4), seed=3):
        prompt = render_prompt(p)
        for pattern in ("R", "L"):
            assert verify(prompt, render_response(p, pattern)) == 1.0


def test_wrong_or_missing_answers_are_rejected():
    p = Problem((347, 589))
    assert not is_correct(p, "7+9+0=16|4+8+1=13|3+5+1=9|#937")
    assert not is_correct(p, "7+9+0=16|4+8+1=13|3+5+1=9|936")  # no answer mark
    assert not is_correct(p, "#936x")  # trailing junk
    assert not is_correct(p, "#")
    assert is_correct(p, "anything at all #936")  # only the final answer is graded


def test_the_last_answer_mark_counts():
    assert extract_answer("#12|#936") == 936
    assert extract_answer("no mark") is None
    assert not is_correct(Problem((347, 589)), "#936|#12")


def test_generation_is_deterministic_under_a_seed_and_varies_across_seeds():
    a = make_problems(50, digits=(2, 4), operands=(2, 3), seed=7)
    assert a == make_problems(50, digits=(2, 4), operands=(2, 3), seed=7)
    assert a != make_problems(50, digits=(2, 4), operands=(2, 3), seed=8)


def test_difficulty_knobs_set_digits_and_operand_counts():
    problems = make_problems(200, digits=(3, 4), operands=(2, 3), seed=0)
    assert {p.digits for p in problems} == {3, 4}
    assert {len(p.operands) for p in problems} == {2, 3}
    assert all(len(str(x)) == p.digits for p in problems for x in p.operands)


def test_prompts_in_every_template_parse_back_to_the_problem():
    p = Problem((8737, 7219, 4439))
    assert render_prompt(p, "qa") == "Q: 8737+7219+4439\nA: "
    assert render_prompt(p, "add") == "add 8737, 7219 and 4439.\n"
    for template in ("qa", "add"):
        assert parse_prompt(render_prompt(p, template)) == p


def test_detect_pattern_reads_the_first_step():
    p = Problem((52, 78))
    prompt = render_prompt(p)
    assert detect_pattern(prompt, render_response(p, "R")) == "R"
    assert detect_pattern(prompt, render_response(p, "L")) == "L"
    assert detect_pattern(prompt, "5+7=110|garbled") == "L"  # starts the L way, whatever follows
    assert detect_pattern(prompt, "2+8+0=10|#130") == "R"
    assert detect_pattern(prompt, "#130") is None
    one_digit = render_prompt(Problem((3, 5)))
    assert detect_pattern(one_digit, "3+5+0=8|#8") == "R" and detect_pattern(one_digit, "3+5=8:8|#8") == "L"


def test_every_character_is_in_the_tokenizer_alphabet():
    rows = examples(make_problems(100, digits=(1, 5), operands=(2, 4), seed=1), pattern="L", template="add")
    rows += examples(make_problems(100, digits=(1, 5), operands=(2, 4), seed=1), pattern="R", template="qa")
    used = {c for r in rows for c in r["prompt"] + r["response"]}
    assert used <= set(ALPHABET)


def test_bad_knobs_are_user_errors():
    with pytest.raises(UserError):
        make_problems(3, digits=0)
    with pytest.raises(UserError):
        make_problems(3, operands=1)
    with pytest.raises(UserError):
        render_response(Problem((1, 2)), "X")
    with pytest.raises(UserError):
        parse_prompt("Q: what?\nA: ")
