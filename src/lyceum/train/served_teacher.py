"""A teacher behind a vLLM or SGLang server, for every command that uses a teacher.

    server = served_teacher("http://gpu1:30000", engine="sglang")          # or engine="vllm", model="teacher"
    sparse = score_sparse(server, ids, mask, start, vocab, topk=16, given_ids=student_topk)   # a SparseTeacher
    loss, stats = opd_loss(student_head, sparse, tokens, mask, support="union", k=16)          # no dense logits

The command-line side: ``add_teacher_flags(parser)`` adds ``--teacher-url``, ``--teacher-model``,
``--teacher-engine`` and the connection settings; ``teacher_from_args(args)`` returns the server client (or None
when the teacher is a local folder). ``lyceum.train.feedback.ServedTeacherFeedback`` is the engine's side.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any

from lyceum.errors import UserError

ENGINES = ("vllm", "sglang")


def served_teacher(url: str, *, engine: str, model: str | None = None, concurrency: int = 8, batch_size: int = 8,
                   timeout: float = 300.0, max_retries: int = 4):
    """The client of a teacher server: ``engine`` "vllm" (needs ``model``, the served model name) or "sglang"."""
    from lyceum.models.served import SGLangServer, VLLMServer

    if engine not in ENGINES:
        raise UserError(f"--teacher-engine must be vllm or sglang, got {engine!r}")
    if engine == "vllm":
        if not model:
            raise UserError("a vLLM teacher needs --teacher-model, the name it serves (vllm serve "
                            "--served-model-name)")
        return VLLMServer(url, model, concurrency=concurrency, batch_size=batch_size, timeout=timeout,
                          max_retries=max_retries)
    return SGLangServer(url, concurrency=concurrency, batch_size=batch_size, timeout=timeout, max_retries=max_retries)


class LoopThread:
    """One event loop in a daemon thread: a served teacher's client, its connections and its concurrency bound
    live across a whole run, and synchronous code submits coroutines to it (``submit`` -> a Future)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="served-teacher")
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


def is_served(teacher: Any) -> bool:
    """A server client (``VLLMServer`` / ``SGLangServer``) rather than a model folder or a ``LocalLM``."""
    return getattr(teacher, "kind", None) in ENGINES and hasattr(teacher, "score")


def ask_given(server) -> bool:
    """Whether to ask ``server`` for log q at the student's top-k ids when scanning diagnostics (SGLang can)."""
    return server.kind == "sglang"


async def score_sparse_async(server, input_ids, attention_mask, start: int, vocab: int, *, topk: int = 0,
                             given_ids=None):
    """The teacher's answers about ``input_ids[:, start:]`` as a ``SparseTeacher`` ``[B, T - start, ...]``."""
    from lyceum.models.served import served_scores
    from lyceum.train.sparse import SparseTeacher

    scores = await served_scores(server, input_ids, attention_mask, start=start, topk=topk, given_ids=given_ids)
    return SparseTeacher(scores.logprobs, input_ids[:, start:].cpu(), vocab, scores.topk_ids, scores.topk_logprobs,
                         given_ids.cpu() if given_ids is not None else None, scores.given_logprobs, server.kind)


def score_sparse(server, input_ids, attention_mask, start: int, vocab: int, *, topk: int = 0, given_ids=None):
    """``score_sparse_async`` from synchronous code (requests still go out concurrently)."""
    from lyceum.models.chat import run_sync

    return run_sync(score_sparse_async(server, input_ids, attention_mask, start, vocab, topk=topk,
                                       given_ids=given_ids))


# --------------------------------------------------------------------------------------------------- the CLI


def add_teacher_flags(p: argparse.ArgumentParser, *, required_teacher: bool = True) -> None:
    """``--teacher-url`` and its settings; with them, ``--teacher`` (a local folder) is not needed."""
    g = p.add_argument_group("served teacher (instead of a local --teacher folder)")
    g.add_argument("--teacher-url", help="URL of a vLLM or SGLang server serving the teacher, e.g. "
                                         "http://gpu1:30000 (same tokenizer as the student)")
    g.add_argument("--teacher-engine", choices=ENGINES, help="what serves --teacher-url: vllm (sampled and "
                                                             "teacher_topk supports) or sglang (every support "
                                                             "but full)")
    g.add_argument("--teacher-model", help="the model name a vLLM teacher serves (--served-model-name)")
    g.add_argument("--teacher-concurrency", type=int, default=8, help="teacher requests in flight (default 8)")
    g.add_argument("--teacher-batch-size", type=int, default=8, help="sequences per teacher request (default 8)")
    g.add_argument("--teacher-timeout", type=float, default=300.0,
                   help="seconds before a teacher request is retried (default 300)")
    p.set_defaults(_teacher_required=required_teacher)


