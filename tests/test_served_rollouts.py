"""Served rollouts in training: `distill train` / `rl train` with --rollout-url against a real local server that
speaks vLLM's and SGLang's wire formats (tests/serving_server.py), weight pushes after each step, one-step
asynchronous generation with its staleness bound, retries mid-run, and masked importance sampling."""

import copy
import json
import time

import pytest
import torch
from serving_server import ServingServer

from lyceum.cli import main
from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.local import build_tiny
from lyceum.models.served import ServedSampler, SGLangServer, VLLMServer
from lyceum.models.tokenizers import char_tokenizer
from lyceum.train.config import OPDConfig
from lyceum.train.losses import opd_loss_with_scan
from lyceum.train.rollout import rollout
from lyceum.train.served_rollouts import ServedRollouts, detect_engine

torch.set_num_threads(1)
PROMPTS = [{"prompt": p} for p in ("12+34=", "7+5=", "40+2=")]


def tiny(seed):
    return build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=seed)


@pytest.fixture(scope="module")
def student():
    return tiny(0)


def serve(lm, engine=None):
    return ServingServer(copy.deepcopy(lm), engine=engine).start()


@pytest.fixture
def server(student):
    s = serve(student)
    yield s
    s.stop()


def client(kind, url):
    return VLLMServer(url, "tiny", backoff=0.01) if kind == "vllm" else SGLangServer(url, backoff=0.01)


def nudge(lm, seed):
    """Stands in for an optimizer step: every weight moves."""
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in lm.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


# --------------------------------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_served_rollouts_carry_the_local_samplers_logprobs(kind, student, server, tmp_path):
    sampler = ServedRollouts(ServedSampler(client(kind, server.url), student, weights_dir=tmp_path))
    ro = rollout(sampler, PROMPTS, n=2, max_new_tokens=10, seed=0)  # the engine's one sampling path
    s = ro.samples
    ids, mask, start = s.sequences()
    # the local sampler's log-probs are those of a fresh forward pass (to 5e-7, test_models_local)
    assert torch.allclose(s.logprobs, student.score(ids, mask, start=start).logprobs * s.mask, atol=1e-5)
    assert s.prompt_index.tolist() == [0, 0, 1, 1, 2, 2] and s.mask.sum() > 0


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_ignore_eos_decodes_every_served_rollout_to_its_full_length_past_the_eos(kind, student, server, tmp_path):
    # a random tiny model often draws its end-of-sequence token within 40 tokens; with ignore_eos it never stops
    sampler = ServedRollouts(ServedSampler(client(kind, server.url), student, weights_dir=tmp_path), ignore_eos=True)
    s = rollout(sampler, PROMPTS, n=4, max_new_tokens=40, seed=0).samples
    assert s.lengths.tolist() == [40] * 12 and set(s.finish_reasons) == {"length"}
    stopping = rollout(ServedRollouts(ServedSampler(client(kind, server.url), student, weights_dir=tmp_path)),
                       PROMPTS, n=4, max_new_tokens=40, seed=0).samples
    assert "stop" in stopping.finish_reasons  # so the first run did decode past an EOS


def test_ignore_eos_decodes_every_local_rollout_to_its_full_length(student):
    from lyceum.train.rollout import as_sampler

    s = rollout(as_sampler(student, ignore_eos=True), PROMPTS, n=4, max_new_tokens=40, seed=0).samples
    assert s.lengths.tolist() == [40] * 12 and set(s.finish_reasons) == {"length"}


def test_batched_sampling_in_the_test_server_keeps_exact_logprobs(student, tmp_path):
    # the benchmark's server decodes concurrent requests as one left-padded batch, as real engines batch them
    server = ServingServer(copy.deepcopy(student), engine="sglang", batch_window=0.05).start()
    try:
        s = ServedRollouts(ServedSampler(client("sglang", server.url), student, weights_dir=tmp_path)).sample(
            [r["prompt"] for r in PROMPTS], n=2, max_new_tokens=10)
    finally:
        server.stop()
    ids, mask, start = s.sequences()
    assert torch.allclose(s.logprobs, student.score(ids, mask, start=start).logprobs * s.mask, atol=1e-5)
    assert s.prompt_index.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_after_a_push_the_servers_logprobs_equal_the_trainers(kind, student, server, tmp_path):
    trainer = copy.deepcopy(student)
    sampler = ServedRollouts(ServedSampler(client(kind, server.url), trainer, weights_dir=tmp_path))
    nudge(trainer, 1)
    sampler.push_weights(trainer.model)  # after optimizer step 1
    s = sampler.sample([r["prompt"] for r in PROMPTS], n=2, max_new_tokens=10, seed=0)
    ids, mask, start = s.sequences()
    assert torch.allclose(s.logprobs, trainer.score(ids, mask, start=start).logprobs * s.mask, atol=1e-5)
    assert not torch.allclose(s.logprobs, student.score(ids, mask, start=start).logprobs * s.mask, atol=1e-3)
    assert sampler.policy_version == sampler.trainer_version == 1 and server.reloads == 1
    route = "/collective_rpc" if kind == "vllm" else "/update_weights_from_disk"
    assert route in server.paths()
    assert [p.name for p in tmp_path.iterdir()] == ["weights-1"]  # earlier pushes' folders are removed


