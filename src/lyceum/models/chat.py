"""One async client for any OpenAI-compatible chat endpoint (vLLM, SGLang, Ollama, llama.cpp, hosted APIs).

    client = ChatClient(base_url="http://localhost:8000/v1", model="qwen", cache="runs/x/chat.sqlite")
    result = await client.complete([user_message("What is 2+2?")], site="solver")
    data = await client.complete_json(messages, schema, site="judge")   # validated, re-asked once
    client.complete_sync(...)                                            # the same, from plain code

What it adds on top of the official ``openai`` SDK, and why:
- bounded concurrency (one semaphore per event loop), so a benchmark run cannot flood a local server;
- its own retries on 429 / 5xx / timeouts / dropped connections and on malformed 200 replies (truncated JSON,
  an HTML page from a proxy, no choices, null content: retried, never cached); it waits what ``Retry-After``
  / ``retry-after-ms`` asks, else backs off exponentially with jitter, and after a 429 every request of the
  client holds back. The SDK's retries are switched off so there is exactly one retry policy to reason about;
- a request that fails on every attempt raises ``ChatRequestFailed`` (record the item, go on);
  ``ChatEndpointDown`` when nothing ever answered or ``down_after`` requests failed in a row (stop the run);
- an on-disk sqlite cache keyed by the full request (endpoint, model, messages, parameters, optional tag), so
  a re-run of an evaluation is free and an interrupted run resumes where it stopped (WAL, a busy timeout and
  off the event loop, so processes can share it; file 0600);
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
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    fence = re.search(r"```(?:json)?\s*(.*?)```", t, re.DOTALL)
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


def _while_locked(action: Callable[[], Any], timeout_s: float) -> Any:
    """Run ``action``, trying again while another process holds the database lock.

    sqlite answers "database is locked" at once, without its busy handler, when two connections switch a fresh
    file to WAL or create its table at the same moment (it refuses to wait there to avoid a deadlock), so two
    runs opening one new cache together need this loop on top of the busy timeout."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as e:
            busy = "locked" in str(e) or "busy" in str(e)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


class ChatCache:
    """sqlite cache of chat responses keyed by a hash of the full request.

    Safe across threads and processes: one connection per thread, WAL (readers never wait for a writer), and a
    busy timeout, so two runs sharing a cache wait a few milliseconds for each other's commits instead of
    failing. A commit is atomic, so a killed process never leaves a half-written row. The file is created 0600
    and a new folder for it 0700: it holds prompts and replies.
    """

    BUSY_TIMEOUT_S = 60.0

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._local = threading.local()
        try:
            db = self._db()
            _while_locked(lambda: self._create_table(db), self.BUSY_TIMEOUT_S)
        except sqlite3.DatabaseError as e:
            raise UserError(f"the chat cache {self.path} is not a usable sqlite database ({e})") from e

    @staticmethod
    def _create_table(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
        db.commit()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT_S)
            db.execute(f"PRAGMA busy_timeout = {int(self.BUSY_TIMEOUT_S * 1000)}")
            _while_locked(lambda: self._use_wal(db), self.BUSY_TIMEOUT_S)
            self._local.db = db
        return db

    @staticmethod
    def _use_wal(db: sqlite3.Connection) -> None:
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: still atomic and never corrupt on a crash

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db().execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, response: dict[str, Any]) -> None:
        db = self._db()
        with db:  # one transaction: committed whole or not at all
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(response)))

    def __len__(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0]


# How long a server may ask us to wait (Retry-After) before we give that request up instead.
MAX_RETRY_AFTER_S = 300.0
# HTTP statuses worth asking again: timeouts, conflicts, rate limits and every server-side error.
RETRY_STATUSES = (408, 409, 425, 429)
# Why a reply may rightly carry no text: cut at the token limit, filtered, or a tool call instead of text.
EMPTY_REASONS = ("length", "content_filter", "tool_calls", "function_call")


