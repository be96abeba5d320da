"""Prompt rows with images: read them from a prompts file and hand each one to a sampler.

Two row shapes, mixed freely with text-only rows in one file:

    {"prompt": "What is the sum?", "images": ["figs/a.png"], "answer": 12}
    {"messages": [{"role": "user", "content": [{"type": "image", "image": "figs/a.png"},
                                               {"type": "text", "text": "What is the sum?"}]}], "answer": 12}

Relative image paths are resolved against the prompts file's folder and checked to exist when the file is read,
so a typo fails before any model loads. Image parts may also be OpenAI-style
``{"type": "image_url", "image_url": {"url": "file:///abs/a.png"}}``; web URLs are refused (nothing is fetched).
In a ``prompt`` text, ``<image>`` marks where each image goes; without markers the images come before the
text. Every other field of a row (answers, difficulty, ...) is kept for the verifier and the curriculum.

    rows = load_image_prompts("prompts.jsonl")
    vlm.sample([prompt_input(r) for r in rows], ...)      # VisionLM takes the dicts; text rows stay strings
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lyceum.errors import UserError

IMAGE_PART_TYPES = ("image", "image_url")


def _resolve(ref: Any, base: Path, where: str) -> str:
    """An absolute path for one image reference, or a UserError that names the row."""
    if isinstance(ref, dict):  # {"url": ...} inside an image_url part
        ref = ref.get("url") or ref.get("path")
    if not isinstance(ref, str) or not ref.strip():
        raise UserError(f"{where}: an image must be given as a file path")
    if re.match(r"(?i)^(https?|data):", ref):
        raise UserError(f"{where}: image {ref[:60]!r} is a URL; give a local file path (nothing is downloaded)")
    path = Path(ref.removeprefix("file://"))
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise UserError(f"{where}: image not found: {path}")
    return str(path.resolve())


def _messages(messages: Any, base: Path, where: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    out = []
    for m in messages:
        if not isinstance(m, dict) or "content" not in m:
            raise UserError(f"{where}: every message needs a 'role' and a 'content'")
        content = m["content"]
        if isinstance(content, str):
            out.append({"role": str(m.get("role", "user")), "content": content})
            continue
        if not isinstance(content, list):
            raise UserError(f"{where}: a message's content must be text or a list of parts")
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": str(part.get("text", ""))})
            elif kind in IMAGE_PART_TYPES:
                ref = part.get("image") or part.get("image_url") or part.get("path") or part.get("url")
                parts.append({"type": "image", "image": _resolve(ref, base, where)})
            else:
                raise UserError(f"{where}: unknown message part {part!r}; use text, image or image_url parts")
        out.append({"role": str(m.get("role", "user")), "content": parts})
    return out


def normalise_row(row: Any, base: Path, where: str) -> dict:
    """One prompt row with its image references checked and made absolute (image parts become ``image``)."""
    if isinstance(row, str):
        return {"prompt": row}
    if not isinstance(row, dict):
        raise UserError(f"{where} is not a JSON object")
    out = dict(row)
    if "messages" in row and row.get("images"):
        raise UserError(f"{where}: give images either as 'images' or as image parts of 'messages', not both")
    if "messages" in row:
        out["messages"] = _messages(row["messages"], base, where)
    elif not isinstance(row.get("prompt"), str):
        raise UserError(f"{where} has neither 'prompt' text nor chat 'messages'")
    images = row.get("images")
    if images is not None:
        if not isinstance(images, list):
            raise UserError(f"{where}: 'images' must be a list of file paths")
        out["images"] = [_resolve(x, base, where) for x in images]
        marks = out.get("prompt", "").count("<image>")
        if marks and marks != len(images):
            raise UserError(f"{where}: the prompt has {marks} <image> marker(s) but {len(images)} image(s)")
    return out


def load_image_prompts(path: str | Path) -> list[dict]:
    """Prompt rows from a JSONL or JSON file; rows may carry images (see the module docstring)."""
    from lyceum.runs import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file not found: {path}")
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{path} is not valid JSON ({e.msg})") from e
        if not isinstance(rows, list):
            raise UserError(f"{path} must hold a list of prompt rows")
    else:
        rows = read_jsonl(path)
    if not rows:
        raise UserError(f"{path} holds no prompts")
    return [normalise_row(r, path.parent, f"{path}: row {i}") for i, r in enumerate(rows, 1)]


def row_images(row: dict) -> list[str]:
    """All images of a row in prompt order (``images`` first, then image parts of ``messages``)."""
    found = list(row.get("images") or [])
    for m in row.get("messages") or []:
        if isinstance(m.get("content"), list):
            found += [p["image"] for p in m["content"] if p.get("type") == "image"]
    return found


def has_images(rows: list[dict]) -> bool:
    return any(row_images(r) for r in rows)


def prompt_input(row: dict) -> str | dict:
    """What a sampler takes for this row: the text for a text-only row (as ``LocalLM`` expects), else a dict
    with the prompt or messages and the images (as ``VisionLM`` expects)."""
    if "messages" not in row and not row.get("images"):
        return row["prompt"]
    if "messages" in row:
        return {"messages": row["messages"]}
    return {"prompt": row["prompt"], "images": list(row["images"])}


def prompt_text(row: dict) -> str:
    """The row's text without its images: the prompt, or the messages' text parts (for logs and text verifiers)."""
    if "prompt" in row:
        return row["prompt"]
    lines = []
    for m in row["messages"]:
        c = m["content"]
        lines.append(c if isinstance(c, str) else "".join(p["text"] for p in c if p["type"] == "text"))
    return "\n".join(lines)
