"""Several processes (gloo on the CPU): --fsdp trains like one process, holds half the state per process and
checkpoints across world sizes, with LoRA too (only the adapter shards train, the saved adapters merge, the RL
KL reference is the base); the loss, the metrics and the curriculum cover every process's rollouts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import multirank_worker as worker
import pytest
import torch

from lyceum.models.local import load_local

WORKER = Path(__file__).with_name("multirank_worker.py")
SRC = Path(__file__).resolve().parents[1] / "src"


def launch(out: Path, steps: int, processes: int, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, str(WORKER), str(out), str(steps), *flags]
    if processes > 1:  # --standalone: a free port of its own, so parallel test runs do not collide
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *cmd[1:]]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-4000:]


def train_rows(folder: Path) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == "train"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """OUT/fsdp: step 1 in one process without FSDP, steps 2-3 in two with --fsdp, step 4 in one with --fsdp,
    each resuming the other's checkpoint; the plain and curriculum runs in two processes; and the one-process
    reference without FSDP, 4 steps."""
    out = tmp_path_factory.mktemp("multirank")
    first = launch(out, 1, 1, "--plain")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: the same kernels, the same rounding
    try:
        _, reference = worker.reference_run(out / "reference", 4)  # meanwhile, in this process
    finally:
        torch.set_num_threads(threads)
    finish(first)
    finish(launch(out, 3, 2))
    finish(launch(out, 4, 1))
    return {"out": out, "reference": reference, "ref": train_rows(out / "reference"),
            "fsdp": train_rows(out / "fsdp"), "plain": train_rows(out / "plain")}


def test_fsdp_over_two_processes_follows_the_one_process_loss_trajectory(runs):
    fsdp, ref = runs["fsdp"], runs["ref"]
    assert [r["step"] for r in fsdp] == [1, 2, 3, 4]
    for mine, theirs in zip(fsdp, ref):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=1e-4)  # clipped over all shards
        assert mine["tokens"] == theirs["tokens"] and mine["rollouts"] == theirs["rollouts"]


def test_fsdp_checkpoints_resume_at_another_number_of_processes(runs):
    # step 1 was saved by one process without FSDP and continued by two with it; step 3 by two and continued
    # by one: the steps after each resume match the uninterrupted reference only if weights and AdamW state
    # came back whole
    assert "resumed from" in (runs["out"] / "fsdp" / "run.log").read_text()
    assert (runs["out"] / "fsdp" / "checkpoint" / "dcp" / ".metadata").is_file()
    for step in (1, 3):
        assert runs["fsdp"][step]["loss"] == pytest.approx(runs["ref"][step]["loss"], rel=1e-5)
        assert runs["fsdp"][step]["grad_norm"] == pytest.approx(runs["ref"][step]["grad_norm"], rel=1e-4)


def test_each_of_two_fsdp_processes_holds_about_half_the_parameters_and_optimizer_state(runs):
    two, one = runs["fsdp"][1], runs["fsdp"][3]
    for key in ("memory_param_bytes", "memory_optimizer_bytes"):
        assert 0.45 <= two[key] / one[key] <= 0.55, key
    whole = sum(p.numel() * p.element_size() for p in runs["reference"].model.parameters())
    assert one["memory_param_bytes"] == whole


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_the_gathered_hugging_face_folder_holds_the_trained_weights(runs):
    import torch.distributed.checkpoint as dcp

    folder = runs["out"] / "fsdp" / "checkpoint"
    saved = load_local(folder / "model", device="cpu")
    state = {"model": {k: torch.empty_like(v) for k, v in saved.model.state_dict().items()}}
    dcp.load(state, checkpoint_id=str(folder / "dcp"))  # the shards the run trained, read without processes
    reference = dict(runs["reference"].model.named_parameters())
    for name, p in saved.model.named_parameters():
        assert torch.equal(p, state["model"][name]), name
        assert torch.allclose(p, reference[name], atol=1e-4), name


def test_the_loss_of_two_processes_is_the_token_mean_over_both_processes_tokens(runs):
    # the two processes' first rollouts hold different numbers of tokens, so a mean of per-process token
    # means would differ from the one-process loss
    from lyceum.train.schedules import UniformSchedule

    student, cfg = worker.tiny(0, stop_like=49), worker.opd_cfg(2)
    tokens = []
    for rank in (0, 1):
        rows = UniformSchedule(worker.prompts(), prompts_per_step=cfg.prompts_per_step, group_size=cfg.n,
                               max_new_tokens=cfg.max_new_tokens, rank=rank, world_size=2).next_batch(0)
        samples = student.sample([r["prompt"] for r in rows], cfg.max_new_tokens, n=cfg.n,
                                 temperature=cfg.temperature, seed=0)
        tokens.append(int(samples.mask.sum()))
    assert tokens[0] != tokens[1] and sum(tokens) == runs["ref"][0]["tokens"]
    for mine, theirs in zip(runs["plain"], runs["ref"]):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["overlap_ratio"] == pytest.approx(theirs["overlap_ratio"], rel=1e-5)


def test_metrics_cover_every_process_rollouts(runs):
    rows = train_rows(runs["out"] / "curriculum")
    # rank 0's rollouts all earn 1, rank 1's none: the logged reward is over both (rank 0 alone: 1.0)
    assert [r["rollouts"] for r in rows] == [8, 8, 8]
    assert [r["reward"] for r in rows] == [0.5, 0.5, 0.5]
    assert [r["train_accuracy"] for r in rows] == [0.5, 0.5, 0.5]


def test_the_curriculum_advances_on_every_process_at_the_same_step(runs):
    folder = runs["out"] / "curriculum"
    stages = [json.loads((folder / f"stages-rank{r}.json").read_text()) for r in (0, 1)]
    assert stages[0] == stages[1]
    # the mean of all rollouts (0.5) opens stage 1 (threshold 0.4) and never stage 2 (0.6), which rank 0's
    # own reward (1.0) would have opened, and rank 1's (0.0) not even stage 1
    assert [(s["stage"], s["first_step"]) for s in stages[0]] == [(0, 0), (1, 1)]


@pytest.mark.parametrize("command", [["distill", "train", "--teacher", "T"], ["rl", "train"]])
def test_fsdp_is_a_bare_flag_of_the_training_commands(command):
    from lyceum.cli import build_parser
    from lyceum.train.config import OPDConfig, RLConfig
    from lyceum.train.config_flags import config_from_args

    cls = RLConfig if command[0] == "rl" else OPDConfig
    base = [*command, "--student", "S", "--prompts", "P", "--out", "O"]
    parse = lambda *flags: config_from_args(build_parser().parse_args([*base, *flags]), cls)
    assert parse("--fsdp").fsdp is True
    assert parse("--fsdp", "false").fsdp is False
    assert parse().fsdp is False


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory):
    """OUT/lora: LoRA on OUT/base, step 1 in this process without FSDP, steps 2-3 in two processes with --fsdp,
    step 4 in one with --fsdp, each resuming the other's checkpoint (OUT/rl-lora: RL with LoRA, a KL term and
    --fsdp in the two processes); and the one-process reference without FSDP, 4 steps."""
    out = tmp_path_factory.mktemp("multirank-lora")
    worker.tiny(0, stop_like=49).save(out / "base")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: the same kernels, the same rounding
    try:
        worker.lora_run(out / "base", out / "lora", 1, fsdp=False)
        two = launch(out, 3, 2, "--lora")
        reference = worker.lora_run(out / "base", out / "reference", 4, fsdp=False)  # meanwhile
    finally:
        torch.set_num_threads(threads)
    finish(two)
    finish(launch(out, 4, 1, "--lora"))
    return {"out": out, "reference": reference, "ref": train_rows(out / "reference"),
            "lora": train_rows(out / "lora")}


def test_fsdp_with_lora_over_two_processes_follows_the_one_process_loss_trajectory(lora_runs):
    # step 1 saved without FSDP and resumed by two processes, step 3 saved by two and resumed by one: the
    # adapters and their AdamW state come back whole at another number of processes
    lora, ref = lora_runs["lora"], lora_runs["ref"]
    assert [r["step"] for r in lora] == [1, 2, 3, 4]
    for mine, theirs in zip(lora, ref):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=1e-4)  # clipped over adapter shards
        assert mine["tokens"] == theirs["tokens"]


def test_fsdp_with_lora_trains_the_adapter_shards_only(lora_runs):
    import torch.distributed.checkpoint as dcp

    base = dict(load_local(lora_runs["out"] / "base", device="cpu").model.named_parameters())
    after = torch.load(lora_runs["out"] / "lora" / "shards-after.pt")  # every weight of the sharded student
    adapters = {n: t for n, t in after.items() if "lora_" in n}
    assert adapters and len(after) == len(adapters) + len(base)
    for name, t in after.items():
        if name not in adapters:  # peft's wrapped layers keep their base weight under base_layer
            assert torch.equal(t, base[name.replace(".base_layer", "")]), name
    assert any(n.endswith("lora_B.default.weight") and t.abs().sum() > 0 for n, t in adapters.items())
    # the checkpoint's shards are the adapters and their optimizer state alone
    saved = dcp.FileSystemReader(str(lora_runs["out"] / "lora" / "checkpoint" / "dcp")).read_metadata()
    weights = [k for k in saved.state_dict_metadata if k.startswith("model.")]
    assert sorted(weights) == sorted(f"model.{n}" for n in adapters)


def test_fsdp_with_lora_saves_the_gathered_adapters_alone_and_they_merge(lora_runs, tmp_path):
    from lyceum.train.lora import merge_adapter

    checkpoint = lora_runs["out"] / "lora" / "checkpoint"
    assert (checkpoint / "adapter" / "adapter_config.json").is_file() and not (checkpoint / "model").exists()
    merged = load_local(merge_adapter(lora_runs["out"] / "lora", tmp_path / "merged"), device="cpu")
    reference = lora_runs["reference"]  # base + the adapters trained in one process without FSDP
    ids = torch.tensor([[3, 9, 14, 20, 7, 11]])
    with torch.no_grad():
        want = reference.model(input_ids=ids).logits
        got = merged.model(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4)


def test_rl_with_lora_under_fsdp_takes_the_base_model_with_adapters_off_as_kl_reference(lora_runs):
    rows = train_rows(lora_runs["out"] / "rl-lora")
    # the adapters start at zero, so the first step's policy is the base model: KL exactly 0; after one update
    # the adapters moved and the reference (the sharded base, adapters off) did not
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["kl_ref"] == 0.0 and rows[1]["kl_ref"] > 0


def test_accelerate_launch_cpu_with_several_processes_is_one_clear_error(monkeypatch):
    # accelerate's --cpu mode runs the script once, with MASTER_ADDR set and no WORLD_SIZE: one process that
    # would train alone while the user asked for several
    from lyceum.errors import UserError
    from lyceum.train.devices import init_distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with pytest.raises(UserError, match="--multi_gpu --num_processes N"):
        init_distributed(torch.device("cpu"))
    monkeypatch.delenv("MASTER_ADDR")  # accelerate launch --cpu of one process: runs as one
    assert init_distributed(torch.device("cpu")).world_size == 1
