"""The PhysicsMinions agent against the real local chat server: every studio's reply is scripted."""

import json

from chat_server import user_texts

from lyceum.models.chat import ChatClient, run_sync
from lyceum.olympiad.agent import AgentConfig, solve_minions
from lyceum.olympiad.data import Problem
from lyceum.olympiad.solvers import solve_plain
from lyceum.olympiad.transcript import Transcript

PASS = json.dumps({"pass": True, "issues": []})


def fail(*issues):
    return json.dumps({"pass": False, "issues": list(issues)})


def role_of(request):
    """Which studio a request is for, read from its prompts."""
    system = request["messages"][0]["content"] if request["messages"][0]["role"] == "system" else ""
    text = user_texts(request)
    if "Visual Studio" in system:
        return "visual_check" if "Check it against the images" in text else "visual"
    if "Review Studio" in system:
        return "physics" if "physics verifier" in text else "general"
    if "Reviewers examined your solution" in text:
        return "revise"
    if "Refine it" in text:
        return "refine"
    return "solve"


class Studios:
    """Scripted replies per studio, served in order; the order of roles asked is logged."""

    def __init__(self, **replies):
        self.replies = {k: list(v) for k, v in replies.items()}
        self.asked = []

    def __call__(self, request):
        role = role_of(request)
        self.asked.append(role)
        return self.replies[role].pop(0)


def problem(images=()):
    return Problem(id="P_1", exam="P", question="Find v.", context="A ball falls a height h.",
                   answers=[r"\boxed{$v=\sqrt{2gh}$}"], answer_types=["Expression"], points=[1.0],
                   images=list(images))


def solve(server, studios, prob=None, cache=None, **config):
    server.default = studios
    client = ChatClient(base_url=server.base_url, model="m", max_retries=0, cache=cache)
    prob = prob or problem()
    transcript = Transcript("P_1", images=[p.name for p in prob.images])
    result = run_sync(solve_minions(client, prob, transcript, AgentConfig(**config)))
    return result, transcript


def test_accepts_after_two_consecutive_passes(chat_server):
    studios = Studios(solve=["draft \\boxed{1}"], refine=["refined \\boxed{\\sqrt{2gh}}"],
                      physics=[PASS, PASS], general=[PASS, PASS])
    result, transcript = solve(chat_server, studios)
    assert result.status == "accepted" and result.rounds == 2
    assert result.response == "refined \\boxed{\\sqrt{2gh}}"
    assert studios.asked == ["solve", "refine", "physics", "general", "physics", "general"]
    assert [c["step"] for c in transcript.calls] == ["logic:solve1", "logic:refine1", "review:physics1",
                                                      "review:general1", "review:physics2", "review:general2"]


def test_a_failed_review_sends_its_issues_back_for_revision(chat_server):
    studios = Studios(solve=["draft"], refine=["refined \\boxed{v}"], revise=["revised \\boxed{\\sqrt{2gh}}"],
                      physics=[fail("the units of v in step 3 are m^2/s"), PASS, PASS], general=[PASS] * 3)
    result, _ = solve(chat_server, studios)
    assert result.status == "accepted" and result.revisions == 1 and result.restarts == 0
    assert result.response == "revised \\boxed{\\sqrt{2gh}}"
    revise_request = next(r for r in chat_server.requests if role_of(r) == "revise")
    text = user_texts(revise_request)
    assert "the units of v in step 3 are m^2/s" in text and "refined \\boxed{v}" in text


def test_cv_consecutive_failures_start_a_fresh_solution(chat_server, tmp_path):
    studios = Studios(solve=["draft 1", "draft 2"], refine=["refined 1", "refined 2"], revise=["revised 1"],
                      physics=[fail("sign error"), fail("still wrong"), PASS, PASS], general=[PASS] * 4)
    # with a cache: the fresh attempt has the same messages as the first, and must not be answered from it
    result, _ = solve(chat_server, studios, cache=tmp_path / "cache.sqlite")
    assert studios.asked == ["solve", "refine", "physics", "general", "revise", "physics", "general",
                             "solve", "refine", "physics", "general", "physics", "general"]
    assert result.restarts == 1 and result.revisions == 1 and result.status == "accepted"
    assert result.response == "refined 2"
    second_solve = [r for r in chat_server.requests if role_of(r) == "solve"][1]
    assert "revised 1" not in user_texts(second_solve)  # a fresh start, not a continuation


