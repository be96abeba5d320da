"""OPD tokens/s and the trainer's peak memory: the teacher in the trainer's process vs behind a server.

Side by side in one run, alternating: `lyceum.train.distill.distill` with the teacher loaded in-process, and the
same run with `--teacher-url` semantics (``ServedTeacherFeedback``) against a second process serving the teacher
over HTTP in SGLang's wire format (tests/serving_server.py, backed by the teacher checkpoint). Every side runs in
a fresh child process with one torch thread, so its peak RSS (``VmHWM``) is its own; the server's peak RSS is
reported beside it. Settings:

- ``lab``:  the lab's shipped student (64 wide, 2 layers) and ``teacher_big`` (128 wide, 4 layers);
- ``wide``: the lab's student and a generated teacher with the lab's tokenizer, 512 wide, 8 layers (~25M
  parameters, random weights: the speed and memory of OPD do not depend on what the teacher knows).

    nice -n 10 python benchmarks/served_teacher.py                       # both settings, 2 rounds each
    python benchmarks/served_teacher.py --settings lab --rounds 1 --steps 3   # a fast look

Writes ``benchmarks/results/served_teacher.json`` and prints a markdown table (docs/distill.md quotes it).
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


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of a live process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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

        def _sglang_generate(self, body):
            inp, params = body.get("input_ids"), body.get("sampling_params") or {}
            if int(params.get("max_new_tokens", 128)) == 0 and inp and isinstance(inp[0], list):
                self._local.cache = self._batch_logprobs([[int(t) for t in ids] for ids in inp])
            try:
                return super()._sglang_generate(body)
            finally:
                self._local.cache = None

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

    torch.set_num_threads(1)
    rows = examples(make_problems(64, digits=(3, 4), seed=0))
    cfg = OPDConfig(steps=args.steps + 1, prompts_per_step=args.prompts, n=args.n, max_new_tokens=args.max_new_tokens,
                    support=args.support, k=args.k, diagnostics_k=args.k, lr=1e-4, micro_batch_size=args.micro_batch,
                    eval_every=0, checkpoint_every=-1, device="cpu", seed=0)
    teacher = served_teacher(args.url, engine="sglang") if args.url else args.teacher
    result = distill(args.student, teacher, rows, args.out, cfg, resume=False)
    steps = [m for m in result.run.read_metrics() if m["event"] == "train"][1:]  # the first step warms up
    seconds = sum(m["time_rollout"] + m["time_update"] for m in steps)
    tokens = sum(m["tokens"] for m in steps)
    print(json.dumps({"tokens_per_s": tokens / seconds, "tokens": tokens, "seconds": seconds,
                      "time_teacher": sum(m["time_teacher"] for m in steps) / len(steps),
                      "time_loss": sum(m["time_loss"] for m in steps) / len(steps),
                      "time_rollout": sum(m["time_rollout"] for m in steps) / len(steps),
                      "loss": steps[-1]["loss"], "peak_rss_mb": peak_rss_mb()}))


# --------------------------------------------------------------------------------------------------- parent


def build_teachers(work: Path) -> dict[str, tuple[Path, Path]]:
    import lyceum
    from lyceum.lab.tasks import ALPHABET
    from lyceum.models.local import build_tiny
    from lyceum.models.tokenizers import char_tokenizer

    lab = Path(lyceum.__file__).parent / "lab" / "checkpoints"
    wide = work / "teacher_wide"
    if not (wide / "config.json").exists():
        build_tiny("llama", tokenizer=char_tokenizer(ALPHABET), hidden=512, layers=8, heads=8, intermediate=2048,
                   seed=1).save(wide)
    return {"lab": (lab / "student", lab / "teacher_big"), "wide": (lab / "student", wide)}


def run_side(side: str, student: Path, teacher: Path, work: Path, a) -> dict:
    common = [sys.executable, __file__, "--worker", "--student", str(student), "--steps", str(a.steps),
              "--prompts", str(a.prompts), "--n", str(a.n), "--max-new-tokens", str(a.max_new_tokens),
              "--support", a.support, "--k", str(a.k), "--micro-batch", str(a.micro_batch),
              "--out", str(work / f"run-{side}")]
    server = None
    try:
        if side == "in_process":
            cmd = [*common, "--teacher", str(teacher)]
        else:
            port_file = work / "port"
            port_file.unlink(missing_ok=True)
            server = subprocess.Popen([sys.executable, __file__, "--serve", str(teacher), "--port-file",
                                       str(port_file)], env=child_env())
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None:
                    raise RuntimeError("the teacher server exited before it was ready")
                time.sleep(0.2)
            cmd = [*common, "--url", port_file.read_text()]
        out = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        record = json.loads(out.stdout.strip().splitlines()[-1])
        if server is not None:
            record["server_peak_rss_mb"] = peak_rss_mb(server.pid)
        return record
    finally:
        if server is not None:
            server.terminate()
            server.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", default="lab,wide")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per side; the faster round is kept")
    p.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warm-up step)")
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
    a = p.parse_args()
    if a.serve:
        return serve(a.serve, a.port_file)
    if a.worker:
        return train_once(a)

    sys.path.insert(0, str(ROOT / "src"))
    work = Path(tempfile.mkdtemp(prefix="lyceum-served-teacher-"))
    models = build_teachers(work)
    results = {}
    for setting in a.settings.split(","):
        student, teacher = models[setting]
        runs: dict[str, list[dict]] = {"in_process": [], "served": []}
        for r in range(a.rounds):
            order = ["in_process", "served"] if r % 2 == 0 else ["served", "in_process"]
            for side in order:
                rec = run_side(side, student, teacher, work, a)
                runs[side].append(rec)
                print(json.dumps({"setting": setting, "round": r + 1, "side": side, **rec}), flush=True)
        best = {side: max(rs, key=lambda x: x["tokens_per_s"]) for side, rs in runs.items()}
        results[setting] = {"best": best, "runs": runs}
    config = {k: getattr(a, k) for k in ("rounds", "steps", "prompts", "n", "max_new_tokens", "support", "k",
                                         "micro_batch")}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"config": config, "cpu_count": os.cpu_count(), "results": results},
                                      indent=2) + "\n")
    print(table(results))


def table(results: dict) -> str:
    lines = ["| setting | teacher | OPD tokens/s | trainer peak RSS (MB) | server peak RSS (MB) | teacher wait per step (s) |",
             "|---|---|---:|---:|---:|---:|"]
    for setting, r in results.items():
        for side, label in (("in_process", "in the trainer"), ("served", "second process (HTTP)")):
            b = r["best"][side]
            server = f"{b['server_peak_rss_mb']:.0f}" if "server_peak_rss_mb" in b else ""
            lines.append(f"| {setting} | {label} | {b['tokens_per_s']:.0f} | {b['peak_rss_mb']:.0f} | {server} | "
                         f"{b['time_teacher']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
