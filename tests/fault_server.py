"""A real fault-injecting OpenAI-compatible HTTP server on 127.0.0.1, and a driver that measures the client on it.

Each attempt at a request draws its fate from ``random.Random(f"{seed}:{request}:{attempt}")``: with
probability ``fault_rate`` one of ``kinds``, else a correct reply. The fate of every attempt is therefore the same
whatever the concurrency or arrival order, and a test can tell from the server's log whether a request that
failed really failed on every attempt. ``force(prompt, [...])`` scripts the fates of one request instead.

A correct reply echoes the request's own text (``answer to: <last user text>``), so a reply handed to the wrong
request, or emptied on the way, is detected.

Fault kinds (every one the issue names):
- ``429``: HTTP 429 with ``Retry-After: <retry_after>`` (seconds); ``429ms``: HTTP 429 with ``retry-after-ms``;
- ``500``, ``503``: server errors;
- ``hang``: no answer for ``hang_s`` (past the client's timeout), then the connection is closed;
- ``cut``: a 200 whose body stops half-way and the connection closes (Content-Length promises more);
- ``truncated``: a complete 200 response whose JSON body is cut short;
- ``html``: a 200 HTML page, as a proxy sends; ``text``: a non-JSON body labelled ``application/json``;
- ``empty_choices``: ``"choices": []``; ``null_content``: ``"content": null``; ``missing_content``: no content key;
- ``slow``: a correct reply after ``slow_s``.

    python tests/fault_server.py --requests 1000 --faults 0.3 --concurrency 64     # prints what the client did
"""

from __future__ import annotations

import itertools
import json
import random
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("429", "429ms", "500", "503", "hang", "cut", "truncated", "html", "text", "empty_choices", "null_content",
         "missing_content", "slow")
OK = "ok"


def last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def expected_answer(prompt: str) -> str:
    return f"answer to: {prompt}"


@dataclass
class Attempt:
    """One request the server received: which request (its prompt), which attempt at it, what it got and when."""

    prompt: str
    attempt: int
    kind: str
    arrived: float  # time.monotonic()
    done: float = 0.0  # when the reply (or the fault) was sent


