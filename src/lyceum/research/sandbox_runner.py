"""The Python that runs inside the sandbox: a supervisor, and the generated code in a child process under it.

    python -I -B sandbox_runner.py CONFIG.json

The host (``sandbox.py``) starts this file inside bubblewrap; it is copied in, because the project's source is
not visible in there, so it imports nothing but the standard library. The supervisor:

1. puts hard rlimits on itself (inherited by everything it starts, and never raisable again without a
   capability nobody in the sandbox has) and makes itself non-dumpable, so the code it runs cannot ptrace it
   or open its file descriptors through /proc;
2. forks the child, which lowers the limits to the code's own, installs the audit hook (defence in depth,
   and the ``opened`` provenance record) and runs the code as ``__main__``;
3. runs as pid 1 of the sandbox's pid namespace (nothing inside can signal it); waits at most the wall-clock
   limit, then kills every other process in the namespace -- detached (``setsid``) ones included -- and
   writes the scratch folder's files as a stream to a file descriptor the host passed in; the host writes
   them back with checks. The scratch folder itself is a size-capped tmpfs that disappears with the sandbox.

Run by root, it first becomes the host's ``nobody`` (see ``sandbox_bwrap.root_user_namespaces``).

Without bubblewrap (``--unsafe-no-sandbox``) the same file runs on the host: the scratch folder is then the
real work folder, nothing is streamed back, and only the child's process group can be killed.
"""

import json
import os
import resource
import signal
import sys
import time

MB = 1024 * 1024
MAX_FILES = 10_000  # files copied back from one run (the host enforces it too)


def main() -> None:
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    scratch = cfg["scratch"]
    keep = cfg.get("archive_fd")
    if keep is not None:  # bwrap passes on whatever it was given (the user-namespace fds): hold only the archive's
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)
    if cfg.get("become_nobody"):
        _become_nobody()
    _harden(cfg)
    box = os.path.join(scratch, ".sandbox")
    os.makedirs(os.path.join(box, "mpl"), exist_ok=True)
    os.makedirs(os.path.join(scratch, "tmp"), exist_ok=True)
    for src, dest in ((cfg["script_src"], os.path.join(scratch, "main.py")),
                      *((os.path.join(cfg["fontcache"], n), os.path.join(box, "mpl", n))
                        for n in _names(cfg["fontcache"]))):
        if os.path.abspath(src) != os.path.abspath(dest):
            with open(src, "rb") as a, open(dest, "wb") as b:
                b.write(a.read())
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(cfg)  # runs the code; ends this process through SystemExit, never returns here
    status, stopped = _wait(cfg, pid)
    duration = time.monotonic() - start
    _end_everything_else(cfg, pid)
    returncode = os.waitstatus_to_exitcode(status)
    with open(os.path.join(box, "status.json"), "w") as f:
        json.dump({"returncode": returncode, "timed_out": stopped == "time", "stopped_by": stopped,
                   "duration_s": duration}, f)
    if cfg.get("archive_fd") is not None:
        _archive(scratch, cfg["archive_fd"])


