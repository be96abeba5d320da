"""OPD with the student's rollouts in-process vs from a served sampler in a second process, synchronous vs
one-step asynchronous: tokens/s and the trainer's peak RSS, side by side in one run.

    PYTHONPATH=src nice -n 10 python benchmarks/served_rollouts.py       # what results/ holds (~5 min here)
    PYTHONPATH=src python benchmarks/served_rollouts.py --quick          # a fast look

The default setting is a real run's shape scaled down: 64 rollouts decoded together (16 prompts x 4), up to
128 new tokens, trained in micro-batches of 4, so the in-process sampler's decode state (the KV cache of 64
rows, and its copies as it grows) is a large part of the trainer's peak, as it is in a real run. The earlier
setting, where one micro-batch held the whole step and decode memory was negligible:
``--prompts 8 --tokens 32 --micro-batch 32``.

Arms (each trainer is a fresh process running ``lyceum.train.distill.distill``, one torch thread):
- ``in_process``: the student samples its own rollouts (the local sampler), as without --rollout-url;
- ``served_sync``: rollouts from a server process (tests/serving_server.py in SGLang's wire format, one torch
  thread, concurrent sampling requests decoded as one batch within 20 ms, like a real engine's batching),
  weights pushed from disk after every step, each step waits for its batch (max_staleness 0);
- ``served_async``: the same, with max_staleness 1: the next batch is generated while this one trains.

The teacher is in the trainer's process in every arm. The arms run in rotating order for ``--rounds`` rounds;
each arm keeps its median over rounds. tokens/s = response tokens trained / wall seconds of the timed steps
(every step after the first). Peak RSS = the trainer process's ``ru_maxrss``. The machine is shared, so the
numbers are noisy: compare arms within one run. Writes ``results/served_rollouts.json`` and
``results/served_rollouts.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("in_process", "served_sync", "served_async")


def build_models(work: Path, hidden: int, layers: int) -> None:
    from lyceum.lab.tasks import ALPHABET, examples, make_problems
    from lyceum.models.local import build_tiny
    from lyceum.models.tokenizers import char_tokenizer

    for name, seed, h, n in (("student", 0, hidden, layers), ("teacher", 1, hidden * 2, layers)):
        if not (work / name / "config.json").exists():
            build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=h, layers=n, heads=4,
                       seed=seed).save(work / name)
    rows = examples(make_problems(64, digits=(1, 3), seed=0))
    (work / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def serve(model_dir: str, port_file: str) -> None:
    """The second process: a server speaking vLLM's and SGLang's wire formats, backed by the student."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from serving_server import ServingServer

    from lyceum.models.local import load_local

    torch.set_num_threads(1)
    # SGLang's wire format, with concurrent sampling requests decoded as one batch (as a real engine does; the
    # vLLM format's per-request seeds would keep them apart here)
    server = ServingServer(load_local(model_dir), engine="sglang", batch_window=0.02).start()
    Path(port_file).write_text(server.url)
    while True:
        time.sleep(3600)


