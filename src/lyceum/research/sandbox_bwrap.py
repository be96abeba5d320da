"""The bubblewrap command line of the research sandbox: which namespaces, and exactly what the code can see.

``bwrap_command`` lists the mounts in order: a read-only root with only the Python installation, the shared
libraries, fonts and time zones, the analysis's data files, a hardened /proc, a minimal /dev, and the scratch
tmpfs. Run by root, ``root_user_namespaces`` supplies the user namespaces that make the code the host's
nobody. ``sandbox.py`` runs it; docs/research.md ("The sandbox: threat model") explains the choices.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

INSIDE = "/sandbox"  # where the runner, its config and the support files are mounted read-only
SMALL_TMPFS_MB = 16  # /dev/shm inside (POSIX semaphores); /tmp is read-only and TMPDIR is in the scratch folder

# Run by root, bwrap's own user namespace maps the code to uid 0, and the kernel treats uid 0 specially even
# without capabilities (RLIMIT_NPROC does not apply to it; root-owned procfs files are writable). So as root we
# build two user namespaces ourselves and hand them to bwrap (--userns / --userns2): it sets up the mounts as
# root in the first, then starts the supervisor in the second with only CAP_SETUID/SETGID/SETPCAP there, which it
# uses once to become that namespace's uid 0 -- the host's nobody (65534) -- losing every capability. The first
# may hold no more user namespaces than that one, so the code cannot make new ones (checked by bwrap).
NOBODY = 65534
_USERNS_HELPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def child(then):
    # fork; the child makes a user namespace, says so, waits until its maps are written, then runs then()
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(up_r); os.close(go_w)
        if libc.unshare(0x10000000) != 0:
            os._exit(1)
        os.write(up_w, b"x")
        if os.read(go_r, 1) == b"g":
            then()
        os._exit(0)
    os.close(up_w); os.close(go_r)
    if os.read(up_r, 1) != b"x":
        raise SystemExit("no user namespace")
    return pid, go_w
def maps(pid, uid_text):
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(uid_text)
def first():  # in U1: uid 0 = host root (for the mounts), uid 1 = host nobody
    inner, go = child(lambda: os.read(0, 1))
    maps(inner, "0 1 1\n")
    os.write(go, b"g")
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("1")  # U2 is the one; the code cannot make another
    print("inner", inner, flush=True)
    os.read(0, 1)
outer, go = child(first)
maps(outer, "0 0 1\n1 %d 1\n" % int(sys.argv[1]))
os.write(go, b"g")
print("outer", outer, flush=True)
os.read(0, 1)
"""


