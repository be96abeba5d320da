"""Where the trainer's peak memory comes from, with rollouts in-process vs from a server: VmHWM / VmRSS (MB)
before and after each rollout, training pass (``engine.accumulate_sums``) and weight push of a short run.

    PYTHONPATH=src nice -n 10 python benchmarks/served_memory_phases.py     # ~3 min on 2 cores
    PYTHONPATH=src python benchmarks/served_memory_phases.py --max-new-tokens 512 --micro-batch 2 --ignore-eos \
        --out benchmarks/results/served_memory_phases_long.json           # long responses: ~13 min

The shape is ``benchmarks/served_rollouts.py``'s default (its models, in its ``--work`` folder): 64 rollouts of
up to 128 tokens decoded together, micro-batches of 4, 3 steps, one synchronous run per arm. Every process runs
with ``MALLOC_MMAP_THRESHOLD_=65536``, so large freed buffers go back to the system and RSS follows the live
tensors rather than the allocator's reuse. Prints one line per phase and writes
``results/served_memory_phases.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.gettempdir()) / "lyceum-served-rollouts"


def mem() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            out[line.split(":")[0]] = int(line.split()[1]) // 1024
    return out


def arm(name: str, url: str, max_new_tokens: int = 128, micro_batch: int = 4, ignore_eos: bool = False) -> None:
    """One trainer run with its phases wrapped; prints a JSON list of (phase, before, after)."""
    import torch

    from lyceum.models.served import sampler as served_sampler
    from lyceum.train import engine
    from lyceum.train import rollout as rollouts
    from lyceum.train.config import OPDConfig
    from lyceum.train.distill import distill

    torch.set_num_threads(1)
    log = [("start", mem(), mem())]

    def wrap(owner, attr, phase):
        original = getattr(owner, attr)

        def wrapped(*a, **k):
            before = mem()
            out = original(*a, **k)
            log.append((phase, before, mem()))
            return out

        setattr(owner, attr, wrapped)

    wrap(rollouts, "rollout", "rollout")
    wrap(engine, "accumulate_sums", "train")
    wrap(served_sampler.ServedSampler, "push_weights", "push")
    extra = {} if name == "in_process" else {"rollout_url": url}
    cfg = OPDConfig(steps=3, prompts_per_step=16, n=4, max_new_tokens=max_new_tokens, lr=1e-3,
                    support="student_topk", k=8, diagnostics_every=0, eval_every=0, checkpoint_every=-1,
                    micro_batch_size=micro_batch, device="cpu", ignore_eos=ignore_eos,
                    **extra)
    distill(WORK / "student", WORK / "teacher", WORK / "prompts.jsonl", Path(tempfile.mkdtemp()), cfg,
            resume=False, desc=name)
    print(json.dumps(log))


def main() -> None:
    import argparse

    if len(sys.argv) == 7 and sys.argv[1] == "--arm":
        return arm(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--max-new-tokens", type=int, default=128, help="longest response (default 128)")
    p.add_argument("--micro-batch", type=int, default=4, help="rollouts per training micro-batch (default 4)")
    p.add_argument("--ignore-eos", action="store_true", help="decode every rollout to --max-new-tokens (past EOS)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "served_memory_phases.json"))
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    rollouts_bench = str(ROOT / "benchmarks" / "served_rollouts.py")
    if not (WORK / "student" / "config.json").exists():  # its models: --quick only builds them and looks
        subprocess.run([sys.executable, rollouts_bench, "--quick", "--out", tempfile.mkdtemp()], env=env, check=True)
    port_file = WORK / "phases.url"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, rollouts_bench, "--serve", str(WORK / "student"), str(port_file)],
                              env=env)
    results = {}
    try:
        while not port_file.exists():
            time.sleep(0.2)
        for name in ("in_process", "served"):
            out = subprocess.run([sys.executable, __file__, "--arm", name, port_file.read_text(),
                                  str(args.max_new_tokens), str(args.micro_batch), str(int(args.ignore_eos))], env=env,
                                 capture_output=True, text=True, check=True)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            for phase, before, after in results[name]:
                print(f"{name:10s} {phase:8s} HWM {before['VmHWM']:4d} -> {after['VmHWM']:4d}  "
                      f"RSS {before['VmRSS']:4d} -> {after['VmRSS']:4d}")
    finally:
        server.terminate()
        server.wait()
    settings = {"max_new_tokens": args.max_new_tokens, "micro_batch": args.micro_batch, "rollouts": 64,
                "ignore_eos": args.ignore_eos}
    Path(args.out).write_text(json.dumps({"settings": settings, "load_average_after": os.getloadavg()[0],
                                          "phases": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
