"""The demo's and the lab's numbers in README.md and docs/, regenerated from runs of the current code.

    python tools/docs_numbers.py run        # the demo over 5 seeds, `lab reproduce` over 3 (hours on 2 cores)
    python tools/docs_numbers.py collect    # runs/ -> docs/numbers/*.json (the committed artefacts)
    python tools/docs_numbers.py render     # docs/numbers/*.json -> the marked blocks of the docs
    python tools/docs_numbers.py check      # exit 1 when a marked block differs from what render writes

`make docs-numbers` does all three. A marked block sits between ``<!-- numbers:NAME -->`` and
``<!-- /numbers -->``; everything inside is written by ``render``, never by hand. tests/test_docs_numbers.py
checks the blocks against the committed JSON, and tests/test_readme_tour.py checks that the demo prints the
numbers the docs quote.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = ROOT / "docs" / "numbers"
DEMO_SEEDS = [0, 1, 2, 3, 4]
LAB_SEEDS = 3
LAB_CONTRASTS = ["patterns", "capability", "mechanism", "granularity"]
DOCS = [ROOT / "README.md", ROOT / "docs" / "distill.md", ROOT / "docs" / "lab.md"]
BLOCK = re.compile(r"(<!-- numbers:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /numbers -->)", re.DOTALL)


def demo_command(seed: int) -> list[str]:
    return ["lyceum", "distill", "demo", "--seed", str(seed), "--out", f"runs/demo-seeds/seed-{seed}"]


def lab_command(seeds: int = LAB_SEEDS) -> list[str]:
    return ["lyceum", "lab", "reproduce", "--seeds", str(seeds), "--only", *LAB_CONTRASTS, "--out", "runs/lab-seeds"]


def run() -> None:
    """Each command in a fresh process (the CPU-kernel pin must come before torch's first operation)."""
    for seed in DEMO_SEEDS:
        subprocess.run(demo_command(seed), cwd=ROOT, check=True)
    subprocess.run(lab_command(), cwd=ROOT, check=True)


# ------------------------------------------------------------------------------------------------ collect


def summary_table(report: Path) -> list[list[str]]:
    """The before/after rows of a demo run's report.md (the table the demo prints)."""
    rows, inside = [], False
    for line in report.read_text().splitlines():
        if "before / initial" in line:
            inside = True
            continue
        if inside and line.startswith("|---"):
            continue
        if inside and line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif inside:
            break
    return rows


def collect_demo(seeds: list[int] = DEMO_SEEDS) -> dict:
    out = {"command": " ".join(demo_command(0)).replace("--seed 0", "--seed S").replace("seed-0", "seed-S"),
           "seeds": {}}
    for s in seeds:
        run = ROOT / "runs" / "demo-seeds" / f"seed-{s}"
        if (run / "report.md").exists():
            config = (run / "config.yaml").read_text()
            out["seeds"][str(s)] = {"table": summary_table(run / "report.md"),
                                    "kernels": _kernels(run / "report.md"), "steps": _config_value(config, "steps")}
    return out


def _kernels(report: Path) -> str:
    m = re.search(r"CPU kernels: [^.]*", report.read_text())
    return m.group(0) if m else ""


def _config_value(config: str, key: str) -> str:
    m = re.search(rf"^{key}: (.*)$", config, re.MULTILINE)
    return m.group(1) if m else ""


def collect_lab() -> dict:
    from lyceum.lab import contrasts as C

    out_dir = ROOT / "runs" / "lab-seeds"
    data, outcomes, per_seed = C.load_outcomes(out_dir)
    n_eval = per_seed[0]["eval_prompts"]
    result = {"command": " ".join(lab_command(len(per_seed))), "seeds": data.get("seeds", [per_seed[0]["config"]["seed"]]),
              "eval_prompts": n_eval, "pins": per_seed[0].get("pins", {}), "contrasts": []}
    for c in C.contrasts():
        if c.name not in data["contrasts"]:
            continue
        by_label = {a.label: {**outcomes[a.key], "label": a.label} for a in c.arms}
        verdict, why = c.judge(by_label, n_eval)
        arms = []
        for a in c.arms:
            o = by_label[a.label]
            arms.append({"label": a.label, "teacher": a.teacher,
                         "teacher_accuracy": C.shown(o["teacher_accuracy"], pct=True),
                         "before": C.shown(o["accuracy_before"], pct=True),
                         "after": C.shown(o["accuracy_after"], pct=True),
                         "after_per_seed": [C.fmt_share(v, pct=True) for v in C.values(o["accuracy_after"])],
                         "gap_recovery": C.shown(o["gap_recovery"], pct=True),
                         "overlap": f"{C.shown(o['initial'].get('overlap_ratio'))} -> "
                                    f"{C.shown(o['final'].get('overlap_ratio'))}"})
        result["contrasts"].append({"name": c.name, "verdict": verdict, "why": why, "arms": arms})
    return result


def collect() -> None:
    NUMBERS.mkdir(parents=True, exist_ok=True)
    (NUMBERS / "demo.json").write_text(json.dumps(collect_demo(), indent=2) + "\n")
    if (ROOT / "runs" / "lab-seeds" / "numbers.json").exists():
        (NUMBERS / "lab.json").write_text(json.dumps(collect_lab(), indent=2) + "\n")


# ------------------------------------------------------------------------------------------------ render


def _pct(text: str) -> float:
    return float(text.rstrip("%")) / 100


def render_demo_table(demo: dict) -> str:
    s0 = demo["seeds"]["0"]
    lines = ["| seed 0 | before / initial | after / final |", "|:---|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} |" for r in s0["table"]]
    return ("\n".join(lines) + "\n\n"
            f"`lyceum distill demo` prints this table (seed 0, {s0['steps']} steps; "
            f"{s0['kernels'] or 'CPU kernels pinned to AVX2'}).\n")


def render_demo_seeds(demo: dict) -> str:
    import statistics

    rows, after, gaps = [], [], []
    for s, d in sorted(demo["seeds"].items(), key=lambda kv: int(kv[0])):
        t = {r[0]: r for r in d["table"]}
        before, end = t["student accuracy"][1], t["student accuracy"][2]
        gap = t.get("gap recovery", ["", "", "-"])[2]
        rows.append(f"| {s} | {before} | {end} | {gap} |")
        after.append(_pct(end))
        if gap.endswith("%"):
            gaps.append(_pct(gap))
    head = ["| seed | student before | student after | gap recovery |", "|---:|---:|---:|---:|"]
    if len(after) > 1:
        rows.append(f"| mean ± sd | | {100 * statistics.mean(after):.1f}% ± {100 * statistics.stdev(after):.1f} | "
                    f"{100 * statistics.mean(gaps):.1f}% ± {100 * statistics.stdev(gaps):.1f} |")
    return ("\n".join(head + rows) + "\n\n"
            f"Each row: `{demo['command']}` (the table's seed 0 row is the demo's default).\n")


def render_lab_table(lab: dict) -> str:
    seeds = lab["seeds"]
    lines = ["| contrast | arm | teacher acc | student after | gap recovery | initial -> final overlap (top-4) | verdict |",
             "|---|---|---:|---:|---:|---:|---|"]
    for c in lab["contrasts"]:
        for i, a in enumerate(c["arms"]):
            lines.append(f"| {c['name'] if i == 0 else ''} | {a['label']} (`{a['teacher']}`) | {a['teacher_accuracy']} | "
                         f"{a['after']} | {a['gap_recovery']} | {a['overlap']} | "
                         f"{'**' + c['verdict'] + '**' if i == 0 else ''} |")
    per_seed = "; ".join(f"{a['label']}: {', '.join(a['after_per_seed'])}" for c in lab["contrasts"]
                         for a in c["arms"] if c["name"] in ("mechanism", "granularity"))
    seeds_text = (f"Seeds {', '.join(map(str, seeds))} (mean ± sd over seeds" if len(seeds) > 1
                  else f"Seed {seeds[0]} (one seed")
    return ("\n".join(lines) + "\n\n"
            f"{seeds_text}; {lab['eval_prompts']} held-out 4-digit sums per seed), from "
            f"`{lab['command']}`. Final accuracy per seed, {per_seed}.\n\n"
            + "\n".join(f"- **{c['name']}**: {c['why']}." for c in lab["contrasts"]) + "\n")


def rendered_blocks() -> dict[str, str]:
    demo = json.loads((NUMBERS / "demo.json").read_text())
    blocks = {"demo-table": render_demo_table(demo), "demo-seeds": render_demo_seeds(demo)}
    if (NUMBERS / "lab.json").exists():
        blocks["lab-table"] = render_lab_table(json.loads((NUMBERS / "lab.json").read_text()))
    return blocks


def render_text(text: str, blocks: dict[str, str]) -> str:
    def fill(m: re.Match) -> str:
        name = m.group("name")  # a block whose numbers were not collected yet stays as it is
        return m.group(1) + blocks.get(name, m.group("body")) + m.group(4)

    return BLOCK.sub(fill, text)


def render(check: bool = False) -> int:
    blocks, stale = rendered_blocks(), []
    for doc in DOCS:
        text = doc.read_text()
        new = render_text(text, blocks)
        if new != text:
            stale.append(doc)
            if not check:
                doc.write_text(new)
    if check and stale:
        print("stale numbers in: " + ", ".join(str(d.relative_to(ROOT)) for d in stale)
              + "; run: python tools/docs_numbers.py render")
        return 1
    return 0


def main(argv: list[str]) -> int:
    verb = argv[0] if argv else "check"
    if verb == "run":
        run()
    elif verb == "collect":
        collect()
    elif verb == "render":
        return render()
    elif verb == "check":
        return render(check=True)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