def teacher_from_args(args: argparse.Namespace, local_flag: str = "--teacher", *, allow_both: bool = False):
    """The served teacher's client when ``--teacher-url`` is given, else None; checks the flags go together.
    ``allow_both``: a command comparing several teachers (the probe) takes folders and a server at once."""
    url = getattr(args, "teacher_url", None)
    local = getattr(args, local_flag.lstrip("-").replace("-", "_"), None)
    if url and local and not allow_both:
        raise UserError(f"give either {local_flag} (a local folder) or --teacher-url (a server), not both")
    if not url:
        if getattr(args, "teacher_engine", None) or getattr(args, "teacher_model", None):
            raise UserError("--teacher-engine and --teacher-model describe a served teacher; add --teacher-url")
        if getattr(args, "_teacher_required", False) and not local:
            raise UserError(f"this command needs a teacher: {local_flag} (a local folder) or --teacher-url "
                            f"(a vLLM or SGLang server)")
        return None
    if not args.teacher_engine:
        raise UserError("--teacher-url needs --teacher-engine vllm or sglang (the two speak different protocols)")
    for flag, value in (("--teacher-concurrency", args.teacher_concurrency),
                        ("--teacher-batch-size", args.teacher_batch_size)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    server = served_teacher(url, engine=args.teacher_engine, model=args.teacher_model,
                            concurrency=args.teacher_concurrency, batch_size=args.teacher_batch_size,
                            timeout=args.teacher_timeout)
    check_teacher(server)
    return server


def check_teacher(server) -> None:
    """Before any model loads: the server answers, and a vLLM server serves the model name we will send.

    An unreachable server raises ``ChatEndpointDown`` (one sentence) after the transport's retries."""
    from lyceum.models.chat import run_sync

    if server.kind == "sglang":
        run_sync(server.endpoint.get("/health"))
        return
    reply = run_sync(server.endpoint.get("/v1/models"))
    names = [m.get("id") for m in reply.get("data", [])] if isinstance(reply, dict) else []
    if names and server.model not in names:
        raise UserError(f"the vLLM server at {server.endpoint.base_url} serves {', '.join(map(str, names))}, not "
                        f"{server.model!r}; pass one of those as --teacher-model")


def student_topk_ids(src, mask, k: int):
    """The student's top-``k`` ids ``[b, L, k]`` at the masked positions of a logits source (zero elsewhere): the
    ids a served teacher is asked for. Same ``topk`` as the loss's own, on the same logits."""
    import torch

    from lyceum.train.logits import chunk_rows, positions, vocab_size
    from lyceum.train.losses import topk_ids

    V = vocab_size(src)
    k = min(k, V)
    bi, ti = positions(mask.bool(), tuple(mask.shape), mask.device)
    out = torch.zeros((*mask.shape, k), dtype=torch.long, device=mask.device)
    with torch.no_grad():
        out[bi, ti] = topk_ids(src, bi, ti, k, chunk_rows(bi.numel(), V, None))
    return out


def served_scan(student_src, server, ids, attention, start: int, vocab: int, tokens, mask, k: int):
    """The diagnostics scan (``scan.TokenScan``) of a student's rollouts under a served teacher: the teacher's
    top-``k`` and, where the server takes given ids, log q at the student's top-``k`` (for overlap_advantage)."""
    from lyceum.train.scan import token_scan

    given = student_topk_ids(student_src, mask, k).cpu() if ask_given(server) else None
    sparse = score_sparse(server, ids.cpu(), attention.cpu(), start, vocab, topk=k, given_ids=given)
    return token_scan(student_src, sparse.to(mask.device), tokens, mask, k)


def describe(teacher: Any) -> str:
    """How a run's config names its teacher: the folder, or ``sglang http://...`` / ``vllm:NAME http://...``."""
    if is_served(teacher):
        name = f"vllm:{teacher.model}" if teacher.kind == "vllm" else "sglang"
        return f"{name} {teacher.endpoint.base_url}"
    return str(teacher)
