"""A CPU-time budget for one stage of an answer check.

sympy can run for minutes (or forever) on an innocent-looking ``simplify``; a grader must give up and move on.
The budget is CPU time, not wall time: a check that needs 0.3 s of CPU gets its 0.3 s whether the machine is
idle or has ten other processes running, so a verdict does not depend on the load (a wall-clock limit rejected
slow-but-valid checks whenever the machine was busy). In the main thread a CPU-time interval timer
(``ITIMER_PROF``, delivered as SIGPROF) interrupts pure-Python work such as sympy's; it saves and re-arms any
outer budget. SIGALRM is left alone (pytest-timeout and math-verify use it). Signals only reach the main thread,
so elsewhere the work runs in a forked child process that gets the same budget.

``CheckTimeout`` derives from BaseException on purpose: parsers and sympy catch ``Exception`` all over, and a
budget that ran out must never be mistaken for "could not parse" (and then be cached as such).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# a child that is still running after this much *wall* time per CPU-second of budget is stuck, not busy
_CHILD_WALL_FACTOR = 60.0


class CheckTimeout(BaseException):
    """Raised inside a check when its CPU budget is spent."""


def _signals_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``CheckTimeout`` in the body after ``seconds`` of CPU time (main thread only)."""
    if not seconds or seconds <= 0 or not _signals_usable():
        yield
        return

    def on_budget(signum, frame):
        raise CheckTimeout(f"check exceeded {seconds:g} CPU seconds")

    old_handler = signal.signal(signal.SIGPROF, on_budget)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_PROF, seconds)
    if old_delay and old_delay < seconds:  # an outer budget runs out first: keep it
        signal.setitimer(signal.ITIMER_PROF, old_delay)
    start = cpu_seconds()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old_handler)
        if old_delay:
            left = old_delay - (cpu_seconds() - start)
            signal.setitimer(signal.ITIMER_PROF, max(left, 1e-3), old_interval)


def call_with_time_limit(fn: Callable[..., Any], *args: Any, seconds: float | None, default: Any = None) -> Any:
    """``fn(*args)``, or ``default`` when it spends more than ``seconds`` of CPU. Works from any thread.

    The budget running out is reported by raising ``CheckTimeout`` only inside; here it becomes ``default``
    and ``timeouts`` (a per-thread counter) goes up, so a caller can tell "no" from "ran out of budget"."""
    if not seconds or seconds <= 0:
        return fn(*args)
    if _signals_usable():
        try:
            with time_limit(seconds):
                return fn(*args)
        except CheckTimeout:
            note_timeout()
            return default
    return _call_in_child(fn, args, seconds, default)


_state = threading.local()


def note_timeout() -> None:
    _state.timeouts = timeouts() + 1


def timeouts() -> int:
    """How many budgets ran out in this thread so far (callers compare before and after a check)."""
    return getattr(_state, "timeouts", 0)


def _call_in_child(fn: Callable[..., Any], args: tuple, seconds: float, default: Any) -> Any:
    """Run ``fn`` in a forked child (it inherits the loaded modules, so it starts in milliseconds); the child
    is the only thread of its process, so the CPU-time signal works there."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():  # pragma: no cover - Windows: no way to interrupt, run it
        return fn(*args)
    ctx = mp.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)

    def child():
        try:
            with time_limit(seconds):
                writer.send(("ok", fn(*args)))
        except CheckTimeout:
            writer.send(("timeout", None))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            writer.send(("error", repr(e)))
        finally:
            writer.close()
            os._exit(0)

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    writer.close()
    try:
        if reader.poll(_CHILD_WALL_FACTOR * seconds + 10):
            status, value = reader.recv()
            if status == "timeout":
                note_timeout()
            return value if status == "ok" else default
        note_timeout()
        return default
    except EOFError:
        return default
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        reader.close()
