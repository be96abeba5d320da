"""The step's gradient does not depend on how its rollouts are cut into micro-batches: GSPO's sequence mean is
weighted by rollouts, token means by tokens (issue 16: GSPO in two micro-batches of 4 was off by up to 58%)."""

import pytest
import torch

from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.local import build_tiny
from lyceum.models.tokenizers import char_tokenizer
from lyceum.train.config import OPDConfig
from lyceum.train.engine import accumulate_gradients
from lyceum.train.feedback import MixedFeedback, TeacherFeedback, VerifierFeedback
from lyceum.train.objectives import mixed_objective, opd_objective, policy_objective
from lyceum.train.rollout import rollout

torch.set_num_threads(1)


def tiny(seed):
    return build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=seed)


@pytest.fixture(scope="module")
def step():
    """8 rollouts of 2 prompts (groups of 4) with spread-out lengths and rewards that differ within groups."""
    student = tiny(0)
    ro = rollout(student, examples(make_problems(2, digits=(1, 2), seed=0)), n=4, max_new_tokens=12, seed=7)
    lengths = ro.samples.mask.sum(-1)
    assert len(set(lengths.tolist())) > 2  # micro-batches of 4 then hold different token counts
    ro.rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    return student, ro


def grad(student, ro, objective, size, feedback=None):
    student.model.zero_grad()
    accumulate_gradients(student, ro, feedback or VerifierFeedback(None), objective, vocab=student.vocab_size,
                         micro_batch_size=size, diagnostics_k=0)
    return torch.cat([p.grad.reshape(-1) for p in student.model.parameters()])


def prepared(feedback, ro):
    feedback.prepare(ro)
    return feedback


def test_gspo_gradient_is_the_same_for_micro_batches_of_8_and_4(step):
    student, ro = step
    fb = prepared(VerifierFeedback(None), ro)
    whole, halves = grad(student, ro, policy_objective("gspo"), 8, fb), grad(student, ro, policy_objective("gspo"), 4, fb)
    assert whole.abs().max() > 0
    assert torch.allclose(whole, halves, rtol=1e-5, atol=1e-7)


def test_weighting_gspo_by_token_share_would_change_its_gradient(step):
    # the engine's old rule (a token-share weight for every objective) on the same rollouts: not the same
    student, ro = step
    fb = prepared(VerifierFeedback(None), ro)
    as_tokens = policy_objective("gspo")
    as_tokens.unit = "token"
    whole, halves = grad(student, ro, as_tokens, 8, fb), grad(student, ro, as_tokens, 4, fb)
    assert not torch.allclose(whole, halves, rtol=1e-2, atol=1e-6)


def test_gspo_with_a_kl_term_stays_the_same_across_micro_batch_sizes(step):
    student, ro = step
    fb = prepared(VerifierFeedback(None), ro)
    reference = tiny(3)
    obj = lambda: policy_objective("gspo", reference=reference, kl_coef=0.5)
    assert torch.allclose(grad(student, ro, obj(), 8, fb), grad(student, ro, obj(), 4, fb), rtol=1e-5, atol=1e-7)


def test_token_mean_objectives_stay_the_same_across_micro_batch_sizes(step):
    student, ro = step
    fb = prepared(VerifierFeedback(None), ro)
    grpo = [grad(student, ro, policy_objective("grpo"), size, fb) for size in (8, 4, 3)]
    assert torch.allclose(grpo[0], grpo[1], rtol=1e-5, atol=1e-7)
    assert torch.allclose(grpo[0], grpo[2], rtol=1e-5, atol=1e-7)


def test_gspo_mixed_with_a_teacher_term_stays_the_same_across_micro_batch_sizes(step):
    # the sequence-mean policy loss and the token-mean OPD term are each weighted by their own unit
    student, ro = step
    cfg = OPDConfig(k=8, device="cpu")
    fb = prepared(MixedFeedback(VerifierFeedback(None), TeacherFeedback(tiny(1), student.vocab_size)), ro)
    mixed = lambda: mixed_objective(policy_objective("gspo"), opd_objective(cfg), 0.5)
    assert torch.allclose(grad(student, ro, mixed(), 8, fb), grad(student, ro, mixed(), 4, fb), rtol=1e-5, atol=1e-7)
