"""The chat client against a real fault-injecting server: nothing lost, nothing emptied, nothing wrong, nothing
cached that should not be, and the server's Retry-After obeyed (tests/fault_server.py)."""

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import KINDS, FaultServer, drive, expected_answer, retry_after_gaps, tally

from lyceum.models.chat import ChatCache, ChatClient, ChatEndpointDown, ChatRequestFailed, user_message

TIMEOUT = 1.5  # the client's timeout; a "hang" lasts longer


def client_for(server, **kw):
    kw = {"timeout": TIMEOUT, "backoff": 0.02, "max_backoff": 0.2, **kw}
    return ChatClient(base_url=server.base_url, model="faulty", **kw)


@pytest.fixture
def server():
    s = FaultServer(fault_rate=0.0, hang_s=TIMEOUT + 0.5).start()
    yield s
    s.stop()


# ------------------------------------------------------------------------------------- the 30% fault mix


@pytest.fixture(scope="module", params=[16, 64], ids=lambda c: f"concurrency{c}")
def mix(request):
    """600 distinct requests at 30% faults of every kind, through one client."""
    s = FaultServer(fault_rate=0.3, seed=request.param, retry_after=0.05, hang_s=TIMEOUT + 0.5).start()
    try:
        client = client_for(s, concurrency=request.param, max_retries=6)
        outcomes = drive(client, [f"question {i} of the mix" for i in range(600)])
    finally:
        s.stop()
    return s, outcomes, tally(s, outcomes, 6)


def test_the_mix_holds_every_fault_kind(mix):
    server, _, t = mix
    assert {a.kind for a in server.log} >= set(KINDS)
    assert t["faults"] >= 0.2 * t["attempts"]


def test_no_answer_is_lost_or_emptied_at_30_percent_faults(mix):
    _, outcomes, t = mix
    assert t["lost"] == 0 and t["empty"] == 0
    assert t["answered"] + t["failed"] == len(outcomes) == 600


def test_no_answer_goes_to_the_wrong_request(mix):
    _, outcomes, t = mix
    assert t["wrong"] == 0
    assert all(o.text == expected_answer(o.prompt) for o in outcomes if o.error is None)


def test_retry_after_is_respected_in_the_mix(mix):
    server, _, _ = mix
    gaps = retry_after_gaps(server)
    assert len(gaps) >= 10
    assert min(waited - asked for asked, waited in gaps) >= 0


def test_a_request_fails_only_when_every_attempt_failed():
    s = FaultServer(fault_rate=0.3, seed=7, retry_after=0.05, hang_s=TIMEOUT + 0.5).start()
    try:
        outcomes = drive(client_for(s, concurrency=32, max_retries=1), [f"q{i}" for i in range(600)])
    finally:
        s.stop()
    t = tally(s, outcomes, 1)
    assert t["failed"] > 20  # ~9% expected: the check below is not vacuous
    suspicious = [(o.prompt, str(o.error), [(a.kind, round(a.done - a.arrived, 2)) for a in s.attempts(o.prompt)])
                  for o in outcomes if o.error is not None
                  and [a.kind in ("ok", "slow") for a in s.attempts(o.prompt)] != [False, False]]
    assert t["failed_with_an_attempt_left"] == 0, suspicious
    for o in outcomes:
        if o.error is not None:
            assert isinstance(o.error, ChatRequestFailed) and not isinstance(o.error, ChatEndpointDown)


# ------------------------------------------------------------------------------------- one fault at a time


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "slow"])
def test_each_fault_kind_is_retried_and_then_answered(server, kind):
    server.force("q", [kind, "ok"])
    result = client_for(server).complete_sync([user_message("q")])
    assert result.text == expected_answer("q")
    assert [a.kind for a in server.attempts("q")] == [kind, "ok"]


@pytest.mark.parametrize("kind", ["null_content", "missing_content", "empty_choices", "truncated", "html"])
def test_a_malformed_reply_is_never_cached(server, tmp_path, kind):
    server.force("q", [kind] * 3)
    client = client_for(server, max_retries=2, cache=tmp_path / "c.sqlite")
    with pytest.raises(ChatRequestFailed, match="malformed reply"):
        client.complete_sync([user_message("q")])
    assert len(client.cache) == 0
    again = client_for(server, cache=tmp_path / "c.sqlite").complete_sync([user_message("q")])
    assert (again.text, again.cached) == (expected_answer("q"), False)  # asked again, answered properly


