"""A synthetic visual task for tiny vision-language models: two numbers drawn into an image, answer their sum.

    problems = make_visual_problems(500, digits=1, seed=0)
    rows = visual_rows(problems, mode="image", seed=0)     # {"prompt": "<image>\\nsum=", "images": [PIL], ...}
    rows = visual_rows(problems, mode="text")              # control: the same numbers written in the prompt
    write_visual_prompts("data/visual", 200, seed=0)       # PNGs + prompts.jsonl with "images": [paths]
    history = sft_vlm(vlm, rows, steps=300)                # SFT through the vision tower
    greedy_accuracy(vlm, held_out)                         # -> share of rows answered exactly

The image mode can only be solved by reading the pixels (the prompt text is the same for every row); the text
mode states the numbers, so the two arms differ only in where the numbers come from. Responses are ``#<sum>``,
graded like the lab's addition tasks (``tasks.extract_answer``).

    python -m lyceum.lab.visual --minutes 3 --out runs/visual     # the feasibility measurement (both arms)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.lab.tasks import ALPHABET, ANSWER_MARK, extract_answer

IMAGE_SIZE = (48, 24)  # width, height: each number in its own half
FONT_SIZE = 14
IMAGE_PROMPT = "<image>\nsum="
TEXT_PROMPT = "{a} {b}\nsum="


@dataclass(frozen=True)
class VisualProblem:
    a: int
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b


def make_visual_problems(n: int, *, digits: int = 1, seed: int = 0) -> list[VisualProblem]:
    """``n`` problems with operands of at most ``digits`` digits; the same arguments give the same list."""
    if digits < 1 or digits > 2:
        raise UserError("the visual task draws numbers of 1 or 2 digits")
    rng = random.Random(seed)
    top = 10**digits - 1
    return [VisualProblem(rng.randint(0, top), rng.randint(0, top)) for _ in range(n)]


def render_image(problem: VisualProblem, *, seed: int = 0, jitter: bool = True):
    """The two numbers in black on white, one per half, each shifted by a few random pixels (``seed``; with
    ``jitter=False`` each number sits at the top left of its half)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed * 1_000_003 + problem.a * 101 + problem.b)
    w, h = IMAGE_SIZE
    im = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=FONT_SIZE)
    for i, value in enumerate((problem.a, problem.b)):
        left, top, right, bottom = draw.textbbox((0, 0), str(value), font=font)
        room_x = max(0, w // 2 - (right - left))
        room_y = max(0, h - (bottom - top))
        x = i * (w // 2) + (rng.randint(0, room_x) if jitter else 0) - left
        y = (rng.randint(0, room_y) if jitter else 0) - top
        draw.text((x, y), str(value), font=font, fill=(0, 0, 0))
    return im


def visual_rows(problems: list[VisualProblem], *, mode: str = "image", seed: int = 0,
                jitter: bool = True) -> list[dict[str, Any]]:
    """Prompt rows: ``image`` mode carries the rendered image (a PIL image), ``text`` mode writes the numbers."""
    if mode not in ("image", "text"):
        raise UserError(f"unknown visual task mode {mode!r}; use image or text")
    rows = []
    for i, p in enumerate(problems):
        row = {"response": f"{ANSWER_MARK}{p.answer}", "answer": p.answer}
        if mode == "image":
            row.update(prompt=IMAGE_PROMPT, images=[render_image(p, seed=seed + i, jitter=jitter)])
        else:
            row.update(prompt=TEXT_PROMPT.format(a=p.a, b=p.b))
        rows.append(row)
    return rows


DIGIT_SIZE = 24  # the one-digit probe's square image
DIGIT_PROMPT = "<image>\nread="


def digit_rows(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """The reading probe: one digit at a random place (0-4 px shift) in a 24 x 24 image; the answer is it."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    font = ImageFont.load_default(size=FONT_SIZE)
    rows = []
    for _ in range(n):
        d = rng.randint(0, 9)
        im = Image.new("RGB", (DIGIT_SIZE, DIGIT_SIZE), (255, 255, 255))
        draw = ImageDraw.Draw(im)
        left, top, _, _ = draw.textbbox((0, 0), str(d), font=font)
        draw.text((4 + rng.randint(0, 4) - left, 4 + rng.randint(0, 4) - top), str(d), font=font, fill=(0, 0, 0))
        rows.append({"prompt": DIGIT_PROMPT, "images": [im], "response": f"{ANSWER_MARK}{d}", "answer": d})
    return rows


def write_visual_prompts(out: str | Path, n: int, *, digits: int = 1, seed: int = 0) -> Path:
    """Write ``n`` image rows as PNG files and a ``prompts.jsonl`` whose rows name them (relative paths)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, p in enumerate(make_visual_problems(n, digits=digits, seed=seed)):
        name = f"images/{i:05d}.png"
        render_image(p, seed=seed + i).save(out / name)
        lines.append(json.dumps({"prompt": IMAGE_PROMPT, "images": [name], "answer": p.answer,
                                 "response": f"{ANSWER_MARK}{p.answer}"}))
    path = out / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def verify_visual(row: dict, response: str) -> float:
    """1.0 when the number after the last ``#`` is the row's answer."""
    return 1.0 if extract_answer(response) == int(row["answer"]) else 0.0


# ------------------------------------------------------------------------------------------------- training


def _batch(vlm: Any, prepared: list, responses: list[list[int]]):
    """Left-padded prompt + response + eos, and a mask of the positions whose next token is learned."""
    import torch

    eos = vlm.tokenizer.eos_token_id
    seqs = [p.ids + r + [eos] for p, r in zip(prepared, responses)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), vlm.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    learn = torch.zeros_like(ids, dtype=torch.bool)
    for i, (s, p) in enumerate(zip(seqs, prepared)):
        ids[i, width - len(s):] = torch.tensor(s)
        mask[i, width - len(s):] = 1
        learn[i, width - len(s) + len(p.ids):] = True
    return ids, mask, learn


def response_loss(vlm: Any, prepared: list, responses: list[list[int]]):
    """Token-mean cross-entropy of the responses (+ eos) given prompt and images, through the vision tower."""
    import torch

    ids, mask, learn = _batch(vlm, prepared, responses)
    ids, mask, learn = ids.to(vlm.device), mask.to(vlm.device), learn.to(vlm.device)
    hidden = vlm.hidden_states(ids, mask, [p.images for p in prepared])
    target = learn[:, 1:]
    logits = vlm.logits(hidden[:, :-1][target])
    return torch.nn.functional.cross_entropy(logits, ids[:, 1:][target])


def sft_vlm(vlm: Any, rows: list[dict], *, steps: int = 300, batch_size: int = 32, lr: float = 3e-3,
            warmup_steps: int = 20, seed: int = 0, time_limit: float | None = None,
            on_step: Any = None) -> list[dict]:
    """Train ``vlm`` (a ``VisionLM``) in place on prompt/response rows with images; returns per-step loss rows.

    Warm-up then cosine decay, AdamW, gradient clipping at 1. ``time_limit`` (seconds) stops early; ``on_step``
    is called as ``on_step(record, vlm)`` after each step with its history row (for held-out checks).
    """
    import torch

    prepared = vlm.prepare(rows)
    responses = [vlm.tokenizer(r["response"], add_special_tokens=False).input_ids for r in rows]
    params = [p for p in vlm.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98))
    rng = random.Random(seed)
    order: list[int] = []
    history = []
    t0 = time.monotonic()
    vlm.model.train()
    try:
        for step in range(steps):
            pick = []
            while len(pick) < batch_size:
                if not order:
                    order = list(range(len(rows)))
                    rng.shuffle(order)
                pick.append(order.pop())
            f = (step + 1) / warmup_steps if step < warmup_steps else \
                0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))
            for g in opt.param_groups:
                g["lr"] = lr * f
            loss = response_loss(vlm, [prepared[i] for i in pick], [responses[i] for i in pick])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            history.append({"step": step + 1, "loss": float(loss.detach()), "seconds": time.monotonic() - t0})
            if on_step is not None:
                vlm.model.eval()
                on_step(history[-1], vlm)
                vlm.model.train()
            if time_limit is not None and time.monotonic() - t0 > time_limit:
                break
    finally:
        vlm.model.eval()
    return history