def test_sync_every_pushes_only_on_its_steps(student, server, tmp_path):
    sampler = ServedRollouts(ServedSampler(client("sglang", server.url), student, weights_dir=tmp_path),
                             sync_every=3)
    for _ in range(7):
        sampler.push_weights(student.model)
    assert sampler.trainer_version == 7 and sampler.policy_version == 6 and server.reloads == 2


def test_the_engine_is_detected_from_the_server(student):
    for engine, expected in ((None, ("vllm", "tiny")), ("sglang", ("sglang", None))):
        s = serve(student, engine)
        try:
            assert detect_engine(s.url) == expected
        finally:
            s.stop()


# --------------------------------------------------------------------------------------------------- runs


@pytest.fixture
def pair(tmp_path, student):
    student.save(tmp_path / "student")
    tiny(1).save(tmp_path / "teacher")
    rows = examples(make_problems(8, digits=(1, 2), seed=0))
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def distill_args(tmp, url, *extra):
    return ["distill", "train", "--student", str(tmp / "student"), "--teacher", str(tmp / "teacher"),
            "--prompts", str(tmp / "prompts.jsonl"), "--out", str(tmp / "run"), "--rollout-url", url,
            "--steps", "4", "--prompts-per-step", "2", "--n", "2", "--max-new-tokens", "6", "--k", "4",
            "--diagnostics-k", "4", "--lr", "1e-2", "--eval-every", "0", "--checkpoint-every", "-1",
            "--device", "cpu", *extra]


def train_rows(run):
    return [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["event"] == "train"]