def test_null_content_at_the_token_limit_is_a_real_empty_answer(chat_server):
    def cut_at_limit(request):  # a reasoning model that spent max_tokens thinking: content null, "length"
        return {"content": None, "finish_reason": "length"}

    chat_server.script(cut_at_limit)
    result = ChatClient(base_url=chat_server.base_url, model="m", max_retries=0).complete_sync([user_message("q")])
    assert (result.text, result.finish_reason) == ("", "length")


def test_a_timeout_is_reported_as_timed_out(server):
    server.force("q", ["hang", "hang"])
    with pytest.raises(ChatRequestFailed, match="timed out on all 2 attempts") as e:
        client_for(server, max_retries=1).complete_sync([user_message("q")])
    assert not isinstance(e.value, ChatEndpointDown)


def test_the_sdk_does_not_retry_on_its_own(server):
    server.force("q", ["500", "ok"])
    with pytest.raises(ChatRequestFailed, match="HTTP 500"):
        client_for(server, max_retries=0).complete_sync([user_message("q")])
    assert len(server.attempts("q")) == 1


# ------------------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("kind", ["429", "429ms"])
def test_retry_after_is_waited_for(kind):
    s = FaultServer(fault_rate=0.0, retry_after=0.6).start()
    try:
        s.force("q", [kind, "ok"])
        client_for(s, backoff=0.01).complete_sync([user_message("q")])
        first, second = s.attempts("q")
    finally:
        s.stop()
    assert 0.6 <= second.arrived - first.done < 2.0  # asked 0.6 s; jitter adds up to 10%, a loaded machine more


def test_a_429_holds_back_the_other_requests(server):
    """While one request waits out its 429, the requests in the other slot wait too, not only its own retry."""
    server.retry_after, server.slow_s = 0.6, 0.3
    server.force("limited", ["429", "ok"])
    server.force("other 0", ["slow"])  # in flight beside the 429; answered after the client has read the 429
    client = client_for(server, concurrency=2, backoff=0.01)

    async def run():  # the semaphore is first come, first served: "limited" and "other 0" go first
        await asyncio.gather(*[client.complete([user_message(p)]) for p in ["limited"] + [f"other {i}" for i in range(5)]])

    asyncio.run(run())
    limited = server.attempts("limited")[0]
    later = [a.arrived - limited.done for a in server.log if a.prompt.startswith("other") and a.prompt != "other 0"]
    assert len(later) == 4 and min(later) >= 0.6, later


# ------------------------------------------------------------------------------------- a dead endpoint


def test_an_endpoint_that_never_answered_is_down():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ChatClient(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff=0.01)
    with pytest.raises(ChatEndpointDown, match="cannot reach the chat endpoint"):
        client.complete_sync([user_message("hi")])


def test_one_failed_request_after_answers_is_not_down(server):
    client = client_for(server, max_retries=1)
    client.complete_sync([user_message("fine")])
    server.force("bad", ["503", "503"])
    with pytest.raises(ChatRequestFailed) as e:
        client.complete_sync([user_message("bad")])
    assert not isinstance(e.value, ChatEndpointDown)


def test_a_long_streak_of_failed_requests_is_down(server):
    client = client_for(server, max_retries=0, down_after=3)
    for p in ("a", "b", "c", "d"):
        server.force(p, ["500"])
    errors = []
    for p in ("a", "b", "c"):
        with pytest.raises(ChatRequestFailed) as e:
            client.complete_sync([user_message(p)])
        errors.append(type(e.value))
    assert errors == [ChatRequestFailed, ChatRequestFailed, ChatEndpointDown]


def test_an_answer_ends_the_streak(server):
    client = client_for(server, max_retries=0, down_after=2)
    for p in ("a", "b"):
        server.force(p, ["500"])
    with pytest.raises(ChatRequestFailed):
        client.complete_sync([user_message("a")])
    client.complete_sync([user_message("fine")])
    with pytest.raises(ChatRequestFailed) as e:
        client.complete_sync([user_message("b")])
    assert not isinstance(e.value, ChatEndpointDown)