def greedy_accuracy(vlm: Any, rows: list[dict], *, batch_size: int = 64, max_new_tokens: int = 5) -> float:
    """Share of rows whose greedy answer is exactly right."""
    right = 0
    for a in range(0, len(rows), batch_size):
        chunk = rows[a: a + batch_size]
        s = vlm.sample([{"prompt": r["prompt"], "images": r.get("images") or []} for r in chunk],
                       max_new_tokens, temperature=0)
        right += sum(verify_visual(r, t) for r, t in zip(chunk, s.texts))
    return right / max(1, len(rows))


# ------------------------------------------------------------------------------------------------- measurement


def train_arm(vlm: Any, rows: list[dict], test: list[dict], *, label: str, minutes: float, lr: float,
              seed: int, eval_every: int) -> dict:
    """SFT for ``minutes``, checking held-out greedy accuracy every ``eval_every`` steps."""
    curve = [{"step": 0, "accuracy": greedy_accuracy(vlm, test), "seconds": 0.0}]
    t0 = time.monotonic()
    losses: list[float] = []

    def check(record: dict, model: Any) -> None:
        losses.append(record["loss"])
        if record["step"] % eval_every == 0:
            recent = losses[-eval_every:]
            curve.append({"step": record["step"], "accuracy": greedy_accuracy(model, test),
                          "train_loss": round(sum(recent) / len(recent), 4),
                          "seconds": round(time.monotonic() - t0, 1)})
            print(f"{label} step {record['step']}: held-out accuracy {curve[-1]['accuracy']:.3f}, train loss "
                  f"{curve[-1]['train_loss']:.3f} ({curve[-1]['seconds']:.0f} s)", flush=True)

    hist = sft_vlm(vlm, rows, steps=100_000, lr=lr, time_limit=minutes * 60, seed=seed, on_step=check)
    final = greedy_accuracy(vlm, test)
    print(f"{label}: {len(hist)} steps, held-out accuracy {final:.3f}", flush=True)
    return {"steps": len(hist), "final_accuracy": final, "final_loss": hist[-1]["loss"],
            "seconds": round(time.monotonic() - t0, 1), "curve": curve}


