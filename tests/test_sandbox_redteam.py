"""Red team: generated code that attacks the sandbox, and what stops it.

Every attack runs as generated analysis code would (a script under ``run_python``). Where stopping it is a
kernel matter (files, network, processes, memory, disk), the attack first switches the Python audit hook off
the way the issue did -- the hook is defence in depth, not the boundary -- and the test then checks the
kernel's answer (the errno) and the host itself (the file is unchanged, no process survives, nothing arrived).
Secrets are planted in a temporary folder and HOME; no real file is touched.
"""

import errno
import hashlib
import json
import os
import platform
import socket
import sys
import uuid
from pathlib import Path

import pytest

from lyceum.research.sandbox import SandboxLimits, run_python, sandbox_problem
from lyceum.research.sandbox_bwrap import root_user_namespaces, seccomp_filter

pytestmark = pytest.mark.skipif(sandbox_problem() is not None,
                                reason=f"no bubblewrap sandbox here ({sandbox_problem()}); `make test` installs it")

REPO = Path(__file__).resolve().parents[1]
# Whether the code runs as an unprivileged uid (always, unless we are root and could not build the namespaces
# that map it to nobody): then the kernel also refuses by permission (EACCES) and counts processes (NPROC).
UNPRIVILEGED = os.geteuid() != 0 or root_user_namespaces() is not None
WRITE_REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)

PRELUDE = r'''
import errno, gc, json, os, sys

def unhook():
    """The issue's bypass: swap the audit hook's code for a no-op (the function found with gc.get_objects)."""
    found = 0
    for o in gc.get_objects():
        code = getattr(o, "__code__", None)
        if code is not None and code.co_name == "audit_hook":
            o.__code__ = (lambda event, args: None).__code__
            found += 1
    assert found, "the audit hook was not found"

def attempt(label, fn):
    try:
        value = fn()
        print(json.dumps({"label": label, "ok": True, "value": repr(value)[:300]}), flush=True)
    except BaseException as e:
        print(json.dumps({"label": label, "ok": False, "type": type(e).__name__,
                          "errno": getattr(e, "errno", None), "msg": str(e)[:300]}), flush=True)

def fork_exec(argv):
    """Start a program with _posixsubprocess.fork_exec directly (no subprocess.Popen audit event)."""
    import _posixsubprocess
    r, w = os.pipe()
    args = [[os.fsencode(a) for a in argv], [os.fsencode(argv[0])], True, (w,), None, None,
            -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None]
    try:
        pid = _posixsubprocess.fork_exec(*args, False)
    except TypeError:
        pid = _posixsubprocess.fork_exec(*args)
    os.close(w)
    failure = b""
    while chunk := os.read(r, 1000):  # until the child's exec closes the pipe (or its error is all written)
        failure += chunk
    os.close(r)
    status = os.waitpid(pid, 0)[1]
    return failure.decode(), os.waitstatus_to_exitcode(status)

print(json.dumps({"label": "pidns", "ok": True, "value": os.readlink("/proc/self/ns/pid")}), flush=True)
'''


class Host:
    """A temporary host: data for the analysis, a planted HOME with secrets, a victim file, a work folder."""

    def __init__(self, root: Path):
        import pandas as pd

        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        self.parquet = self.data_dir / "brent.parquet"
        pd.DataFrame({"year": range(2000, 2400), "price": [float(i % 97) for i in range(400)]}).to_parquet(self.parquet)
        self.csv = self.data_dir / "brent.csv"
        self.csv.write_text("year,price\n2008,96.94\n2009,61.74\n")
        self.sibling = self.data_dir / "not-for-this-analysis.csv"
        self.sibling.write_text("secret,sibling\n")
        self.home = root / "home"
        (self.home / ".ssh").mkdir(parents=True)
        self.secret = "redteam-" + uuid.uuid4().hex
        self.id_rsa = self.home / ".ssh" / "id_rsa"
        self.id_rsa.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{self.secret}\n-----END OPENSSH PRIVATE KEY-----\n")
        self.outside = root / "outside"
        self.outside.mkdir()
        self.victim = self.outside / "victim.txt"
        self.victim.write_text("original\n")
        self.work = root / "work"
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, tuple]:
        out = {}
        for p in sorted(self.root.rglob("*")):
            if self.work in p.parents or p == self.work:
                continue
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
            out[str(p.relative_to(self.root))] = (digest, st.st_mode, st.st_mtime_ns, st.st_size)
        return out

    def unchanged(self) -> bool:
        now = self.snapshot()
        changed = {k: (self.before.get(k), now.get(k)) for k in set(now) | set(self.before) if now.get(k) != self.before.get(k)}
        assert not changed, changed
        return True

    def run(self, code: str, **limits):
        limits = {"timeout_s": 20.0, "memory_mb": 2048, **limits}
        r = run_python(PRELUDE + code, workdir=self.work, readable=[self.parquet, self.csv],
                       limits=SandboxLimits(**limits))
        r.attempts = {}
        for line in r.stdout.splitlines():
            if line.startswith("{"):
                d = json.loads(line)
                r.attempts[d["label"]] = d
        return r


