"""LoRA (--lora-r): only the adapters train, the base weights stay bit-identical, the adapters are saved alone and
merge into a plain model that computes what base + adapters computed; the RL KL reference is the base model."""

import copy
import json

import pytest
import torch

from lyceum.cli import main
from lyceum.errors import UserError
from lyceum.lab.tasks import ALPHABET, examples, make_problems
from lyceum.models.local import LocalLM, build_tiny, load_local
from lyceum.models.tokenizers import char_tokenizer
from lyceum.runs import RunDir
from lyceum.train.config import OPDConfig, RLConfig
from lyceum.train.engine import opd_objective, train
from lyceum.train.feedback import TeacherFeedback
from lyceum.train.lora import merge_adapter
from lyceum.train.objectives import reference_logprobs
from lyceum.train.rl import rl_train
from lyceum.train.rollout import micro_batches, rollout
from lyceum.train.schedules import UniformSchedule
from lyceum.train.verifiers import register_verifier

torch.set_num_threads(1)


def tiny(seed):
    return build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=32, layers=2, heads=2, seed=seed)


def rows(n=8):
    return examples(make_problems(n, digits=(1, 2), seed=0))


def cfg(**kw):
    base = {"steps": 3, "prompts_per_step": 4, "n": 2, "max_new_tokens": 8, "lr": 5e-2, "k": 8,
            "diagnostics_k": 4, "eval_every": 0, "checkpoint_every": 0, "device": "cpu", "lora_r": 4,
            "lora_alpha": 8.0, "lora_targets": "q_proj,v_proj,down_proj"}
    return OPDConfig(**{**base, **kw})


def distil(student, teacher, c, path):
    schedule = UniformSchedule(rows(), prompts_per_step=c.prompts_per_step, group_size=c.n,
                               max_new_tokens=c.max_new_tokens, seed=c.seed)
    return train(student, TeacherFeedback(teacher, student.vocab_size), schedule, c, RunDir.open(path),
                 objective=opd_objective(c))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """3 OPD steps with LoRA on q/v/down projections; the base model saved first so the merge can find it."""
    tmp = tmp_path_factory.mktemp("lora")
    base = tiny(0)
    base.save(tmp / "student")
    student = load_local(tmp / "student", device="cpu", dtype="fp32")
    before = {n: p.detach().clone() for n, p in student.model.named_parameters()}
    distil(student, tiny(1), cfg(), tmp / "run")
    return tmp, student, before


def test_only_the_adapters_change_and_the_base_weights_stay_bit_identical(lora_run):
    _, student, before = lora_run
    params = dict(student.model.named_parameters())
    adapters = {n: p for n, p in params.items() if "lora_" in n}
    assert adapters and all(p.requires_grad for p in adapters.values())
    assert any(n.endswith("lora_B.default.weight") and p.abs().max() > 0 for n, p in adapters.items())
    base = {n: p for n, p in params.items() if "lora_" not in n}
    assert len(base) == len(before)
    for name, p in base.items():
        assert not p.requires_grad
        assert torch.equal(p, before[name.replace(".base_layer", "")]), name


def test_the_checkpoint_holds_the_adapters_alone(lora_run):
    tmp, student, _ = lora_run
    folder = tmp / "run" / "checkpoint" / "adapter"
    assert not (tmp / "run" / "checkpoint" / "model").exists()
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in folder.iterdir()}
    from safetensors.torch import load_file

    saved = load_file(str(folder / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)
    n_lora = sum(p.numel() for n, p in student.model.named_parameters() if "lora_" in n)
    assert sum(t.numel() for t in saved.values()) == n_lora
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 4


def test_the_merged_model_computes_what_base_plus_adapters_computed(lora_run):
    tmp, student, _ = lora_run
    merged_dir = merge_adapter(tmp / "run", tmp / "merged")  # the run folder; the base path comes from the config
    merged = load_local(merged_dir, device="cpu", dtype="fp32")
    assert not any("lora_" in n for n, _ in merged.model.named_parameters())
    base = load_local(tmp / "student", device="cpu", dtype="fp32")
    ids, mask, start = base.sample([r["prompt"] for r in rows(4)], 8, seed=3).sequences()
    want = student.score(ids, mask, start=start).logprobs
    torch.testing.assert_close(merged.score(ids, mask, start=start).logprobs, want, rtol=0, atol=1e-5)
    assert (base.score(ids, mask, start=start).logprobs - want).abs().max() > 1e-3  # the adapters mattered


def test_a_resumed_lora_run_reloads_its_adapters_and_a_full_model_run_refuses_them(lora_run):
    tmp, student, _ = lora_run
    again = load_local(tmp / "student", device="cpu", dtype="fp32")
    distil(again, tiny(1), cfg(), tmp / "run")  # the checkpoint is at step 3 of 3: nothing left to train
    trained = dict(student.model.named_parameters())
    for name, p in again.model.named_parameters():
        assert torch.equal(p, trained[name]), name
    with pytest.raises(UserError, match="holds LoRA adapters"):
        distil(load_local(tmp / "student", device="cpu", dtype="fp32"), tiny(1), cfg(lora_r=0), tmp / "run")


def test_lora_targets_that_match_nothing_or_the_lm_head_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="cannot add LoRA adapters"):
        distil(tiny(0), tiny(1), cfg(lora_targets="no_such_proj"), tmp_path / "run")
    with pytest.raises(UserError, match="LM head is not supported"):
        distil(tiny(0), tiny(1), cfg(lora_targets="q_proj,lm_head"), tmp_path / "run2")


