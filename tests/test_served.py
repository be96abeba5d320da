"""Served engines: the vLLM and SGLang clients against a real local server speaking their wire formats.

The server (tests/serving_server.py) runs the lab's shipped tiny checkpoints; every served number is compared
with the same model scored in this process.
"""

import asyncio
import copy
import socket
from pathlib import Path

import pytest
import torch
from serving_server import ServingServer

import lyceum
from lyceum.errors import UserError
from lyceum.models.chat import ChatEndpointDown, ChatRequestFailed
from lyceum.models.local import load_local
from lyceum.models.served import (
    ServedSampler,
    SGLangServer,
    VLLMServer,
    VLLMWeightTransfer,
    dense_teacher_logits,
    served_diagnostics,
    served_scores,
    teacher_request,
    to_samples,
)
from lyceum.train.losses import opd_loss

CHECKPOINTS = Path(lyceum.__file__).parent / "lab" / "checkpoints"
K = 8
PROMPTS = ["12+34=", "7+5=", "40+2="]


@pytest.fixture(scope="module")
def student():
    return load_local(CHECKPOINTS / "student")


@pytest.fixture(scope="module")
def teacher():
    return load_local(CHECKPOINTS / "teacher")


def serve(lm):
    return ServingServer(copy.deepcopy(lm)).start()


@pytest.fixture
def teacher_server(teacher):
    server = serve(teacher)
    yield server
    server.stop()


@pytest.fixture
def student_server(student):
    server = serve(student)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rollouts(student):
    """A left/right-padded batch of the student's own samples, as the trainer holds it."""
    s = student.sample(PROMPTS, max_new_tokens=12, n=2, seed=0)
    return s.sequences()


def client(kind, url, **kw):
    kw.setdefault("backoff", 0.01)
    return VLLMServer(url, "tiny", **kw) if kind == "vllm" else SGLangServer(url, **kw)


def close(a, b, mask):
    m = mask.bool()
    return (a[m] - b[m]).abs().max().item()


# --------------------------------------------------------------------------------------------------- teacher


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_served_teacher_token_and_topk_logprobs_equal_in_process_scoring(kind, teacher, teacher_server, rollouts):
    ids, mask, start = rollouts
    served = asyncio.run(served_scores(client(kind, teacher_server.url), ids, mask, start=start, topk=K))
    local = teacher.score(ids, mask, start=start, topk=K)
    assert torch.equal(served.mask, local.mask)
    assert close(served.logprobs, local.logprobs, local.mask) < 1e-5
    assert torch.equal(served.topk_ids[local.mask.bool()], local.topk_ids[local.mask.bool()])
    assert close(served.topk_logprobs, local.topk_logprobs, local.mask) < 1e-5


def test_sglang_teacher_logprobs_at_given_ids_equal_in_process_scoring(student, teacher, teacher_server, rollouts):
    ids, mask, start = rollouts
    given = student.score(ids, mask, start=start, topk=K).topk_ids  # the student's top-k ids at each position
    served = asyncio.run(served_scores(client("sglang", teacher_server.url), ids, mask, start=start, topk=K,
                                       given_ids=given))
    local = teacher.score(ids, mask, start=start, topk=K, given_ids=given)
    assert close(served.given_logprobs, local.given_logprobs, local.mask) < 1e-5
    assert close(served.logprobs, local.logprobs, local.mask) < 1e-5


def test_teacher_requests_are_batched_and_concurrency_is_bounded(teacher, teacher_server, rollouts):
    ids, mask, start = rollouts
    teacher_sglang = SGLangServer(teacher_server.url, batch_size=2, concurrency=2)
    asyncio.run(served_scores(teacher_sglang, ids, mask, start=start))
    assert teacher_server.paths() == ["/generate"] * 3  # 6 sequences, 2 per request
    assert all(len(body["input_ids"]) == 2 for _, body in teacher_server.requests)
    assert teacher_server.max_in_flight <= 2


# --------------------------------------------------------------------------------------------------- OPD loss


CASES = [("vllm", "sampled"), ("vllm", "teacher_topk"), ("sglang", "sampled"), ("sglang", "teacher_topk"),
         ("sglang", "student_topk"), ("sglang", "intersection"), ("sglang", "union"),
         ("sglang", "symmetric_difference")]


@pytest.mark.parametrize("kind,support", CASES)
def test_opd_loss_and_gradient_from_a_served_teacher_equal_the_in_process_teacher(kind, support, student, teacher,
                                                                                 teacher_server, rollouts):
    ids, mask, start = rollouts
    tokens, resp_mask = ids[:, start:], mask[:, start:]
    with torch.no_grad():
        s_logits = student.logits(student.hidden_states(ids, mask))[:, start - 1: -1]
        t_logits = teacher.logits(teacher.hidden_states(ids, mask))[:, start - 1: -1]
    req = teacher_request(kind, support, K)
    given = student.score(ids, mask, start=start, topk=K).topk_ids if req.given else None
    scores = asyncio.run(served_scores(client(kind, teacher_server.url), ids, mask, start=start, topk=req.topk,
                                       given_ids=given))
    t_served = dense_teacher_logits(scores, tokens, teacher.vocab_size, given_ids=given)

    def loss_and_grad(t):
        s = s_logits.clone().requires_grad_()
        loss, _ = opd_loss(s, t, tokens, resp_mask, support=support, k=K)
        loss.backward()
        return loss.detach(), s.grad

    loss_local, grad_local = loss_and_grad(t_logits)
    loss_served, grad_served = loss_and_grad(t_served)
    assert abs(loss_served.item() - loss_local.item()) < 1e-5
    assert (grad_served - grad_local).abs().max().item() < 1e-5
    assert grad_local.abs().max().item() > 0  # the comparison is not between two zero gradients


