"""Run model-written Python in a bubblewrap sandbox that the kernel holds shut.

    result = run_python("print(1 + 1)", workdir=Path("runs/x/attempt-1"), readable=[table_path])
    result.ok, result.stdout, result.error_summary(), result.files

The code runs under ``bwrap`` (bubblewrap) in its own user, pid, network, mount, IPC, UTS and cgroup
namespaces, with no capabilities and no way to make further user namespaces. It sees a read-only root that
holds only the Python installation (the interpreter, the standard library, the site-packages), the shared
libraries, the data files named in ``readable`` (read-only, at their own paths), a fresh ``/proc``, a minimal
``/dev`` and a size-capped tmpfs scratch folder mounted at ``workdir``; the files the code leaves there are
copied back into ``workdir`` when it ends. There is no home folder, no project source, no host ``/tmp``, no
network interface but its own loopback, and an environment built from an allow-list. rlimits cap address space,
CPU time, file size, processes and open files; when the code ends (or its time is up) every process it started
is killed, detached ones included. The bwrap command line is built in ``sandbox_bwrap.py``, the supervisor inside is ``sandbox_runner.py``; docs/research.md ("The
sandbox: threat model") says what this guarantees and what it does not.

Where bubblewrap or user namespaces are unavailable, ``run_python`` refuses with one sentence, unless the user
passed ``--unsafe-no-sandbox`` (``allow_unsandboxed()``): then the code runs as a plain child process guarded
only by the audit hook, rlimits and, where the kernel allows, ``unshare -rn``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from lyceum.errors import UserError
from lyceum.research.sandbox_bwrap import (
    INSIDE,
    NAMESPACES,
    bwrap_command,
    root_user_namespaces,
    seccomp_filter,
    write_identity,
)

RUNNER = Path(__file__).with_name("sandbox_runner.py")
MAX_FILES = 10_000  # files copied back from one run
HOST_GRACE_S = 30.0  # beyond the code's own limit: start-up and copying files back, before the host kills it all

_unsafe_allowed = False


@dataclass
class SandboxLimits:
    timeout_s: float = 30.0
    memory_mb: int = 2048  # address space per process
    max_file_mb: int = 64  # any one file the code writes, stdout and stderr included
    max_output_chars: int = 20_000
    scratch_mb: int = 128  # everything the code may write, in total
    max_processes: int = 64  # processes and threads together
    max_open_files: int = 256


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
    stopped_by: str = ""  # "time" or "processes" when the supervisor ended the run for a limit

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error_summary(self, max_chars: int = 2000) -> str:
        """What went wrong, short enough to feed back to the model that wrote the code."""
        if self.timed_out:
            return f"the code was stopped after {self.duration_s:.0f} s (time limit); it must finish faster"
        if self.stopped_by == "processes":
            return "the code was stopped for starting too many processes or threads (process limit)"
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


# ---------------------------------------------------------------------------------------------------------------
# Can we sandbox here?

_INSTALL = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"


@lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """Why generated code cannot be sandboxed on this machine (one sentence), or None when it can."""
    if not sys.platform.startswith("linux"):
        return (f"generated code cannot be sandboxed on {sys.platform}: the lyceum sandbox needs Linux with "
                "bubblewrap; pass --unsafe-no-sandbox to run it without isolation")
    exe = shutil.which("bwrap")
    if not exe:
        return (f"generated code cannot be sandboxed: bubblewrap (bwrap) is not installed; {_INSTALL}, or pass "
                "--unsafe-no-sandbox to run it without isolation")
    probe = [exe, *NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--", sys.executable, "-I", "-S", "-c", ""]
    try:
        out = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False, env={})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"generated code cannot be sandboxed: bubblewrap does not start ({e}); pass --unsafe-no-sandbox to run it without isolation"
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["no message"])[-1]
        if "nknown option" in why:
            return (f"generated code cannot be sandboxed: this bubblewrap is too old ({why}); {_INSTALL} at version "
                    "0.8 or later, or pass --unsafe-no-sandbox to run it without isolation")
        return (f"generated code cannot be sandboxed: bubblewrap cannot create user namespaces here ({why}); allow "
                "them (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone=1, or the AppArmor "
                "userns restriction) or pass --unsafe-no-sandbox to run it without isolation")
    return None


def allow_unsandboxed(allowed: bool = True) -> None:
    """``--unsafe-no-sandbox``: let this process run generated code without bubblewrap when it is unavailable."""
    global _unsafe_allowed
    _unsafe_allowed = allowed


def require_sandbox(unsafe_no_sandbox: bool = False) -> None:
    """Refuse early (a UserError) when generated code could not be sandboxed and the user did not opt out."""
    allow_unsandboxed(unsafe_no_sandbox)
    problem = sandbox_problem()
    if problem and not unsafe_no_sandbox:
        raise UserError(problem)
    if problem:
        print(f"warning: --unsafe-no-sandbox: {problem.split(';')[0]}; generated code runs unisolated",
              file=sys.stderr)


@lru_cache(maxsize=1)
def network_namespace_prefix() -> tuple[str, ...]:
    """``("unshare", "-rn")`` when this kernel lets us create a network namespace, else ``()`` (unsafe mode only)."""
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


# ---------------------------------------------------------------------------------------------------------------
# Running code

def run_python(code: str, *, workdir: str | Path, readable: list[str | Path] = (), limits: SandboxLimits | None = None,
               support_files: dict[str, str] | None = None, env: dict[str, str] | None = None,
               unsafe_no_sandbox: bool | None = None) -> SandboxResult:
    """Run ``code`` as a script whose working folder is ``workdir`` (created; the only place it may write).

    ``readable``: data files or folders the code may read (mounted read-only; recorded in ``result.opened``).
    ``support_files``: name -> source of helper modules the code can import (mounted read-only beside it).
    ``unsafe_no_sandbox``: run without bubblewrap when it is unavailable (default: ``allow_unsandboxed()``'s).
    """
    limits = limits or SandboxLimits()
    problem = sandbox_problem()
    unsafe = _unsafe_allowed if unsafe_no_sandbox is None else unsafe_no_sandbox
    if problem and not unsafe:
        raise UserError(problem)
    scratch = Path(workdir).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    box = scratch / ".sandbox"
    stage = box / "in"  # what the supervisor reads; mounted read-only at INSIDE
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "lib").mkdir(parents=True)
    (stage / "mpl").mkdir()
    _copy_font_cache(stage / "mpl")
    for name, source in (support_files or {}).items():
        (stage / "lib" / name).write_text(source)
    (stage / "main.py").write_text(code)
    shutil.copy2(RUNNER, stage / "sandbox_runner.py")
    for stale in ("status.json", "opened.json", "outputs.stream"):
        (box / stale).unlink(missing_ok=True)
    readable = [str(Path(p).resolve()) for p in readable]
    sandboxed = problem is None
    where = Path(INSIDE) if sandboxed else stage
    cfg = {"scratch": str(scratch), "readable": readable, "script_src": str(where / "main.py"),
           "lib": str(where / "lib"), "fontcache": str(where / "mpl"), "timeout_s": limits.timeout_s,
           "limits": asdict(limits), "pidns": sandboxed, "archive_fd": None}
    child_env = _clean_env(scratch, env)
    out_path, err_path = box / "stdout.txt", box / "stderr.txt"
    archive_fd = seccomp_fd = None
    if sandboxed:
        userns = root_user_namespaces()
        if userns is not None:
            _check_readable_by_others(readable)
        archive_fd = os.open(box / "outputs.stream", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        cfg.update(archive_fd=archive_fd, become_nobody=userns is not None,
                   count_tasks=os.geteuid() == 0 and userns is None)  # uid 0 inside: RLIMIT_NPROC does not apply
        (stage / "config.json").write_text(json.dumps(cfg))
        write_identity(stage, scratch)
        if seccomp_filter() is not None:
            (stage / "seccomp.bpf").write_bytes(seccomp_filter())
            seccomp_fd = os.open(stage / "seccomp.bpf", os.O_RDONLY | os.O_CLOEXEC)
        cmd = bwrap_command(scratch, readable, stage, child_env, limits.scratch_mb, userns, seccomp_fd)
        pass_fds = (archive_fd, *(userns or ()), *(() if seccomp_fd is None else (seccomp_fd,)))
        isolation = ["bwrap", "userns", "pidns", "netns", "mountns", "rlimits", "audit-hook", "scrubbed-env"]
    else:
        (stage / "config.json").write_text(json.dumps(cfg))
        prefix = network_namespace_prefix()
        cmd = [*prefix, sys.executable, "-I", "-B", str(stage / "sandbox_runner.py"), str(stage / "config.json")]
        isolation = (["netns"] if prefix else []) + ["rlimits", "audit-hook", "scrubbed-env"]
        pass_fds = ()
    before = set() if sandboxed else set(_listing(scratch))
    start = time.monotonic()
    host_killed = False
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(cmd, cwd=scratch, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                        env=child_env if not sandboxed else {}, start_new_session=True,
                                        pass_fds=pass_fds)
            except OSError as e:
                raise UserError(f"cannot start the sandboxed Python ({e.strerror})") from e
            try:
                proc.wait(timeout=limits.timeout_s + HOST_GRACE_S)
            except subprocess.TimeoutExpired:
                # The supervisor inside did not end it in time (stopped or killed): kill bwrap itself; its
                # --die-with-parent chain and the pid namespace take every process inside with it.
                host_killed = True
                _kill_group(proc)
                proc.wait()
    finally:
        for fd in (archive_fd, seccomp_fd):
            if fd is not None:
                os.close(fd)
    duration = time.monotonic() - start
    if sandboxed:
        files = _unpack(box / "outputs.stream", scratch, limits)
    else:
        files = sorted(set(_listing(scratch)) - before)
    status = _read_json(box / "status.json") or {}
    opened = [p for p in (_read_json(box / "opened.json") or []) if isinstance(p, str)]
    returncode = status.get("returncode") if "returncode" in status else _exit_code(proc.returncode)
    timed_out = bool(status.get("timed_out")) or host_killed
    return SandboxResult(returncode=returncode, stdout=_read(out_path, limits), stderr=_read(err_path, limits),
                         timed_out=timed_out, duration_s=float(status.get("duration_s") or duration),
                         workdir=scratch, files=files, opened=opened, isolation=isolation,
                         stopped_by=str(status.get("stopped_by") or ("time" if host_killed else "")))


def _check_readable_by_others(paths: list[str]) -> None:
    """Run by root, the code is nobody: data it may read must be readable by other users (the default umask)."""
    import stat

    for p in paths:
        try:
            mode = os.stat(p).st_mode
        except OSError:
            continue
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
        if mode & need != need:
            raise UserError(f"{p} is not readable by other users (mode {stat.S_IMODE(mode):o}), and run by root the "
                            "generated code runs as nobody: make it readable (chmod o+r) or run lyceum as a "
                            "regular user")


def _clean_env(scratch: Path, extra: dict[str, str] | None) -> dict[str, str]:
    """The code's whole environment: nothing is inherited from ours (no keys, no proxies, no PYTHON* variables)."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "USER": "sandbox",
        "LOGNAME": "sandbox",
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


@lru_cache(maxsize=1)
def _font_cache_files() -> tuple[Path, ...]:
    try:
        import matplotlib

        return tuple(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))
    except Exception:  # noqa: BLE001 - the child can rebuild the cache, just slower
        return ()