def _names(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _become_nobody() -> None:
    """Run by root, bwrap starts us as the host's uid 0 holding CAP_SETUID/SETGID/SETPCAP only in a namespace
    whose uid 0 is the host's nobody: switch to that uid, empty the bounding set (so no exec can bring a
    capability back) and drop the rest. From then on the kernel limits us like any unprivileged user."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; EINVAL past the last capability

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)())  # _LINUX_CAPABILITY_VERSION_3: all zero
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    if any(int(status[k], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapInh")) or status["Uid"].split()[0] != "0":
        raise SystemExit("lyceum sandbox: could not drop to the unprivileged user")


def _harden(cfg) -> None:
    lim = cfg["limits"]
    # The supervisor must be able to write the archive, so its file-size cap is the scratch size.
    caps = {resource.RLIMIT_AS: lim["memory_mb"] * MB, resource.RLIMIT_NOFILE: lim["max_open_files"],
            resource.RLIMIT_FSIZE: (lim["scratch_mb"] + 64) * MB, resource.RLIMIT_CORE: 0,
            resource.RLIMIT_CPU: int(lim["timeout_s"]) + 10}
    if cfg["pidns"]:
        # Counted per user namespace: only the sandbox's own tasks (this one and the code's).
        caps[resource.RLIMIT_NPROC] = lim["max_processes"] + 1
    for what, value in caps.items():
        _cap(what, value, value)
    try:  # PR_SET_DUMPABLE = 4: no ptrace and no /proc/<pid>/fd for anyone without CAP_SYS_PTRACE
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _cap(what, soft, hard) -> None:
    _, old_hard = resource.getrlimit(what)
    if old_hard != resource.RLIM_INFINITY:
        hard = min(hard, old_hard)
    resource.setrlimit(what, (min(soft, hard), hard))


def _child(cfg) -> None:
    lim = cfg["limits"]
    os.closerange(3, 1 << 16)  # the archive descriptor and anything else the supervisor holds
    if not cfg["pidns"]:
        os.setsid()  # without a pid namespace a process group is all the host can kill
    cpu = int(lim["timeout_s"]) + 5
    _cap(resource.RLIMIT_CPU, cpu, cpu + 1)
    _cap(resource.RLIMIT_FSIZE, lim["max_file_mb"] * MB, lim["max_file_mb"] * MB)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_code(cfg)
    raise SystemExit(0)


def _wait(cfg, pid):
    """(wait status, why it was stopped or "") of the child: the time limit, or too many processes.

    The supervisor is pid 1 of the sandbox's pid namespace: signals from inside cannot stop or kill it, and
    it reaps the orphans the code leaves. With ``count_tasks`` it also counts the namespace's tasks, because
    the kernel exempts uid 0 -- which the code is when run by root without the nobody namespaces -- from
    RLIMIT_NPROC.
    """
    import select

    deadline = time.monotonic() + cfg["timeout_s"]
    most = cfg["limits"]["max_processes"] + 1
    try:
        exited = os.pidfd_open(pid)  # readable the moment the code exits: no polling delay
    except (AttributeError, OSError):
        exited = None
    while True:
        status = _reap(pid)
        if status is not None:
            return status, ""
        if time.monotonic() >= deadline:
            why = "time"
            break
        if cfg.get("count_tasks") and _tasks() > most:
            why = "processes"
            break
        if exited is None:
            time.sleep(0.005)
        else:
            select.select([exited], [], [], 0.005)
    _kill(pid)
    while True:
        status = _reap(pid)
        if status is not None:
            return status, why
        time.sleep(0.005)


def _reap(pid):
    """Reap every exited child (orphans are ours as pid 1); the code's wait status once it has exited."""
    found = None
    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if done == 0:
            return found
        if done == pid:
            found = status


def _tasks():
    """Threads and processes in this pid namespace, this one included."""
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                n += len(os.listdir(f"/proc/{p}/task"))
            except OSError:
                pass
    return n


def _kill(pid) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _end_everything_else(cfg, pid) -> None:
    """Kill whatever the code left behind (detached daemons, forks) before its files are collected."""
    if not cfg["pidns"]:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    # As pid 1 of our own pid namespace, kill(-1) reaches every other process in it and nothing outside.
    # The pid check keeps a misconfigured run on the host from ever sending it there.
    if os.getpid() != 1:
        raise SystemExit("lyceum sandbox: the supervisor is not pid 1 of a fresh pid namespace")
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _reap(pid)
        if not [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]:
            return
        time.sleep(0.002)


def _archive(scratch, fd) -> None:
    """The scratch folder's regular files (no links, nothing on another mount, no tmp/) as a stream the host
    reads back: per file a JSON line {"name", "size"} and then exactly that many bytes."""
    import stat

    dev = os.stat(scratch).st_dev
    keep_box = {"status.json", "opened.json"}
    count = 0
    with os.fdopen(fd, "wb") as out:
        for root, dirs, files in os.walk(scratch):
            rel_root = os.path.relpath(root, scratch)
            if rel_root == ".":
                dirs[:] = [d for d in dirs if d != "tmp"]
            for name in sorted(files):
                rel = os.path.normpath(os.path.join(rel_root, name))
                if rel == "main.py" or (rel.startswith(".sandbox" + os.sep) and rel[9:] not in keep_box):
                    continue
                path = os.path.join(root, name)
                try:  # O_NONBLOCK: a FIFO left there must not hang the way home
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                    fh = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue
                with os.fdopen(fh, "rb") as f:
                    st = os.fstat(f.fileno())
                    if not stat.S_ISREG(st.st_mode) or st.st_dev != dev:
                        continue
                    out.write(json.dumps({"name": rel.replace(os.sep, "/"), "size": st.st_size}).encode() + b"\n")
                    left = st.st_size
                    while left > 0:
                        chunk = f.read(min(left, 1 << 20)) or b"\0" * min(left, 1 << 20)
                        out.write(chunk)
                        left -= len(chunk)
                count += 1
                if count >= MAX_FILES:
                    return


# ---------------------------------------------------------------------------------------------------------------
# The child: the audit hook (defence in depth; the kernel holds the boundary) and the code itself

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
SCRATCH = ""
READABLE = []
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


def audit_hook(event, args):
    if event in NET:
        raise SandboxRefusal(f"network access is disabled in the lyceum sandbox ({event})")
    if event in PROC or event.startswith(("os.exec", "os.spawn")):
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


def run_code(cfg) -> None:
    global SCRATCH, READABLE
    import atexit
    import runpy

    SCRATCH = os.path.realpath(cfg["scratch"])
    READABLE = [os.path.realpath(p) for p in cfg["readable"]]
    atexit.register(_save_opened)
    sys.path.insert(0, cfg["lib"])
    os.chdir(SCRATCH)
    script = os.path.join(SCRATCH, "main.py")
    sys.argv = [script]
    sys.addaudithook(audit_hook)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
