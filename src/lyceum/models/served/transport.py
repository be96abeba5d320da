"""One retrying JSON-over-HTTP connection to a serving engine (vLLM or SGLang), shared by every served call.

The fault semantics are those of ``lyceum.models.chat`` so a run treats a served teacher or sampler exactly like a
chat endpoint: 429, 5xx, timeouts, dropped connections and malformed (non-JSON) bodies are retried with
exponential back-off and jitter; a request that fails on every attempt raises ``ChatRequestFailed`` (the caller
records it and goes on, or stops: its choice); a server that cannot be reached at all raises ``ChatEndpointDown``.
Other 4xx answers (a bad request) are not retried: sending the same body again cannot help.

Concurrency is bounded by one semaphore per event loop, so a trainer cannot flood a server it shares with others.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

import httpx

from lyceum.errors import UserError
from lyceum.models.chat import ChatEndpointDown, ChatRequestFailed


class _Retryable(Exception):
    """An attempt that may succeed if sent again (429 / 5xx / timeout / dropped connection / malformed body)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


@dataclass
class ServedEndpoint:
    """Base URL of a server (``http://host:port``, no ``/v1``) plus retry, timeout and concurrency settings."""

    base_url: str
    api_key: str | None = None
    concurrency: int = 8
    max_retries: int = 4
    timeout: float = 120.0
    backoff: float = 0.5
    max_backoff: float = 20.0
    retries: int = 0  # attempts retried so far (all calls), for logs and tests
    _per_loop: Any = field(default_factory=weakref.WeakKeyDictionary, repr=False)

    def __post_init__(self):
        # users paste the OpenAI base URL; the native routes (/generate, /update_weights...) live above it
        self.base_url = self.base_url.rstrip("/").removesuffix("/v1")
        if not re.match(r"^https?://", self.base_url):
            raise UserError(f"the server URL must start with http:// or https://, got '{self.base_url}'")
        if self.concurrency < 1:
            raise UserError(f"concurrency must be at least 1, got {self.concurrency}")

    def _state(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        state = self._per_loop.get(loop)
        if state is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            client = httpx.AsyncClient(timeout=self.timeout, headers=headers, limits=limits)
            state = (client, asyncio.Semaphore(self.concurrency))
            self._per_loop[loop] = state
        return state

    async def aclose(self) -> None:
        state = self._per_loop.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state[0].aclose()

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request (retried as described above) and return its JSON body (or text when not JSON)."""
        client, sem = self._state()
        url = f"{self.base_url}{path}"
        attempt = 0
        connect_failures = 0
        async with sem:
            while True:
                try:
                    return await self._attempt(client, method, url, body)
                except _Retryable as err:
                    connect_failures = connect_failures + 1 if err.kind == "connect" else 0
                    if attempt >= self.max_retries:
                        if err.kind == "connect" and connect_failures > attempt:
                            raise ChatEndpointDown(f"cannot reach the server {self.base_url} "
                                                   f"(gave up after {attempt + 1} attempts)") from None
                        raise ChatRequestFailed(f"{method} {url} failed {attempt + 1} times; last: {err.detail}") from None
                    delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
                    attempt += 1
                    self.retries += 1
                    await asyncio.sleep(delay)

    async def _attempt(self, client: httpx.AsyncClient, method: str, url: str, body: Any) -> Any:
        try:
            response = await client.request(method, url, json=body)
        except httpx.TimeoutException:
            raise _Retryable("timeout", f"timed out after {self.timeout:g} s") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            raise _Retryable("connect", f"{type(e).__name__}: {e}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable("status", f"HTTP {status}: {_detail(response)}")
        if status >= 400:
            raise ChatRequestFailed(f"{url} answered HTTP {status}: {_detail(response)}")
        if "json" not in response.headers.get("content-type", "") and response.content.lstrip()[:1] not in (b"{", b"["):
            return response.text  # vLLM's /v1/load_lora_adapter answers plain text
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retryable("malformed", f"the body is not valid JSON ({response.content[:80]!r})") from None

    def post(self, path: str, body: Any = None):
        return self.request("POST", path, body)

    def get(self, path: str):
        return self.request("GET", path)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else "(empty body)"
    if isinstance(body, dict):
        err = body.get("error", body.get("message", body.get("detail", body)))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:200]
    return str(body)[:200]


class MalformedReply(Exception):
    """A 200 reply whose JSON lacks the fields the protocol promises; retried like a malformed body."""


async def post_parsed(endpoint: ServedEndpoint, path: str, body: Any, parse) -> Any:
    """POST and parse; a reply the parser rejects (``MalformedReply``, KeyError, TypeError...) is sent again."""
    last = ""
    for attempt in range(endpoint.max_retries + 1):
        reply = await endpoint.post(path, body)
        try:
            return parse(reply)
        except (MalformedReply, KeyError, TypeError, ValueError, IndexError) as e:
            last = f"{type(e).__name__}: {e}"
            if attempt < endpoint.max_retries:
                endpoint.retries += 1
                await asyncio.sleep(min(endpoint.max_backoff, endpoint.backoff * 2**attempt) * (0.5 + random.random() / 2))
    raise ChatRequestFailed(f"{endpoint.base_url}{path} returned a reply without the expected fields "
                            f"{endpoint.max_retries + 1} times; last: {last[:200]}")