@lru_cache(maxsize=1)
def root_user_namespaces() -> tuple[int, int] | None:
    """(fd of the set-up namespace, fd of the code's namespace) when we are root and can make them, else None."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return None
    try:
        helper = subprocess.Popen([sys.executable, "-I", "-S", "-c", _USERNS_HELPER, str(NOBODY)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={},
                                  text=True)
    except OSError:
        return None
    try:
        pids = dict(helper.stdout.readline().split() for _ in range(2))
        inner, outer = int(pids["inner"]), int(pids["outer"])
        fds = (os.open(f"/proc/{outer}/ns/user", os.O_RDONLY | os.O_CLOEXEC),
               os.open(f"/proc/{inner}/ns/user", os.O_RDONLY | os.O_CLOEXEC))
    except (OSError, ValueError, KeyError):
        fds = None
    finally:
        helper.stdin.close()  # the helpers read EOF and exit; the namespaces live on through our fds
        helper.wait(timeout=10)
    if fds is not None:  # the bwrap here must take them (--userns2, --assert-userns-disabled: bubblewrap >= 0.8)
        probe = [shutil.which("bwrap") or "bwrap", *_userns_flags(fds), "--ro-bind", "/", "/", "--proc", "/proc",
                 "--", sys.executable, "-I", "-S", "-c", ""]
        try:
            ok = subprocess.run(probe, capture_output=True, timeout=30, check=False, env={}, pass_fds=fds).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            for fd in fds:
                os.close(fd)
            fds = None
    return fds


NAMESPACES = ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
               "--cap-drop", "ALL", "--as-pid-1")
# Run by root, the code is uid 0 in the kernel's eyes (without capabilities): what procfs lets uid 0 write
# without a capability check (sysctls, sysrq, irq affinities...) is made read-only or hidden, as Docker does.
def _proc_hardening() -> list[str]:
    args = []
    for p in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"):
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"):
        if os.path.exists(p):
            args += ["--ro-bind", "/dev/null", p]
    return args


def bwrap_command(scratch: Path, readable: list[str], stage: Path, env: dict[str, str], scratch_mb: int,
                  userns: tuple[int, int] | None = None, seccomp_fd: int | None = None) -> list[str]:
    """The bwrap command line: what the code can see, in mount order. ``userns``: see root_user_namespaces;
    ``seccomp_fd``: a file descriptor holding ``seccomp_filter()``."""
    spaces = _userns_flags(userns) if userns else list(NAMESPACES)
    head = [shutil.which("bwrap") or "bwrap", *spaces, "--hostname", "sandbox", "--clearenv"]
    if seccomp_fd is not None:
        head += ["--seccomp", str(seccomp_fd)]
    for key, value in env.items():
        head += ["--setenv", key, value]
    cmd: list[str] = []
    for top in ("/lib", "/lib32", "/lib64", "/libx32"):  # merged-/usr systems link these into /usr
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    binds = _python_paths() + [p for p in ("/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32",
                                           "/usr/share/zoneinfo", "/usr/share/fonts") if os.path.isdir(p)]
    for path in _outermost(binds):
        cmd += ["--ro-bind", path, path]
    for link, target in _python_links():
        cmd += ["--symlink", target, link] if target else ["--ro-bind", link, link]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        cmd += ["--ro-bind-try", path, path]
    cmd += ["--ro-bind", str(stage / "passwd"), "/etc/passwd", "--ro-bind", str(stage / "group"), "/etc/group",
            "--proc", "/proc", *_proc_hardening(), "--dev", "/dev",
            "--size", str(SMALL_TMPFS_MB << 20), "--perms", "1777", "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--dir", "/tmp"]
    # Data and scratch, parents before children, so a scratch folder inside a data folder (or the reverse) works.
    mounts = [(p, ["--ro-bind", p, p]) for p in readable if os.path.exists(p)]
    mounts.append((str(scratch), ["--size", str(scratch_mb << 20), "--perms", "0777", "--tmpfs", str(scratch)]))
    for _, args in sorted(mounts, key=lambda m: len(Path(m[0]).parts)):
        cmd += args
    cmd += ["--ro-bind", str(stage), INSIDE, "--remount-ro", "/", "--chdir", str(scratch)]
    return [*head, *_skeleton(cmd), *cmd,
            "--", sys.executable, "-I", "-B", f"{INSIDE}/sandbox_runner.py", f"{INSIDE}/config.json"]


def _userns_flags(userns: tuple[int, int]) -> list[str]:
    """Namespaces when we bring the user namespaces (run by root); the supervisor uses the three capabilities
    once, to become nobody, and drops them with the bounding set."""
    return ["--userns", str(userns[0]), "--userns2", str(userns[1]), "--assert-userns-disabled",
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            *NAMESPACES[3:], "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]


_MOUNTS = {"--ro-bind": 2, "--ro-bind-try": 2, "--bind": 2, "--tmpfs": 1, "--proc": 1, "--dev": 1}
_OTHERS = {"--symlink": 2, "--dir": 1, "--size": 1, "--perms": 1, "--remount-ro": 1, "--chdir": 1}


def _skeleton(ops: list[str]) -> list[str]:
    """``--dir`` (mode 0755) for every folder above a mount point that no mount provides: left to itself bwrap
    makes them 0700, which the unprivileged code could not walk through."""
    dests, mounted, i = [], set(), 0
    while i < len(ops):
        n = _MOUNTS.get(ops[i]) or _OTHERS.get(ops[i], 0)
        if n:
            dests.append(ops[i + n])
            if ops[i] in _MOUNTS:
                mounted.add(ops[i + n])
        i += n + 1
    dirs: list[str] = []
    for dest in dests:
        for parent in reversed(Path(dest).parents):
            p = str(parent)
            if _under(p, sorted(mounted)):
                break
            if p != "/" and p not in dirs:
                dirs.append(p)
    return [a for d in dirs for a in ("--dir", d)]


@lru_cache(maxsize=1)
def _python_paths() -> list[str]:
    """The folders this Python runs from: the venv, the base installation, site-packages; never project source."""
    paths = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        if prefix and os.path.realpath(prefix) not in ("/", "/usr"):  # a system Python: its lib folder is enough
            paths.append(os.path.realpath(prefix))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        name = os.path.basename(real)
        if os.path.isdir(real) and (name in ("site-packages", "dist-packages", "lib-dynload", version)):
            paths.append(real)
    return sorted(set(paths))


@lru_cache(maxsize=1)
def _python_links() -> list[tuple[str, str]]:
    """The interpreter's symlink chain (venv/bin/python -> /usr/bin/python3 -> python3.11), ending in the binary."""
    links, path, seen = [], sys.executable, set()
    while os.path.islink(path) and path not in seen:
        seen.add(path)
        target = os.readlink(path)
        links.append((path, target))
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
    covered = _outermost(_python_paths() + ["/usr/lib"])
    out = [(link, target) for link, target in links if not _under(link, covered)]
    if not _under(path, covered):
        out.append((path, ""))  # the real binary: bound below, not linked
    return out


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _outermost(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in sorted(set(paths), key=lambda x: (len(Path(x).parts), x)):
        if not _under(p, out):
            out.append(p)
    return out


def write_identity(stage: Path, scratch: Path) -> None:
    """A one-user /etc/passwd and /etc/group, so getpass and pwd work and nothing of the host's is shown."""
    uid, gid = os.getuid(), os.getgid()
    (stage / "passwd").write_text(f"sandbox:x:{uid}:{gid}:lyceum sandbox:{scratch}:/nonexistent\n")
    (stage / "group").write_text(f"sandbox:x:{gid}:\n")


# System calls analysis code never needs and kernel exploits often do: debugging other processes, kernel
# modules, keyrings, eBPF, perf, io_uring, userfaultfd, namespaces and mounts, file handles, clocks, reboot.
# They fail with EPERM. Numbers from the kernel's unistd tables (x86_64; aarch64 uses the generic table).
_DENIED = {
    "x86_64": (0xC000003E, {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "mount": 165, "umount2": 166,
        "pivot_root": 155, "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163, "syslog": 103, "keyctl": 250,
        "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "unshare": 272,
        "setns": 308, "open_by_handle_at": 304, "name_to_handle_at": 303, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "chroot": 161, "quotactl": 179,
        "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305, "iopl": 172,
        "ioperm": 173, "uselib": 134, "lookup_dcookie": 212}),
    "aarch64": (0xC00000B7, {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "mount": 40, "umount2": 39,
        "pivot_root": 41, "swapon": 224, "swapoff": 225, "reboot": 142, "acct": 89, "syslog": 116, "keyctl": 219,
        "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "unshare": 97,
        "setns": 268, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
        "open_tree": 428, "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "chroot": 51, "quotactl": 60, "settimeofday": 170, "clock_settime": 112,
        "adjtimex": 171, "clock_adjtime": 266, "lookup_dcookie": 18}),
}


@lru_cache(maxsize=1)
def seccomp_filter() -> bytes | None:
    """A classic-BPF seccomp program for bwrap --seccomp, or None on an architecture we have no table for.

    Any other ABI (i386 through int 0x80, x32) is refused whole, so the table cannot be sidestepped."""
    arch = _DENIED.get(platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    eperm = 0x00050000 | 1  # SECCOMP_RET_ERRNO | EPERM
    nrs = sorted(set(numbers.values()))
    deny = 4 + len(nrs) + 1  # index of the final "ret EPERM"
    prog = [(0x20, 0, 0, 4),  # A = seccomp_data.arch
            (0x15, 0, deny - 2, audit_arch),  # another ABI: refuse
            (0x20, 0, 0, 0),  # A = seccomp_data.nr
            (0x35, deny - 4, 0, 0x40000000)]  # x32 system calls: refuse
    for i, nr in enumerate(nrs):
        prog.append((0x15, deny - (4 + i) - 1, 0, nr))
    prog += [(0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, eperm)]  # allow / refuse
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)
