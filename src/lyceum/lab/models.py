"""The lab's tiny models: named recipes (architecture + SFT data + steps), how to build them, where they live.

    lm = build_model("student")                 # SFT from scratch (or from another lab model), deterministic
    path = lab_model_dir("teacher")             # the shipped checkpoint, or a cached build (built if absent)
    accuracy(lm, rows)                          # greedy accuracy overall and per digit count

Every model shares one character tokenizer (``tasks.ALPHABET``), so any pair can be distilled. A recipe is
plain data; ``recipe_hash`` fingerprints it, and a checkpoint whose recorded fingerprint differs from the code's
recipe is stale and gets rebuilt rather than silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.lab import tasks

SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"
RECIPE_FILE = "lab_recipe.json"


@dataclass(frozen=True)
class Recipe:
    """How one lab model is made: a tiny architecture, then SFT on generated addition rows."""

    name: str
    description: str
    pattern: str = "R"  # thinking pattern of the SFT responses
    digits: tuple[int, int] = (1, 3)
    operands: tuple[int, int] = (2, 2)
    template: str = "qa"
    arch: str = "llama"  # architecture fields must repeat the parent's when init_from is set
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    init_from: str | None = None  # continue from another lab model instead of a random init
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50
    rows: int = 20000  # distinct training problems
    seed: int = 0  # initialisation and batch order
    data_seed: int | None = None  # which problems (default: seed); equal data_seed = the same training rows


# The lab's cast. Students and teachers share a pre-training stage ("base": pattern R on 1-3 digit sums) and
# differ in what came after, like a model family and its post-trained versions. Held-out evaluation is on
# 4-digit sums, which the base never saw.
RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("base", "pre-training of the R family: pattern R on 1-3 digit sums", digits=(1, 3), steps=600),
    Recipe("student", "weak student: the base after a brief look at 1-4 digit sums", digits=(1, 4),
           init_from="base", steps=230, lr=1e-3, warmup_steps=10, seed=1),
    Recipe("teacher", "compatible teacher with new capability: the base trained longer on 1-4 digit sums",
           digits=(1, 4), init_from="base", steps=800, lr=1e-3, warmup_steps=10, seed=2),
    Recipe("teacher_l", "incompatible teacher: pattern L (left-to-right running value), 1-4 digit sums",
           pattern="L", digits=(1, 4), steps=1500, seed=3),
    Recipe("base_big", "pre-training of a bigger model on the base's data (pattern R, 1-3 digits)",
           digits=(1, 3), hidden=128, layers=4, steps=600, lr=2e-3, seed=4, data_seed=0),
    Recipe("teacher_big", "bigger teacher trained only on the student's data (base_big + the student's stage)",
           digits=(1, 4), hidden=128, layers=4, init_from="base_big", steps=230, lr=1e-3, warmup_steps=10, seed=5,
           data_seed=1),
]}

EVAL_DIGITS = (4, 4)
# what every saved model is measured on (the record in its folder, the make-models table)
MEASURE_ROWS = 400
MEASURE_DIGITS = (1, 4)


def recipe(name: str | Recipe) -> Recipe:
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise UserError(f"unknown lab model {name!r}; the lab has: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_hash(r: Recipe) -> str:
    """Fingerprint of everything that decides a model's weights (including the recipe it starts from)."""
    data = asdict(r)
    data.pop("description")
    if r.init_from:
        data["init_from"] = recipe_hash(recipe(r.init_from))
    data["alphabet"] = tasks.ALPHABET
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def lab_tokenizer():
    from lyceum.models.tokenizers import char_tokenizer

    return char_tokenizer(tasks.ALPHABET, model_max_length=512)


def training_rows(r: Recipe) -> list[dict]:
    seed = r.seed if r.data_seed is None else r.data_seed
    problems = tasks.make_problems(r.rows, digits=r.digits, operands=r.operands, seed=10_000 + seed)
    return tasks.examples(problems, pattern=r.pattern, template=r.template)


def eval_rows(n: int = 200, *, digits: tuple[int, int] = EVAL_DIGITS, operands: int | tuple[int, int] = 2,
              template: str = "qa", seed: int = 999) -> list[dict]:
    """Held-out rows (the seed keeps them apart from every recipe's training problems)."""
    return tasks.examples(tasks.make_problems(n, digits=digits, operands=operands, seed=seed), template=template)


def max_new_tokens(digits: int | tuple[int, int], operands: int | tuple[int, int] = 2) -> int:
    """Enough tokens for the longest response in either pattern (all-nines operands), plus end of text."""
    d = digits if isinstance(digits, int) else max(digits)
    k = operands if isinstance(operands, int) else max(operands)
    worst = tasks.Problem(tuple([10**d - 1] * k))
    return max(len(tasks.render_response(worst, p)) for p in tasks.PATTERNS) + 1


