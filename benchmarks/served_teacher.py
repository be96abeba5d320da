"""OPD tokens/s and the trainer's peak memory: the teacher in the trainer's process vs behind a server.

Side by side in one run, alternating: `lyceum.train.distill.distill` with the teacher loaded in-process, and the
same run with `--teacher-url` semantics (``ServedTeacherFeedback``) against a second process serving the teacher
over HTTP in SGLang's wire format (tests/serving_server.py, backed by the teacher checkpoint). Arms:

- ``in_process``: the teacher in the trainer, which gets both cores (``--threads``, default 2 torch threads);
- ``in_process_1``: the same with one torch thread (on a loaded machine two threads can be the slower; with
  ``--threads 1`` it is the only in-process arm);
- ``served``: the teacher in a server process with one torch thread, the trainer with one: the same two cores,
  split as a real deployment splits its GPUs (the teacher on its own); each step's scores are asked for as
  soon as its rollouts are decoded and arrive while the trainer trains the step's earlier micro-batches;
- ``served_ahead``: the same with ``--max-staleness 1``: the student decodes the next step's batch before this
  step's update, so the server scores a batch while the trainer trains the one before (one step off-policy,
  masked importance sampling on, staleness logged per step).

Every arm runs in a fresh child process, so its peak RSS (``VmHWM``) is its own; the server's peak RSS is
reported beside it. Settings (models with the lab's character tokenizer; random weights where generated: the
speed and memory of OPD do not depend on what the models know):

- ``x4``:   a student 256 wide x 4 layers (~3M parameters) and a teacher 512 wide x 4 layers (~13M), the
  teacher 4x the student as in the OPD paper's pairs (e.g. an 8B teacher for a 1.7B student);
- ``wide``: the lab's shipped student (64 wide, 2 layers, ~0.1M) and a teacher 512 wide x 8 layers (~25M): the
  teacher's forward is nearly the whole step, so there is little trainer work to hide it behind;
- ``lab``:  the lab's shipped student and ``teacher_big`` (128 wide, 4 layers): both tiny, HTTP overhead shows.

    nice -n 10 python benchmarks/served_teacher.py                      # x4 and wide, 2 rounds (~5 min on a quiet machine)
    python benchmarks/served_teacher.py --settings lab --rounds 1 --steps 3   # a fast look

Writes ``benchmarks/results/served_teacher.json`` and ``.md`` (docs/distill.md quotes it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("in_process", "in_process_1", "served", "served_ahead")
LABELS = {"in_process": "teacher in the trainer ({} threads)", "in_process_1": "teacher in the trainer ({} thread)", "served": "teacher served (1 + 1 threads)",
          "served_ahead": "served, --max-staleness 1 (1 + 1)"}


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of a live process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


# --------------------------------------------------------------------------------------------------- children


def serve(folder: str, port_file: str) -> None:
    """The teacher server: tests/serving_server.py backed by the checkpoint in ``folder``, with one change a real
    server has too: a prefill-only ``/generate`` batch runs as one padded forward pass, not one per sequence."""
    import threading

    import torch
    from serving_server import ServingServer

    from lyceum.models.local import load_local

    class BatchedServer(ServingServer):
        def __init__(self, lm, model_name):
            super().__init__(lm, model_name)
            self._local = threading.local()
            self.stats = {"requests": 0, "forward_s": 0.0, "handler_s": 0.0}  # where the server's time goes

        def _sglang_generate(self, body):
            # CPU seconds of this handler's thread (torch runs one thread, in the caller's): waiting for the
            # model lock or for a core on a busy machine is not counted
            t0 = time.thread_time()
            inp, params = body.get("input_ids"), body.get("sampling_params") or {}
            if int(params.get("max_new_tokens", 128)) == 0 and inp and isinstance(inp[0], list):
                self._local.cache = self._batch_logprobs([[int(t) for t in ids] for ids in inp])
            t1 = time.thread_time()
            try:
                return super()._sglang_generate(body)
            finally:
                self._local.cache = None
                with self._model_lock:
                    self.stats["requests"] += 1
                    self.stats["forward_s"] += t1 - t0
                    self.stats["handler_s"] += time.thread_time() - t0  # + building the top-k lists
                    Path(port_file + ".stats").write_text(json.dumps(self.stats))

        def _logprobs(self, ids):
            cache = getattr(self._local, "cache", None)
            if cache is not None and tuple(ids) in cache:
                return cache[tuple(ids)]
            return super()._logprobs(ids)

        @torch.no_grad()
        def _batch_logprobs(self, seqs):
            width = max(len(s) for s in seqs)
            x = torch.zeros((len(seqs), width), dtype=torch.long)
            m = torch.zeros_like(x)
            for i, s in enumerate(seqs):  # right-padded: every real position is computed as it is alone
                x[i, : len(s)], m[i, : len(s)] = torch.tensor(s), 1
            with self._model_lock:
                lp = self.lm.logits(self.lm.hidden_states(x, m)).float().log_softmax(-1)
            return {tuple(s): lp[i, : len(s)] for i, s in enumerate(seqs)}

    torch.set_num_threads(1)
    server = BatchedServer(load_local(folder), model_name="teacher").start()
    Path(port_file).write_text(server.url)
    while True:
        time.sleep(3600)


def train_once(args) -> None:
    """One distillation run; prints a JSON line with its throughput and this process's peak RSS."""
    import torch

    from lyceum.lab.tasks import examples, make_problems
    from lyceum.train.config import OPDConfig
    from lyceum.train.distill import distill
    from lyceum.train.served_teacher import served_teacher

    torch.set_num_threads(args.threads)
    rows = examples(make_problems(64, digits=(3, 4), seed=0))
    cfg = OPDConfig(steps=args.steps + 1, prompts_per_step=args.prompts, n=args.n, max_new_tokens=args.max_new_tokens,
                    support=args.support, k=args.k, diagnostics_k=args.k, lr=1e-4, micro_batch_size=args.micro_batch,
                    eval_every=0, checkpoint_every=-1, device="cpu", seed=0, max_staleness=args.staleness)
    teacher = served_teacher(args.url, engine="sglang") if args.url else args.teacher
    result = distill(args.student, teacher, rows, args.out, cfg, resume=False)
    steps = [m for m in result.run.read_metrics() if m["event"] == "train"][1:]  # the first step warms up
    seconds = sum(m["time_rollout"] + m["time_update"] for m in steps)
    tokens = sum(m["tokens"] for m in steps)
    print(json.dumps({"tokens_per_s": tokens / seconds, "tokens": tokens, "seconds": seconds,
                      "time_teacher": sum(m["time_teacher"] for m in steps) / len(steps),
                      "time_loss": sum(m["time_loss"] for m in steps) / len(steps),
                      "time_rollout": sum(m["time_rollout"] for m in steps) / len(steps),
                      "loss": steps[-1]["loss"], "peak_rss_mb": peak_rss_mb(), "threads": args.threads,
                      "trainer_cpu_s": time.process_time(),  # the whole process: loading and the warm-up too
                      "staleness": [m.get("staleness", 0) for m in steps],
                      "mis_kept": min((m["mis_kept"] for m in steps if "mis_kept" in m), default=None)}))


