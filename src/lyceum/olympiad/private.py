"""Run files that hold prompts and replies (transcripts, predictions, grades, caches) are the user's only:
folders 0700, files 0600, whatever the umask."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def private_dir(path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def touch_private(path: str | Path) -> Path:
    """Create ``path`` (empty) as 0600 if it does not exist, so a library that opens it later keeps that mode
    (sqlite creates its journal files with the database's mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    return path


def write_private(path: str | Path, text: str) -> Path:
    path = Path(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return path


def write_private_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    from lyceum.runs import jsonable

    return write_private(path, "".join(json.dumps(jsonable(r), ensure_ascii=False) + "\n" for r in rows))


def write_private_json(path: str | Path, obj: Any) -> Path:
    from lyceum.runs import jsonable

    return write_private(path, json.dumps(jsonable(obj), indent=2, ensure_ascii=False))
