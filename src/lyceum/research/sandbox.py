"""Run model-written Python in a separate process that cannot reach the network or damage anything.

    result = run_python("print(1 + 1)", workdir=Path("runs/x/attempt-1"))
    result.ok, result.stdout, result.error_summary()

Layers, strongest first (``result.isolation`` lists the ones that were active):

- ``netns``: the child runs in a fresh network namespace (``unshare -rn``) when the kernel allows it -- no
  network interface exists, so even C libraries cannot connect anywhere;
- ``rlimits``: address space (memory), CPU seconds, file size, core dumps; and a wall-clock timeout that kills
  the whole process group (a runaway loop is stopped, not waited for);
- ``audit-hook``: a Python audit hook installed before the code runs refuses sockets (connect, bind,
  getaddrinfo...), new processes (subprocess, os.system, exec, fork), native library loading through ctypes,
  importing network-capable native packages, and any write, delete or rename outside the scratch folder -- so
  the data the code reads stays read-only;
- ``scrubbed-env``: the child sees a minimal environment (no API keys, no proxies, HOME inside the scratch
  folder) and runs with ``python -I`` (no user site, no PYTHON* variables).

The audit hook is a guard rail for generated analysis code, not a boundary against a determined attacker; the
namespace and the limits are the parts the kernel enforces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lyceum.errors import UserError


@dataclass
class SandboxLimits:
    timeout_s: float = 30.0
    memory_mb: int = 2048
    max_file_mb: int = 64
    max_output_chars: int = 20_000


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    workdir: Path
    files: list[str] = field(default_factory=list)  # files the code created, relative to workdir
    opened: list[str] = field(default_factory=list)  # readable data files the code opened
    isolation: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error_summary(self, max_chars: int = 2000) -> str:
        """What went wrong, short enough to feed back to the model that wrote the code."""
        if self.timed_out:
            return f"the code was stopped after {self.duration_s:.0f} s (time limit); it must finish faster"
        if self.returncode is not None and self.returncode < 0:
            sig = -self.returncode
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            hint = " (probably the memory limit)" if sig in (signal.SIGKILL, signal.SIGSEGV) else ""
            return f"the process was killed by {name}{hint}\n{self.stderr[-max_chars:]}"
        text = self.stderr.strip() or self.stdout.strip()
        lines = text.splitlines()
        if "Traceback (most recent call last):" in text:
            start = max(i for i, ln in enumerate(lines) if ln.startswith("Traceback"))
            lines = lines[start:]
        return "\n".join(lines)[-max_chars:]


# The first Python the child runs: limits the code's reach, then runs it as __main__.
_RUNNER = r'''
import json, os, sys
cfg = json.load(open(sys.argv[1]))
SCRATCH = os.path.realpath(cfg["scratch"])
READABLE = [os.path.realpath(p) for p in cfg["readable"]]
ALLOWED_WRITE = ("/dev/null", "/dev/stdout", "/dev/stderr")
NET = {"socket.connect", "socket.connect_ex", "socket.bind", "socket.sendto", "socket.sendmsg",
       "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
       "socket.getnameinfo", "socket.__new__"}
PROC = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "os.startfile", "pty.spawn", "os.kill", "os.killpg"}
PATH_EVENTS = {"os.remove", "os.unlink", "os.rename", "os.replace", "os.rmdir", "os.mkdir", "os.chmod",
               "os.chown", "os.truncate", "os.link", "os.symlink", "os.utime", "shutil.rmtree", "shutil.move",
               "shutil.copyfile", "shutil.copytree"}
DENY_IMPORTS = {"duckdb", "pyarrow._s3fs", "pyarrow._gcsfs", "pyarrow._hdfs", "pyarrow._azurefs", "paramiko",
                "ftplib", "smtplib", "telnetlib", "requests", "httpx", "urllib3", "aiohttp", "websockets"}
opened = []

class SandboxRefusal(PermissionError):
    pass

def _inside(path):
    try:
        p = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else "")
    except (TypeError, ValueError):
        return True
    return p == SCRATCH or p.startswith(SCRATCH + os.sep) or p in ALLOWED_WRITE

def _writes(mode, flags):
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC))

def hook(event, args):
    if event in NET:
        raise SandboxRefusal(f"network access is disabled in the lyceum sandbox ({event})")
    if event in PROC or event.startswith("os.exec") or event.startswith("os.spawn"):
        raise SandboxRefusal(f"starting processes is disabled in the lyceum sandbox ({event})")
    # `import ctypes` itself opens the main program (dlopen(None)); looking symbols up is what reaches libc.
    if (event == "ctypes.dlopen" and args and args[0] is not None) or event in ("ctypes.dlsym", "ctypes.dlsym/handle"):
        raise SandboxRefusal("calling native code through ctypes is disabled in the lyceum sandbox")
    if event == "import" and args and args[0] in DENY_IMPORTS:
        raise ImportError(f"the module '{args[0]}' is not available in the lyceum sandbox (it can reach the network)")
    if event == "open" and args:
        path, mode, flags = (list(args) + [None, None])[:3]
        if isinstance(path, int):
            return
        if _writes(mode, flags) and not _inside(path):
            raise SandboxRefusal(f"writing outside the scratch folder is not allowed: {os.fsdecode(path)}")
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if any(real == r or real.startswith(r + os.sep) for r in READABLE) and real not in opened:
            opened.append(real)
    elif event in PATH_EVENTS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not _inside(path):
                raise SandboxRefusal(f"changing files outside the scratch folder is not allowed: {os.fsdecode(path)}")

def _save_opened():
    with open(os.path.join(SCRATCH, ".sandbox", "opened.json"), "w") as f:
        json.dump(opened, f)

import atexit
atexit.register(_save_opened)
sys.path.insert(0, os.path.join(SCRATCH, ".sandbox"))
os.chdir(SCRATCH)
sys.addaudithook(hook)
del hook
import runpy
sys.argv = [cfg["script"]]
runpy.run_path(cfg["script"], run_name="__main__")
'''


@lru_cache(maxsize=1)
def network_namespace_prefix() -> tuple[str, ...]:
    """``("unshare", "-rn")`` when this kernel lets us create a network namespace, else ``()``."""
    exe = shutil.which("unshare")
    if not exe or not sys.platform.startswith("linux"):
        return ()
    for args in (("-rn",), ("-n",)):
        try:
            ok = subprocess.run([exe, *args, "true"], capture_output=True, timeout=10, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return (exe, *args)
    return ()


def _limit(limits: SandboxLimits):
    def apply() -> None:  # runs in the child between fork and exec
        import resource

        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(limits.timeout_s) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        size = limits.max_file_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _clean_env(scratch: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(scratch / ".sandbox" / "mpl"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_MAX_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "no_proxy": "*",
        "NO_PROXY": "*",
    }
    env.update(extra or {})
    return env


def _copy_font_cache(dest: Path) -> None:
    """Reuse this process's matplotlib font list so every run does not rebuild it (seconds each)."""
    try:
        import matplotlib

        for f in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
            shutil.copy2(f, dest / f.name)
    except Exception:  # noqa: BLE001, S110 - the child can rebuild the cache, just slower
        pass