# --------------------------------------------------------------------------------------------------- parent


def build_models(work: Path) -> dict[str, tuple[Path, Path]]:
    import lyceum
    from lyceum.lab.tasks import ALPHABET
    from lyceum.models.local import build_tiny
    from lyceum.models.tokenizers import char_tokenizer

    lab = Path(lyceum.__file__).parent / "lab" / "checkpoints"
    made = {}
    for name, seed, hidden, layers in (("student_256x4", 0, 256, 4), ("teacher_512x4", 1, 512, 4),
                                       ("teacher_512x8", 1, 512, 8)):
        made[name] = work / name
        if not (made[name] / "config.json").exists():
            build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=hidden, layers=layers, heads=8,
                       intermediate=4 * hidden, seed=seed).save(made[name])
    return {"x4": (made["student_256x4"], made["teacher_512x4"]), "wide": (lab / "student", made["teacher_512x8"]),
            "lab": (lab / "student", lab / "teacher_big")}


def run_side(side: str, student: Path, teacher: Path, work: Path, a) -> dict:
    common = [sys.executable, __file__, "--worker", "--student", str(student), "--steps", str(a.steps),
              "--prompts", str(a.prompts), "--n", str(a.n), "--max-new-tokens", str(a.max_new_tokens),
              "--support", a.support, "--k", str(a.k), "--micro-batch", str(a.micro_batch),
              "--out", str(work / f"run-{side}")]
    server = None
    try:
        if side.startswith("in_process"):
            cmd = [*common, "--teacher", str(teacher), "--threads", "1" if side == "in_process_1" else str(a.threads)]
        else:
            port_file = work / "port"
            port_file.unlink(missing_ok=True)
            Path(str(port_file) + ".stats").unlink(missing_ok=True)
            server = subprocess.Popen([sys.executable, __file__, "--serve", str(teacher), "--port-file",
                                       str(port_file)], env=child_env())
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None:
                    raise RuntimeError("the teacher server exited before it was ready")
                time.sleep(0.2)
            cmd = [*common, "--url", port_file.read_text(), "--threads", "1",
                   "--staleness", "1" if side == "served_ahead" else "0"]
        out = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        record = json.loads(out.stdout.strip().splitlines()[-1])
        if server is not None:
            record["server_peak_rss_mb"] = peak_rss_mb(server.pid)
            record["server_cpu_s"] = cpu_seconds(server.pid)
            stats = json.loads(Path(str(port_file) + ".stats").read_text())  # every step's, the warm-up's too
            record.update({f"server_{k}_per_step": v / (a.steps + 1) for k, v in stats.items()})
        return record
    finally:
        if server is not None:
            server.terminate()
            server.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", default="x4,wide", help="comma-separated: x4, wide, lab")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the in-process arm (the served arms "
                                                          "give one to the trainer and one to the server)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per side; the faster round is kept")
    p.add_argument("--steps", type=int, default=3, help="timed steps per run (after one warm-up step)")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--support", default="teacher_topk")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "served_teacher.json"))
    # child roles
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port-file", help=argparse.SUPPRESS)
    p.add_argument("--student", help=argparse.SUPPRESS)
    p.add_argument("--teacher", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--staleness", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        return serve(a.serve, a.port_file)
    if a.worker:
        return train_once(a)

    sys.path.insert(0, str(ROOT / "src"))
    work = Path(tempfile.mkdtemp(prefix="lyceum-served-teacher-"))
    models = build_models(work)
    results = {}
    for setting in a.settings.split(","):
        student, teacher = models[setting]
        sides = [side for side in SIDES if side != "in_process" or a.threads > 1]  # --threads 1: one in-process arm
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for r in range(a.rounds):
            for side in sides[r % len(sides):] + sides[: r % len(sides)]:  # rotate the order each round
                rec = run_side(side, student, teacher, work, a)
                runs[side].append(rec)
                print(json.dumps({"setting": setting, "round": r + 1, "side": side, **rec}), flush=True)
        best = {side: max(rs, key=lambda x: x["tokens_per_s"]) for side, rs in runs.items()}
        results[setting] = {"best": best, "runs": runs}
    config = {k: getattr(a, k) for k in ("rounds", "steps", "prompts", "n", "max_new_tokens", "support", "k",
                                         "micro_batch", "threads")}
    load = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"config": config, "cpu_count": os.cpu_count(), "load_after": load,
                                       "results": results}, indent=2) + "\n")
    text = "\n".join(["# Served teacher: in the trainer vs a second process", "",
                       "Written by `benchmarks/served_teacher.py` (arms, settings and method in its docstring). "
                       "Setup: " + ", ".join(f"{k} {v}" for k, v in config.items())
                       + f", cpus {os.cpu_count()}; load average after the run {load[0]:.1f} (a shared machine).",
                       "", table(results), "",
                       ("Best round per arm. tokens/s: response tokens trained / wall seconds of the timed steps "
                        "(every step after the first). Trainer waits: seconds per timed step the trainer waited for "
                        "the teacher's scores (in-process: the teacher's forward). Server forward and building "
                        "replies (the top-k lists; the JSON encoding is not in it): the server's CPU seconds per "
                        "step, the warm-up step included. CPU: the whole trainer process (loading and the warm-up step too) and the "
                        "server process (loading too).")])
    Path(a.out).with_suffix(".md").write_text(text + "\n")
    print(text)