class MalformedReply(Exception):
    """A 200 reply that is not a usable chat completion (truncated JSON, an HTML page, no choices, no content).

    Proxies and overloaded servers send these now and then, so it is retried like a 5xx and never cached."""

    def __init__(self, reason: str, usage: dict[str, int] | None = None):
        super().__init__(reason)
        self.usage = usage or {}


@dataclass
class Fault:
    """Why one attempt failed, and what the server asked of us."""

    kind: str  # "timeout", "connection", "status", "malformed", "other"
    message: str
    retryable: bool
    retry_after: float | None = None  # seconds the server asked us to wait (Retry-After / retry-after-ms)
    rate_limited: bool = False


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds, possibly fractional, or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import email.utils

        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def parse_reply(body: bytes) -> tuple[list[str], str | None, dict[str, int]]:
    """(texts of the choices, finish reason of the first, usage) of a chat-completion body, or MalformedReply."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        snippet = body[:60].decode("utf-8", "replace").replace("\n", " ")
        raise MalformedReply(f"the reply is not JSON ({snippet!r}...)") from None
    if not isinstance(data, dict):
        raise MalformedReply("the reply is not a JSON object")
    usage = {k: v for k, v in (data.get("usage") or {}).items() if isinstance(v, int) and not isinstance(v, bool)}
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        error = data.get("error")
        detail = f" (error: {str(error.get('message', error) if isinstance(error, dict) else error)[:120]})" if error else ""
        raise MalformedReply(f"the reply has no choices{detail}", usage)
    choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    texts = []
    for c in choices:
        message = c.get("message") if isinstance(c, dict) else None
        if not isinstance(message, dict):
            raise MalformedReply("a choice has no message", usage)
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if content is None and c.get("finish_reason") in EMPTY_REASONS:
            content = ""  # a real, explained empty answer
        if not isinstance(content, str):
            raise MalformedReply("the reply's content is " + ("missing" if "content" not in message else "null"),
                                 usage)
        texts.append(content)
    return texts, choices[0].get("finish_reason"), usage


class ChatClient:
    """Async chat client with concurrency limit, retries, cache and per-site token accounting.

    A request that fails on every attempt raises ``ChatRequestFailed`` (a run records that item and goes on);
    ``ChatEndpointDown`` when nothing was ever reachable at the endpoint, or after ``down_after`` requests in a
    row failed (the run stops).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        concurrency: int = 8,
        max_retries: int = 6,
        timeout: float = 60.0,
        cache: str | Path | ChatCache | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        default_params: dict[str, Any] | None = None,
        usage_log: str | Path | None = None,
        down_after: int = 20,
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
        if max_retries < 0:
            raise UserError(f"max_retries must be 0 or more, got {max_retries}")
        if down_after < 1:
            raise UserError(f"down_after must be at least 1, got {down_after}")
        # Local servers (vLLM, llama.cpp) accept any key; the SDK insists on one.
        self.api_key = api_key or _first_env(ENV_API_KEY) or "EMPTY"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.down_after = down_after
        self.default_params = dict(default_params or {})
        self.cache = cache if isinstance(cache, ChatCache) or cache is None else ChatCache(cache)
        self.usage: dict[str, Usage] = {}
        # A JSONL ledger of every call, appended by every process of a run, so a resumed run reports the whole
        # run's token use (usage_summary reads it back) rather than only its last process's.
        self.usage_log = Path(usage_log) if usage_log is not None else None
        self._ledger_checked = False
        self._usage_lock = threading.Lock()
        # Endpoint health, shared by every request of this client: whether anything ever answered, how many
        # requests in a row have failed, and until when everyone holds back after a 429 (time.monotonic()).
        self._answered = False
        self._failed_in_a_row = 0
        self._cooldown_until = 0.0
        self._cache_warned = False
        # The SDK's async client and our semaphore belong to one event loop; sync calls make their own loops.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )

    # -- plumbing ---------------------------------------------------------------------------------------
    def _loop_state(self):
        loop = asyncio.get_running_loop()
        state = self._per_loop.get(loop)
        if state is None:
            from openai import AsyncOpenAI

            # max_retries=0: ours is the one retry policy (the SDK's would stack on it and ignore our cool-down)
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
                text = json.dumps(row) + "\n"
                if not self._ledger_checked:
                    # a process killed mid-line leaves a partial row: start ours on a fresh line, so only that
                    # one call is lost and not the first of this process as well
                    self._ledger_checked = True
                    if _ends_without_newline(self.usage_log):
                        text = "\n" + text
                append_private(self.usage_log, text)

    def _ledger_usage(self) -> dict[str, Usage]:
        usage: dict[str, Usage] = {}
        for line in self.usage_log.read_text().splitlines() if self.usage_log.exists() else []:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill: that call is not counted
                continue
            if not isinstance(row, dict) or "site" not in row:
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

    def _fault(self, err: Exception) -> Fault:
        """Classify a failed attempt. APITimeoutError subclasses APIConnectionError, so it is asked first."""
        import openai

        if isinstance(err, MalformedReply):
            return Fault("malformed", f"the chat endpoint {self.base_url} sent a malformed reply: {err}", True)
        if isinstance(err, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
            return Fault("timeout", f"the chat endpoint {self.base_url} timed out (after {self.timeout:g} s)", True)
        if isinstance(err, (openai.APIConnectionError, ConnectionError)):
            cause = err.__cause__ or err
            return Fault("connection", f"the connection to the chat endpoint {self.base_url} failed "
                                       f"({type(cause).__name__}: {str(cause).splitlines()[0][:120] if str(cause) else ''})",
                         True)
        if isinstance(err, openai.APIStatusError):
            status = err.status_code
            detail = str(getattr(err, "message", "") or err).splitlines()[0][:200]
            headers = getattr(getattr(err, "response", None), "headers", None)
            return Fault("status", f"the chat endpoint answered HTTP {status} for model '{self.model}': {detail}",
                         status in RETRY_STATUSES or status >= 500, parse_retry_after(headers),
                         rate_limited=status == 429)
        return Fault("other", f"chat request failed: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}",
                     False)

    def _delay(self, fault: Fault, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): what the server asked, else exponential
        back-off with jitter (so clients that failed together do not retry together)."""
        if fault.retry_after is not None:
            return fault.retry_after + random.uniform(0, 0.1 * fault.retry_after + 0.01)  # never earlier
        return min(self.max_backoff, self.backoff * 2**retry) * random.uniform(0.5, 1.0)

    async def _hold_back(self) -> None:
        """Wait out a cool-down some request's 429 (or Retry-After) started for every request of this client."""
        while (wait := self._cooldown_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    async def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(self.cache.get, key)
        except sqlite3.Error as e:  # a cache we cannot read is a miss, not a lost request
            self._warn_cache(e)
            return None

    async def _cache_put(self, key: str, value: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.cache.put, key, value)
        except sqlite3.Error as e:  # the answer is still returned; only the re-run will ask again
            self._warn_cache(e)

    def _warn_cache(self, err: Exception) -> None:
        if not self._cache_warned:
            self._cache_warned = True
            warnings.warn(f"the chat cache {self.cache.path} failed ({err}); continuing without it for those calls",
                          RuntimeWarning, stacklevel=3)

    # -- calls ------------------------------------------------------------------------------------------
    async def complete(
        self, messages: list[dict[str, Any]], *, site: str = "default", cache_tag: str | None = None, **params: Any
    ) -> ChatResult:
        """One chat completion. ``cache_tag`` separates otherwise identical requests (e.g. a fresh attempt)."""
        request = {"model": self.model, "messages": messages, **self.default_params, **params}
        key = None
        if self.cache is not None:
            key = ChatCache.key({"base_url": self.base_url, "request": request, "tag": cache_tag})
            hit = await self._cache_get(key)
            if hit is not None:
                self._account(site, cached=True)
                return ChatResult(text=hit["text"], finish_reason=hit.get("finish_reason"),
                                  usage=hit.get("usage", {}), cached=True, texts=hit.get("texts", [hit["text"]]))
        sdk, sem = self._loop_state()
        spent = {"prompt_tokens": 0, "completion_tokens": 0}  # includes replies thrown away as malformed
        faults: list[Fault] = []
        # A request keeps its slot through its retries: a retry is not sent to the back of a long queue, and a
        # struggling server sees fewer requests at once. Every attempt first waits out a 429's cool-down.
        async with sem:
            while True:
                await self._hold_back()
                try:
                    raw = await sdk.chat.completions.with_raw_response.create(**request)
                    self._answered = True
                    texts, finish_reason, usage = parse_reply(raw.content)
                    break
                except Exception as err:  # noqa: BLE001 - classified by _fault
                    if isinstance(err, MalformedReply):
                        for k in spent:
                            spent[k] += int(err.usage.get(k) or 0)
                    fault, cause = self._fault(err), err
                    if fault.kind in ("status", "malformed"):
                        self._answered = True
                faults.append(fault)
                asked_too_long = fault.retry_after is not None and fault.retry_after > MAX_RETRY_AFTER_S
                if not fault.retryable or len(faults) > self.max_retries or asked_too_long:
                    raise self._give_up(faults) from cause
                delay = self._delay(fault, len(faults) - 1)
                if fault.rate_limited or fault.retry_after is not None:
                    self._cooldown_until = max(self._cooldown_until, time.monotonic() + delay)
                await asyncio.sleep(delay)
        self._failed_in_a_row = 0
        for k in spent:
            spent[k] += int(usage.get(k) or 0)
        account = {**usage, **spent}
        result = ChatResult(text=texts[0], finish_reason=finish_reason, usage=usage, texts=texts)
        self._account(site, cached=False, usage=account, retries=len(faults))
        if key is not None:
            await self._cache_put(key, {"text": result.text, "finish_reason": result.finish_reason,
                                        "usage": usage, "texts": texts})
        return result

    def _give_up(self, faults: list[Fault]) -> ChatRequestFailed:
        """The error for a request whose every attempt failed: one sentence, the endpoint's state in its type."""
        self._failed_in_a_row += 1
        last, n = faults[-1], len(faults)
        attempts = f"{n} attempt{'s' if n > 1 else ''}"
        if not self._answered and all(f.kind == "connection" for f in faults):
            return ChatEndpointDown(f"cannot reach the chat endpoint {self.base_url} (gave up after {attempts})")
        if last.kind == "timeout":
            message = f"the chat endpoint {self.base_url} timed out on all {attempts} (after {self.timeout:g} s each)"
        elif n > 1:
            message = f"{last.message} (failed on all {attempts})"
        else:
            message = last.message
        if last.retry_after is not None and last.retry_after > MAX_RETRY_AFTER_S:
            message += f"; it asked to wait {last.retry_after:.0f} s"
        if self._failed_in_a_row >= self.down_after:
            return ChatEndpointDown(f"{self._failed_in_a_row} chat requests in a row failed on every attempt; "
                                    f"the last: {message}")
        return ChatRequestFailed(message)

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

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections (call it at the end of an ``asyncio.run``), so they are not
        left for the garbage collector to close on a loop that no longer runs."""
        state = self._per_loop.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state[0].close()

    # -- sync twins -------------------------------------------------------------------------------------
    def complete_sync(self, messages: list[dict[str, Any]], **kw: Any) -> ChatResult:
        return run_sync(self._then_close(self.complete(messages, **kw)))

    def complete_json_sync(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None, **kw: Any) -> Any:
        return run_sync(self._then_close(self.complete_json(messages, schema, **kw)))

    async def _then_close(self, coro):
        try:
            return await coro
        finally:
            await self.aclose()


def _ends_without_newline(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:  # missing or empty
        return False


def append_private(path: Path, text: str) -> None:
    """Append to a file readable by its owner only (it may hold prompts, replies or token counts)."""
    from lyceum.runs import append_private as append

    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    append(path, text)


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