# --------------------------------------------------------------------------------------------------- refusals


def test_supports_a_vllm_teacher_cannot_answer_are_refused_in_one_sentence():
    for support in ("student_topk", "intersection", "union"):
        with pytest.raises(UserError) as e:
            teacher_request("vllm", support, K)
        msg = str(e.value)
        assert "\n" not in msg and msg.count(". ") == 0
        assert "vLLM" in msg and "given ids" in msg and support in msg


def test_the_full_support_is_refused_for_both_servers():
    for kind in ("vllm", "sglang"):
        with pytest.raises(UserError, match="whole distribution"):
            teacher_request(kind, "full", K)


def test_a_vllm_teacher_refuses_given_ids_before_sending_anything(teacher_server, rollouts):
    ids, mask, start = rollouts
    given = torch.zeros((ids.shape[0], ids.shape[1] - start, K), dtype=torch.long)
    with pytest.raises(UserError, match="given token ids"):
        asyncio.run(served_scores(client("vllm", teacher_server.url), ids, mask, start=start, given_ids=given))
    assert teacher_server.requests == []


def test_served_diagnostics_leave_out_what_needs_the_full_distribution():
    assert "overlap_advantage" not in served_diagnostics("vllm")
    assert "overlap_advantage" in served_diagnostics("sglang")
    for kind in ("vllm", "sglang"):
        assert {"overlap_ratio", "sequence_reward"} <= set(served_diagnostics(kind))
        assert "entropy_gap" not in served_diagnostics(kind)


# --------------------------------------------------------------------------------------------------- rollouts


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_served_samples_logprobs_equal_a_fresh_forward_pass(kind, student, student_server):
    torch.manual_seed(0)  # the server runs in this process: SGLang's unseeded draws become reproducible
    prompt_ids = student.encode(PROMPTS)
    rows = asyncio.run(client(kind, student_server.url).sample(prompt_ids, n=3, max_new_tokens=10))
    s = to_samples(PROMPTS, prompt_ids, rows, student.pad_id, decode=student.decode)
    assert s.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    ids, mask, start = s.sequences()
    fresh = student.score(ids, mask, start=start)
    # the tolerance of the local sampler's own check (test_models_local): KV-cached decode vs one full pass
    assert torch.allclose(s.logprobs, fresh.logprobs * s.mask, atol=1e-5)
    for i, reason in enumerate(s.finish_reasons):
        n = int(s.lengths[i])
        assert (s.tokens[i, n - 1].item() in student.stop_ids) == (reason == "stop")


def test_vllm_samples_are_reproducible_under_a_seed(student, student_server):
    prompt_ids = student.encode(PROMPTS)
    sampler = client("vllm", student_server.url)
    a = asyncio.run(sampler.sample(prompt_ids, n=2, max_new_tokens=8, seed=3))
    b = asyncio.run(sampler.sample(prompt_ids, n=2, max_new_tokens=8, seed=3))
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    # token ids on the wire, not text; the concurrent requests arrive in any order
    assert prompt_ids[0] in [body["prompt"] for _, body in student_server.requests]


# --------------------------------------------------------------------------------------------------- weight sync


def test_after_a_disk_push_the_servers_logprobs_equal_the_trainers_new_weights(student, student_server, tmp_path):
    trainer = copy.deepcopy(student)
    with torch.no_grad():  # stands in for an optimizer step: every weight moves
        g = torch.Generator().manual_seed(0)
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    s = trainer.sample(PROMPTS, max_new_tokens=8, seed=1)
    ids, mask, start = s.sequences()
    server = client("sglang", student_server.url)
    before = asyncio.run(served_scores(server, ids, mask, start=start))
    new = trainer.score(ids, mask, start=start)
    assert close(before.logprobs, new.logprobs, new.mask) > 1e-3

    reply = asyncio.run(server.push_from_disk(trainer, tmp_path / "step-1", weight_version="step-1"))
    after = asyncio.run(served_scores(server, ids, mask, start=start))
    assert reply["success"] is True and student_server.weight_version == "step-1"
    assert close(after.logprobs, new.logprobs, new.mask) < 1e-5


def test_a_failed_disk_push_is_one_sentence(student_server, tmp_path):
    with pytest.raises(ChatRequestFailed, match="HTTP 400.*model directory not found"):
        asyncio.run(client("sglang", student_server.url).update_weights_from_disk(tmp_path / "missing"))


