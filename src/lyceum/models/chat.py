"""One async client for any OpenAI-compatible chat endpoint (vLLM, SGLang, Ollama, llama.cpp, hosted APIs).

    client = ChatClient(base_url="http://localhost:8000/v1", model="qwen", cache="runs/x/chat.sqlite")
    result = await client.complete([user_message("What is 2+2?")], site="solver")
    data = await client.complete_json(messages, schema, site="judge")   # validated, re-asked once
    client.complete_sync(...)                                            # the same, from plain code

What it adds on top of the official ``openai`` SDK, and why:
- bounded concurrency (one semaphore per event loop), so a benchmark run cannot flood a local server;
- its own retries with exponential back-off on 429 / 5xx / timeouts / dropped connections (the SDK's retries
  are switched off so there is exactly one retry policy to reason about);
- an on-disk sqlite cache keyed by the full request (endpoint, model, messages, parameters, optional tag), so
  a re-run of an evaluation is free and an interrupted run resumes where it stopped;
- token accounting per call site (``site="judge"``, ``site="coder"``...), cached calls counted separately;
- image inputs: PNG/JPEG paths become data URLs;
- a JSON helper that validates against a JSON schema and re-asks once with the validation error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import mimetypes
import os
import random
import re
import sqlite3
import threading
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from lyceum.errors import UserError

ENV_BASE_URL = ("LYCEUM_BASE_URL", "OPENAI_BASE_URL")
ENV_MODEL = ("LYCEUM_MODEL", "OPENAI_MODEL")
ENV_API_KEY = ("LYCEUM_API_KEY", "OPENAI_API_KEY")


class ChatJSONError(UserError):
    """The model did not return JSON matching the schema, even after being asked again."""


class ChatRequestFailed(UserError):
    """One request failed on every attempt. A run records the item as an error row and goes on."""


class ChatEndpointDown(ChatRequestFailed):
    """The endpoint is unusable (unreachable from the start, or a long streak of consecutive failures): stop the run."""


@dataclass
class Usage:
    """Token account of one call site."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ChatResult:
    text: str
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cached: bool = False
    texts: list[str] = field(default_factory=list)  # every choice when n > 1


def _first_env(names: Iterable[str]) -> str | None:
    for n in names:
        if os.environ.get(n):
            return os.environ[n]
    return None


