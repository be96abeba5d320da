"""Every model call made for one problem, in order, saved as ``transcripts/<id>.json``.

Solvers make their calls through ``Transcript.chat`` / ``Transcript.chat_json`` so that the record (messages
with images replaced by their file names, reply, token use, whether it came from the cache) and the per-problem
token account are complete by construction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _printable(messages: list[dict[str, Any]], image_names: list[str]) -> list[dict[str, Any]]:
    """Messages without the base64 payloads (a transcript is for reading)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts, k = [], 0
            for p in content:
                if p.get("type") == "image_url":
                    parts.append({"type": "image", "file": image_names[k] if k < len(image_names) else "?"})
                    k += 1
                else:
                    parts.append(p)
            content = parts
        out.append({"role": m.get("role"), "content": content})
    return out


@dataclass
class Transcript:
    problem_id: str
    images: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"calls": 0, "cached_calls": 0, "prompt_tokens": 0,
                                                            "completion_tokens": 0})

    def _record(self, step: str, site: str, messages, reply: Any, usage: dict | None, cached: bool, **extra):
        # tokens count for replayed calls too: this answer cost them, in whichever process of the run asked
        self.usage["calls"] += 1
        if cached:
            self.usage["cached_calls"] += 1
        self.usage["prompt_tokens"] += int((usage or {}).get("prompt_tokens") or 0)
        self.usage["completion_tokens"] += int((usage or {}).get("completion_tokens") or 0)
        self.calls.append({"step": step, "site": site, "messages": _printable(messages, self.images),
                           "reply": reply, "usage": usage or {}, "cached": cached, **extra})

    async def chat(self, client, messages, *, step: str, site: str, cache_tag: str | None = None, **params) -> str:
        result = await client.complete(messages, site=site, cache_tag=cache_tag, **params)
        self._record(step, site, messages, result.text, result.usage, result.cached)
        return result.text

    async def chat_json(self, client, messages, schema: dict, *, step: str, site: str,
                        cache_tag: str | None = None, **params) -> Any:
        """A JSON reply checked against ``schema``; asked again once with the problem, like ``complete_json``."""
        import jsonschema

        from lyceum.models.chat import ChatJSONError, json_problem, parse_json_reply

        text = await self.chat(client, messages, step=step, site=site, cache_tag=cache_tag, **params)
        problem = json_problem(text, schema, jsonschema)
        if problem is None:
            return parse_json_reply(text)
        retry = list(messages) + [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Your reply could not be used: {problem}. Reply again with only a JSON "
                                        "value that satisfies the requested format, and nothing else."}]
        text = await self.chat(client, retry, step=step + ":retry", site=site, cache_tag=cache_tag, **params)
        problem = json_problem(text, schema, jsonschema)
        if problem is not None:
            raise ChatJSONError(f"the reply at '{step}' was not valid JSON for the schema twice ({problem})")
        return parse_json_reply(text)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.problem_id, "usage": self.usage, "calls": self.calls}

    def save(self, directory: str | Path) -> Path:
        from lyceum.olympiad.private import private_dir, write_private

        directory = private_dir(directory)  # prompts and replies: the user's only
        path = directory / (re.sub(r"[^A-Za-z0-9_.=-]", "_", self.problem_id) + ".json")
        return write_private(path, json.dumps(self.to_json(), indent=1, ensure_ascii=False))