@pytest.fixture(scope="session")
def font_cache():
    """Find matplotlib's font list once, under the real HOME, before any test plants a fake one."""
    from lyceum.research.sandbox import _font_cache_files

    return _font_cache_files()


@pytest.fixture
def host(tmp_path, monkeypatch, font_cache):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LYCEUM_API_KEY", "sk-redteam-host-secret")
    return Host(tmp_path)


def refused_by_kernel(r, label, *errnos):
    a = r.attempts.get(label)
    assert a is not None, f"{label} did not report: {r.stdout[-1500:]} {r.stderr[-1500:]}"
    assert not a["ok"], f"{label} succeeded: {a}"
    assert a["errno"] in errnos, f"{label}: expected errno {errnos}, got {a}"
    return a


def survivors(pidns: str) -> list[int]:
    """Host processes still in the sandbox's pid namespace."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/ns/pid") == pidns:
                    out.append(int(p))
            except OSError:
                continue
    return out


# ---------------------------------------------------------------------------------------------------------------
# Reading secrets and files outside the data


def test_a_planted_ssh_key_in_home_cannot_be_read(host):
    r = host.run(f"unhook()\nattempt('id_rsa', lambda: open({str(host.id_rsa)!r}).read())\n"
                 "attempt('tilde', lambda: open(os.path.expanduser('~/.ssh/id_rsa')).read())")
    refused_by_kernel(r, "id_rsa", errno.ENOENT)
    refused_by_kernel(r, "tilde", errno.ENOENT)
    assert host.secret not in r.stdout + r.stderr


def test_the_project_source_is_not_visible(host):
    src = REPO / "src" / "lyceum" / "research" / "sandbox.py"
    r = host.run(f"unhook()\nattempt('source', lambda: open({str(src)!r}).read())\n"
                 f"attempt('repo', lambda: os.listdir({str(REPO)!r}))\n"
                 "attempt('import', lambda: __import__('lyceum'))")
    refused_by_kernel(r, "source", errno.ENOENT)
    repo = r.attempts["repo"]
    if repo["ok"]:
        # A venv inside the repository (.venv, as `make` creates it) is bound at its own path, so the repository
        # folder exists as an empty mount point holding only that venv: nothing of the project itself is there.
        venv = Path(sys.prefix).resolve()
        assert venv.is_relative_to(REPO.resolve()), repo
        assert repo["value"] == repr([venv.relative_to(REPO.resolve()).parts[0]]), repo
    else:
        refused_by_kernel(r, "repo", errno.ENOENT)
    assert r.attempts["import"]["type"] == "ModuleNotFoundError"  # the venv's editable .pth points nowhere


def test_a_file_beside_the_data_is_not_visible(host):
    r = host.run(f"unhook()\nattempt('sibling', lambda: open({str(host.sibling)!r}).read())\n"
                 f"attempt('listing', lambda: sorted(os.listdir({str(host.data_dir)!r})))")
    refused_by_kernel(r, "sibling", errno.ENOENT)
    assert r.attempts["listing"]["value"] == repr(["brent.csv", "brent.parquet"])


def test_the_data_itself_is_readable_and_recorded(host):
    r = host.run(f"print(open({str(host.csv)!r}).read().splitlines()[1])")
    assert r.ok, r.stderr
    assert "2008,96.94" in r.stdout
    assert r.opened == [str(host.csv)]


def test_the_host_home_shows_nothing_but_the_python_installation(host):
    real_home = os.path.expanduser(f"~{os.getpwuid(os.getuid()).pw_name}") if hasattr(os, "getpwuid") else "/root"
    r = host.run(f"unhook()\nattempt('home', lambda: os.listdir({real_home!r}))")
    a = r.attempts["home"]
    if a["ok"]:  # only when the interpreter itself lives there (pyenv): then only the path to it
        visible = eval(a["value"])
        assert all(os.path.realpath(sys.base_prefix).startswith(os.path.join(real_home, v)) for v in visible), visible
    else:
        assert a["errno"] == errno.ENOENT


def test_etc_holds_only_what_python_needs(host):
    r = host.run("unhook()\nattempt('etc', lambda: sorted(os.listdir('/etc')))\n"
                 "attempt('shadow', lambda: open('/etc/shadow').read())\n"
                 "attempt('hostname', lambda: open('/etc/hostname').read())")
    assert set(eval(r.attempts["etc"]["value"])) <= {"passwd", "group", "ld.so.cache", "localtime"}
    refused_by_kernel(r, "shadow", errno.ENOENT)
    refused_by_kernel(r, "hostname", errno.ENOENT)


def test_the_host_tmp_is_not_visible(host):
    planted = host.root / "tmp-secret.txt"
    planted.write_text(host.secret)
    host.before = host.snapshot()
    r = host.run(f"unhook()\nattempt('tmp', lambda: open({str(planted)!r}).read())")
    refused_by_kernel(r, "tmp", errno.ENOENT)
    assert host.secret not in r.stdout


def test_proc_shows_only_the_sandbox_and_no_host_environment(host):
    r = host.run("unhook()\n"
                 "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                 "attempt('pids', lambda: sorted(int(p) for p in pids))\n"
                 "env = b''\n"
                 "for p in pids:\n    try:\n        env += open(f'/proc/{p}/environ', 'rb').read()\n"
                 "    except OSError:\n        pass\n"
                 "attempt('environ', lambda: b'sk-redteam-host-secret' in env or 'LYCEUM_API_KEY' in os.environ)")
    assert max(eval(r.attempts["pids"]["value"])) < 10
    assert r.attempts["environ"]["value"] == "False"


def test_proc_root_links_lead_back_into_the_sandbox(host):
    r = host.run(f"unhook()\nattempt('root', lambda: open('/proc/1/root' + {str(host.id_rsa)!r}).read())\n"
                 f"attempt('self', lambda: open('/proc/self/root' + {str(host.victim)!r}).read())")
    refused_by_kernel(r, "root", errno.ENOENT, errno.EACCES)
    refused_by_kernel(r, "self", errno.ENOENT)


def test_a_symlink_in_scratch_does_not_reach_a_host_file(host):
    r = host.run(f"unhook()\nos.symlink({str(host.id_rsa)!r}, 'key')\nattempt('follow', lambda: open('key').read())")
    refused_by_kernel(r, "follow", errno.ENOENT)
    assert not (host.work / "key").exists()  # links are not copied back either


def test_dev_and_sys_hold_no_host_devices(host):
    r = host.run("unhook()\nattempt('dev', lambda: sorted(os.listdir('/dev')))\n"
                 "attempt('sys', lambda: os.listdir('/sys'))\nattempt('kmsg', lambda: open('/dev/kmsg').read(1))")
    assert set(eval(r.attempts["dev"]["value"])) <= {
        "console", "core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero"}
    refused_by_kernel(r, "sys", errno.ENOENT)
    refused_by_kernel(r, "kmsg", errno.ENOENT)


def test_the_environment_carries_no_host_secret(host):
    r = host.run("attempt('env', lambda: sorted(os.environ))")
    env = set(eval(r.attempts["env"]["value"]))
    assert env <= {"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "LANG", "LC_ALL", "MPLBACKEND", "MPLCONFIGDIR",
                   "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_MAX_THREADS",
                   "PYTHONHASHSEED", "no_proxy", "NO_PROXY", "PWD", "LC_CTYPE"}, env


# ---------------------------------------------------------------------------------------------------------------
# Writing, truncating, deleting, renaming, linking outside the scratch folder


def test_open_with_dir_fd_cannot_truncate_the_data(host):
    # With the hook still on: dir_fd hides the path from it; the read-only mount stops the write.
    r = host.run(f"d = os.open({str(host.data_dir)!r}, os.O_RDONLY)\n"
                 "attempt('truncate', lambda: os.open('brent.parquet', os.O_WRONLY | os.O_TRUNC, dir_fd=d))\n"
                 "attempt('create', lambda: os.open('new.csv', os.O_WRONLY | os.O_CREAT, dir_fd=d))")
    refused_by_kernel(r, "truncate", *WRITE_REFUSED)
    refused_by_kernel(r, "create", *WRITE_REFUSED)
    assert host.unchanged()


def test_unlink_with_dir_fd_cannot_delete_the_data(host):
    r = host.run(f"d = os.open({str(host.data_dir)!r}, os.O_RDONLY)\n"
                 "attempt('unlink', lambda: os.unlink('brent.parquet', dir_fd=d))\n"
                 "attempt('rename', lambda: os.rename('brent.csv', 'x.csv', src_dir_fd=d, dst_dir_fd=d))")
    refused_by_kernel(r, "unlink", errno.EROFS, errno.EBUSY)  # EBUSY: the file is a mount point in there
    refused_by_kernel(r, "rename", errno.EROFS, errno.EBUSY)
    assert host.unchanged()


def test_a_monkeypatched_realpath_cannot_open_the_data_for_writing(host):
    r = host.run("import os.path\nos.path.realpath = lambda p, **k: os.getcwd()\n"
                 f"attempt('write', lambda: open({str(host.csv)!r}, 'w').write('pwned'))")
    refused_by_kernel(r, "write", *WRITE_REFUSED)
    assert host.unchanged()


def test_sqlite_cannot_write_outside_scratch(host):
    r = host.run("import sqlite3\n"
                 f"attempt('new', lambda: sqlite3.connect({str(host.outside / 'x.db')!r}).execute('create table t(a)'))\n"
                 f"attempt('data', lambda: sqlite3.connect({str(host.csv)!r}).execute('create table t(a)'))")
    assert not r.attempts["new"]["ok"] and not r.attempts["data"]["ok"]
    assert not (host.outside / "x.db").exists()
    assert host.unchanged()


def test_pyarrow_cannot_overwrite_the_data(host):
    r = host.run("import pyarrow as pa, pyarrow.parquet as pq\n"
                 f"attempt('pq', lambda: pq.write_table(pa.table({{'a': [1]}}), {str(host.parquet)!r}))")
    a = r.attempts["pq"]
    assert not a["ok"] and "Read-only file system" in a["msg"]
    assert host.unchanged()


def test_pandas_to_parquet_cannot_overwrite_the_data(host):
    r = host.run("import pandas as pd\n"
                 f"attempt('pd', lambda: pd.DataFrame({{'a': [1]}}).to_parquet({str(host.parquet)!r}))\n"
                 f"attempt('csv', lambda: pd.DataFrame({{'a': [1]}}).to_csv({str(host.csv)!r}))")
    assert not r.attempts["pd"]["ok"] and "Read-only file system" in r.attempts["pd"]["msg"]
    assert not r.attempts["csv"]["ok"]
    assert host.parquet.stat().st_size == host.before["data/brent.parquet"][3]
    assert host.unchanged()


def test_duckdb_via_importlib_cannot_copy_over_the_data_or_outside(host):
    r = host.run("import importlib\nduckdb = importlib.import_module('duckdb')\n"
                 f"attempt('over', lambda: duckdb.sql(\"COPY (SELECT 1 AS a) TO '{host.parquet}' (FORMAT parquet)\"))\n"
                 f"attempt('new', lambda: duckdb.sql(\"COPY (SELECT 1 AS a) TO '{host.outside / 'x.csv'}'\"))")
    assert not r.attempts["over"]["ok"] and not r.attempts["new"]["ok"], r.stdout
    assert not (host.outside / "x.csv").exists()
    assert host.unchanged()


def test_rename_replace_and_links_cannot_move_the_data(host):
    r = host.run("unhook()\nopen('mine.txt', 'w').write('x')\n"
                 f"attempt('rename', lambda: os.rename({str(host.csv)!r}, 'stolen.csv'))\n"
                 f"attempt('replace', lambda: os.replace('mine.txt', {str(host.csv)!r}))\n"
                 f"attempt('link', lambda: os.link({str(host.csv)!r}, 'hard.csv'))\n"
                 f"attempt('symlink', lambda: os.symlink('/etc/passwd', {str(host.data_dir / 'evil')!r}))")
    refused_by_kernel(r, "rename", errno.EXDEV, *WRITE_REFUSED)
    refused_by_kernel(r, "replace", errno.EXDEV, *WRITE_REFUSED)
    refused_by_kernel(r, "link", errno.EXDEV, *WRITE_REFUSED)
    refused_by_kernel(r, "symlink", *WRITE_REFUSED)
    assert host.unchanged()


def test_truncate_chmod_utime_and_xattr_cannot_change_the_data(host):
    p = str(host.parquet)
    r = host.run(f"unhook()\nattempt('truncate', lambda: os.truncate({p!r}, 28))\n"
                 f"attempt('chmod', lambda: os.chmod({p!r}, 0o777))\nattempt('utime', lambda: os.utime({p!r}, (0, 0)))\n"
                 f"attempt('xattr', lambda: os.setxattr({p!r}, 'user.x', b'1'))")
    for label in ("truncate", "chmod", "utime", "xattr"):
        refused_by_kernel(r, label, *WRITE_REFUSED)
    assert host.unchanged()


def test_rmtree_cannot_delete_the_data_folder(host):
    r = host.run(f"unhook()\nimport shutil\nattempt('rmtree', lambda: shutil.rmtree({str(host.data_dir)!r}))")
    assert not r.attempts["rmtree"]["ok"]
    assert host.unchanged()


def test_mmap_cannot_write_the_data(host):
    r = host.run(f"unhook()\nattempt('mmap', lambda: open({str(host.csv)!r}, 'r+b'))")
    refused_by_kernel(r, "mmap", *WRITE_REFUSED)
    assert host.unchanged()


def test_files_outside_every_mount_cannot_be_created(host):
    r = host.run(f"unhook()\nattempt('victim', lambda: open({str(host.victim)!r}, 'w').write('pwned'))\n"
                 f"attempt('mkdir', lambda: os.mkdir({str(host.root / 'newdir')!r}))\n"
                 "attempt('root', lambda: open('/pwned', 'w'))")
    refused_by_kernel(r, "victim", errno.ENOENT)
    refused_by_kernel(r, "mkdir", *WRITE_REFUSED)
    refused_by_kernel(r, "root", *WRITE_REFUSED)
    assert host.unchanged() and not (host.root / "newdir").exists()


def test_tmp_is_read_only_and_not_the_host_one(host):
    name = f"/tmp/lyceum-redteam-{uuid.uuid4().hex}"
    r = host.run(f"unhook()\nattempt('tmp', lambda: open({name!r}, 'w').write('x'))\n"
                 "import tempfile\nattempt('tempfile', lambda: tempfile.mkstemp()[1])")
    refused_by_kernel(r, "tmp", *WRITE_REFUSED)
    assert not os.path.exists(name)
    assert r.attempts["tempfile"]["value"].strip("'").startswith(str(host.work / "tmp") + "/")  # TMPDIR: in the scratch folder


def test_the_python_installation_cannot_be_backdoored(host):
    import site

    site_dir = site.getsitepackages()[0]
    target = os.path.join(site_dir, f"zz_redteam_{uuid.uuid4().hex}.pth")
    r = host.run(f"unhook()\nattempt('pth', lambda: open({target!r}, 'w').write('import os'))\n"
                 f"attempt('stdlib', lambda: open(os.__file__, 'a').write('#'))")
    refused_by_kernel(r, "pth", *WRITE_REFUSED)
    refused_by_kernel(r, "stdlib", *WRITE_REFUSED)
    assert not os.path.exists(target)


def test_the_runner_and_its_support_files_are_read_only(host):
    r = host.run("unhook()\nattempt('runner', lambda: open('/sandbox/sandbox_runner.py', 'a').write('#'))\n"
                 "attempt('config', lambda: open('/sandbox/config.json', 'w'))")
    refused_by_kernel(r, "runner", *WRITE_REFUSED)
    refused_by_kernel(r, "config", *WRITE_REFUSED)


def test_kernel_settings_cannot_be_written(host):
    # Opening for writing is the test (nothing is written): run by root, the code is uid 0 to the kernel.
    r = host.run("unhook()\n"
                 "for p in ('/proc/sys/kernel/core_pattern', '/proc/sys/vm/drop_caches', '/proc/sysrq-trigger'):\n"
                 "    if os.path.exists(p):\n        attempt(p, lambda: os.open(p, os.O_WRONLY))\n")
    refused_by_kernel(r, "/proc/sys/kernel/core_pattern", *WRITE_REFUSED)
    refused_by_kernel(r, "/proc/sys/vm/drop_caches", *WRITE_REFUSED)
    if "/proc/sysrq-trigger" in r.attempts:
        refused_by_kernel(r, "/proc/sysrq-trigger", *WRITE_REFUSED)


# ---------------------------------------------------------------------------------------------------------------
# Switching the hook off, then spawning programs


def test_clearing_the_deny_sets_found_with_gc_then_os_system(host):
    marker = host.outside / "system.txt"
    r = host.run("for o in gc.get_objects():\n"
                 "    if isinstance(o, set) and 'os.system' in o:\n        o.clear()\n"
                 f"attempt('system', lambda: os.system('echo pwned > {marker}'))")
    assert r.attempts["system"]["ok"]  # the hook no longer refuses ...
    assert r.attempts["system"]["value"] != "0"  # ... but there is no shell to run: exit 127
    assert not marker.exists() and host.unchanged()


def test_widening_scratch_in_the_runner_frame_globals(host):
    r = host.run("f = sys._getframe()\n"
                 "while f is not None:\n"
                 "    if 'SCRATCH' in f.f_globals:\n        f.f_globals['SCRATCH'] = ''\n"
                 "    f = f.f_back\n"
                 f"attempt('write', lambda: open({str(host.csv)!r}, 'w').write('pwned'))")
    refused_by_kernel(r, "write", *WRITE_REFUSED)
    assert host.unchanged()


def test_swapping_the_hook_code_then_subprocess(host):
    marker = host.outside / "subprocess.txt"
    write = f"open({str(host.csv)!r}, 'w')"
    r = host.run("unhook()\nimport subprocess\n"
                 f"attempt('shell', lambda: subprocess.run('echo pwned > {marker}', shell=True))\n"
                 f"attempt('python', lambda: subprocess.run([sys.executable, '-c', {write!r}]).returncode)")
    refused_by_kernel(r, "shell", errno.ENOENT)  # no /bin/sh in the sandbox
    assert r.attempts["python"]["value"] == "1"  # Python runs, inside the same sandbox, and gets EROFS
    assert not marker.exists() and host.unchanged()


def test_posixsubprocess_fork_exec_runs_nothing_outside(host):
    write = f"open({str(host.csv)!r}, 'w')"
    r = host.run("attempt('sh', lambda: fork_exec(['/bin/sh', '-c', 'true']))\n"
                 "attempt('curl', lambda: fork_exec(['/usr/bin/curl', 'http://example.com']))\n"
                 f"attempt('python', lambda: fork_exec([sys.executable, '-c', {write!r}]))")
    assert "OSError:2:" in r.attempts["sh"]["value"] and "OSError:2:" in r.attempts["curl"]["value"]
    assert r.attempts["python"]["value"].endswith(", 1)")
    assert host.unchanged()


def test_execv_of_a_system_tool_finds_nothing(host):
    r = host.run("unhook()\nattempt('execv', lambda: os.execv('/usr/bin/env', ['env']))")
    refused_by_kernel(r, "execv", errno.ENOENT)


# ---------------------------------------------------------------------------------------------------------------
# ctypes


def test_ctypes_memmove_then_libc_open_cannot_truncate_the_data(host):
    r = host.run("unhook()\nimport ctypes\nbuf = ctypes.create_string_buffer(b'hook')\n"
                 "ctypes.memmove(buf, b'gone', 4)\nassert buf.value == b'gone'\n"  # arbitrary writes, in its own memory
                 "libc = ctypes.CDLL(None, use_errno=True)\n"
                 f"fd = libc.open({str(host.parquet).encode()!r}, os.O_WRONLY | os.O_TRUNC)\n"
                 "attempt('open', lambda: (_ for _ in ()).throw(OSError(ctypes.get_errno(), 'open')) if fd < 0 else fd)")
    refused_by_kernel(r, "open", *WRITE_REFUSED)
    assert host.unchanged()


def test_ctypes_cannot_make_namespaces_mount_or_chroot(host):
    r = host.run("unhook()\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                 "def call(f, *a):\n    if f(*a) != 0:\n        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n"
                 "attempt('unshare', lambda: call(libc.unshare, 0x10000000))\n"  # CLONE_NEWUSER
                 f"attempt('remount', lambda: call(libc.mount, None, {str(host.data_dir).encode()!r}, None, 0x1020 | 0x20, None))\n"
                 "attempt('tmpfs', lambda: call(libc.mount, b'tmpfs', b'/usr', b'tmpfs', 0, None))\n"
                 "attempt('chroot', lambda: call(libc.chroot, b'/tmp'))")
    refused_by_kernel(r, "unshare", errno.ENOSPC, errno.EPERM, errno.EUSERS)
    for label in ("remount", "tmpfs", "chroot"):
        refused_by_kernel(r, label, errno.EPERM)
    assert host.unchanged()


def test_ptrace_and_proc_fd_of_the_supervisor_are_refused(host):
    # The supervisor holds the descriptor the outputs go home through; it is non-dumpable.
    r = host.run("unhook()\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                 "def call(f, *a):\n    if f(*a) != 0:\n        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n"
                 "sup = os.getppid()\nattempt('sup', lambda: sup)\n"
                 "attempt('ptrace', lambda: call(libc.ptrace, 16, sup, None, None))\n"  # PTRACE_ATTACH
                 "attempt('fd', lambda: [open(f'/proc/{sup}/fd/{n}', 'wb') for n in range(3, 64)\n"
                 "                       if os.path.lexists(f'/proc/{sup}/fd/{n}')] or 'none visible')\n"
                 "attempt('mem', lambda: open(f'/proc/{sup}/mem', 'r+b'))")
    assert r.attempts["sup"]["value"] == "1"
    refused_by_kernel(r, "ptrace", errno.EPERM)
    fd = r.attempts["fd"]
    assert fd["value"] == "'none visible'" if fd["ok"] else fd["errno"] in (errno.EACCES, errno.EPERM), fd
    refused_by_kernel(r, "mem", errno.EACCES, errno.EPERM)


@pytest.mark.skipif(seccomp_filter() is None, reason="no seccomp table for this architecture")
def test_kernel_attack_surface_is_closed_by_seccomp(host):
    nr = {"x86_64": {"keyctl": 250, "bpf": 321, "io_uring_setup": 425, "perf_event_open": 298, "userfaultfd": 323,
                     "x32_getpid": 0x40000000 | 39},
          "aarch64": {"keyctl": 219, "bpf": 280, "io_uring_setup": 425, "perf_event_open": 241,
                      "userfaultfd": 282}}[platform.machine()]
    r = host.run("unhook()\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                 "def sc(n, *a):\n    if libc.syscall(n, *a) < 0:\n"
                 "        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n"
                 f"for name, n in {nr!r}.items():\n    attempt(name, lambda: sc(n, 0, 0, 0, 0, 0))\n"
                 "attempt('getpid', lambda: os.getpid())")
    for name in nr:
        refused_by_kernel(r, name, errno.EPERM)
    assert r.attempts["getpid"]["ok"]


# ---------------------------------------------------------------------------------------------------------------
# Network


def test_tcp_to_a_listening_host_server_gets_nowhere(host, chat_server):
    r = host.run("unhook()\nimport socket\n"
                 f"attempt('tcp', lambda: socket.create_connection(('127.0.0.1', {chat_server.port}), timeout=3))")
    refused_by_kernel(r, "tcp", errno.ECONNREFUSED, errno.ENETUNREACH)
    assert chat_server.requests == []


def test_dns_does_not_resolve(host):
    r = host.run("unhook()\nimport socket\nattempt('dns', lambda: socket.getaddrinfo('example.com', 443))")
    assert r.attempts["dns"]["type"] == "gaierror"


def test_udp_to_the_host_arrives_nowhere(host):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    try:
        r = host.run("unhook()\nimport socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                     f"attempt('udp', lambda: s.sendto(b'leak', ('127.0.0.1', {rx.getsockname()[1]})))")
        assert r.attempts["udp"]["ok"]  # the sandbox's own loopback accepts it ...
        with pytest.raises(BlockingIOError):
            rx.recvfrom(100)  # ... and nothing reaches the host's
    finally:
        rx.close()


def test_abstract_and_file_unix_sockets_of_the_host_are_unreachable(host):
    name = f"\0lyceum-redteam-{uuid.uuid4().hex}"
    path = str(host.outside / "s.sock")
    servers = []
    for addr in (name, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr)
        s.listen(1)
        s.setblocking(False)
        servers.append(s)
    host.before = host.snapshot()
    try:
        r = host.run("unhook()\nimport socket\n"
                     "def conn(a):\n    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(a)\n"
                     f"attempt('abstract', lambda: conn({name!r}))\nattempt('file', lambda: conn({path!r}))")
        refused_by_kernel(r, "abstract", errno.ECONNREFUSED)
        refused_by_kernel(r, "file", errno.ENOENT)
        for s in servers:
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        for s in servers:
            s.close()


def test_only_a_loopback_interface_exists(host):
    r = host.run("import socket\nattempt('ifaces', lambda: [n for _, n in socket.if_nameindex()])")
    assert r.attempts["ifaces"]["value"] == repr(["lo"])


# ---------------------------------------------------------------------------------------------------------------
# Processes: detached, fork bomb, killing the host's


def test_setsid_processes_do_not_outlive_the_run(host):
    r = host.run("unhook()\nimport time\n"
                 "for i in range(20):\n"
                 "    if os.fork() == 0:\n"
                 "        os.setsid()\n"
                 "        if os.fork() == 0:\n"  # double fork: a daemon re-parented to init
                 "            import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
                 "            time.sleep(120)\n"
                 "        os._exit(0)\n"
                 "time.sleep(0.3)\n"
                 "attempt('daemons', lambda: len([p for p in os.listdir('/proc') if p.isdigit()]))")
    assert int(r.attempts["daemons"]["value"]) >= 20  # they were running when the code ended
    assert survivors(r.attempts["pidns"]["value"]) == []


def test_a_fork_bomb_is_bounded_by_the_process_limit(host):
    r = host.run("unhook()\nimport time\nn = 0\n"
                 "def bomb():\n    global n\n"
                 "    while n < 500:\n"
                 "        if os.fork() == 0:\n            time.sleep(30); os._exit(0)\n"
                 "        n += 1\n"
                 "attempt('bomb', bomb)\nattempt('forks', lambda: n)", max_processes=16)
    if UNPRIVILEGED:
        refused_by_kernel(r, "bomb", errno.EAGAIN)  # RLIMIT_NPROC, per user namespace
        assert int(r.attempts["forks"]["value"]) <= 16
    else:  # the kernel exempts uid 0 from RLIMIT_NPROC; the supervisor (pid 1) counts and ends the run
        assert r.stopped_by == "processes" and not r.ok
        assert "process limit" in r.error_summary()
    assert survivors(r.attempts["pidns"]["value"]) == []


def test_a_thread_bomb_is_bounded_too(host):
    r = host.run("import threading, time\nts = []\n"
                 "def bomb():\n"
                 "    while len(ts) < 500:\n"
                 "        t = threading.Thread(target=time.sleep, args=(5,), daemon=True); t.start(); ts.append(t)\n"
                 "attempt('threads', bomb)\nattempt('count', lambda: len(ts))\nos._exit(0)", max_processes=16)
    if UNPRIVILEGED:
        assert r.attempts["threads"]["type"] == "RuntimeError"  # can't start new thread
        assert int(r.attempts["count"]["value"]) <= 16
    else:
        assert r.stopped_by == "processes" and not r.ok


def test_kill_minus_one_reaches_no_host_process(host):
    import subprocess

    canary = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        r = host.run("unhook()\nimport signal\n"
                     f"attempt('host_pid', lambda: os.kill({canary.pid}, signal.SIGKILL))\n"
                     "attempt('all', lambda: os.kill(-1, signal.SIGKILL))")
        assert canary.poll() is None  # still alive
        assert not r.attempts["host_pid"]["ok"]
    finally:
        canary.kill()
        canary.wait()


# ---------------------------------------------------------------------------------------------------------------
# Memory, disk, time, output


def test_a_memory_bomb_meets_the_address_space_limit(host):
    r = host.run("attempt('big', lambda: bytearray(8 << 30))\n"
                 "chunks = []\n"
                 "def grow():\n    while True:\n        chunks.append(bytearray(64 << 20))\n"
                 "attempt('grow', grow)\nchunks.clear()\n"
                 "import numpy as np\nattempt('numpy', lambda: np.ones(10 ** 10))", memory_mb=768)
    assert r.attempts["big"]["type"] == "MemoryError"
    assert r.attempts["grow"]["type"] == "MemoryError"
    assert r.attempts["numpy"]["type"] in ("MemoryError", "_ArrayMemoryError")


def test_300_mb_into_scratch_is_stopped_by_its_size_cap(host):
    r = host.run("unhook()\n"
                 "def fill():\n"
                 "    for i in range(30):\n"
                 "        with open(f'chunk-{i}.bin', 'wb') as f:\n            f.write(os.urandom(1 << 20) * 10)\n"
                 "attempt('fill', fill)")
    refused_by_kernel(r, "fill", errno.ENOSPC)
    copied = sum(p.stat().st_size for p in host.work.rglob("*") if p.is_file())
    assert copied <= (SandboxLimits().scratch_mb + 1) << 20


def test_shm_is_capped_and_tmp_and_dev_are_read_only(host):
    r = host.run("unhook()\n"
                 "def fill(path):\n    with open(path, 'wb') as f:\n"
                 "        for _ in range(64):\n            f.write(b'x' * (1 << 20))\n"
                 "attempt('tmp', lambda: fill('/tmp/fill'))\nattempt('shm', lambda: fill('/dev/shm/fill'))\n"
                 "attempt('dev', lambda: fill('/dev/fill'))")
    refused_by_kernel(r, "tmp", *WRITE_REFUSED)
    refused_by_kernel(r, "shm", errno.ENOSPC)
    refused_by_kernel(r, "dev", *WRITE_REFUSED)


def test_one_file_is_capped_by_the_file_size_limit(host):
    r = host.run("def big():\n    with open('big.bin', 'wb') as f:\n"
                 "        for _ in range(16):\n            f.write(b'x' * (1 << 20))\nattempt('big', big)", max_file_mb=4)
    refused_by_kernel(r, "big", errno.EFBIG)
    assert (host.work / "big.bin").stat().st_size <= 4 << 20


def test_an_endless_loop_is_stopped(host):
    r = host.run("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass", timeout_s=1.5)
    assert r.timed_out and not r.ok
    assert r.duration_s < 6
    assert survivors(r.attempts["pidns"]["value"]) == []


def test_huge_output_is_capped_on_disk_and_in_the_result(host):
    r = host.run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))", max_file_mb=4)
    assert not r.ok and "File too large" in r.stderr
    assert (host.work / ".sandbox" / "stdout.txt").stat().st_size <= 4 << 20
    assert len(r.stdout) <= SandboxLimits().max_output_chars + 100


# ---------------------------------------------------------------------------------------------------------------
# The way back: copying the scratch folder's files to the host


def test_links_fifos_and_devices_in_scratch_are_not_copied_back(host):
    r = host.run(f"unhook()\nos.symlink({str(host.victim)!r}, 'victim-link')\nos.mkfifo('pipe')\n"
                 "os.makedirs('sub', exist_ok=True)\nos.symlink('/', 'sub/root')\nopen('ok.txt', 'w').write('fine')")
    assert r.ok, r.stderr
    assert r.files == ["ok.txt"]
    assert not (host.work / "victim-link").exists() and not (host.work / "pipe").exists()
    assert host.victim.read_text() == "original\n"


def test_a_forged_stream_cannot_write_outside_the_work_folder(tmp_path):
    # What comes back is written by code that ran inside: the host reads it as hostile.
    from lyceum.research.sandbox import _unpack

    work = tmp_path / "work"
    work.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    (work / "planted-link").symlink_to(victim)  # a link already in the work folder (not made by the sandbox)
    (work / "dirlink").symlink_to(tmp_path)
    os.link(victim, work / "hard.txt")
    stream = tmp_path / "evil.stream"
    with open(stream, "wb") as f:
        f.writelines(json.dumps({"name": name, "size": 4}).encode() + b"\n" + b"pwnd" for name in ("../escape.txt", "/tmp/abs-redteam.txt", "a/../../escape2.txt", "planted-link", "dirlink/x.txt",
                     "hard.txt", "nul\0.txt", "good.txt", "sub/ok.txt"))
        f.write(json.dumps({"name": "huge.bin", "size": 10 << 30}).encode() + b"\n")
    files = _unpack(stream, work, SandboxLimits())
    assert files == ["good.txt", "sub/ok.txt"]
    assert victim.read_text() == "original"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "escape2.txt").exists()
    assert not Path("/tmp/abs-redteam.txt").exists() and not (tmp_path / "x.txt").exists()
    assert (work / "good.txt").read_bytes() == b"pwnd"


def test_the_supervisor_cannot_be_killed_or_stopped_from_inside(host):
    r = host.run("unhook()\nimport signal, time\n"
                 "for sig in (signal.SIGSTOP, signal.SIGKILL):\n    os.kill(os.getppid(), sig)\n"
                 "time.sleep(0.2)\nprint('still here')\nopen('out.txt', 'w').write('copied back')", timeout_s=10)
    assert r.ok and "still here" in r.stdout  # pid 1 ignores what it has no handler for
    assert (host.work / "out.txt").read_text() == "copied back"
    assert survivors(r.attempts["pidns"]["value"]) == []