# rewards about half the answers (by the parity of the first character), so every group carries a gradient
register_verifier("lora-parity", lambda row, response: float(ord((response or " ")[0]) % 2))


def test_rl_with_lora_uses_the_base_model_with_adapters_off_as_the_kl_reference(tmp_path, monkeypatch):
    student = tiny(0)
    real_deepcopy = copy.deepcopy

    def no_model_copies(x, *a, **k):
        if isinstance(x, (LocalLM, torch.nn.Module)):
            pytest.fail("LoRA RL must not copy the student for its reference")
        return real_deepcopy(x, *a, **k)

    monkeypatch.setattr(copy, "deepcopy", no_model_copies)
    prompts = [{"prompt": f"Q: {i}+{i}\nA: ", "difficulty": 1} for i in range(8)]
    c = RLConfig(steps=3, lr=5e-2, prompts_per_step=4, n=4, max_new_tokens=3, verifier="lora-parity",
                 loss="grpo", pass_rate_k=0, curriculum=False, eval_every=0, checkpoint_every=-1,
                 micro_batch_size=16, diagnostics_every=0, device="cpu", kl_coef=0.1, lora_r=4, lora_alpha=8.0)
    result = rl_train(student, prompts, tmp_path / "run", c)
    kl = [r["kl_ref"] for r in result.run.read_metrics() if r.get("event") == "train"]
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[-1] > 0  # starts at the reference, then moves off it

    monkeypatch.undo()
    ro = rollout(student, prompts[:2], n=2, max_new_tokens=4, seed=1)
    mb = next(iter(micro_batches(ro, 8)))
    base = tiny(0)  # the same seed: the weights the run started from
    ids, mask = mb.ids, mb.mask
    want = base.score(ids, mask, start=mb.start).logprobs * mb.response_mask
    student.model.train()
    got = reference_logprobs(student, mb) * mb.response_mask
    assert student.model.training  # the reference pass (eval mode, adapters off) restores the student as it was
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    adapted = student.score(ids, mask, start=mb.start).logprobs * mb.response_mask
    assert (adapted - want).abs().max() > 1e-4  # the student itself has moved


def test_cli_lora_run_then_merge(tmp_path, capsys):
    tiny(0).save(tmp_path / "student")
    tiny(1).save(tmp_path / "teacher")
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows()))
    code = main(["distill", "train", "--student", str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
                 "--prompts", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "run"), "--steps", "2",
                 "--prompts-per-step", "2", "--n", "2", "--max-new-tokens", "6", "--device", "cpu",
                 "--lora-r", "4", "--gradient-checkpointing", "true", "--eval-every", "0"])
    assert code == 0
    assert "lyceum distill merge --adapter" in capsys.readouterr().out
    assert main(["distill", "merge", "--adapter", str(tmp_path / "run"), "--out", str(tmp_path / "merged")]) == 0
    merged = load_local(tmp_path / "merged", device="cpu")
    assert merged.vocab_size == tiny(0).vocab_size
    assert main(["distill", "merge", "--adapter", str(tmp_path / "student"), "--out", str(tmp_path / "x")]) == 2
