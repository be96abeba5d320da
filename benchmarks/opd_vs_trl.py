"""On-policy distillation, lyceum vs TRL, side by side on identical inputs (CPU by default).

    python benchmarks/opd_vs_trl.py                      # 32k and 151k vocab + loss memory: ~25 min
    python benchmarks/opd_vs_trl.py --settings v32k --steps 2 --quick
    python benchmarks/opd_vs_trl.py --loss-memory-only   # only the full-vocabulary reverse-KL memory check

For every setting the parent process writes one tiny random-init Llama student/teacher pair, a word-level
tokenizer covering the whole vocabulary and a fixed batch of prompts into a work folder. Then each side runs
in its own fresh subprocess (so peak resident memory is measured per side), one after the other, on those same
files: 1 warm-up step, then ``--steps`` timed OPD steps (rollout -> teacher scoring -> reverse-KL loss ->
AdamW step), ``--rounds`` times in alternating order, keeping each side's fastest round. The sides:

- ``lyceum``: ``lyceum.train.engine.train`` (rollout, teacher feedback, ``opd_loss`` with support=full and
  kind=reverse_kl, clip, AdamW) with diagnostics off, fed by a schedule that repeats the prompt batch;
- ``lyceum_diagnostics``: the same with the paper's token diagnostics every step (the ``OPDConfig`` default);
- ``trl_distill``: TRL's ``DistillationTrainer`` (beta=1.0: reverse KL, on-policy);
- ``trl_gkd``: TRL's ``GKDTrainer`` with lmbda=1.0 (always on-policy) and beta=1.0. In TRL's generalised JSD,
  beta=0 is forward KL(teacher || student) and beta=1 is ``F.kl_div(teacher_logp, student_logp)`` =
  KL(student || teacher), i.e. reverse KL.

All sides: float32 (no autocast), no gradient checkpointing, temperature 1.0, no top-k/top-p, AdamW (TRL: the
transformers default, fused) with the same constant learning rate and no weight decay, grad-norm clipping 1.0,
the same prompt batch every step, the same max_new_tokens.

"Trained tokens" are the completion tokens that enter the loss in a step (generation stops at EOS; with random
weights that almost never happens, so it is ~batch * max_new_tokens on every side). tokens/s = trained tokens
of a timed step / its wall time, the median over the timed steps (one step slowed by another process does not
move it); tokens/CPU-s uses the process's CPU time instead of wall time. Peak memory is the child's peak
resident set size (``ru_maxrss``: imports, models, optimizer state and the steps); ``step_peak_rss_mb`` is the
peak during the steps alone (the kernel's high-water mark reset just before the warm-up step).

One JSON line per setting goes to stdout; ``benchmarks/results/<setting>.json`` and
``benchmarks/results/README.md`` (a markdown table) are (re)written. Timings on a shared 2-core machine are
noisy: run it when the machine is quiet."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SIDES = ("lyceum", "lyceum_diagnostics", "trl_distill", "trl_gkd")
OURS = ("lyceum", "lyceum_diagnostics")

PAD, EOS, BOS, UNK = 0, 1, 2, 3


@dataclass
class Setting:
    name: str
    vocab: int
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 688
    batch: int = 8              # prompts per step (one rollout each)
    prompt_len: tuple[int, int] = (16, 32)   # prompt lengths drawn uniformly in this range (left padding matters)
    max_new_tokens: int = 64
    lr: float = 1e-5
    seed: int = 0
    extra: dict = field(default_factory=dict)


SETTINGS = {
    "v32k": Setting("v32k", vocab=32_000),
    "v151k": Setting("v151k", vocab=151_936),
    # for the smoke test only: a few seconds end to end
    "tiny": Setting("tiny", vocab=512, hidden=32, layers=2, heads=2, intermediate=64, batch=2,
                    prompt_len=(3, 6), max_new_tokens=4),
}


def quick(s: Setting) -> Setting:
    """A shorter workload for a fast look (fewer prompts, shorter rollouts); same models."""
    return Setting(**{**asdict(s), "batch": 4, "max_new_tokens": 16, "prompt_len": tuple(s.prompt_len)})


# ---------------------------------------------------------------------------------------------------------------
# inputs: models, tokenizer, prompts (written once by the parent, read by every side)


def word_tokenizer(vocab: int):
    """A word-level fast tokenizer with one token per id: "<pad> <eos> <bos> <unk> t4 t5 ... t{vocab-1}".

    Prompts are written as space-separated token names, so text -> ids round-trips exactly on every side.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    names = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"t{i}" for i in range(4, vocab)]
    tk = Tokenizer(models.WordLevel(vocab={n: i for i, n in enumerate(names)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tk.add_special_tokens(names[:4])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=4096)


def llama_config(s: Setting):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
        num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
        max_position_embeddings=1024, tie_word_embeddings=False,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)


def prepare_inputs(s: Setting, work: Path) -> dict:
    """Write student/, teacher/ (config + weights + tokenizer) and prompts.json into ``work``; reuse if present."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    stamp = work / "setting.json"
    if stamp.exists() and json.loads(stamp.read_text()) == asdict(s) | {"prompt_len": list(s.prompt_len)}:
        return json.loads((work / "prompts.json").read_text())
    work.mkdir(parents=True, exist_ok=True)
    tok = word_tokenizer(s.vocab)
    for name, seed in (("student", s.seed), ("teacher", s.seed + 1)):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama_config(s))
        model.generation_config = GenerationConfig(
            bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
        model.save_pretrained(work / name)
        tok.save_pretrained(work / name)
    g = torch.Generator().manual_seed(s.seed)
    lo, hi = s.prompt_len
    lengths = torch.randint(lo, hi + 1, (s.batch,), generator=g).tolist()
    ids = [torch.randint(4, s.vocab, (n,), generator=g).tolist() for n in lengths]
    prompts = {"ids": ids, "text": [" ".join(f"t{i}" for i in row) for row in ids]}
    assert [tok(t, add_special_tokens=False).input_ids for t in prompts["text"]] == ids
    (work / "prompts.json").write_text(json.dumps(prompts))
    stamp.write_text(json.dumps(asdict(s) | {"prompt_len": list(s.prompt_len)}))
    return prompts


# ---------------------------------------------------------------------------------------------------------------
# measuring inside a child


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0), so later peaks cover only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class StepClock:
    """Collects per-step wall times and trained-token counts; the first ``warmup`` steps are not counted."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.tokens: list[int] = []
        self._t0 = self._c0 = 0.0
        self._pending_tokens = 0
        self.hwm_reset = False
        self.rss_before_steps = 0.0
        self.frozen: dict | None = None

    def begin(self) -> None:
        if not self.times and not self.hwm_reset:
            self.rss_before_steps = rss_mb()
            self.hwm_reset = reset_hwm()
        self._pending_tokens = 0
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()

    def add_tokens(self, n: int) -> None:
        self._pending_tokens += int(n)

    def end(self) -> None:
        self.times.append(time.perf_counter() - self._t0)
        self.cpu.append(time.process_time() - self._c0)
        self.tokens.append(self._pending_tokens)

    def freeze(self) -> None:
        """Read the memory peaks now (end of the last step), before whatever the trainer does after its loop."""
        self.frozen = self._peaks()

    def _peaks(self) -> dict:
        return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "step_peak_rss_mb": round(hwm_mb(), 1) if self.hwm_reset else None}

    def summary(self) -> dict:
        import statistics

        t, c, n = self.times[self.warmup:], self.cpu[self.warmup:], self.tokens[self.warmup:]
        secs = sum(t)
        per_step = [k / x for k, x in zip(n, t)]
        return {
            "steps": len(t), "trained_tokens": sum(n), "seconds": round(secs, 3),
            # the headline: the median step's rate, robust to a step slowed down by other processes
            "tokens_per_s": round(statistics.median(per_step), 2) if per_step else None,
            "tokens_per_s_mean": round(sum(n) / secs, 2) if secs else None,
            "tokens_per_cpu_s": round(sum(n) / sum(c), 2) if sum(c) else None,
            "step_seconds": [round(x, 3) for x in t], "step_cpu_seconds": [round(x, 3) for x in c],
            "warmup_seconds": [round(x, 3) for x in self.times[:self.warmup]],
            **(self.frozen or self._peaks()),
            "rss_before_steps_mb": round(self.rss_before_steps, 1),
        }


