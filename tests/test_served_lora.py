"""LoRA students with served rollouts: the trainer pushes its adapters only (vLLM /v1/load_lora_adapter, SGLang
/load_lora_adapter), one name per version, and rollouts ask for the current one. The test server
(tests/serving_server.py) loads each peft folder onto its own copy of the base model, so what it samples is what
a real server with --enable-lora would sample."""

import asyncio
import copy
import json

import pytest
import torch
from serving_server import ServingServer

from lyceum.cli import main
from lyceum.errors import UserError
from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.chat import ChatRequestFailed
from lyceum.models.local import build_tiny
from lyceum.models.served import ServedSampler, SGLangServer, VLLMServer
from lyceum.models.tokenizers import char_tokenizer
from lyceum.train.lora import add_lora

pytest.importorskip("peft")
torch.set_num_threads(1)
PROMPTS = ["12+34=", "7+5="]
WEIGHT_ROUTES = {"/update_weights_from_disk", "/collective_rpc", "/update_weights"}


def tiny(seed):
    return build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=1, heads=2, seed=seed)


@pytest.fixture(scope="module")
def base():
    return tiny(0)


def lora_student(base):
    """The base model with rank-4 adapters; B is moved off zero so the adapters change every log-prob."""
    lm = add_lora(copy.deepcopy(base), r=4, alpha=8, targets="all-linear")
    nudge_adapters(lm, 0)
    return lm