def measure(*, minutes: float = 3.0, digits: int = 1, train: int = 2000, held_out: int = 200,
            arch: str = "qwen2_vl", eval_every: int = 50, seed: int = 0, lr: float = 3e-4,
            vision_hidden: int = 64, vision_layers: int = 2, arms: tuple[str, ...] = ("image", "text"),
            jitter: bool = True, patch_size: int = 4, task: str = "sum", out: Path | None = None) -> dict:
    """Train one tiny VLM per arm (image, text) for ``minutes`` each from the same init; held-out accuracy curve
    (with the mean training loss since the previous check). ``task="digit"`` runs the one-digit reading probe
    instead (image arm only)."""
    import torch

    from lyceum.models.vlm import build_tiny_vlm

    torch.manual_seed(seed)
    problems = make_visual_problems(train + held_out, digits=digits, seed=seed)
    result: dict[str, Any] = {"minutes_per_arm": minutes, "digits": digits, "train_rows": train,
                              "held_out_rows": held_out, "arch": arch, "lr": lr, "vision_hidden": vision_hidden,
                              "vision_layers": vision_layers, "jitter": jitter, "patch_size": patch_size,
                              "task": task, "arms": {}}
    if task == "digit":
        vlm = build_tiny_vlm(arch, seed=seed, alphabet=ALPHABET, max_pixels=DIGIT_SIZE**2, vision_hidden=vision_hidden,
                             vision_layers=vision_layers, patch_size=patch_size)
        rows = digit_rows(train + held_out, seed=seed)
        result["arms"]["image"] = train_arm(vlm, rows[:train], rows[train:], label="digit", minutes=minutes, lr=lr,
                                            seed=seed, eval_every=eval_every)
        arms = ()
    elif task != "sum":
        raise UserError(f"unknown visual task {task!r}; use sum or digit")
    for mode in arms:
        rows = visual_rows(problems[:train], mode=mode, seed=seed, jitter=jitter)
        test = visual_rows(problems[train:], mode=mode, seed=seed + 10_000, jitter=jitter)
        vlm = build_tiny_vlm(arch, seed=seed, alphabet=ALPHABET, max_pixels=IMAGE_SIZE[0] * IMAGE_SIZE[1],
                             vision_hidden=vision_hidden, vision_layers=vision_layers, patch_size=patch_size)
        result["arms"][mode] = train_arm(vlm, rows, test, label=mode, minutes=minutes, lr=lr, seed=seed,
                                         eval_every=eval_every)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "visual_measurement.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Can a tiny VLM learn the visual sum task on this CPU?")
    ap.add_argument("--minutes", type=float, default=3.0, help="training time per arm")
    ap.add_argument("--digits", type=int, default=1)
    ap.add_argument("--arch", default="qwen2_vl")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    # at 3e-3 or with a 32-wide, 1-layer vision tower even the one-digit probe does not learn (docs/vlm.md)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--vision-hidden", type=int, default=64)
    ap.add_argument("--vision-layers", type=int, default=2)
    ap.add_argument("--arms", default="image,text", help="comma-separated: image, text")
    ap.add_argument("--no-jitter", action="store_true", help="every number at a fixed place in its half")
    ap.add_argument("--patch-size", type=int, default=4, help="vision patch size in pixels")
    ap.add_argument("--task", default="sum", help="sum (two numbers, the default) or digit (read one digit)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    # the warm-up is a fixed 20 steps; the cosine runs over a nominal 100k steps, so the rate stays near its peak
    try:
        measure(minutes=a.minutes, digits=a.digits, arch=a.arch, eval_every=a.eval_every, seed=a.seed, lr=a.lr,
            vision_hidden=a.vision_hidden, vision_layers=a.vision_layers, arms=tuple(a.arms.split(",")),
                jitter=not a.no_jitter, patch_size=a.patch_size, task=a.task, out=a.out)
    except UserError as e:  # one sentence and exit 2, like every lyceum command
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