# ---------------------------------------------------------------------------------------------------------------
# the sides (each runs in its own child process)


class _BenchSchedule:
    """The same prompt batch every step (a ``lyceum.train.schedules`` schedule); it also times the steps: the
    engine asks for the batch first thing in a step and reports the step's metrics after the optimizer step."""

    def __init__(self, rows: list[dict], s: Setting, clock: StepClock, total_steps: int):
        self.rows, self.s, self.clock, self.total = rows, s, clock, total_steps

    def next_batch(self, step: int) -> list[dict]:
        self.clock.begin()
        return self.rows

    def group_size(self, step: int) -> int:
        return 1

    def max_new_tokens(self, step: int) -> int:
        return self.s.max_new_tokens

    def observe(self, step: int, metrics: dict) -> bool:
        self.clock.add_tokens(metrics["tokens"])
        self.clock.end()
        if step + 1 == self.total:
            self.clock.freeze()  # peaks of the steps, before the engine's end-of-run checkpoint
        return False

    def metrics(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def run_lyceum(s: Setting, work: Path, prompts: dict, clock: StepClock, total_steps: int, *,
               diagnostics: bool = False) -> dict:
    import tempfile

    import lyceum
    from lyceum.models.local import check_pair, load_local
    from lyceum.runs import RunDir
    from lyceum.train.config import OPDConfig
    from lyceum.train.engine import make_optimizer, opd_objective, train
    from lyceum.train.feedback import TeacherFeedback

    cfg = OPDConfig(steps=total_steps, seed=s.seed, device="cpu", dtype="fp32", prompts_per_step=s.batch, n=1,
                    max_new_tokens=s.max_new_tokens, temperature=1.0, top_p=1.0, support="full",
                    kind="reverse_kl", mode="direct", lr=s.lr, weight_decay=0.0, lr_schedule="constant",
                    max_grad_norm=1.0, micro_batch_size=s.batch, diagnostics_every=int(diagnostics), eval_every=0,
                    checkpoint_every=-1)
    student = load_local(work / "student", device="cpu", dtype="fp32")
    teacher = load_local(work / "teacher", device="cpu", dtype="fp32")
    vocab = check_pair(student, teacher)
    rows = [{"prompt": ids} for ids in prompts["ids"]]
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(tmp, "bench", None)
        result = train(student, TeacherFeedback(teacher, vocab), _BenchSchedule(rows, s, clock, total_steps), cfg,
                       run, objective=opd_objective(cfg), vocab=vocab, resume=False)
        assert result.steps == total_steps
        phases = step_phases(run.read_metrics()[clock.warmup:])
    # the engine builds its optimizer with make_optimizer; build one more (state is lazy: nothing allocated)
    opt = make_optimizer([p for p in student.model.parameters() if p.requires_grad], cfg)
    flags = [k for k in ("fused", "foreach") if opt.defaults.get(k)]
    diag = "paper diagnostics every step" if diagnostics else "diagnostics off"
    return {"impl": f"lyceum {lyceum.__version__} engine.train (support=full, reverse_kl, {diag})",
            "optimizer": type(opt).__name__ + (f"({', '.join(flags)})" if flags else ""), "phases": phases}


PHASES = {"sampling": "time_rollout", "teacher scoring": "time_teacher", "loss (student forward, loss, backward)":
          "time_loss", "optimizer": "time_optimizer"}


def step_phases(rows: list[dict]) -> dict[str, float]:
    """Where a timed step's time goes: the median seconds of each phase the engine logs (``time_*``)."""
    import statistics

    rows = [r for r in rows if r.get("event") == "train"]
    return {name: round(statistics.median(r[key] for r in rows), 3) for name, key in PHASES.items()
            if rows and all(key in r for r in rows)}


def _trl_args(cls, s: Setting, out: Path, total_steps: int, **kw):
    return cls(
        output_dir=str(out), per_device_train_batch_size=s.batch, gradient_accumulation_steps=1,
        max_steps=total_steps, learning_rate=s.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=1.0, seed=s.seed,  # optim: the HF default, fused torch AdamW
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
        report_to="none", save_strategy="no", logging_steps=10_000, disable_tqdm=True,
        dataloader_num_workers=0, temperature=1.0, **kw)


def _optimizer_name(trainer) -> str:
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    flags = [k for k in ("fused", "foreach") if opt.defaults.get(k)]
    return type(opt).__name__ + (f"({', '.join(flags)})" if flags else "")


def _clock_callback(clock: StepClock):
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            clock.begin()

        def on_step_end(self, args, state, control, **kw):
            clock.end()
            if state.global_step == args.max_steps:
                clock.freeze()

    return Clock()


def run_trl_distill(s: Setting, work: Path, prompts: dict, clock: StepClock, total_steps: int) -> dict:
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        from trl import DistillationConfig, DistillationTrainer
    except ImportError:
        sys.exit(f"trl {trl.__version__} has no DistillationTrainer (it arrived in trl 1.x); upgrade trl to compare")

    class Trainer(DistillationTrainer):
        def compute_loss(self, model, inputs, *a, **kw):  # count the tokens this step trains on
            clock.add_tokens(inputs["completion_mask"].sum().item())
            return super().compute_loss(model, inputs, *a, **kw)

    tok = AutoTokenizer.from_pretrained(work / "student")
    student = AutoModelForCausalLM.from_pretrained(work / "student", dtype="float32")
    teacher = AutoModelForCausalLM.from_pretrained(work / "teacher", dtype="float32")
    args = _trl_args(DistillationConfig, s, work / "trl_out", total_steps, beta=1.0, top_k=0, top_p=1.0,
                     max_completion_length=s.max_new_tokens, shuffle_dataset=False, pad_to_multiple_of=None)
    trainer = Trainer(model=student, teacher_model=teacher, args=args, processing_class=tok,
                      train_dataset=Dataset.from_dict({"prompt": prompts["text"]}),
                      callbacks=[_clock_callback(clock)])
    trainer.train()
    return {"impl": f"trl {trl.__version__} DistillationTrainer(beta=1.0)", "optimizer": _optimizer_name(trainer)}


def run_trl_gkd(s: Setting, work: Path, prompts: dict, clock: StepClock, total_steps: int) -> dict:
    import warnings

    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from trl.experimental.gkd import GKDConfig, GKDTrainer
    except ImportError:  # TRL before GKD moved to experimental
        from trl import GKDConfig, GKDTrainer

    class Trainer(GKDTrainer):
        def compute_loss(self, model, inputs, *a, **kw):
            clock.add_tokens((inputs["labels"][:, 1:] != -100).sum().item())
            return super().compute_loss(model, inputs, *a, **kw)

    def collate(rows):
        # The prompts, left-padded. With lmbda=1 GKD replaces input_ids/labels by the student's rollout, but the
        # HF Trainer counts `num_items_in_batch` (the loss denominator) from the collated labels *before* that, so
        # the labels stand for a full-length completion of every prompt (all -100 would divide by zero).
        width = max(len(r["ids"]) for r in rows)
        ids = torch.tensor([[PAD] * (width - len(r["ids"])) + r["ids"] for r in rows])
        mask = torch.tensor([[0] * (width - len(r["ids"])) + [1] * len(r["ids"]) for r in rows])
        labels = torch.full((len(rows), s.max_new_tokens + 1), EOS)
        labels[:, 0] = -100
        return {"input_ids": ids, "attention_mask": mask, "labels": labels,
                "prompts": ids, "prompt_attention_mask": mask}

    tok = AutoTokenizer.from_pretrained(work / "student")
    student = AutoModelForCausalLM.from_pretrained(work / "student", dtype="float32")
    teacher = AutoModelForCausalLM.from_pretrained(work / "teacher", dtype="float32")
    args = _trl_args(GKDConfig, s, work / "trl_out", total_steps, lmbda=1.0, beta=1.0,
                     max_new_tokens=s.max_new_tokens, max_length=None)
    trainer = Trainer(model=student, teacher_model=teacher, args=args, processing_class=tok,
                      data_collator=collate, train_dataset=Dataset.from_dict({"ids": prompts["ids"]}),
                      callbacks=[_clock_callback(clock)])
    trainer.train()
    return {"impl": f"trl {trl.__version__} GKDTrainer(lmbda=1.0, beta=1.0)", "optimizer": _optimizer_name(trainer)}


RUNNERS = {"lyceum": run_lyceum, "lyceum_diagnostics": partial(run_lyceum, diagnostics=True),
           "trl_distill": run_trl_distill, "trl_gkd": run_trl_gkd}


def child(side: str, s: Setting, work: Path, steps: int, warmup: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    prompts = json.loads((work / "prompts.json").read_text())
    clock = StepClock(warmup)
    info = RUNNERS[side](s, work, prompts, clock, warmup + steps)
    out = {"side": side, **info, **clock.summary()}
    print("RESULT " + json.dumps(out), flush=True)


def run_child(side: str, s: Setting, work: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--setting-json", json.dumps(asdict(s)), "--work", str(work),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {"side": side, "error": f"exit {proc.returncode}", "stderr_tail": tail}
    res = json.loads(lines[-1][len("RESULT "):])
    res["process_wall_s"] = round(wall, 2)
    return res


# ---------------------------------------------------------------------------------------------------------------
# the parent: run every side on every setting, write the results


def run_rounds(sides: list[str], s: Setting, work: Path, args) -> dict[str, dict]:
    """Run every side ``--rounds`` times, reversing the order each round so that a change in the machine's load
    does not always hit the same side; keep each side's fastest round (highest median tokens/s), as timing
    benchmarks keep the minimum time, and record the others' rates."""
    best: dict[str, dict] = {}
    for r in range(args.rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            res = run_child(side, s, work, args)
            prev = best.get(side)
            rates = (prev or {}).get("rounds_tokens_per_s", []) + [res.get("tokens_per_s")]
            if prev is None or "error" in prev or ("error" not in res and res["tokens_per_s"] > prev["tokens_per_s"]):
                best[side] = res
            best[side]["rounds_tokens_per_s"] = rates
    return {side: best[side] for side in sides}


def compare(rows: dict[str, dict]) -> dict:
    """Each lyceum side against each TRL side: tokens/s ratio (> 1: lyceum faster) and peak-memory ratio (< 1:
    lyceum leaner)."""
    out: dict[str, dict] = {}
    for ours in OURS:
        ly = rows.get(ours)
        if not ly or "error" in ly:
            continue
        for side, r in rows.items():
            if side in OURS or "error" in r:
                continue
            c = {"speedup": round(ly["tokens_per_s"] / r["tokens_per_s"], 3),
                 "speedup_cpu": round(ly["tokens_per_cpu_s"] / r["tokens_per_cpu_s"], 3),
                 "peak_rss_ratio": round(ly["peak_rss_mb"] / r["peak_rss_mb"], 3)}
            if ly.get("step_peak_rss_mb") and r.get("step_peak_rss_mb"):
                c["step_peak_rss_ratio"] = round(ly["step_peak_rss_mb"] / r["step_peak_rss_mb"], 3)
            out.setdefault(ours, {})[side] = c
    return out


def machine() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or
            platform.machine(), "cores": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


# ---------------------------------------------------------------------------------------------------------------
# full-vocabulary reverse KL: peak memory of one forward + backward, each variant in a fresh child process

LOSS_VARIANTS = ("lyceum_chunked", "unchunked_fp32", "trl_chunked")


def loss_child(variant: str, B: int, T: int, V: int, H: int, threads: int) -> None:
    """Reverse KL(student || teacher) over the whole vocabulary from hidden states [B, T, H] and LM heads [V, H]."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ws = (torch.randn(V, H) * 0.02).requires_grad_()
    wt = torch.randn(V, H) * 0.02
    hs = torch.randn(B, T, H).requires_grad_()
    ht = torch.randn(B, T, H)
    mask = torch.ones(B, T)
    tokens = torch.randint(0, V, (B, T))
    base = rss_mb()
    reset_hwm()
    t0 = time.perf_counter()
    if variant == "lyceum_chunked":
        from lyceum.train.losses import Head, opd_loss

        loss, _ = opd_loss(Head(hs, ws), Head(ht, wt), tokens, mask, support="full", kind="reverse_kl")
    elif variant == "unchunked_fp32":
        lp = (hs @ ws.T).log_softmax(-1)
        with torch.no_grad():
            lq = (ht @ wt.T).log_softmax(-1)
        loss = (lp.exp() * (lp - lq)).sum(-1).mean()
    else:
        from trl.trainer.distillation_trainer import _chunked_divergence_loss

        loss, _, _ = _chunked_divergence_loss(hs, ht, ws, wt, mask, beta=1.0)
    loss.backward()
    secs = time.perf_counter() - t0
    peak = hwm_mb()
    print("RESULT " + json.dumps({"variant": variant, "B": B, "T": T, "V": V, "H": H, "loss": float(loss),
                                  "seconds": round(secs, 3), "inputs_rss_mb": round(base, 1),
                                  "peak_rss_mb": round(peak, 1), "peak_above_inputs_mb": round(peak - base, 1)}),
          flush=True)


def run_loss_child(variant: str, B: int, T: int, V: int, H: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--loss-child", variant, "--shape", f"{B},{T},{V},{H}", "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"variant": variant, "B": B, "T": T, "error": f"exit {proc.returncode}",
                "stderr_tail": (proc.stderr or proc.stdout)[-2000:]}
    return json.loads(lines[-1][len("RESULT "):])


def loss_memory(args) -> dict:
    """lyceum's chunked loss at the target shape (8 x 512, vocab 151,936) against the unchunked float32 reference.

    The unchunked reference holds several B x T x V float32 tensors (2.5 GB each at the target shape), more than a
    small machine has; it is measured at ``--loss-ref-batches`` (default 1 and 2 rows of 512) where it fits, and its
    peak at B = 8 is extrapolated linearly (every big tensor it holds is B x T x V; checked by the two points),
    unless ``--loss-ref-full`` asks for the real thing.
    """
    V, H, T, B = 151_936, 256, 512, 8
    ref_bs = sorted({int(x) for x in args.loss_ref_batches.split(",")} | ({B} if args.loss_ref_full else set()))
    rows = [run_loss_child("lyceum_chunked", b, T, V, H, args.threads) for b in sorted(set(ref_bs) | {B})]
    rows += [run_loss_child("unchunked_fp32", b, T, V, H, args.threads) for b in ref_bs]
    if importlib.util.find_spec("trl") is not None:
        rows += [run_loss_child("trl_chunked", B, T, V, H, args.threads)]

    def peak(variant, b):
        r = [x for x in rows if x["variant"] == variant and x["B"] == b and "error" not in x]
        return r[0]["peak_above_inputs_mb"] if r else None

    ref_points = [(b, peak("unchunked_fp32", b)) for b in ref_bs if peak("unchunked_fp32", b) is not None]
    if any(b == B for b, _ in ref_points):
        ref, how = dict(ref_points)[B], "measured"
    elif len(ref_points) >= 2:
        (b0, m0), (b1, m1) = ref_points[0], ref_points[-1]
        ref, how = m0 + (m1 - m0) / (b1 - b0) * (B - b0), f"extrapolated linearly from B={b0},{b1}"
    else:
        ref, how = None, "not measured"
    ours = peak("lyceum_chunked", B)
    summary = {
        "shape": f"{B}x{T}x{V}", "lyceum_chunked_peak_mb": ours,
        "unchunked_fp32_peak_mb": round(ref, 1) if ref else None, "unchunked_how": how,
        "ratio": round(ours / ref, 4) if ours and ref else None, "target": "< 0.25",
        "trl_chunked_peak_mb": peak("trl_chunked", B),
        "same_size_ratios": {f"B={b}": round(peak("lyceum_chunked", b) / m, 4) for b, m in ref_points
                             if peak("lyceum_chunked", b)},
    }
    return {"what": "peak RSS above the inputs (hidden states + LM heads) of one forward+backward of the "
                    "full-vocabulary reverse KL; each variant in a fresh process",
            "summary": summary, "runs": rows, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def _fmt(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


def markdown_table(records: list[dict], loss: dict | None) -> str:
    """The results as markdown: one row per (setting, side), then the loss-memory check."""
    lines = ["| setting | side | tokens/s | tokens/CPU-s | peak RSS (MB) | peak in steps (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    for rec in records:
        for side, r in rec["sides"].items():
            if "error" in r:
                lines.append(f"| {rec['setting']} | {side} | failed: {r['error']} | | | |")
                continue
            cells = [rec["setting"], side, _fmt(r.get("tokens_per_s"), ".1f"), _fmt(r.get("tokens_per_cpu_s"), ".1f"),
                     _fmt(r.get("peak_rss_mb"), ".0f"), _fmt(r.get("step_peak_rss_mb"), ".0f")]
            lines.append("| " + " | ".join(cells) + " |")
    ratios = [(rec["setting"], ours, theirs, c) for rec in records
              for ours, vs in rec["lyceum_vs"].items() for theirs, c in vs.items()]
    if ratios:
        lines += ["", "| setting | lyceum side | vs | speed-up (tokens/s) | speed-up (tokens/CPU-s) | peak RSS ratio |",
                  "|---|---|---|---:|---:|---:|"]
        lines += [f"| {st} | {ours} | {theirs} | {_fmt(c.get('speedup'), '.2f')}x | "
                  f"{_fmt(c.get('speedup_cpu'), '.2f')}x | {_fmt(c.get('peak_rss_ratio'), '.2f')} |"
                  for st, ours, theirs, c in ratios]
    profiled = [(rec["setting"], side, r["phases"]) for rec in records for side, r in rec["sides"].items()
                if r.get("phases")]
    if profiled:
        lines += ["", ("Where a lyceum step's time goes (median seconds per timed step, from the engine's `time_*` "
                       "metrics; the rest of a step is bookkeeping):"), "",
                  "| setting | side | " + " | ".join(PHASES) + " | step |", "|---|---|" + "---:|" * (len(PHASES) + 1)]
        for st, side, ph in profiled:
            total = sum(ph.values())
            cells = [f"{ph[n]:.2f} ({ph[n] / total:.0%})" if n in ph else "" for n in PHASES]
            lines.append(f"| {st} | {side} | " + " | ".join(cells) + f" | {total:.2f} |")
    if records:
        lines += ["", ("tokens/s is the median step's rate; tokens/CPU-s divides the trained tokens by the process's "
                       "CPU time in the timed steps (with one thread it tracks the work done whatever else runs on "
                       "the machine; with more threads under load, spinning threads inflate it). Workloads:"), ""]
    for rec in records:
        w, lo, hi = rec["workload"], *rec["workload"]["prompt_len"]
        lines.append(f"- {rec['setting']}: vocabulary {w['vocab']:,}, Llama {w['layers']} layers x hidden "
                     f"{w['hidden']}; per step {w['batch']} prompts of {lo}-{hi} tokens, one rollout each of "
                     f"{w['max_new_tokens']} new tokens; {rec['steps']} timed steps after {rec['warmup']} warm-up, "
                     f"best of {rec.get('rounds', 1)} round(s), "
                     f"{rec['threads']} torch thread(s); 1-minute load average "
                     f"{rec['machine']['load_avg_at_start'][0]} "
                     f"at the start, {rec.get('load_avg_at_end', [None])[0]} at the end ({rec['date']}).")
    if loss:
        m = loss["summary"]
        ref = m.get("unchunked_fp32_peak_mb")
        rows = [("lyceum chunked (`losses.opd_loss`, support=full)", m["lyceum_chunked_peak_mb"],
                 f"{_fmt(m.get('ratio'), '.1%')} (target < 25%)"),
                (f"unchunked float32 ({m['unchunked_how']})", ref, "100%")]
        if m.get("trl_chunked_peak_mb") and ref:
            rows.append(("TRL chunked (`DistillationTrainer` loss, its CPU path)", m["trl_chunked_peak_mb"],
                         f"{m['trl_chunked_peak_mb'] / ref:.1%}"))
        lines += ["", (f"Full-vocabulary reverse KL, forward + backward, B x T x V = {m['shape']}, peak memory above "
                       "the inputs (hidden states and LM heads):"), "",
                  "| computation | peak (MB) | vs unchunked float32 |", "|---|---:|---:|"]
        lines += [f"| {name} | {_fmt(mb, '.0f')} | {rel} |" for name, mb, rel in rows]
    return "\n".join(lines) + "\n"


def write_table(out: Path) -> None:
    """(Re)write ``<out>/README.md`` from every results file in ``out``."""
    # results/ also holds other benchmarks' files (olympiad, retrieval): keep this benchmark's records only
    records = [r for f in sorted(out.glob("*.json")) if f.stem != "loss_memory_151k"
               for r in [json.loads(f.read_text())] if isinstance(r, dict) and "setting" in r and "sides" in r]
    loss_f = out / "loss_memory_151k.json"
    loss = json.loads(loss_f.read_text()) if loss_f.exists() else None
    head = ("# Benchmark results: on-policy distillation, lyceum vs TRL\n\nWritten by `benchmarks/opd_vs_trl.py`; "
            "see `docs/performance.md` for what is measured and how to read it.\n\n")
    (out / "README.md").write_text(head + markdown_table(records, loss))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default="v32k,v151k", help=f"comma list of {sorted(SETTINGS)}")
    p.add_argument("--sides", default=",".join(SIDES),
                   help=f"comma list of {list(RUNNERS)} (default: {','.join(SIDES)})")
    p.add_argument("--steps", type=int, default=4, help="timed OPD steps per side (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=2,
                   help="run the sides this many times (alternating order) and keep each side's fastest round")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads in every side (1 by default: stable numbers on a shared machine)")
    p.add_argument("--tag", default="", help="suffix for the result names, e.g. 2threads -> v32k-2threads.json")
    p.add_argument("--quick", action="store_true", help="batch 4, 16 new tokens: a fast look, not the record")
    p.add_argument("--work", default=None, help="folder for the generated models (default: $TMPDIR/lyceum-bench)")
    p.add_argument("--out", default=str(RESULTS), help="results folder")
    p.add_argument("--no-loss-memory", action="store_true", help="skip the full-vocabulary loss memory check")
    p.add_argument("--loss-memory-only", action="store_true")
    p.add_argument("--loss-ref-batches", default="1,2", help="batch sizes (x 512) for the unchunked reference")
    p.add_argument("--loss-ref-full", action="store_true", help="also run the unchunked reference at 8 x 512 "
                   "(needs ~20 GB of free memory)")
    # internal: one side in a child process
    p.add_argument("--child", choices=list(RUNNERS), help=argparse.SUPPRESS)
    p.add_argument("--setting-json", help=argparse.SUPPRESS)
    p.add_argument("--loss-child", choices=LOSS_VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.loss_child:
        loss_child(args.loss_child, *map(int, args.shape.split(",")), args.threads)
        return 0
    if args.child:
        d = json.loads(args.setting_json)
        d["prompt_len"] = tuple(d["prompt_len"])
        child(args.child, Setting(**d), Path(args.work), args.steps, args.warmup, args.threads)
        return 0

    import tempfile

    work_root = Path(args.work or Path(tempfile.gettempdir()) / "lyceum-bench")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sides = [x for x in args.sides.split(",") if x]
    settings = [x for x in args.settings.split(",") if x]
    for given, known in ((sides, RUNNERS), (settings, SETTINGS)):
        unknown = [x for x in given if x not in known]
        if unknown:
            what = "side" if known is RUNNERS else "setting"
            p.error(f"unknown {what} {unknown[0]!r}; choose from {', '.join(known)}")
    records = []
    if not args.loss_memory_only:
        for name in settings:
            s = SETTINGS[name]
            s = quick(s) if args.quick else s
            work = work_root / (s.name + ("-quick" if args.quick else ""))
            prepare_inputs(s, work)
            start = machine()
            rows = run_rounds(sides, s, work, args)
            name = s.name + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
            rec = {"setting": name, "workload": asdict(s),
                   "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "threads": args.threads,
                   "machine": start,
                   "sides": rows, "lyceum_vs": compare(rows), "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
                   "date": time.strftime("%Y-%m-%d %H:%M:%S")}
            print(json.dumps({"setting": rec["setting"],
                              **{f"{side}_tokens_per_s": r.get("tokens_per_s") for side, r in rows.items()},
                              **{f"{side}_peak_rss_mb": r.get("peak_rss_mb") for side, r in rows.items()},
                              "ratios": rec["lyceum_vs"]}), flush=True)
            for side, r in rows.items():
                if "error" in r:
                    print(f"[{side}] failed: {r['error']}\n{r['stderr_tail']}", file=sys.stderr)
            (out / f"{rec['setting']}.json").write_text(json.dumps(rec, indent=2) + "\n")
            records.append(rec)
    if not args.no_loss_memory and (args.loss_memory_only or not args.quick):
        rec = loss_memory(args)
        print(json.dumps({"setting": "loss_memory_151k", **rec["summary"]}), flush=True)
        (out / "loss_memory_151k.json").write_text(json.dumps(rec, indent=2) + "\n")
    write_table(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
