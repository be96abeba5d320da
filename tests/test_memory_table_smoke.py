"""benchmarks/memory_table.py runs end to end at a tiny size and writes its records (no memory asserts)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "memory_table.py"


def test_memory_table_runs_its_rows_and_writes_the_estimate(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--shape", "tiny", "--rows", "plain,lora+gc,fsdp",
                           "--max-new-tokens", "4", "--steps", "1", "--out", str(tmp_path / "mt")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "mt.json").read_text())
    rows = {r["row"]: r for r in record["rows"]}
    plain, lora = rows["plain"]["per_rank"][0], rows["lora+gc"]["per_rank"][0]
    assert plain["peak_rss_bytes"] >= plain["rss_after_build_bytes"] > 0
    assert plain["trainable_parameters"] == plain["parameters"]
    assert 0 < lora["trainable_parameters"] < plain["parameters"] / 2  # r=16 is large next to hidden 64
    assert plain["trained_tokens"] > 0 and len(plain["loss"]) == 1
    assert "skipped" in rows["fsdp"] or rows["fsdp"]["ranks"] == 2  # runs where the engine has --fsdp
    assert [r[0] for r in record["estimate"]["rows"]] == ["1.5B", "7B", "32B"]
    assert "| lora+gc | 1 |" in (tmp_path / "mt.md").read_text()
