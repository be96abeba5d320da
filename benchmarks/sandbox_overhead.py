"""Start-up overhead of the research sandbox: bubblewrap vs a plain subprocess, per run (median of N).

    python benchmarks/sandbox_overhead.py            # 20 runs each, interleaved
    python benchmarks/sandbox_overhead.py --runs 50

Both sides run the same trivial script through ``run_python`` (same runner, same audit hook, same rlimits);
the only difference is bubblewrap (namespaces, mounts, tmpfs scratch, copy-back) versus
``--unsafe-no-sandbox`` (a plain child process). Runs alternate so machine noise hits both sides alike.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lyceum.research import sandbox
from lyceum.research.sandbox import run_python, sandbox_problem


def one(workdir: Path, sandboxed: bool) -> float:
    # The plain side takes the --unsafe-no-sandbox path, as on a machine without bubblewrap.
    sandbox.sandbox_problem = sandbox_problem if sandboxed else (lambda: "benchmark: the plain side")
    start = time.perf_counter()
    r = run_python("print(1)", workdir=workdir, unsafe_no_sandbox=True)
    elapsed = time.perf_counter() - start
    assert r.ok and r.stdout.strip() == "1", r.stderr
    return elapsed * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if sandbox_problem():
        print(sandbox_problem(), file=sys.stderr)
        return 2
    times = {"bwrap": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        one(Path(tmp) / "warm-a", True), one(Path(tmp) / "warm-b", False)  # font cache, page cache
        for i in range(args.runs):
            for side in ("bwrap", "plain") if i % 2 == 0 else ("plain", "bwrap"):
                times[side].append(one(Path(tmp) / f"{side}-{i}", side == "bwrap"))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"runs": args.runs, "median_ms": {k: round(v, 1) for k, v in med.items()},
                      "overhead_ms": round(med["bwrap"] - med["plain"], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
