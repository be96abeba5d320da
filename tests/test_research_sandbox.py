"""The sandbox for generated code: no network, no processes, read-only data, limits, a scrubbed environment.

The attacks live in test_sandbox_redteam.py; these are the everyday behaviours and the refusal without bubblewrap.
"""

import json
import os
import subprocess
import sys

import pytest

from lyceum.errors import UserError
from lyceum.research import sandbox
from lyceum.research.sandbox import SandboxLimits, network_namespace_prefix, run_python, sandbox_problem
from lyceum.research.sandbox_bwrap import root_user_namespaces

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox relies on Linux rlimits")
needs_bwrap = pytest.mark.skipif(sandbox_problem() is not None,
                                 reason=f"no bubblewrap sandbox here ({sandbox_problem()}); `make test` installs it")


@pytest.fixture
def no_bwrap(tmp_path, monkeypatch):
    """A machine where bubblewrap is not installed: PATH without it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    sandbox.sandbox_problem.cache_clear()
    yield
    monkeypatch.undo()
    sandbox.sandbox_problem.cache_clear()
    sandbox.allow_unsandboxed(False)


def test_without_bubblewrap_generated_code_is_refused_in_one_sentence(tmp_path, no_bwrap):
    with pytest.raises(UserError) as e:
        run_python("print(1)", workdir=tmp_path / "box")
    msg = str(e.value)
    assert "bubblewrap (bwrap) is not installed" in msg and "apt-get install bubblewrap" in msg
    assert "--unsafe-no-sandbox" in msg and "\n" not in msg
    assert not (tmp_path / "box" / "main.py").exists()


def test_unsafe_no_sandbox_runs_it_without_isolation(tmp_path, no_bwrap):
    r = run_python("open('out.txt', 'w').write('hi')\nprint(6 * 7)", workdir=tmp_path / "box", unsafe_no_sandbox=True)
    assert r.ok and r.stdout.strip() == "42" and r.files == ["out.txt"]
    assert "bwrap" not in r.isolation and "audit-hook" in r.isolation


def test_research_run_refuses_without_bubblewrap_and_exits_2(tmp_path, no_bwrap, capsys):
    from lyceum.cli import main

    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "t.csv").write_text("year,value\n2020,1\n")
    assert main(["research", "run", "q?", "--tables", str(tables), "--out", str(tmp_path / "r"), "--offline"]) == 2
    assert "bubblewrap (bwrap) is not installed" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@needs_bwrap
def test_plain_code_runs_and_its_files_are_listed(tmp_path):
    r = run_python("open('out.txt', 'w').write('hi')\nprint(6 * 7)", workdir=tmp_path / "box")
    assert r.ok and r.stdout.strip() == "42"
    assert r.files == ["out.txt"]
    assert (tmp_path / "box" / "out.txt").read_text() == "hi"
    assert "audit-hook" in r.isolation and "rlimits" in r.isolation and "bwrap" in r.isolation


@needs_bwrap
def test_network_access_is_refused(tmp_path, chat_server):
    # A real server is listening on localhost; the code knows its address and still cannot reach it.
    code = f"""
import json, urllib.request
body = json.dumps({{"model": "m", "messages": [{{"role": "user", "content": "from-sandbox"}}]}}).encode()
req = urllib.request.Request("{chat_server.base_url}/chat/completions", data=body,
                             headers={{"Content-Type": "application/json"}})
urllib.request.urlopen(req, timeout=5)
print("reached the server")
"""
    r = run_python(code, workdir=tmp_path / "box")
    assert not r.ok
    assert "network access is disabled in the lyceum sandbox" in r.stderr
    assert "reached the server" not in r.stdout
    assert chat_server.requests == []


@needs_bwrap
def test_raw_sockets_and_native_calls_are_refused(tmp_path, chat_server):
    code = f"""
import socket
for attempt in ("socket", "ctypes"):
    try:
        if attempt == "socket":
            socket.create_connection(("127.0.0.1", {chat_server.port}), timeout=5)
        else:
            import ctypes
            ctypes.CDLL(None).connect
        print(attempt, "allowed")
    except PermissionError as e:
        print(attempt, "refused:", e)
