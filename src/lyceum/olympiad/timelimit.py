"""A wall-clock limit for one answer check.

sympy can run for minutes (or forever) on an innocent-looking ``simplify``; a grader must give up and move on.
In the main thread we use a real-time interval timer (SIGALRM), which interrupts pure-Python work such as
sympy's; it saves and re-arms any outer timer (pytest-timeout uses the same signal). Signals only reach the
main thread, so elsewhere the work runs in a forked child process that is killed when the time is up.
math-verify has its own SIGALRM timeouts, which would cancel ours; we always call it with those switched off.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class CheckTimeout(Exception):
    """Raised inside a check when its time is up."""


def _signals_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``CheckTimeout`` in the body after ``seconds`` (main thread only; see ``call_with_time_limit``)."""
    if not seconds or seconds <= 0 or not _signals_usable():
        yield
        return

    def on_alarm(signum, frame):
        raise CheckTimeout(f"check exceeded {seconds:g} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    if old_delay and old_delay < seconds:  # an outer deadline comes first: keep it
        signal.setitimer(signal.ITIMER_REAL, old_delay)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)


def call_with_time_limit(fn: Callable[..., Any], *args: Any, seconds: float | None, default: Any = None) -> Any:
    """``fn(*args)``, or ``default`` when it runs past ``seconds``. Works from any thread."""
    if not seconds or seconds <= 0:
        return fn(*args)
    if _signals_usable():
        try:
            with time_limit(seconds):
                return fn(*args)
        except CheckTimeout:
            return default
    return _call_in_child(fn, args, seconds, default)


def _call_in_child(fn: Callable[..., Any], args: tuple, seconds: float, default: Any) -> Any:
    """Run ``fn`` in a forked child (it inherits the loaded modules, so it starts in milliseconds)."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():  # pragma: no cover - Windows: no way to interrupt, run it
        return fn(*args)
    ctx = mp.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)

    def child():
        try:
            writer.send(("ok", fn(*args)))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            writer.send(("error", repr(e)))
        finally:
            writer.close()
            os._exit(0)

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    writer.close()
    try:
        if reader.poll(seconds):
            status, value = reader.recv()
            return value if status == "ok" else default
        return default
    except EOFError:
        return default
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        reader.close()
