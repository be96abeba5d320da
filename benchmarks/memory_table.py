"""Peak memory per rank of one training step of a ~0.5B Qwen2-shaped student, per memory setting, and the
formula that extends it to bigger students and GPUs (docs/performance.md, "Memory").

    python benchmarks/memory_table.py                         # every row this branch can run (minutes each)
    python benchmarks/memory_table.py --rows plain,gc,lora    # some rows
    python benchmarks/memory_table.py --estimate-only         # just the 1.5B / 7B / 32B worked estimate

Each row runs in fresh processes (two under torchrun for the FSDP rows) that build a random-init student of
the Qwen2.5-0.5B shape (24 layers, hidden 896, SwiGLU 4864, 14/2 heads, 151,936-token tied vocabulary: 494M
parameters; no download, no tokenizer: prompts are token ids), then run ``lyceum.train.engine.train`` for
``--steps`` optimizer steps of GRPO (rollouts from the model's own decode loop, a seeded pseudo-random 0/1
verifier so advantages are non-zero, AdamW) in float32 on the CPU. Each process reports its peak resident set
(``ru_maxrss``): weights, gradients, AdamW state, activations and the allocator's slack, everything a rank holds.
The FSDP rows need the engine's ``fsdp`` setting (``--fsdp``); on a branch without it they are reported as not
run. Results: ``benchmarks/results/memory_table.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# the Qwen2.5-0.5B shape; "tiny" is for the smoke test
SHAPES = {
    "0.5b": {"vocab_size": 151936, "hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864},
    "tiny": {"vocab_size": 512, "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128},
}
# row name -> (processes, settings)
ROWS = {
    "plain": (1, {}),
    "gc": (1, {"gradient_checkpointing": True}),
    "lora": (1, {"lora_r": 16}),
    "lora+gc": (1, {"lora_r": 16, "gradient_checkpointing": True}),
    "fsdp": (2, {"fsdp": True}),
    "fsdp+gc": (2, {"fsdp": True, "gradient_checkpointing": True}),
    "fsdp+lora": (2, {"fsdp": True, "lora_r": 16}),
    "fsdp+lora+gc": (2, {"fsdp": True, "lora_r": 16, "gradient_checkpointing": True}),
}


def coin(row, response):
    """A reward that is 0 or 1 by a hash of the response: groups get non-zero advantages, so every step updates."""
    return float(zlib.crc32(response.encode()) % 2)


def worker(args) -> None:
    """One rank of one row: build the student, train, print a JSON line with this process's peak RSS."""
    import torch

    from lyceum.models.local import build_tiny
    from lyceum.runs import RunDir
    from lyceum.train.config import OPDConfig
    from lyceum.train.devices import init_distributed
    from lyceum.train.engine import train
    from lyceum.train.feedback import VerifierFeedback
    from lyceum.train.objectives import policy_objective
    from lyceum.train.schedules import make_schedule

    torch.set_num_threads(args.threads)
    settings = ROWS[args.row][1]
    dist = init_distributed(torch.device("cpu"))
    t0 = time.time()
    student = build_tiny("qwen2", **SHAPES[args.shape], tie_embeddings=True, max_positions=4096, seed=0,
                         device="cpu", dtype="fp32")
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    params = sum(p.numel() for p in student.model.parameters())
    g = torch.Generator().manual_seed(1)
    rows = [{"prompt": torch.randint(3, min(1000, SHAPES[args.shape]["vocab_size"]), (args.prompt_tokens,), generator=g).tolist()}
            for _ in range(args.prompts * max(1, dist.world_size))]
    cfg = OPDConfig(steps=args.steps, prompts_per_step=args.prompts, n=args.n, max_new_tokens=args.max_new_tokens,
                    micro_batch_size=args.prompts * args.n, lr=1e-5, diagnostics_every=0, eval_every=0,
                    checkpoint_every=-1, device="cpu", dtype="fp32", **settings)
    schedule = make_schedule("uniform", rows, prompts_per_step=cfg.prompts_per_step, group_size=cfg.n,
                             max_new_tokens=cfg.max_new_tokens, seed=0, rank=dist.rank, world_size=dist.world_size)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.open(Path(tmp) / "run", vars(cfg))
        t1 = time.time()
        train(student, VerifierFeedback(coin), schedule, cfg, run, objective=policy_objective("grpo"),
              verifier=coin, dist=dist, resume=False, desc=args.row)
        t2 = time.time()
        metrics = [r for r in run.read_metrics() if r.get("event") == "train"]
    # under --fsdp the engine hands back its gathered copy (no gradients): an FSDP row trains every weight, or
    # with LoRA the adapters
    if settings.get("fsdp"):
        trainable = (sum(p.numel() for n, p in student.model.named_parameters() if "lora_" in n)
                     if settings.get("lora_r") else params)
    else:
        trainable = sum(p.numel() for p in student.model.parameters() if p.requires_grad)
    print(json.dumps({"row": args.row, "rank": dist.rank, "world_size": dist.world_size,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "rss_after_build_bytes": rss_model, "parameters": params, "trainable_parameters": trainable,
                      "trained_tokens": sum(r.get("tokens", 0) for r in metrics),
                      "build_seconds": round(t1 - t0, 1), "train_seconds": round(t2 - t1, 1),
                      "loss": [r.get("loss") for r in metrics]}), flush=True)