def test_vllm_weight_transfer_sends_its_control_plane_in_order(student_server):
    sent = []
    info = {"names": ["lm_head.weight"], "dtype_names": ["float32"], "shapes": [[52, 64]], "packed": True}
    asyncio.run(VLLMWeightTransfer(student_server.url).push(info, lambda: sent.append(1), weight_version="v2"))
    assert student_server.paths() == ["/pause?mode=keep", "/start_weight_update", "/update_weights",
                                      "/finish_weight_update", "/resume"]
    assert student_server.requests[2][1] == {"update_info": info} and sent == [1]
    assert asyncio.run(VLLMWeightTransfer(student_server.url).weight_version()) == "v2"


# --------------------------------------------------------------------------------------------------- faults


def test_timeouts_5xx_and_malformed_bodies_are_retried_without_losing_a_request(teacher, teacher_server, rollouts):
    ids, mask, start = rollouts
    teacher_server.inject({"status": 503}, {"delay": 3.0}, {"status": 500}, {"garbage": True})
    sglang = SGLangServer(teacher_server.url, batch_size=2, timeout=1.5, backoff=0.01)
    served = asyncio.run(served_scores(sglang, ids, mask, start=start))
    local = teacher.score(ids, mask, start=start)
    assert close(served.logprobs, local.logprobs, local.mask) < 1e-5
    # each fault cost one resend (a busy machine may add a timeout of its own: counted the same way)
    assert sglang.endpoint.retries >= 4
    assert teacher_server.paths() == ["/generate"] * (3 + sglang.endpoint.retries)


def test_vllm_rollouts_survive_5xx_and_every_prompt_gets_its_samples(student, student_server):
    student_server.inject({"status": 502, "path": "/v1/completions"}, {"status": 429})
    prompt_ids = student.encode(PROMPTS)
    rows = asyncio.run(client("vllm", student_server.url).sample(prompt_ids, n=2, max_new_tokens=6))
    assert [c.prompt_index for c in rows] == [0, 0, 1, 1, 2, 2]


def test_a_request_failing_on_every_attempt_raises_request_failed(teacher_server, rollouts):
    ids, mask, start = rollouts
    teacher_server.inject(*[{"status": 503}] * 3)
    with pytest.raises(ChatRequestFailed) as e:
        asyncio.run(served_scores(SGLangServer(teacher_server.url, batch_size=8, max_retries=2, backoff=0.01),
                                  ids, mask, start=start))
    assert not isinstance(e.value, ChatEndpointDown) and "3 times" in str(e.value)


def test_an_unreachable_server_raises_endpoint_down(rollouts):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    ids, mask, start = rollouts
    with pytest.raises(ChatEndpointDown, match="cannot reach"):
        asyncio.run(served_scores(SGLangServer(f"http://127.0.0.1:{port}", max_retries=1, backoff=0.01),
                                  ids, mask, start=start))


# --------------------------------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_served_sampler_returns_what_the_local_sampler_returns(kind, student, student_server):
    sampler = ServedSampler(client(kind, student_server.url), student)
    served = sampler.sample(PROMPTS, max_new_tokens=10, n=2, seed=0)
    local = student.sample(PROMPTS, max_new_tokens=10, n=2, seed=0)
    assert served.prompt_index.tolist() == local.prompt_index.tolist()
    assert torch.equal(served.prompt_ids, local.prompt_ids) and torch.equal(served.prompt_mask, local.prompt_mask)
    assert served.texts == [student.decode(served.tokens[i, : int(n)].tolist()) for i, n in enumerate(served.lengths)]
    assert served.prompts == PROMPTS


def test_after_a_push_served_rollouts_carry_the_trainers_new_logprobs(student, student_server, tmp_path):
    trainer = copy.deepcopy(student)
    sampler = ServedSampler(client("sglang", student_server.url), trainer, weights_dir=tmp_path)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    sampler.push_weights("step-1")
    torch.manual_seed(0)
    s = sampler.sample(PROMPTS, max_new_tokens=10, n=2)
    ids, mask, start = s.sequences()
    assert torch.allclose(s.logprobs, trainer.score(ids, mask, start=start).logprobs * s.mask, atol=1e-5)
    assert not torch.allclose(s.logprobs, student.score(ids, mask, start=start).logprobs * s.mask, atol=1e-3)
    assert sampler.version == student_server.weight_version == "step-1"


def test_a_sampler_without_a_weight_route_says_so(student, student_server):
    with pytest.raises(UserError, match="no weight route"):
        ServedSampler(client("vllm", student_server.url), student).push_weights("1")


def test_a_bad_request_is_not_retried(student_server):
    with pytest.raises(ChatRequestFailed, match="HTTP 404"):
        asyncio.run(client("vllm", student_server.url).load_lora_adapter("a", "/nowhere"))
    assert student_server.paths() == ["/v1/load_lora_adapter"]


def test_a_server_url_must_be_http():
    with pytest.raises(UserError, match="http://"):
        SGLangServer("localhost:30000")
