"""A real local HTTP server that speaks the OpenAI chat-completions protocol and answers from a script.

Tests point the real client (the official SDK underneath) at it, so requests, retries, JSON bodies and usage
fields all go over a socket exactly as they would against vLLM or a hosted API.

A reply in the script is one of:
- a string: the assistant's text;
- ``{"content": "...", "delay": 0.2, "finish_reason": "stop"}``;
- ``{"status": 500}`` (or 429, 400...): an error response with that HTTP status;
- a callable ``fn(request_json) -> reply`` (any of the above), for replies that depend on the request.
When the script runs out the server answers HTTP 500 "script exhausted", so a test never hangs on it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _count_tokens(messages: list[dict[str, Any]]) -> int:
    n = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            n += len(content.split())
        elif isinstance(content, list):
            n += sum(len(p.get("text", "").split()) + (85 if p.get("type") == "image_url" else 0) for p in content)
    return n


class ScriptedChatServer:
    def __init__(self, default: Any = None):
        self._script: deque = deque()
        self._lock = threading.Lock()
        self.default = default  # reply used when the script is empty (None: HTTP 500 "script exhausted")
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"unknown path {self.path}"}})
                    return
                with server._lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    reply = server._script.popleft() if server._script else server.default
                try:
                    server._answer(self, body, reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        # a short poll interval so shutdown() returns at once instead of after the default 0.5 s
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def _answer(self, handler, body: dict[str, Any], reply: Any) -> None:
        if callable(reply):
            reply = reply(body)
        if reply is None:
            handler._send(500, {"error": {"message": "script exhausted", "type": "server_error"}})
            return
        if isinstance(reply, str):
            reply = {"content": reply}
        if reply.get("delay"):
            time.sleep(reply["delay"])
        status = reply.get("status", 200)
        if status != 200:
            handler._send(status, {"error": {"message": reply.get("message", f"scripted HTTP {status}"),
                                             "type": "server_error" if status >= 500 else "invalid_request_error"}})
            return
        content = reply["content"]
        n = int(body.get("n") or 1)
        prompt_tokens = _count_tokens(body.get("messages", []))
        completion_tokens = len((content or "").split())  # content may be null (a cut-off reasoning model)
        handler._send(200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": i, "message": {"role": "assistant", "content": content},
                         "finish_reason": reply.get("finish_reason", "stop"), "logprobs": None} for i in range(n)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens * n,
                      "total_tokens": prompt_tokens + completion_tokens * n},
        })

    def script(self, replies: list[Any] | Any) -> ScriptedChatServer:
        """Append replies to the script (a single reply or a list)."""
        if not isinstance(replies, list):
            replies = [replies]
        with self._lock:
            self._script.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        return len(self._script)

    def start(self) -> ScriptedChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # a listen backlog like real servers'; the default 5 drops concurrent connections


def user_texts(request: dict[str, Any]) -> str:
    """All text of a received request's messages, joined (handy in callable replies and assertions)."""
    out = []
    for m in request.get("messages", []):
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out += [p.get("text", "") for p in c if p.get("type") == "text"]
    return "\n".join(out)


Reply = str | dict[str, Any] | Callable[[dict[str, Any]], Any]