@dataclass
class FaultServer:
    fault_rate: float = 0.3
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    retry_after: float = 0.05  # seconds asked by 429 replies
    hang_s: float = 2.5
    slow_s: float = 0.1
    log: list[Attempt] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._forced: dict[str, list[str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server._handle(self, body)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    # -- control ------------------------------------------------------------------------------------------
    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def force(self, prompt: str, kinds: list[str]) -> None:
        """Script the fates of the attempts at one request (``"ok"`` for a correct reply); then it draws again."""
        with self._lock:
            self._forced[prompt] = list(kinds)

    def fate(self, prompt: str, attempt: int) -> str:
        rng = random.Random(f"{self.seed}:{prompt}:{attempt}")
        return rng.choice(self.kinds) if rng.random() < self.fault_rate else OK

    def attempts(self, prompt: str) -> list[Attempt]:
        with self._lock:
            return [a for a in self.log if a.prompt == prompt]

    # -- replies ------------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        prompt = last_user_text(body)
        with self._lock:
            n = self._seen.get(prompt, 0)
            self._seen[prompt] = n + 1
            forced = self._forced.get(prompt)
            kind = forced.pop(0) if forced else self.fate(prompt, n)
            record = Attempt(prompt, n, kind, time.monotonic())
            self.log.append(record)
        try:
            self._reply(h, body, prompt, kind)
        finally:
            record.done = time.monotonic()

    def _reply(self, h, body, prompt: str, kind: str) -> None:
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 3, "total_tokens": len(prompt.split()) + 3}

        def completion(message: dict[str, Any] | None, choices: bool = True) -> dict[str, Any]:
            return {"id": f"chatcmpl-{abs(hash(prompt)) % 10**9}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", "faulty"),
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}]
                    if choices else [], "usage": usage}

        def send(status: int, data: bytes, ctype: str = "application/json", headers: dict[str, str] | None = None,
                 length: int | None = None) -> None:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data) if length is None else length))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()

        def error(status: int, headers: dict[str, str] | None = None) -> None:
            send(status, json.dumps({"error": {"message": f"injected HTTP {status}", "type": "server_error"}}).encode(),
                 headers=headers)

        good = json.dumps(completion({"role": "assistant", "content": expected_answer(prompt)})).encode()
        if kind == OK:
            send(200, good)
        elif kind == "slow":
            time.sleep(self.slow_s)
            send(200, good)
        elif kind == "429":
            error(429, {"Retry-After": f"{self.retry_after:g}"})
        elif kind == "429ms":
            error(429, {"retry-after-ms": f"{self.retry_after * 1000:.0f}"})
        elif kind in ("500", "503"):
            error(int(kind))
        elif kind == "hang":
            time.sleep(self.hang_s)
            h.close_connection = True
            _drop(h)
        elif kind == "cut":
            send(200, good[: len(good) // 2], length=len(good))
            h.close_connection = True
            _drop(h)
        elif kind == "truncated":
            send(200, good[: len(good) * 2 // 3])
        elif kind == "html":
            send(200, b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>", ctype="text/html")
        elif kind == "text":
            send(200, b"upstream connect error or disconnect/reset before headers")
        elif kind == "empty_choices":
            send(200, json.dumps(completion(None, choices=False)).encode())
        elif kind == "null_content":
            send(200, json.dumps(completion({"role": "assistant", "content": None})).encode())
        elif kind == "missing_content":
            send(200, json.dumps(completion({"role": "assistant"})).encode())
        else:
            raise ValueError(f"unknown fault kind {kind!r}")


class _Server(ThreadingHTTPServer):
    # a listen backlog like real servers' (uvicorn: 2048); the default 5 drops connections that 64 concurrent
    # requests open at once, which would count as faults the test did not inject
    request_queue_size = 1024


def _drop(h: BaseHTTPRequestHandler) -> None:
    try:
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------- the driver


@dataclass
class Outcome:
    prompt: str
    text: str | None = None  # the answer, or None when the request raised
    error: Exception | None = None
    retries: int = 0


def drive(client, prompts: list[str]) -> list[Outcome]:
    """Ask every prompt through ``client`` at once (its own concurrency bound applies); one Outcome each."""
    import asyncio

    from lyceum.models.chat import ChatRequestFailed

    async def one(p: str) -> Outcome:
        try:
            r = await client.complete([{"role": "user", "content": p}], site="fault")
            return Outcome(p, r.text)
        except ChatRequestFailed as e:
            return Outcome(p, error=e)

    async def all_of_them():
        try:
            return await asyncio.gather(*[one(p) for p in prompts])
        finally:
            await client.aclose()

    return asyncio.run(all_of_them())


def retry_after_gaps(server: FaultServer) -> list[tuple[float, float]]:
    """(asked, waited) for every 429 followed by another attempt at the same request: waited is from the moment
    the 429 was sent to the next attempt's arrival."""
    by_prompt: dict[str, list[Attempt]] = {}
    for a in server.log:
        by_prompt.setdefault(a.prompt, []).append(a)
    gaps = []
    for attempts in by_prompt.values():
        attempts.sort(key=lambda a: a.attempt)
        for a, b in itertools.pairwise(attempts):
            if a.kind in ("429", "429ms"):
                gaps.append((server.retry_after, b.arrived - a.done))
    return gaps


def tally(server: FaultServer, outcomes: list[Outcome], max_retries: int) -> dict[str, Any]:
    """What happened, in the terms of the issue: answers lost, emptied, wrong; failures with an attempt left."""
    attempts: dict[str, list[Attempt]] = {}
    for a in server.log:
        attempts.setdefault(a.prompt, []).append(a)
    failed = [o for o in outcomes if o.error is not None]
    gaps = retry_after_gaps(server)
    return {
        "requests": len(outcomes),
        "attempts": len(server.log),
        "faults": sum(a.kind != OK and a.kind != "slow" for a in server.log),
        "answered": sum(o.text is not None for o in outcomes),
        "wrong": sum(o.text is not None and o.text != expected_answer(o.prompt) for o in outcomes),
        "empty": sum(o.text == "" for o in outcomes),
        "lost": sum(o.text is None and o.error is None for o in outcomes),
        "failed": len(failed),
        "failed_with_an_attempt_left": sum(
            len(attempts.get(o.prompt, [])) != max_retries + 1
            or any(a.kind in (OK, "slow") for a in attempts.get(o.prompt, [])) for o in failed),
        "retry_after_asked": server.retry_after,
        "retry_after_gaps": len(gaps),
        "retry_after_too_early": sum(waited < asked for asked, waited in gaps),
        "retry_after_median_wait": round(statistics.median(w for _, w in gaps), 3) if gaps else None,
    }


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from lyceum.models.chat import ChatClient

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--faults", type=float, default=0.3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-retries", type=int, default=6)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--retry-after", type=float, default=0.5, help="seconds a 429 asks the client to wait")
    p.add_argument("--backoff", type=float, default=None, help="the client's first back-off (default: its own)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    server = FaultServer(fault_rate=args.faults, seed=args.seed, retry_after=args.retry_after,
                         hang_s=args.timeout + 0.5).start()
    try:
        backoff = {} if args.backoff is None else {"backoff": args.backoff}
        client = ChatClient(base_url=server.base_url, model="faulty", concurrency=args.concurrency,
                            timeout=args.timeout, max_retries=args.max_retries, **backoff)
        t0 = time.monotonic()
        outcomes = drive(client, [f"question {i}" for i in range(args.requests)])
        result = {**tally(server, outcomes, args.max_retries), "seconds": round(time.monotonic() - t0, 1)}
    finally:
        server.stop()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