def engine_has_fsdp() -> bool:
    from lyceum.train.config import OPDConfig

    return "fsdp" in OPDConfig.names()


def rank_records(stdout: str) -> list[dict]:
    """The ranks' JSON records in the launcher's output, also when two ranks' lines ran together on one line."""
    decoder, records, at = json.JSONDecoder(), [], stdout.find('{"row"')
    while at >= 0:
        record, end = decoder.raw_decode(stdout, at)
        records.append(record)
        at = stdout.find('{"row"', end)
    return records


def run_row(name: str, args) -> dict:
    ranks, settings = ROWS[name]
    if settings.get("fsdp") and not engine_has_fsdp():
        return {"row": name, "skipped": "this lyceum has no fsdp setting (--fsdp) yet"}
    flags = ["--worker", "--row", name, "--shape", args.shape, "--steps", str(args.steps), "--prompts",
             str(args.prompts), "--rollouts-per-prompt", str(args.n), "--max-new-tokens", str(args.max_new_tokens),
             "--prompt-tokens", str(args.prompt_tokens), "--threads", str(args.threads)]
    if ranks == 1:
        cmd = [sys.executable, str(Path(__file__).resolve()), *flags]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               str(Path(__file__).resolve()), *flags]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    ranks_out = rank_records(proc.stdout)
    if proc.returncode != 0 or len(ranks_out) != ranks:
        return {"row": name, "failed": proc.stderr.strip().splitlines()[-5:] if proc.stderr.strip() else proc.returncode}
    ranks_out.sort(key=lambda r: r["rank"])
    out = {"row": name, "ranks": ranks, "settings": settings, "wall_seconds": round(time.time() - t, 1),
           "per_rank": ranks_out}
    print(json.dumps({"row": name, "peak_rss_gb": [round(r["peak_rss_bytes"] / 2**30, 2) for r in ranks_out]}),
          flush=True)
    return out


# ------------------------------------------------------------------------------------------------- estimate

# the Qwen2.5 family's shapes: parameters, layers, hidden, SwiGLU width, KV heads x head dim
MODELS = {
    "1.5B": {"params": 1.54e9, "layers": 28, "hidden": 1536, "inter": 8960, "kv": 2 * 128},
    "7B": {"params": 7.62e9, "layers": 28, "hidden": 3584, "inter": 18944, "kv": 4 * 128},
    "32B": {"params": 32.8e9, "layers": 64, "hidden": 5120, "inter": 27648, "kv": 8 * 128},
}


def activation_bytes(m: dict, tokens: int, *, checkpointing: bool, bytes_per: int = 2) -> float:
    """Activations a decoder stack keeps for the backward pass, for ``tokens`` tokens in one micro-batch.

    Per token and layer without checkpointing: the tensors the backward reads (two norm inputs and outputs,
    q/k/v and the attention output with a fused SDPA kernel, the MLP's gate, up, activation and product):
    about 7 h + 3 kv + 4 i values. With checkpointing each layer keeps only its input (h values) and one
    layer's full set is alive during its recompute."""
    per_layer = 7 * m["hidden"] + 3 * m["kv"] + 4 * m["inter"]
    if checkpointing:
        return bytes_per * tokens * (m["layers"] * m["hidden"] + per_layer)
    return bytes_per * tokens * m["layers"] * per_layer