# ------------------------------------------------------------------------------------- the cache


def test_the_cache_file_and_a_new_folder_are_private(server, tmp_path):
    path = tmp_path / "new" / "cache.sqlite"
    client_for(server, cache=path).complete_sync([user_message("q")])
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    for side in path.parent.glob("cache.sqlite-*"):  # the WAL files hold replies too
        assert oct(side.stat().st_mode & 0o777) == "0o600", side


def test_the_cache_is_in_wal_mode(server, tmp_path):
    path = tmp_path / "cache.sqlite"
    client_for(server, cache=path).complete_sync([user_message("q")])
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


SHARER = """
import json, sys
sys.path.insert(0, {tests!r})
from fault_server import drive
from lyceum.models.chat import ChatClient
client = ChatClient(base_url={url!r}, model="faulty", concurrency=64, timeout=10, cache={cache!r})
prompts = [f"shared {{i}}" for i in range({start}, {start} + 400)]
outcomes = drive(client, prompts)
print(json.dumps({{"failed": [str(o.error) for o in outcomes if o.error],
                   "wrong": sum(o.text != "answer to: " + o.prompt for o in outcomes if not o.error)}}))
"""


def test_two_processes_share_one_cache_at_concurrency_64(server, tmp_path):
    cache = tmp_path / "shared.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", SHARER.format(tests=str(Path(__file__).parent),
                                                                   url=server.base_url, cache=str(cache),
                                                                   start=start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for start in (0, 200)]  # 200 prompts in common, so both write and read the same keys
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results == [{"failed": [], "wrong": 0}] * 2
    assert len(ChatCache(cache)) == 600


KILLED = """
import asyncio, sys
from lyceum.models.chat import ChatClient
client = ChatClient(base_url={url!r}, model="faulty", concurrency=8, timeout=10, cache={cache!r})
async def one(i):
    r = await client.complete([{{"role": "user", "content": f"k {{i}}"}}])
    print(f"k {{i}}", flush=True)  # printed only after the answer is cached
async def main():
    await asyncio.gather(*[one(i) for i in range(2000)])
asyncio.run(main())
"""


def test_a_sigkill_leaves_the_cache_intact_and_finished_calls_are_not_asked_again(server, tmp_path):
    cache = tmp_path / "killed.sqlite"
    server.slow_s, server.kinds, server.fault_rate = 0.01, ("slow",), 1.0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", KILLED.format(url=server.base_url, cache=str(cache))],
                         stdout=subprocess.PIPE, text=True, env=env)
    finished = []
    for line in p.stdout:
        finished.append(line.strip())
        if len(finished) == 150:
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=30)
    finished += [line.strip() for line in p.stdout.read().splitlines() if line.strip()]
    assert sqlite3.connect(cache).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    asked_before = len(server.log)
    client = client_for(server, cache=cache)
    again = [client.complete_sync([user_message(f)]) for f in finished]
    assert all(r.cached and r.text == expected_answer(f) for r, f in zip(again, finished))
    assert len(server.log) == asked_before


# ------------------------------------------------------------------------------------- the usage ledger


def test_the_ledger_survives_a_row_cut_short_by_a_kill(server, tmp_path):
    ledger = tmp_path / "usage.jsonl"
    client_for(server, usage_log=ledger).complete_sync([user_message("one")], site="s")
    with open(ledger, "a") as f:
        f.write('{"site": "s", "cached": false, "prom')  # a process killed mid-row
    client_for(server, usage_log=ledger).complete_sync([user_message("two")], site="s")
    assert client_for(server, usage_log=ledger).usage_summary()["s"]["calls"] == 2


def test_tokens_of_discarded_replies_are_counted(server):
    server.force("q", ["null_content", "ok"])  # the null reply still reported the tokens it cost
    client = client_for(server)
    result = client.complete_sync([user_message("q")], site="s")
    assert result.usage["completion_tokens"] == 3
    assert client.usage["s"].completion_tokens == 6 and client.usage["s"].retries == 1


def test_retry_after_is_read_in_every_form_servers_send():
    from email.utils import formatdate

    from lyceum.models.chat import parse_retry_after

    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # the precise one wins
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert 25 < parse_retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)}) <= 30
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None
