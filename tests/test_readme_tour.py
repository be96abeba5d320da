"""The README's tour, run as written from the repository root, and the demo numbers the docs quote.

Every line of the tour's code block runs in one bash script (so its shell variables carry over), except lines
that need a model endpoint (``--base-url``) and, where ``../shared/data`` is absent, the lines that read it.
The demo's printed before/after table must be the one docs/distill.md quotes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "### tour: "


def tour_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## A tour"):]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def offline(line: str) -> bool:
    if "--base-url" in line:
        return False  # needs a model endpoint
    return "../shared/data" not in line or (ROOT.parent / "shared" / "data").is_dir()


def docs_demo_rows() -> dict[str, tuple[str, str]]:
    text = (ROOT / "docs" / "distill.md").read_text()
    block = re.search(r"<!-- numbers:demo-table -->\n(.*?)<!-- /numbers -->", text, re.DOTALL).group(1)
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and not line.startswith("|:") and cells[0] != "seed 0":
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def printed_demo_rows(output: str) -> dict[str, tuple[str, str]]:
    """Rows of the demo's rich table: '│ student accuracy │ 27.0% │ 87.0% │'."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if line.strip().startswith("│") and len(cells) == 3 and cells[0]:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_the_tour_has_the_commands_a_new_user_runs_first():
    lines = tour_lines()
    assert "lyceum distill demo" in [ln.split("#")[0].strip() for ln in lines]
    assert any(ln.startswith("lyceum lab tasks") for ln in lines)


def test_the_docs_quote_a_complete_demo_table():
    rows = docs_demo_rows()
    assert {"student accuracy", "teacher accuracy", "gap recovery", "overlap ratio"} <= set(rows)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_offline_tour_command_runs_as_written_and_the_demo_prints_the_docs_numbers():
    lines = tour_lines()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LYCEUM_BASE_URL", "LYCEUM_API_KEY", "LYCEUM_MODEL", "OPENAI_"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = ["set -euo pipefail"]
    for line in lines:
        if line.startswith("source .venv/bin/activate") and not (ROOT / ".venv" / "bin" / "activate").exists():
            continue  # no .venv in this checkout: the interpreter running the tests stands in for it
        if offline(line):
            script += [f"echo {shlex.quote(MARK + line.split('#')[0].strip())}", line]
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    last = proc.stdout.rsplit(MARK, 1)[-1]  # the command that stopped the tour, and what it printed
    assert proc.returncode == 0, f"{MARK}{last[-3000:]}\n{proc.stderr[-3000:]}"

    demo = proc.stdout.split(f"{MARK}lyceum distill demo\n")[1].split(MARK)[0]
    printed = printed_demo_rows(demo)
    assert "student accuracy" in printed, demo[-2000:]
    from lyceum.lab.reproducible import has_avx2

    if not has_avx2():
        pytest.skip("this CPU has no AVX2: the demo's kernels cannot be pinned, so its numbers differ from the docs' "
                    "by about the seed spread")
    assert printed == docs_demo_rows()