def test_stops_after_max_rounds_with_the_last_reviewed_solution(chat_server):
    studios = Studios(solve=["draft 1", "draft 2"], refine=["refined 1", "refined 2"], revise=["revised 1"],
                      physics=[fail("a")] * 3, general=[PASS] * 3)
    result, transcript = solve(chat_server, studios, max_rounds=3)
    assert result.status == "max_rounds" and result.rounds == 3
    assert result.response == "refined 2"  # reviewed in round 3, not revised afterwards
    assert studios.asked.count("physics") == 3 and studios.asked[-1] == "general"
    assert transcript.usage["calls"] == len(chat_server.requests) == 11


def test_unreadable_verdict_counts_as_a_failed_review(chat_server):
    studios = Studios(solve=["draft"], refine=["refined"], revise=["revised"],
                      physics=["looks fine to me", "I said it looks fine", PASS, PASS], general=[PASS] * 3)
    result, _ = solve(chat_server, studios)
    assert result.revisions == 1 and result.status == "accepted"
    assert result.reviews[0]["verdicts"][0]["pass"] is False


def test_visual_studio_describes_and_checks_figures_then_the_solver_sees_both(chat_server, tmp_path):
    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    figure = json.dumps({"figures": [{"index": 1, "kind": "setup", "description": "ball above ground, height h"}]})
    studios = Studios(visual=[figure], visual_check=[PASS], solve=["draft"], refine=["refined"],
                      physics=[PASS, PASS], general=[PASS, PASS])
    _result, transcript = solve(chat_server, studios, prob=problem([png]))
    assert studios.asked[:3] == ["visual", "visual_check", "solve"]
    solve_request = chat_server.requests[2]
    parts = solve_request["messages"][1]["content"]
    assert any(p["type"] == "image_url" for p in parts)
    assert "ball above ground, height h" in user_texts(solve_request)
    assert transcript.calls[0]["messages"][1]["content"][1] == {"type": "image", "file": "fig.png"}


def test_text_only_mode_skips_the_visual_studio_and_sends_no_images(chat_server, tmp_path):
    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    studios = Studios(solve=["draft"], refine=["refined"], physics=[PASS, PASS], general=[PASS, PASS])
    solve(chat_server, studios, prob=problem([png]), text_only=True)
    assert "visual" not in studios.asked
    assert all(isinstance(m["content"], str) for r in chat_server.requests for m in r["messages"])
    assert "figure(s) which are not shown" in user_texts(chat_server.requests[0])


def test_plain_solver_is_one_call_and_saves_a_transcript(chat_server, tmp_path):
    chat_server.script(["v = \\boxed{\\sqrt{2gh}}"])
    client = ChatClient(base_url=chat_server.base_url, model="m", max_retries=0)
    transcript = Transcript("P_1")
    result = run_sync(solve_plain(client, problem(), transcript, AgentConfig()))
    assert result.response == "v = \\boxed{\\sqrt{2gh}}" and result.status == "single"
    saved = json.loads(transcript.save(tmp_path / "t").read_text())
    assert saved["id"] == "P_1" and saved["calls"][0]["reply"] == result.response
    assert saved["usage"]["calls"] == 1 and saved["usage"]["completion_tokens"] > 0


def test_reviewers_and_revisions_see_the_figures_too(chat_server, tmp_path):
    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    figure = json.dumps({"figures": [{"index": 1, "description": "ball above ground, height h"}]})
    studios = Studios(visual=[figure], visual_check=[PASS], solve=["draft"], refine=["refined"],
                      physics=[fail("the figure shows 2h"), PASS, PASS], general=[PASS, PASS, PASS],
                      revise=["revised"])
    solve(chat_server, studios, prob=problem([png]))
    later = [r for r, role in zip(chat_server.requests, studios.asked) if role in ("physics", "general", "revise")]
    assert {role for role in studios.asked} >= {"physics", "general", "revise"}
    for request in later:
        parts = request["messages"][-1]["content"]
        assert isinstance(parts, list) and any(p["type"] == "image_url" for p in parts)
        assert "ball above ground, height h" in user_texts(request)  # the description rides along
