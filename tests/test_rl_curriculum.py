"""Curriculum: pass-rate filtering, difficulty buckets and stage advancement on the reward threshold."""

import pytest

from lyceum.errors import UserError
from lyceum.lab.tasks import examples, make_problems
from lyceum.train.curriculum import (
    Curriculum,
    Stage,
    difficulty_buckets,
    filter_by_pass_rate,
    pass_rates,
    stages_from_config,
)


def rows_by_digits():
    return examples(make_problems(30, digits=(1, 3), seed=0))


def three_stage_curriculum():
    buckets = difficulty_buckets(rows_by_digits(), key="digits")
    stages = [Stage(2, 16, advance_at=0.6), Stage(4, 24, advance_at=0.8), Stage(8, 32)]
    return Curriculum(buckets, stages, prompts_per_step=4, window=2)


def test_pass_rate_filter_drops_easy_and_never_solved_prompts():
    rows = [{"prompt": str(i)} for i in range(5)]
    kept, report = filter_by_pass_rate(rows, [0.0, 0.25, 0.7, 0.75, 1.0], max_rate=0.7)
    assert [r["prompt"] for r in kept] == ["1", "2"]
    assert [r["pass_rate"] for r in kept] == [0.25, 0.7]
    assert (report.kept, report.too_easy, report.unsolved, report.total) == (2, 2, 1, 5)


def test_pass_rates_average_the_verifier_over_k_rollouts():
    rows = [{"prompt": "Q: 1+1\nA: "}, {"prompt": "Q: 2+2\nA: "}]
    # a fixed "policy": the first prompt answered right 3 times out of 4, the second never
    replies = {"Q: 1+1\nA: ": ["#2", "#2", "#3", "#2"], "Q: 2+2\nA: ": ["#5"] * 4}
    rates = pass_rates(rows, lambda prompts, k: [replies[p][:k] for p in prompts],
                       lambda row, resp: float(resp == "#" + str(2 * int(row["prompt"][3]))), k=4)
    assert rates == [0.75, 0.0]


def test_buckets_are_ordered_easiest_first_by_the_difficulty_field():
    buckets = difficulty_buckets(rows_by_digits(), key="digits")
    assert [sorted({r["digits"] for r in b}) for b in buckets] == [[1], [2], [3]]


def test_buckets_fall_back_to_pass_rate_when_there_is_no_difficulty_field():
    rows = [{"prompt": str(i), "pass_rate": p} for i, p in enumerate([0.1, 0.6, 0.3, 0.5, 0.2, 0.7])]
    buckets = difficulty_buckets(rows, key="difficulty", n_buckets=3)
    assert [[r["pass_rate"] for r in b] for b in buckets] == [[0.7, 0.6], [0.5, 0.3], [0.2, 0.1]]


def test_curriculum_starts_on_the_easiest_bucket_only():
    cur = three_stage_curriculum()
    for step in range(5):
        assert {r["digits"] for r in cur.next_batch(step)} == {1}
    assert (cur.group_size(0), cur.max_new_tokens(0)) == (2, 16)


def test_curriculum_does_not_advance_before_the_windowed_reward_reaches_the_threshold():
    cur = three_stage_curriculum()
    assert not cur.observe(0, {"reward": 0.9})          # window of 2 not yet full
    assert not cur.observe(1, {"reward": 0.2})          # mean 0.55 < 0.6
    assert not cur.observe(2, {"reward": 0.5})          # mean 0.35
    assert cur.stage == 0


def test_curriculum_advances_when_the_reward_crosses_the_threshold():
    cur = three_stage_curriculum()
    cur.observe(0, {"reward": 0.5})
    assert cur.observe(1, {"reward": 0.7})              # mean 0.6 >= 0.6
    assert cur.stage == 1 and cur.open_buckets == 2
    assert (cur.group_size(2), cur.max_new_tokens(2)) == (4, 24)
    seen = set()
    for step in range(2, 12):
        seen |= {r["digits"] for r in cur.next_batch(step)}
    assert seen == {1, 2}
    # the window restarts with the stage: one good step is not enough for the next threshold
    assert not cur.observe(2, {"reward": 0.9})
    assert cur.observe(3, {"reward": 0.9})
    assert cur.stage == 2 and cur.open_buckets == 3
    assert not cur.observe(4, {"reward": 1.0}) and not cur.observe(5, {"reward": 1.0})  # last stage stays


def test_curriculum_logs_reward_zero_variance_share_and_length_per_stage():
    cur = three_stage_curriculum()
    cur.observe(0, {"reward": 0.6, "zero_variance_share": 0.5, "response_length": 10})
    cur.observe(1, {"reward": 0.8, "zero_variance_share": 0.25, "response_length": 12})
    cur.observe(2, {"reward": 0.1, "zero_variance_share": 1.0, "response_length": 20})
    first, second = cur.stage_summaries()
    assert first == {"stage": 0, "open_buckets": 1, "first_step": 0, "steps": 2, "reward": 0.7,
                     "zero_variance_share": 0.375, "response_length": 11.0}
    assert (second["first_step"], second["steps"], second["reward"]) == (2, 1, 0.1)


def test_batches_are_reproducible_after_a_resume():
    cur = three_stage_curriculum()
    cur.observe(0, {"reward": 1.0})
    cur.observe(1, {"reward": 1.0})
    resumed = three_stage_curriculum()
    resumed.load_state_dict(cur.state_dict())
    assert resumed.stage == 1
    assert resumed.next_batch(7) == cur.next_batch(7)


def test_uniform_baseline_opens_every_bucket_from_the_start():
    cur = Curriculum.uniform(difficulty_buckets(rows_by_digits(), key="digits"), group_size=4,
                             max_new_tokens=32, prompts_per_step=30)
    assert {r["digits"] for r in cur.next_batch(0)} == {1, 2, 3}
    assert not cur.observe(0, {"reward": 1.0})


def test_stages_from_config_repeat_the_last_value_and_leave_the_last_stage_open():
    stages = stages_from_config(3, thresholds=[0.5, 0.7], group_sizes=[2, 4], max_new_tokens=32)
    assert [(s.group_size, s.max_new_tokens, s.advance_at, s.buckets) for s in stages] == [
        (2, 32, 0.5, 1), (4, 32, 0.7, 2), (4, 32, None, 3)]


def test_empty_curriculum_is_a_user_error():
    with pytest.raises(UserError, match="loosen the pass-rate filter"):
        difficulty_buckets([])
