"""The benchmark's lyceum side runs end to end at a tiny size and writes its records (no timing asserts)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "opd_vs_trl.py"


def test_lyceum_side_runs_the_engine_and_writes_results(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--settings", "tiny", "--sides", "lyceum", "--steps", "2", "--warmup", "1",
         "--threads", "1", "--rounds", "1", "--no-loss-memory",
         "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["setting"] == "tiny"
    assert line["lyceum_tokens_per_s"] > 0

    rec = json.loads((out / "tiny.json").read_text())
    side = rec["sides"]["lyceum"]
    assert "engine.train" in side["impl"]
    assert side["steps"] == 2 and len(side["step_seconds"]) == 2 and len(side["warmup_seconds"]) == 1
    # 2 prompts x at most 4 new tokens per step; a rollout stops early only if it samples <eos>
    assert 2 <= side["trained_tokens"] <= 2 * 2 * 4
    assert side["peak_rss_mb"] > 0 and side["peak_rss_mb"] >= side["rss_before_steps_mb"]
    assert "| tiny | lyceum |" in (out / "README.md").read_text()


def test_setting_inputs_are_identical_for_every_side(tmp_path):
    """Both sides read the same saved models and prompts; the prompt text round-trips to the same ids."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import opd_vs_trl as bench
    finally:
        sys.path.remove(str(BENCH.parent))
    s = bench.SETTINGS["tiny"]
    first = bench.prepare_inputs(s, tmp_path / "w")
    again = bench.prepare_inputs(s, tmp_path / "w")  # reused, not rebuilt
    assert first == again
    assert len(first["ids"]) == s.batch
    assert all(s.prompt_len[0] <= len(ids) <= s.prompt_len[1] for ids in first["ids"])
    tok = bench.word_tokenizer(s.vocab)
    assert [tok(t, add_special_tokens=False).input_ids for t in first["text"]] == first["ids"]
    for name in ("student", "teacher"):
        assert (tmp_path / "w" / name / "config.json").exists()
        assert (tmp_path / "w" / name / "tokenizer.json").exists()
