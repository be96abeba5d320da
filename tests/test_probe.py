"""The preflight probe on tiny models: it scores the student's own rollouts under each teacher."""

import math

import pytest

from lyceum.errors import UserError
from lyceum.lab.tasks import ALPHABET, make_problems, render_prompt
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.train.probe import format_probe, probe, read_diagnostics

TINY = {"hidden": 32, "layers": 1, "heads": 2}


@pytest.fixture(scope="module")
def models():
    tok = char_tokenizer(ALPHABET)
    return {
        "student": build_tiny("llama", tokenizer=tok, seed=0, **TINY),
        # same architecture and seed: the very same distributions as the student
        "twin": build_tiny("llama", tokenizer=tok, seed=0, **TINY),
        "stranger": build_tiny("qwen2", tokenizer=tok, seed=1, **TINY),
    }


@pytest.fixture(scope="module")
def prompts():
    return [render_prompt(p) for p in make_problems(3, digits=2, seed=0)]


@pytest.fixture(scope="module")
def results(models, prompts):
    teachers = {"stranger": models["stranger"], "twin": models["twin"]}
    return probe(models["student"], teachers, prompts, n=2, max_new_tokens=10, k=4)


def test_a_teacher_identical_to_the_student_ranks_first_and_reads_compatible(results):
    assert [r.teacher for r in results] == ["twin", "stranger"]
    assert [r.rank for r in results] == [1, 2]
    twin = results[0]
    assert twin.diagnostics["overlap_ratio"] == 1.0
    assert twin.diagnostics["entropy_gap"] == pytest.approx(0.0, abs=1e-5)
    assert twin.diagnostics["overlap_advantage"] == pytest.approx(0.0, abs=1e-6)
    assert twin.reward_mean == pytest.approx(0.0, abs=1e-5)
    assert twin.reading.startswith("compatible")


def test_an_unrelated_teacher_reads_low_overlap(results):
    stranger = results[1]
    assert stranger.diagnostics["overlap_ratio"] < 0.5
    assert stranger.reading.startswith("low overlap")
    assert stranger.rollouts == 6
    assert stranger.tokens == results[0].tokens > 0
    assert math.isnan(stranger.student_accuracy) and math.isnan(stranger.reward_auroc)


def test_format_probe_prints_a_ranked_table_and_the_readings(results):
    text = format_probe(results)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["#", "teacher", "overlap", "first"]
    assert lines[2].split()[:3] == ["1", "twin", "1.00"]
    assert lines[3].split()[:2] == ["2", "stranger"]
    assert "AUROC" not in lines[0]
    assert f"twin: {results[0].reading}" in lines
    assert f"stranger: {results[1].reading}" in lines


def test_a_verifier_adds_student_accuracy_and_reward_auroc(models, prompts):
    seen = []

    def verify(prompt, response):
        seen.append((prompt, response))
        return float(len(response) % 2 == 0)

    (result,) = probe(
        models["student"], {"twin": models["twin"]}, prompts, n=2, max_new_tokens=10, k=4, verify=verify
    )
    assert len(seen) == 6
    assert {p for p, _ in seen} == set(prompts)
    assert result.student_accuracy == sum(len(r) % 2 == 0 for _, r in seen) / 6
    assert "AUROC" in format_probe([result]).splitlines()[0]


def test_teachers_with_another_vocabulary_are_refused(models, prompts):
    other = build_tiny("llama", tokenizer=char_tokenizer("0123456789+="), seed=0, **TINY)
    with pytest.raises(UserError, match="tokenizers differ"):
        probe(models["student"], {"other": other}, prompts, n=1, max_new_tokens=4, k=4)


def test_the_probe_needs_teachers_and_prompts(models, prompts):
    with pytest.raises(UserError, match="at least one teacher"):
        probe(models["student"], {}, prompts)
    with pytest.raises(UserError, match="at least one prompt"):
        probe(models["student"], {"twin": models["twin"]}, [])


def diag(ratio, gap, adv=0.0):
    return {"overlap_ratio": ratio, "entropy_gap": gap, "overlap_advantage": adv}


def test_readings_follow_the_documented_thresholds():
    assert read_diagnostics(diag(0.3, 0.9)).startswith("low overlap and large entropy gap: thinking patterns")
    assert "consider a cold start" in read_diagnostics(diag(0.3, 0.9))
    assert read_diagnostics(diag(0.3, 0.1)).startswith("low overlap: ")
    assert read_diagnostics(diag(0.8, 0.1)).startswith("compatible")
    assert read_diagnostics(diag(0.8, 0.7)).startswith("overlap is fair but the entropy gap is large")
    assert read_diagnostics(diag(0.6, 0.1)).startswith("partial overlap")
    assert read_diagnostics(diag(0.8, 0.1, adv=-0.3)).endswith(
        "over-confident on the shared tokens (overlap advantage -0.30)"
    )
    assert "over-confident" not in read_diagnostics(diag(0.8, 0.1, adv=math.nan))


def test_the_probe_ranks_a_compatible_teacher_above_an_incompatible_one():
    # The lab's student answers in thinking pattern R (right-to-left carries). "teacher" is the same pattern
    # trained further; "teacher_l" is as accurate but works left to right. Scored on the student's own
    # rollouts, the pattern-R teacher must come first: higher top-k overlap and a higher sequence reward.
    from lyceum.lab.models import eval_rows, load_model, max_new_tokens
    from lyceum.lab.tasks import verify

    student = load_model("student", build=False)
    teachers = {
        "pattern-L": load_model("teacher_l", build=False),
        "pattern-R": load_model("teacher", build=False),
    }
    prompts = [r["prompt"] for r in eval_rows(8)]
    results = probe(
        student, teachers, prompts, n=2, max_new_tokens=max_new_tokens((3, 4)), k=4, verify=verify
    )

    compatible, incompatible = results
    assert compatible.teacher == "pattern-R"
    assert compatible.diagnostics["overlap_ratio"] > incompatible.diagnostics["overlap_ratio"] + 0.2
    assert compatible.diagnostics["overlap_mass_student"] > incompatible.diagnostics["overlap_mass_student"]
    assert compatible.reward_mean > incompatible.reward_mean
    assert incompatible.reading.startswith("low overlap")
    assert not compatible.reading.startswith("low overlap")