def table(results: dict) -> str:
    lines = [("| setting | arm | OPD tokens/s | vs the faster in-process arm | trainer peak RSS (MB) | "
              "server peak RSS (MB) | trainer waits for the teacher (s/step) | server forward (CPU s/step) | "
              "server building replies (CPU s/step) | staleness | trainer CPU (s) | server CPU (s) |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for setting, r in results.items():
        base = max((b for side, b in r["best"].items() if side.startswith("in_process")),
                   key=lambda b: b["tokens_per_s"])  # the faster in-process arm
        for side in [s for s in SIDES if s in r["best"]]:
            b = r["best"][side]
            server = f"{b['server_peak_rss_mb']:.0f}" if "server_peak_rss_mb" in b else ""
            fwd = f"{b['server_forward_s_per_step']:.3f}" if "server_forward_s_per_step" in b else ""
            reply = (f"{b['server_handler_s_per_step'] - b['server_forward_s_per_step']:.3f}"
                     if "server_handler_s_per_step" in b else "")
            lines.append(f"| {setting} | {LABELS[side].format(b['threads'])} | {b['tokens_per_s']:.0f} | "
                         f"{b['tokens_per_s'] / base['tokens_per_s']:.2f}x | {b['peak_rss_mb']:.0f} | {server} | "
                         f"{b['time_teacher']:.3f} | {fwd} | {reply} | {max(b.get('staleness') or [0])} | "
                         f"{b['trainer_cpu_s']:.1f} | {b.get('server_cpu_s', 0):.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
