"""The research system's prompts, JSON schemas and judge prompts (``prompts.yaml``, beside this file).

    render("planner", question=q, tables=listing, docs="none", max_subtasks=5)
    schema("plan")                     # the JSON schema a planner reply must match
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")


@functools.lru_cache(maxsize=1)
def prompts() -> dict[str, Any]:
    return yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))


def text(name: str) -> str:
    """A prompt as written, placeholders unfilled (for system messages without fields)."""
    return prompts()[name]


def render(name: str, **fields: Any) -> str:
    return prompts()[name].format(**fields)


def schema(name: str) -> dict[str, Any]:
    return prompts()["schemas"][name]


def race_dimensions() -> dict[str, str]:
    return dict(prompts()["race_dimensions"])
