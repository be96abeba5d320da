"""`lyceum lab make-models`: build every lab model from its recipe, measure it, save it.

    make_models("models/lab")                       # all recipes, in dependency order, skipping current ones
    make_models(SHIPPED_DIR, force=True)            # how the shipped checkpoints are (re)made

Training runs on the CPU in float32 with one thread (``models.build_model``), so the same code and torch build give the same weights
bit for bit; another CPU or torch build gives models that behave the same (held-out accuracies within noise).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lyceum.errors import UserError
from lyceum.lab import models


def build_order(names: list[str]) -> list[str]:
    """``names`` plus the models they start from, dependencies first."""
    order: list[str] = []

    def visit(name: str) -> None:
        r = models.recipe(name)
        if r.init_from:
            visit(r.init_from)
        if name not in order:
            order.append(name)

    for n in names:
        visit(n)
    return order


def make_models(out: Path | None = None, *, only: list[str] | None = None, force: bool = False,
                log: Callable[[str], None] = print) -> dict[str, Path]:
    """Build (or keep, when current) the named lab models under ``out``; returns name -> folder."""
    root = Path(out) if out else models.cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the models folder {root}: {e.strerror}") from e
    built: dict[str, Path] = {}
    for name in build_order(only or list(models.RECIPES)):
        path = root / name
        if not force and models.is_current(path, name):
            log(f"{name}: current, kept ({path})")
            built[name] = path
            continue
        started = time.time()
        lm = models.build_model(name, root=root, log=log)
        measured = {**models.measure(lm), "build_seconds": round(time.time() - started, 1)}
        built[name] = models.save_model(lm, name, path, measured=measured)
        log(f"{name}: held-out accuracy {measured['accuracy']:.3f} "
            f"(by digits {_fmt(measured['by_digits'])}), built in {measured['build_seconds']:.0f} s -> {path}")
    log(summary(built))
    return built


def _fmt(by_digits: dict) -> str:
    return " ".join(f"{d}:{v:.2f}" for d, v in by_digits.items())


def summary(built: dict[str, Path]) -> str:
    lines = ["model        params   accuracy  by digits (greedy, 1-4 digit held-out sums)"]
    for name, path in built.items():
        rec = models.read_record(path) or {}
        m = rec.get("measured", {})
        r = models.recipe(name)
        params = _params(path)
        lines.append(f"{name:12s} {params:>7s}  {m.get('accuracy', float('nan')):8.3f}  {_fmt(m.get('by_digits', {}))}"
                     f"   [{r.pattern}, h{r.hidden} L{r.layers}]")
    return "\n".join(lines)


def _params(path: Path) -> str:
    try:
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), "pt") as f:
            n = sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (safe_open is not iterable)
        return f"{n / 1e6:.2f}M"
    except (OSError, ValueError):  # not saved yet or not safetensors
        return "?"


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out