def nudge_adapters(lm, seed):
    """Stands in for an optimizer step on a LoRA student: only the adapter weights move."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.model.named_parameters():
            if "lora_" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))


@pytest.fixture
def server(base):
    s = ServingServer(copy.deepcopy(base), lora=True).start()
    yield s
    s.stop()


def client(kind, url):
    return VLLMServer(url, "tiny", backoff=0.01) if kind == "vllm" else SGLangServer(url, backoff=0.01)


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_after_an_adapter_push_the_servers_logprobs_are_the_trainers(kind, base, server, tmp_path):
    student = lora_student(base)
    sampler = ServedSampler(client(kind, server.url), student, weights_dir=tmp_path)
    sampler.push_weights("1")
    s = sampler.sample(PROMPTS, max_new_tokens=8, n=2, seed=0)
    ids, mask, start = s.sequences()
    assert torch.allclose(s.logprobs, student.score(ids, mask, start=start).logprobs * s.mask, atol=1e-5)
    assert not torch.allclose(s.logprobs, base.score(ids, mask, start=start).logprobs * s.mask, atol=1e-3)

    nudge_adapters(student, 1)  # the next version: loaded under a new name, the old one unloaded
    sampler.push_weights("2")
    s = sampler.sample(PROMPTS, max_new_tokens=8, n=2, seed=1)
    ids, mask, start = s.sequences()
    assert torch.allclose(s.logprobs, student.score(ids, mask, start=start).logprobs * s.mask, atol=1e-5)
    assert list(server.adapters) == [sampler.adapter] and sampler.adapter.endswith("-v2")
    assert [p.name for p in tmp_path.iterdir()] == ["adapter-2"]  # the previous version's folder is gone


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_a_lora_student_never_pushes_its_base_weights(kind, base, server, tmp_path):
    sampler = ServedSampler(client(kind, server.url), lora_student(base), weights_dir=tmp_path)
    sampler.push_weights("1")
    assert server.reloads == 0 and not WEIGHT_ROUTES & set(server.paths())
    saved = sorted(p.name for p in (tmp_path / "adapter-1").iterdir() if p.suffix in (".json", ".safetensors"))
    assert saved == ["adapter_config.json", "adapter_model.safetensors"]  # no model.safetensors, no config.json


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_a_load_whose_first_answer_was_lost_is_not_an_error(kind, base, server, tmp_path):
    # a load that timed out on the client but went through on the server: the retry is told the name is taken
    student = lora_student(base)
    sampler = ServedSampler(client(kind, server.url), student, weights_dir=tmp_path)
    student.adapter.save_pretrained(str(tmp_path / "adapter-1"))
    asyncio.run(sampler.server.load_lora_adapter(f"{sampler._adapter_prefix}-v1", tmp_path / "adapter-1"))
    sampler.push_weights("1")
    s = sampler.sample(PROMPTS, max_new_tokens=6, n=1, seed=0)
    ids, mask, start = s.sequences()
    assert torch.allclose(s.logprobs, student.score(ids, mask, start=start).logprobs * s.mask, atol=1e-5)


def test_vllm_answers_an_unknown_adapter_with_404(server):
    vllm = client("vllm", server.url)
    with pytest.raises(ChatRequestFailed, match="HTTP 404.*does not exist"):
        asyncio.run(vllm.sample([[3, 4]], max_new_tokens=2, model="tiny-lora-nope"))
    with pytest.raises(ChatRequestFailed, match="HTTP 404.*cannot be found"):
        asyncio.run(vllm.unload_lora_adapter("tiny-lora-nope"))


def test_sglang_answers_an_unknown_adapter_with_400(server):
    with pytest.raises(ChatRequestFailed, match="HTTP 400.*not loaded"):
        asyncio.run(client("sglang", server.url).sample([[3, 4]], max_new_tokens=2, lora_path="nope"))


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_a_name_already_loaded_is_refused(kind, base, server, tmp_path):
    lm = lora_student(base)
    lm.adapter.save_pretrained(str(tmp_path / "a"))
    c = client(kind, server.url)
    asyncio.run(c.load_lora_adapter("a", tmp_path / "a"))
    with pytest.raises(ChatRequestFailed, match="HTTP 400.*already"):
        asyncio.run(c.load_lora_adapter("a", tmp_path / "a"))
    if kind == "vllm":  # vLLM reloads a loaded name only when asked to, in place
        asyncio.run(c.load_lora_adapter("a", tmp_path / "a", load_inplace=True))
    assert server.adapter_loads == (2 if kind == "vllm" else 1)


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_a_server_without_lora_is_named_in_one_sentence(kind, base, tmp_path):
    s = ServingServer(copy.deepcopy(base)).start()  # no --enable-lora (vLLM: no VLLM_ALLOW_RUNTIME_LORA_UPDATING)
    try:
        with pytest.raises(UserError, match="start it with LoRA enabled") as err:
            ServedSampler(client(kind, s.url), lora_student(base), weights_dir=tmp_path).push_weights("1")
        assert ("HTTP 404" if kind == "vllm" else "HTTP 400") in str(err.value)  # vLLM has no such route
    finally:
        s.stop()


def test_distill_train_with_a_lora_student_and_served_rollouts(tmp_path, base):
    base.save(tmp_path / "student")
    tiny(1).save(tmp_path / "teacher")
    rows = examples(make_problems(6, digits=(1, 2), seed=0))
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = ServingServer(copy.deepcopy(base), lora=True).start()
    try:
        code = main(["distill", "train", "--student", str(tmp_path / "student"), "--teacher",
                     str(tmp_path / "teacher"), "--prompts", str(tmp_path / "prompts.jsonl"), "--out",
                     str(tmp_path / "run"), "--rollout-url", server.url, "--lora-r", "4", "--lora-alpha", "8",
                     "--steps", "3", "--prompts-per-step", "2", "--n", "2", "--max-new-tokens", "5", "--k", "4",
                     "--diagnostics-k", "4", "--lr", "1e-2", "--eval-every", "0", "--checkpoint-every", "-1",
                     "--device", "cpu"])
    finally:
        server.stop()
    assert code == 0
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in metrics if m["event"] == "train"]
    assert [m["step"] for m in train] == [1, 2, 3] and all(m["staleness"] == 0 for m in train)
    # the starting adapters, then one version per step; the base weights were never sent
    assert server.adapter_loads == 4 and len(server.adapters) == 1 and server.reloads == 0
    assert not WEIGHT_ROUTES & set(server.paths())
    served = [b.get("model") for p, b in server.requests if p == "/v1/completions"]
    assert served and all(m and "-lora-" in m for m in served)  # every rollout asked for the adapters