def run_python(code: str, *, workdir: str | Path, readable: list[str | Path] = (), limits: SandboxLimits | None = None,
               support_files: dict[str, str] | None = None, env: dict[str, str] | None = None) -> SandboxResult:
    """Run ``code`` as a script in ``workdir`` (created; the only place it may write) under the sandbox.

    ``readable``: data files or folders the code is expected to read (recorded in ``result.opened``).
    ``support_files``: name -> source of helper modules the code can import (placed beside the runner).
    """
    limits = limits or SandboxLimits()
    scratch = Path(workdir).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    box = scratch / ".sandbox"
    box.mkdir(exist_ok=True)
    (scratch / "tmp").mkdir(exist_ok=True)
    (box / "mpl").mkdir(exist_ok=True)
    _copy_font_cache(box / "mpl")
    for name, source in (support_files or {}).items():
        (box / name).write_text(source)
    script = scratch / "main.py"
    script.write_text(code)
    (box / "runner.py").write_text(_RUNNER)
    cfg = {"scratch": str(scratch), "readable": [str(Path(p).resolve()) for p in readable], "script": str(script)}
    (box / "config.json").write_text(json.dumps(cfg))
    before = _listing(scratch)
    prefix = network_namespace_prefix()
    cmd = [*prefix, sys.executable, "-I", "-B", str(box / "runner.py"), str(box / "config.json")]
    out_path, err_path = box / "stdout.txt", box / "stderr.txt"
    start = time.monotonic()
    timed_out = False
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(cmd, cwd=scratch, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=_clean_env(scratch, env), start_new_session=True,
                                    preexec_fn=_limit(limits))  # noqa: PLW1509 - only sets rlimits, no locks
        except OSError as e:
            raise UserError(f"cannot start the sandboxed Python ({e.strerror})") from e
        try:
            returncode = proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            returncode = proc.wait()
    duration = time.monotonic() - start
    opened = []
    if (box / "opened.json").is_file():
        try:
            opened = json.loads((box / "opened.json").read_text())
        except json.JSONDecodeError:
            opened = []
    files = sorted(set(_listing(scratch)) - set(before))
    return SandboxResult(returncode=returncode, stdout=_read(out_path, limits), stderr=_read(err_path, limits),
                         timed_out=timed_out, duration_s=duration, workdir=scratch, files=files, opened=opened,
                         isolation=(["netns"] if prefix else []) + ["rlimits", "audit-hook", "scrubbed-env"])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _listing(root: Path) -> list[str]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in (".sandbox", "tmp") and rel.as_posix() != "main.py":
            out.append(rel.as_posix())
    return out


def _read(path: Path, limits: SandboxLimits) -> str:
    text = path.read_bytes()[-limits.max_output_chars * 4 :].decode("utf-8", errors="replace")
    if len(text) > limits.max_output_chars:
        text = "[... earlier output cut ...]\n" + text[-limits.max_output_chars :]
    return text