"""
    r = run_python(code, workdir=tmp_path / "box")
    assert r.ok, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("socket refused: network access is disabled")
    assert lines[1].startswith("ctypes refused: calling native code through ctypes is disabled")


@pytest.mark.skipif(not network_namespace_prefix(), reason="this kernel does not allow network namespaces here")
def test_the_network_namespace_alone_has_no_route_out(chat_server):
    # The OS layer without the Python hook: even a plain interpreter cannot connect from inside it.
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {chat_server.port}), timeout=3)\n"
            "    print('connected')\nexcept OSError as e:\n    print('failed', type(e).__name__)")
    out = subprocess.run([*network_namespace_prefix(), sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.stdout.startswith("failed"), out.stdout + out.stderr


@needs_bwrap
def test_a_runaway_loop_is_stopped(tmp_path):
    r = run_python("while True:\n    pass\n", workdir=tmp_path / "box", limits=SandboxLimits(timeout_s=1.5))
    assert r.timed_out and not r.ok
    assert r.duration_s < 10
    assert r.error_summary().startswith("the code was stopped after")


@needs_bwrap
def test_memory_is_limited(tmp_path):
    r = run_python("x = bytearray(3 * 1024 ** 3)\nprint('allocated')", workdir=tmp_path / "box",
                   limits=SandboxLimits(memory_mb=512))
    assert not r.ok
    assert "MemoryError" in r.error_summary()


@needs_bwrap
def test_data_is_read_only_and_nothing_outside_the_scratch_folder_changes(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    code = f"""
print(open({str(data)!r}).read().splitlines()[1])
for action in ("append", "delete", "rename"):
    try:
        if action == "append":
            open({str(data)!r}, "a").write("3,4\\n")
        elif action == "delete":
            import os; os.remove({str(data)!r})
        else:
            import os; os.rename({str(data)!r}, "stolen.csv")
        print(action, "allowed")
    except PermissionError:
        print(action, "refused")
"""
    r = run_python(code, workdir=tmp_path / "box", readable=[data])
    assert r.ok, r.stderr
    assert r.stdout.split() == ["1,2", "append", "refused", "delete", "refused", "rename", "refused"]
    assert data.read_text() == "a,b\n1,2\n"
    assert r.opened == [str(data.resolve())]


@needs_bwrap
def test_starting_processes_is_refused(tmp_path):
    code = ("import os, subprocess\nfor f in (lambda: subprocess.run(['true']), lambda: os.system('true')):\n"
            "    try:\n        f(); print('allowed')\n    except PermissionError:\n        print('refused')\n")
    r = run_python(code, workdir=tmp_path / "box")
    assert r.ok, r.stderr
    assert r.stdout.split() == ["refused", "refused"]


@needs_bwrap
def test_the_environment_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("LYCEUM_API_KEY", "secret-key")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    r = run_python("import json, os\nprint(json.dumps(dict(os.environ)))", workdir=tmp_path / "box")
    env = json.loads(r.stdout)
    assert "LYCEUM_API_KEY" not in env and "HTTPS_PROXY" not in env
    assert env["HOME"] == str((tmp_path / "box").resolve())


@needs_bwrap
def test_errors_are_summarised_for_the_coder(tmp_path):
    r = run_python("import pandas\nx = {}\nprint(x['missing'])", workdir=tmp_path / "box")
    summary = r.error_summary()
    assert summary.startswith("Traceback (most recent call last):")
    assert summary.rstrip().endswith("KeyError: 'missing'")


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0 or root_user_namespaces() is None,
                    reason="only run by root is the code mapped to nobody")
def test_run_by_root_data_only_root_can_read_is_refused_in_one_sentence(tmp_path):
    data = tmp_path / "private.csv"
    data.write_text("a\n1\n")
    data.chmod(0o600)
    with pytest.raises(UserError, match=r"not readable by other users \(mode 600\).*chmod o\+r"):
        run_python("print(1)", workdir=tmp_path / "box", readable=[data])
    data.chmod(0o644)
    r = run_python(f"print(open({str(data)!r}).read().split()[1])", workdir=tmp_path / "box", readable=[data])
    assert r.ok and r.stdout.strip() == "1"