def _copy_font_cache(dest: Path) -> None:
    """Reuse this process's matplotlib font list so every run does not rebuild it (seconds each)."""
    for f in _font_cache_files():
        try:
            shutil.copy2(f, dest / f.name)
        except OSError:
            pass


def _unpack(archive: Path, scratch: Path, limits: SandboxLimits) -> list[str]:
    """Copy the code's files back from the supervisor's stream: per file a JSON line {"name", "size"}, then the
    bytes. Written by what ran inside, so read as hostile: plain relative names only, never through a link,
    only regular files, within the scratch size and MAX_FILES."""
    files: list[str] = []
    budget = (limits.scratch_mb + 1) << 20
    try:
        stream = open(archive, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return files
    root = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while len(files) < MAX_FILES:
            line = stream.readline(8192)
            try:
                head = json.loads(line)
                name, size = head["name"], head["size"]
            except (ValueError, TypeError, KeyError):
                break  # the end, or a stream cut short
            if not isinstance(name, str) or not isinstance(size, int) or not 0 <= size <= budget:
                break
            budget -= size
            parts = name.split("/")
            if not _plain(parts) or not _write_under(root, parts, stream, size):
                stream.seek(size, os.SEEK_CUR)
                continue
            if parts[0] != ".sandbox":
                files.append(name)
    finally:
        os.close(root)
        stream.close()
        archive.unlink(missing_ok=True)
    return sorted(files)


def _plain(parts: list[str]) -> bool:
    return bool(parts) and all(p not in ("", ".", "..") and "\0" not in p for p in parts) and len(parts) <= 32


def _write_under(root: int, parts: list[str], stream, size: int) -> bool:
    """Write ``size`` bytes from ``stream`` to root/parts, refusing links, odd files and hard-linked targets.

    Returns False (and leaves the stream where it was) when the file cannot be written safely."""
    import stat

    fd = os.dup(root)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = sub
        out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644,
                      dir_fd=fd)
    except OSError:
        os.close(fd)
        return False
    os.close(fd)
    with os.fdopen(out, "wb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            return False
        f.truncate(0)
        left = size
        while left > 0:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                break
            f.write(chunk)
            left -= len(chunk)
    return True


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _exit_code(code: int | None) -> int | None:
    """bwrap reports a child killed by signal N as 128+N; subprocess reports our own kills as -N."""
    if code is not None and code > 128 and code - 128 in signal.Signals._value2member_map_:
        return -(code - 128)
    return code


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
    return sorted(out)


def _read(path: Path, limits: SandboxLimits) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - limits.max_output_chars * 4))
        text = f.read().decode("utf-8", errors="replace")
    if len(text) > limits.max_output_chars:
        text = "[... earlier output cut ...]\n" + text[-limits.max_output_chars :]
    return text