def image_data_url(path: str | Path) -> str:
    """Encode an image file as a data URL (what OpenAI-compatible vision endpoints accept)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def user_message(text: str, images: Iterable[str | Path] = ()) -> dict[str, Any]:
    """A user message; with images it uses content parts (text first, then one image_url part per image)."""
    images = list(images)
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": image_data_url(p)}} for p in images]
    return {"role": "user", "content": parts}


def system_message(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def parse_json_reply(text: str) -> Any:
    """Parse a JSON value from a model reply, tolerating ```json fences and prose around one object."""
    t = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", t, re.S)
    if fence:
        t = fence.group(1).strip()
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        pass
    start = min([i for i in (t.find("{"), t.find("[")) if i >= 0], default=-1)
    if start < 0:
        raise ValueError("no JSON object in the reply")
    closer = "}" if t[start] == "{" else "]"
    end = t.rfind(closer)
    if end <= start:
        raise ValueError("unterminated JSON object in the reply")
    return json.loads(t[start : end + 1])


class ChatCache:
    """sqlite cache of chat responses keyed by a hash of the full request. Safe across threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise UserError(f"the chat cache {self.path} is not a usable sqlite database ({e})") from e

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(response)))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


class ChatClient:
    """Async chat client with concurrency limit, retries, cache and per-site token accounting."""

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        concurrency: int = 8,
        max_retries: int = 4,
        timeout: float = 60.0,
        cache: str | Path | ChatCache | None = None,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        default_params: dict[str, Any] | None = None,
        usage_log: str | Path | None = None,
    ):
        self.base_url = (base_url or _first_env(ENV_BASE_URL) or "").rstrip("/")
        self.model = model or _first_env(ENV_MODEL)
        if not self.base_url:
            raise UserError("no chat endpoint given: pass --base-url or set LYCEUM_BASE_URL")
        if not re.match(r"^https?://", self.base_url):
            raise UserError(f"the endpoint URL must start with http:// or https://, got '{self.base_url}'")
        if not self.model:
            raise UserError("no model name given: pass --model or set LYCEUM_MODEL")
        if concurrency < 1:
            raise UserError(f"concurrency must be at least 1, got {concurrency}")
        # Local servers (vLLM, llama.cpp) accept any key; the SDK insists on one.
        self.api_key = api_key or _first_env(ENV_API_KEY) or "EMPTY"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.default_params = dict(default_params or {})
        self.cache = cache if isinstance(cache, ChatCache) or cache is None else ChatCache(cache)
        self.usage: dict[str, Usage] = {}
        # A JSONL ledger of every call, appended by every process of a run, so a resumed run reports the whole
        # run's token use (usage_summary reads it back) rather than only its last process's.
        self.usage_log = Path(usage_log) if usage_log is not None else None
        self._usage_lock = threading.Lock()
        # The SDK's async client and our semaphore belong to one event loop; sync calls make their own loops.
        self._per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, asyncio.Semaphore]]" = (
            weakref.WeakKeyDictionary()
        )

    # -- plumbing ---------------------------------------------------------------------------------------
    def _loop_state(self):
        loop = asyncio.get_running_loop()
        state = self._per_loop.get(loop)
        if state is None:
            from openai import AsyncOpenAI

            sdk = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0)
            state = (sdk, asyncio.Semaphore(self.concurrency))
            self._per_loop[loop] = state
        return state

    def _account(self, site: str, *, cached: bool, usage: dict[str, int] | None = None, retries: int = 0) -> None:
        with self._usage_lock:
            u = self.usage.setdefault(site, Usage())
            u.calls += 1
            u.retries += retries
            if cached:
                u.cached_calls += 1
            else:
                usage = usage or {}
                u.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                u.completion_tokens += int(usage.get("completion_tokens") or 0)
            if self.usage_log is not None:
                row = {"site": site, "cached": cached, "retries": retries,
                       "prompt_tokens": 0 if cached else int((usage or {}).get("prompt_tokens") or 0),
                       "completion_tokens": 0 if cached else int((usage or {}).get("completion_tokens") or 0)}
                append_private(self.usage_log, json.dumps(row) + "\n")

    def _ledger_usage(self) -> dict[str, Usage]:
        usage: dict[str, Usage] = {}
        for line in self.usage_log.read_text().splitlines() if self.usage_log.exists() else []:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill: that call is not counted
                continue
            u = usage.setdefault(row["site"], Usage())
            u.calls += 1
            u.cached_calls += int(bool(row.get("cached")))
            u.retries += int(row.get("retries") or 0)
            u.prompt_tokens += int(row.get("prompt_tokens") or 0)
            u.completion_tokens += int(row.get("completion_tokens") or 0)
        return usage

    def usage_summary(self) -> dict[str, dict[str, int]]:
        """Per-site token use plus a 'total' row, ready for a summary.json.

        With ``usage_log`` it covers every process that wrote that ledger (the whole of a resumed run)."""
        with self._usage_lock:
            usage = self._ledger_usage() if self.usage_log is not None else self.usage
            rows = {site: {**asdict(u), "total_tokens": u.total_tokens} for site, u in sorted(usage.items())}
        total = {k: sum(r[k] for r in rows.values()) for k in
                 ("calls", "cached_calls", "prompt_tokens", "completion_tokens", "retries", "total_tokens")}
        return {**rows, "total": total}

    def _is_retryable(self, err: Exception) -> bool:
        import openai

        if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)):
            return True
        if isinstance(err, openai.APIStatusError):
            return err.status_code == 429 or err.status_code >= 500
        return isinstance(err, (asyncio.TimeoutError, ConnectionError))

    # -- calls ------------------------------------------------------------------------------------------
    async def complete(
        self, messages: list[dict[str, Any]], *, site: str = "default", cache_tag: str | None = None, **params: Any
    ) -> ChatResult:
        """One chat completion. ``cache_tag`` separates otherwise identical requests (e.g. a fresh attempt)."""
        import openai

        request = {"model": self.model, "messages": messages, **self.default_params, **params}
        key = None
        if self.cache is not None:
            key = ChatCache.key({"base_url": self.base_url, "request": request, "tag": cache_tag})
            hit = self.cache.get(key)
            if hit is not None:
                self._account(site, cached=True)
                return ChatResult(text=hit["text"], finish_reason=hit.get("finish_reason"),
                                  usage=hit.get("usage", {}), cached=True, texts=hit.get("texts", [hit["text"]]))
        sdk, sem = self._loop_state()
        attempt = 0
        async with sem:
            while True:
                try:
                    response = await sdk.chat.completions.create(**request)
                    break
                except Exception as err:  # noqa: BLE001 - classified just below
                    if self._is_retryable(err) and attempt < self.max_retries:
                        delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
                        attempt += 1
                        await asyncio.sleep(delay)
                        continue
                    raise self._as_user_error(err, attempt) from err
        if not getattr(response, "choices", None):
            raise UserError(f"the endpoint {self.base_url} returned a reply without choices")
        texts = [(c.message.content or "") for c in response.choices]
        usage = response.usage.model_dump() if getattr(response, "usage", None) else {}
        usage = {k: v for k, v in usage.items() if isinstance(v, int)}
        result = ChatResult(text=texts[0], finish_reason=response.choices[0].finish_reason, usage=usage, texts=texts)
        self._account(site, cached=False, usage=usage, retries=attempt)
        if self.cache is not None and key is not None:
            self.cache.put(key, {"text": result.text, "finish_reason": result.finish_reason, "usage": usage,
                                 "texts": texts})
        _ = openai  # imported for the error classes used by _is_retryable
        return result

    def _as_user_error(self, err: Exception, attempts: int) -> UserError:
        import openai

        if isinstance(err, (openai.APITimeoutError, asyncio.TimeoutError)):
            return ChatRequestFailed(f"the chat endpoint {self.base_url} timed out {attempts + 1} times")
        if isinstance(err, openai.APIConnectionError) or isinstance(err, ConnectionError):
            return ChatEndpointDown(f"cannot reach the chat endpoint {self.base_url} (gave up after {attempts + 1} attempts)")
        if isinstance(err, openai.APIStatusError):
            detail = str(getattr(err, "message", "") or err).splitlines()[0][:200]
            return ChatRequestFailed(f"the chat endpoint answered HTTP {err.status_code} for model '{self.model}': {detail}")
        return ChatRequestFailed(f"chat request failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}")

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None, *, site: str = "default",
        cache_tag: str | None = None, **params: Any
    ) -> Any:
        """A completion parsed as JSON and validated against ``schema``; on failure, ask once more with the error."""
        import jsonschema

        result = await self.complete(messages, site=site, cache_tag=cache_tag, **params)
        problem = json_problem(result.text, schema, jsonschema)
        if problem is None:
            return parse_json_reply(result.text)
        retry = list(messages) + [
            {"role": "assistant", "content": result.text},
            {"role": "user", "content": f"Your reply could not be used: {problem}. Reply again with only a JSON "
                                        "value that satisfies the requested format, and nothing else."},
        ]
        again = await self.complete(retry, site=site, cache_tag=cache_tag, **params)
        problem = json_problem(again.text, schema, jsonschema)
        if problem is not None:
            raise ChatJSONError(f"the model's reply at '{site}' was not valid JSON for the schema twice ({problem})")
        return parse_json_reply(again.text)

    # -- sync twins -------------------------------------------------------------------------------------
    def complete_sync(self, messages: list[dict[str, Any]], **kw: Any) -> ChatResult:
        return run_sync(self.complete(messages, **kw))

    def complete_json_sync(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None, **kw: Any) -> Any:
        return run_sync(self.complete_json(messages, schema, **kw))


def append_private(path: Path, text: str) -> None:
    """Append to a file readable by its owner only (it may hold prompts, replies or token counts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def json_problem(text: str, schema: dict[str, Any] | None, jsonschema) -> str | None:
    try:
        value = parse_json_reply(text)
    except (ValueError, json.JSONDecodeError) as e:
        return f"it is not valid JSON ({e})"
    if schema is not None:
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as e:
            return f"it does not match the schema ({e.message})"
    return None


def run_sync(coro):
    """Run a coroutine from synchronous code, also when called inside a running event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    out: dict[str, Any] = {}

    def target():
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def add_endpoint_args(parser, *, prefix: str = "", role: str = "model") -> None:
    """Add --base-url/--model/--api-key (optionally prefixed, e.g. 'judge-') to an argparse parser."""
    dash = f"--{prefix}" if prefix else "--"
    env = f" (default: ${ENV_BASE_URL[0]})" if not prefix else ""
    parser.add_argument(f"{dash}base-url", help=f"OpenAI-compatible endpoint of the {role}, e.g. http://localhost:8000/v1{env}")
    parser.add_argument(f"{dash}model", help=f"model name of the {role} at that endpoint")
    parser.add_argument(f"{dash}api-key", help="API key (default: $LYCEUM_API_KEY or $OPENAI_API_KEY)")