def estimate(m: dict, *, tokens: int, shards: int = 1, checkpointing: bool = False, lora: bool = False,
             lora_fraction: float = 0.01) -> float:
    """Bytes per GPU to train the student (no teacher): weights + gradients + AdamW + activations.

    Full training keeps float32 weights (4 B), float32 gradients (4 B) and AdamW's two float32 moments (8 B):
    16 B per parameter, divided by the FSDP shards; FSDP also holds the bf16 copy of about two layers being
    gathered and, in every process, the whole float32 copy of the student that decodes the rollouts, evaluates
    and is saved (``fsdp.Sharded.full``, 4 B per parameter, not sharded). LoRA keeps the frozen base as lyceum loads it (float32, 4 B) and 16 B per adapter parameter
    (``lora_fraction`` of the model, about r=16 on every linear layer). Activations in bf16 (autocast)."""
    P = m["params"]
    if lora:
        state = 4 * P / shards + 16 * lora_fraction * P / shards
    else:
        state = 16 * P / shards
    gathered = 2 * 2 * P / m["layers"] if shards > 1 else 0
    decode_copy = 4 * P if shards > 1 else 0
    return state + gathered + decode_copy + activation_bytes(m, tokens, checkpointing=checkpointing)


def estimate_table(tokens: int) -> tuple[list[str], list[list[str]]]:
    setups = [("full", 1, False, False), ("full + gc", 1, True, False), ("LoRA + gc", 1, True, True),
              ("FSDP 8 + gc", 8, True, False), ("FSDP 8 + LoRA + gc", 8, True, True)]
    header = ["student", *[s[0] for s in setups]]
    rows = []
    for name, m in MODELS.items():
        cells = []
        for _label, shards, gc, lora in setups:
            gb = estimate(m, tokens=tokens, shards=shards, checkpointing=gc, lora=lora) / 1e9
            fits = "both" if gb <= 80 else ("141 only" if gb <= 141 else "neither")
            cells.append(f"{gb:,.0f} GB ({fits})")
        rows.append([name, *cells])
    return header, rows


# ------------------------------------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    p.add_argument("--shape", default="0.5b", choices=list(SHAPES))
    # two steps: AdamW allocates its moments in the first optimizer step, so only from the second step on do
    # weights, moments, gradients and activations coexist (the steady-state peak)
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per row (2: the steady-state peak)")
    p.add_argument("--prompts", type=int, default=2, help="prompts per step per rank")
    # --rollouts-per-prompt is what the workers get: torchrun's own parser would take a bare --n for its --nnodes
    p.add_argument("--n", "--rollouts-per-prompt", dest="n", type=int, default=2, help="rollouts per prompt")
    # a long prompt and short responses: the same activations per rollout as a long response, for far fewer
    # decode steps (the backward pass runs through every position either way)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--prompt-tokens", type=int, default=112)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--estimate-tokens", type=int, default=16 * 2048,
                   help="tokens per micro-batch in the worked estimate (16 rollouts x 2048)")
    p.add_argument("--estimate-only", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "memory_table"), help="results path without extension")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    from lyceum.tables import markdown_table

    names = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in names if r not in ROWS]
    if unknown:
        p.error(f"unknown row {unknown[0]!r}; choose from {', '.join(ROWS)}")
    results = [] if args.estimate_only else [run_row(name, args) for name in names]
    e_header, e_rows = estimate_table(args.estimate_tokens)
    lines = []
    if results:
        rows = []
        for r in results:
            if "per_rank" not in r:
                rows.append([r["row"], "-", "-", "-", "-", r.get("skipped") or f"failed: {r.get('failed')}"])
                continue
            first = r["per_rank"][0]
            peak = max(x["peak_rss_bytes"] for x in r["per_rank"]) / 2**30
            rows.append([r["row"], str(r["ranks"]), f"{first['trainable_parameters'] / 1e6:,.1f}M",
                         f"{first['rss_after_build_bytes'] / 2**30:.2f}", f"{peak:.2f}",
                         f"{sum(x['train_seconds'] for x in r['per_rank']) / r['ranks']:.0f} s"])
        lines += [markdown_table(["setting", "ranks", "trainable", "RSS after build (GiB)", "peak RSS per rank (GiB)",
                                  "train time"], rows), ""]
    lines += [(f"Estimate per GPU, {args.estimate_tokens:,} tokens per micro-batch (student only; OPD adds the "
               f"teacher's bf16 weights, 2 B per parameter):"), "", markdown_table(e_header, e_rows)]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(["python", "benchmarks/memory_table.py", *sys.argv[1:]]), "shape": args.shape,
              "steps": args.steps, "prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
              "prompt_tokens": args.prompt_tokens, "threads": args.threads, "rows": results,
              "estimate": {"tokens": args.estimate_tokens, "header": e_header, "rows": e_rows}}
    if not args.estimate_only:
        out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        out.with_suffix(".md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