def train_arm(arm: str, work: Path, url: str, args) -> dict:
    """One trainer process's run: its metrics and peak RSS."""
    import torch

    from lyceum.train.config import OPDConfig
    from lyceum.train.distill import distill

    torch.set_num_threads(1)
    extra = {}
    if arm != "in_process":
        extra = {"rollout_url": url, "max_staleness": 1 if arm == "served_async" else 0}
    cfg = OPDConfig(steps=args.steps + 1, prompts_per_step=args.prompts, n=args.n, max_new_tokens=args.tokens,
                    lr=1e-3, support="student_topk", k=8, diagnostics_every=0, eval_every=0, checkpoint_every=-1,
                    micro_batch_size=args.micro_batch, device="cpu", ignore_eos=args.ignore_eos, **extra)
    out = Path(tempfile.mkdtemp(prefix=f"{arm}-", dir=work))
    t0, cpu0 = time.time(), time.process_time()
    result = distill(work / "student", work / "teacher", work / "prompts.jsonl", out, cfg, resume=False,
                     desc=arm)
    wall, cpu = time.time() - t0, time.process_time() - cpu0
    rows = [r for r in result.run.read_metrics() if r.get("event") == "train"][1:]  # step 1 warms up
    seconds = sum(r["time_rollout"] + r["time_update"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    rec = {"arm": arm, "tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
           "rollout_wait_s": round(sum(r["time_rollout"] for r in rows), 3),
           "update_s": round(sum(r["time_update"] for r in rows), 3),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "run_wall_s": round(wall, 1), "trainer_cpu_s": round(cpu, 1)}
    if arm != "in_process":
        rec["staleness"] = [r["staleness"] for r in rows]
        rec["mis_kept"] = round(statistics.mean(r["mis_kept"] for r in rows), 3)
        rec["push_s"] = rows[-1]["time_push"]
    return rec


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per arm (after one warm-up step)")
    p.add_argument("--prompts", type=int, default=16, help="prompts per step")
    p.add_argument("--n", type=int, default=4, help="rollouts per prompt")
    p.add_argument("--tokens", type=int, default=128, help="max new tokens per rollout")
    p.add_argument("--micro-batch", type=int, default=4, help="rollouts per training micro-batch")
    p.add_argument("--ignore-eos", action="store_true",
                   help="decode every rollout to --tokens (past EOS), as a long-reasoning student would")
    p.add_argument("--tag", default="", help="suffix of the result files (served_rollouts<tag>.json/.md)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="2 timed steps, 1 round, small batch")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "lyceum-served-rollouts"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--serve", nargs=2, metavar=("MODEL", "PORT_FILE"), help=argparse.SUPPRESS)
    p.add_argument("--arm", nargs=2, metavar=("ARM", "URL"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.steps, args.rounds, args.prompts, args.tokens, args.micro_batch = 2, 1, 4, 16, 4
    work = Path(args.work)
    if args.serve:
        return serve(*args.serve)
    if args.arm:
        print(json.dumps(train_arm(args.arm[0], work, args.arm[1], args)))
        return
    work.mkdir(parents=True, exist_ok=True)
    build_models(work, args.hidden, args.layers)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    port_file = work / "server.url"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(work / "student"), str(port_file)], env=env)
    try:
        while not port_file.exists():
            if server.poll() is not None:
                raise SystemExit("the server process exited")
            time.sleep(0.2)
        url = port_file.read_text()
        passthrough = [f"--{k}={v}" for k, v in (("steps", args.steps), ("prompts", args.prompts), ("n", args.n),
                                                 ("tokens", args.tokens), ("micro-batch", args.micro_batch),
                                                 ("work", work))] + (["--ignore-eos"] if args.ignore_eos else [])
        records: dict[str, list[dict]] = {a: [] for a in ARMS}
        for r in range(args.rounds):
            for arm in ARMS[r % len(ARMS):] + ARMS[: r % len(ARMS)]:  # rotate the order each round
                served_cpu = cpu_seconds(server.pid)
                proc = subprocess.run([sys.executable, __file__, "--arm", arm, url, *passthrough], env=env,
                                      capture_output=True, text=True, check=False)
                if proc.returncode:
                    raise SystemExit(f"arm {arm} failed:\n{proc.stderr[-3000:]}")
                rec = json.loads(proc.stdout.strip().splitlines()[-1])
                rec["server_cpu_s"] = round(cpu_seconds(server.pid) - served_cpu, 1)
                records[arm].append(rec)
                print(json.dumps({"round": r + 1, **rec}), flush=True)
    finally:
        server.terminate()
        server.wait()
    summary = {a: {k: statistics.median(x[k] for x in recs)
                   for k in ("tokens_per_s", "peak_rss_mb", "trainer_cpu_s", "server_cpu_s", "rollout_wait_s",
                             "update_s")} for a, recs in records.items()}
    setup = {"steps": args.steps, "prompts_per_step": args.prompts, "n": args.n, "max_new_tokens": args.tokens,
             "micro_batch": args.micro_batch, "ignore_eos": args.ignore_eos,
             "student": f"llama hidden {args.hidden} x {args.layers} layers",
             "teacher": f"llama hidden {2 * args.hidden} x {args.layers} layers", "rounds": args.rounds,
             "cpus": os.cpu_count(), "load_average_after": round(os.getloadavg()[0], 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"served_rollouts{args.tag}.json").write_text(json.dumps({"setup": setup, "summary": summary, "runs": records},
                                                         indent=1) + "\n")
    base = summary["in_process"]
    lines = ["# Served rollouts: in-process vs served, synchronous vs one-step asynchronous", "",
             "Written by `benchmarks/served_rollouts.py` (command and method in its docstring). Setup: "
             + ", ".join(f"{k} {v}" for k, v in setup.items()) + ".", "",
             ("| arm | tokens/s | vs in-process | trainer peak RSS (MB) | vs in-process | waiting for rollouts (s) "
              "| rest of the steps (s) | trainer CPU (s) | server CPU (s) |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in ARMS:
        s = summary[a]
        lines.append(f"| {a} | {s['tokens_per_s']:.1f} | {s['tokens_per_s'] / base['tokens_per_s']:.2f}x | "
                     f"{s['peak_rss_mb']:.0f} | {s['peak_rss_mb'] / base['peak_rss_mb']:.2f} | "
                     f"{s['rollout_wait_s']:.1f} | {s['update_s']:.1f} | {s['trainer_cpu_s']:.1f} | "
                     f"{s['server_cpu_s']:.1f} |")
    lines += ["", ("Medians over rounds. Waiting and the rest of the steps: the timed steps; CPU: the whole trainer "
                   "process (loading, the warm-up step and the timed steps) and the server process during that arm.")]
    (out / f"served_rollouts{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