def test_distill_train_with_async_served_rollouts_keeps_staleness_within_its_bound(pair, student):
    server = serve(student)
    try:
        assert main(distill_args(pair, server.url, "--max-staleness", "1")) == 0
    finally:
        server.stop()
    rows = train_rows(pair / "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # step 1 trains on the first batch (server at version 0); each later batch was drawn one update behind
    assert [r["staleness"] for r in rows] == [0, 1, 1, 1]
    assert [r["policy_version"] for r in rows] == [0, 0, 1, 2]
    assert all(0 < r["mis_kept"] <= 1 and r["rollouts"] == 4 for r in rows)
    assert server.reloads == 5  # the starting weights, then after each of the 4 steps


def test_pushing_every_second_step_stays_within_a_staleness_bound_of_two(pair, student):
    server = serve(student)
    try:
        assert main(distill_args(pair, server.url, "--max-staleness", "2", "--sync-every", "2")) == 0
    finally:
        server.stop()
    rows = train_rows(pair / "run")
    assert [r["staleness"] for r in rows] == [0, 1, 2, 1]
    assert [r["policy_version"] for r in rows] == [0, 0, 0, 2]
    assert server.reloads == 3  # the starting weights, then after steps 2 and 4


def test_distill_train_with_synchronous_served_rollouts_is_on_policy(pair, student):
    server = serve(student, "sglang")  # engine detected: SGLang's routes
    try:
        assert main(distill_args(pair, server.url)) == 0
    finally:
        server.stop()
    rows = train_rows(pair / "run")
    assert [r["staleness"] for r in rows] == [0, 0, 0, 0]
    assert [r["policy_version"] for r in rows] == [0, 1, 2, 3]
    # the sampler is the trainer's exact twin here: no rollout is masked
    assert all(r["mis_kept"] == 1.0 for r in rows)
    assert "/generate" in server.paths() and "/v1/completions" not in server.paths()


def test_a_5xx_and_a_timeout_mid_rollout_are_retried_without_losing_a_rollout(student, server, tmp_path):
    server.inject({"status": 503, "path": "/v1/completions"}, {"delay": 2.0, "path": "/v1/completions"})
    vllm = VLLMServer(server.url, "tiny", timeout=1.0, backoff=0.01)
    ro = rollout(ServedRollouts(ServedSampler(vllm, student, weights_dir=tmp_path)), PROMPTS, n=2,
                 max_new_tokens=8, seed=0)
    assert ro.samples.prompt_index.tolist() == [0, 0, 1, 1, 2, 2]
    assert vllm.endpoint.retries >= 2 and server.answered["/v1/completions"] >= 3
    ids, mask, start = ro.samples.sequences()
    assert torch.allclose(ro.samples.logprobs, student.score(ids, mask, start=start).logprobs * ro.samples.mask,
                          atol=1e-5)
    deadline = time.time() + 10
    while server.in_flight and time.time() < deadline:  # the late answer finishes before the server stops
        time.sleep(0.05)


def test_5xx_and_malformed_replies_mid_run_are_retried_and_every_step_trains_on_all_its_rollouts(pair, student):
    server = serve(student)
    # the faults hit the rollout requests (one per prompt) of the first steps
    server.inject({"status": 503, "path": "/v1/completions"}, {"status": 500, "path": "/v1/completions"},
                  {"garbage": True, "path": "/v1/completions"})
    try:
        assert main(distill_args(pair, server.url, "--max-staleness", "1")) == 0
    finally:
        server.stop()
    rows = train_rows(pair / "run")
    assert [r["rollouts"] for r in rows] == [4, 4, 4, 4]
    answered = server.answered["/v1/completions"]
    assert answered == 4 * 2 and server.paths().count("/v1/completions") == answered + 3


def test_rl_train_with_served_rollouts_runs_end_to_end(tmp_path, student):
    student.save(tmp_path / "student")
    rows = examples(make_problems(6, digits=(1, 2), seed=0))
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = serve(student)
    try:
        code = main(["rl", "train", "--student", str(tmp_path / "student"), "--prompts", str(tmp_path / "prompts.jsonl"),
                     "--out", str(tmp_path / "run"), "--rollout-url", server.url, "--max-staleness", "1",
                     "--steps", "3", "--prompts-per-step", "2", "--n", "2", "--max-new-tokens", "4",
                     "--pass-rate-k", "0", "--difficulty-key", "digits", "--eval-every", "0", "--checkpoint-every", "-1", "--device", "cpu"])
    finally:
        server.stop()
    assert code == 0
    out = train_rows(tmp_path / "run")
    assert [r["staleness"] for r in out] == [0, 1, 1]
    assert all("mis_kept" in r and r["rollouts"] == 4 for r in out)


def test_a_sync_period_beyond_the_staleness_bound_is_refused_in_one_sentence(pair, capsys):
    assert main(distill_args(pair, "http://127.0.0.1:9", "--sync-every", "3", "--max-staleness", "1")) == 2
    assert "raise --max-staleness to 3" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- MIS


@pytest.mark.parametrize("support,mode", [("sampled", "direct"), ("student_topk", "direct"), ("full", "direct"),
                                          ("student_topk", "pg")])
def test_mis_weights_scale_each_rollouts_share_of_the_opd_loss(support, mode):
    torch.manual_seed(0)
    s, t = torch.randn(3, 5, 11, requires_grad=True), torch.randn(3, 5, 11)
    tokens, mask = torch.randint(0, 11, (3, 5)), torch.ones(3, 5)
    kw = {"support": support, "k": 4, "mode": mode, "diagnostics_k": 4}
    plain, _, _ = opd_loss_with_scan(s, t, tokens, mask, **kw)
    ones, _, _ = opd_loss_with_scan(s, t, tokens, mask, weights=torch.ones(3), **kw)
    assert torch.allclose(plain, ones, atol=1e-6)
    # a masked rollout contributes nothing: its gradient is zero, the others' as with it dropped from the sum
    masked, _, _ = opd_loss_with_scan(s, t, tokens, mask, weights=torch.tensor([1.0, 0.0, 1.0]), **kw)
    (g,) = torch.autograd.grad(masked, s)
    assert g[1].abs().max() == 0 and g[0].abs().max() > 0


def test_masked_importance_sampling_is_on_by_default_only_for_served_rollouts():
    assert OPDConfig().mis is None
    assert OPDConfig(rollout_url="http://gpu0:8000").mis == (0.5, 2.0)
    assert OPDConfig(rollout_url="http://gpu0:8000", served_mis=False).mis is None
    assert OPDConfig(rollout_url="http://gpu0:8000", mis_low=0.8, mis_high=1.25).mis == (0.8, 1.25)


def test_evaluations_with_served_rollouts_decode_on_the_server_not_in_the_trainer(pair, student):
    from lyceum.train.rollout import evaluate
    from lyceum.train.verifiers import get_verifier

    rows = [json.loads(x) for x in (pair / "prompts.jsonl").read_text().splitlines()]
    server = serve(student, "sglang")
    try:
        assert main(distill_args(pair, server.url, "--eval-prompts", str(pair / "prompts.jsonl"),
                                 "--verifier", "lab", "--eval-every", "2")) == 0
    finally:
        server.stop()
    metrics = [json.loads(x) for x in (pair / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if m["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 2, 4]
    greedy = [b for p, b in server.requests if p == "/generate" and b["sampling_params"]["temperature"] == 0]
    assert len(greedy) == 3 * len(rows)  # every evaluation's prompts went to the server, one request each
    # the server holds the trainer's exact weights: its greedy answers score as the trainer's own would
    assert evals[0]["accuracy"] == evaluate(student, rows, get_verifier("lab"), max_new_tokens=6)["accuracy"]