def build_model(name: str | Recipe, *, root: Path | None = None, log: Callable[[str], None] = print) -> Any:
    """Make lab model ``name`` by its recipe and return the ``LocalLM`` (not saved).

    A recipe that starts from another lab model loads that one via ``lab_model_dir`` (building it if needed).
    """
    import torch

    from lyceum.models.local import build_tiny, load_local
    from lyceum.train.sft import SFTConfig, sft

    r = recipe(name)
    name = r.name
    torch.manual_seed(r.seed)
    if r.init_from:
        lm = load_local(lab_model_dir(r.init_from, root=root, log=log), device="cpu", dtype="fp32")
    else:
        lm = build_tiny(r.arch, tokenizer=lab_tokenizer(), hidden=r.hidden, layers=r.layers, heads=r.heads,
                        max_positions=256, seed=r.seed, device="cpu", dtype="fp32")
    cfg = SFTConfig(steps=r.steps, batch_size=r.batch_size, lr=r.lr, warmup_steps=r.warmup_steps, seed=r.seed,
                    log_every=max(1, r.steps // 4))
    log(f"building lab model '{name}': {r.description} ({r.steps} SFT steps)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices gain nothing from threads, and one thread is reproducible
    try:
        lm.history = sft(lm, training_rows(r), cfg, desc=f"sft {name}",
                         on_log=lambda rec: log(f"  {name} step {rec['step']}: loss {rec['loss']:.4f}"))
    finally:
        torch.set_num_threads(threads)
    return lm


def save_model(lm: Any, name: str | Recipe, out: Path, *, measured: dict | None = None) -> Path:
    """Save weights + tokenizer + the recipe record (fingerprint, history, measured accuracy)."""
    path = lm.save(out)
    r = recipe(name)
    record = {"name": r.name, "recipe": asdict(r), "recipe_hash": recipe_hash(r),
              "history": getattr(lm, "history", []), "measured": measured or {}}
    (path / RECIPE_FILE).write_text(json.dumps(record, indent=2))
    return path


def read_record(path: Path) -> dict | None:
    f = Path(path) / RECIPE_FILE
    return json.loads(f.read_text()) if f.exists() else None


def is_current(path: Path, name: str | Recipe) -> bool:
    """A checkpoint folder built from today's recipe for ``name``."""
    rec = read_record(path)
    return bool(rec) and rec.get("recipe_hash") == recipe_hash(recipe(name)) and (
        Path(path) / "model.safetensors").exists()


def cache_root() -> Path:
    """Where built lab models go: $LYCEUM_LAB_MODELS, else ~/.cache/lyceum/lab."""
    env = os.environ.get("LYCEUM_LAB_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "lyceum" / "lab"


def lab_model_dir(name: str | Recipe, *, root: Path | None = None, build: bool = True,
                  log: Callable[[str], None] = print) -> Path:
    """The folder of lab model ``name``: under ``root`` if given, else shipped, else cached; built when absent.

    Stale folders (built from an older recipe) are rebuilt. With ``build=False`` a missing model is an error.
    ``name`` may also be a ``Recipe`` of your own (it is stored under its ``name``).
    """
    r = recipe(name)
    name = r.name
    candidates = [Path(root)] if root else [SHIPPED_DIR, cache_root()]
    for base in candidates:
        if is_current(base / name, r):
            return base / name
    target = (Path(root) if root else cache_root()) / name
    if not build:
        where = f" in {root}" if root else ""
        raise UserError(f"lab model '{name}' is not built{where} (or was built from an older recipe); build it with: "
                        f"lyceum lab make-models" + (f" --out {root}" if root else ""))
    lm = build_model(r, root=root, log=log)
    return save_model(lm, r, target, measured=measure(lm))


def load_model(name: str, **kwargs: Any) -> Any:
    from lyceum.models.local import load_local

    return load_local(lab_model_dir(name, **kwargs), device="cpu", dtype="fp32")


def measure(lm: Any) -> dict:
    """Greedy accuracy on held-out 1-4 digit sums, the number recorded with every saved model."""
    return accuracy(lm, eval_rows(MEASURE_ROWS, digits=MEASURE_DIGITS))


def accuracy(lm: Any, rows: list[dict], *, max_new: int | None = None, batch_size: int = 200,
             temperature: float = 0.0, seed: int = 0) -> dict:
    """Greedy (or sampled, with ``temperature``) accuracy of ``lm`` on ``rows``, overall and per digit count."""
    if not rows:
        raise UserError("accuracy needs at least one row")
    if max_new is None:
        max_new = max(max_new_tokens(r.get("digits", 1), r.get("operands", 2)) for r in rows)
    right: dict[int, list[float]] = {}
    patterns: dict[str, int] = {}
    from lyceum.train.rollout import sample_batches

    for a, s in sample_batches(lm, [r["prompt"] for r in rows], max_new_tokens=max_new, prompts_per_call=batch_size,
                               temperature=temperature, seed=seed, seed_by="row"):
        for r, text in zip(rows[a: a + batch_size], s.texts):
            right.setdefault(r.get("digits", 0), []).append(tasks.verify(r["prompt"], text))
            p = tasks.detect_pattern(r["prompt"], text) or "other"
            patterns[p] = patterns.get(p, 0) + 1
    flat = [v for vs in right.values() for v in vs]
    return {"accuracy": sum(flat) / len(flat), "n": len(flat),
            "by_digits": {str(d): sum(v) / len(v) for d, v in sorted(right.items())},
            "patterns": {k: v / len(flat) for k, v in sorted(patterns.items())}}
