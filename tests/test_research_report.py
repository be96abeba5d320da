"""Offline reports: every dev question answered from the right tables, and the HTML renders in a browser."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lyceum.research.records import Figure, Provenance, Table
from lyceum.research.writer import Draft, Source, finalize

pytest.importorskip("duckdb")


@pytest.fixture(scope="session")
def dev_questions(shared_data):
    path = shared_data / "kdr" / "dev.jsonl"
    if not path.is_file():
        pytest.skip(f"KDR dev questions not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def offline_reports(tables_dir, dev_questions, tmp_path_factory):
    """The rule-based pipeline on every dev question, through the real CLI entry point."""
    from lyceum.cli import main

    root = tmp_path_factory.mktemp("reports")
    db = tmp_path_factory.getbasetemp() / "research-catalog.duckdb"
    runs = {}
    for q in dev_questions:
        code = main(["research", "run", q["question"], "--tables", str(tables_dir), "--db", str(db),
                     "--out", str(root / q["id"])])
        assert code == 0
        runs[q["id"]] = root / q["id"]
    return runs


def test_each_dev_question_gets_two_figures_and_a_table_from_the_right_tables(offline_reports, dev_questions):
    for q in dev_questions:
        run = offline_reports[q["id"]]
        prov = json.loads((run / "provenance.json").read_text())
        gold = set(q["gold_tables"])
        right_figures = [f for f in prov["figures"] if f["tables"] and set(f["tables"]) <= gold]
        right_tables = [t for t in prov["tables"] if t["tables"] and set(t["tables"]) <= gold]
        assert len(right_figures) >= 2, q["id"]
        assert len(right_tables) >= 1, q["id"]
        assert all((run / f["file"]).is_file() for f in prov["figures"])
        cited = {r["locator"] for r in prov["references"]}
        assert cited and cited <= gold, q["id"]


def test_reports_are_labelled_rule_based_and_pass_their_number_check(offline_reports):
    for run in offline_reports.values():
        md = (run / "report.md").read_text()
        assert md.splitlines()[2].startswith("> Rule-based report: no language model was used.")
        for heading in ("## Abstract", "## Introduction", "## Conclusion", "## References", "## Number check"):
            assert heading in md
        summary = json.loads((run / "summary.json").read_text())
        assert summary["mode"] == "rule-based" and summary["unsupported_numbers"] == []
        assert "All " in md.split("## Number check")[1]


def test_the_oil_report_states_the_key_facts(offline_reports):
    md = (offline_reports["energy-oil-shocks"] / "report.md").read_text()
    assert "Brent's highest daily value in the period was 143.95 USD/bbl on 2008-07-03" in md
    assert "its lowest was -36.98 USD/bbl on 2020-04-20" in md
    assert "| 2008 | 96.94 | 99.67 |" in md and "| 2022 | 100.93 | 94.90 |" in md


def test_run_folder_holds_config_metrics_and_retrieval(offline_reports):
    run = offline_reports["climate-co2-acceleration"]
    for name in ("config.yaml", "metrics.jsonl", "run.log", "retrieval.json", "summary.json", "report.html"):
        assert (run / name).is_file(), name
    retrieval = json.loads((run / "retrieval.json").read_text())
    assert retrieval["selected"] == ["co2-ppm/data/co2-annmean-mlo.csv", "co2-ppm/data/co2-gr-mlo.csv"]


def test_html_is_self_contained_with_linked_citations(offline_reports):
    run = offline_reports["macro-china-us"]
    html = (run / "report.html").read_text()
    n_figures = len(json.loads((run / "provenance.json").read_text())["figures"])
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) == n_figures
    assert 'src="figures/' not in html and "<link" not in html and "<script" not in html
    assert '<a class="cite" href="#ref-1">[1]</a>' in html and '<li id="ref-1">' in html
    assert "<table>" in html and "Provenance of Figure 1" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def image_widths_in_browser(html_path: Path, tmp_path: Path) -> list[int]:
    """Open the report in headless Chromium; return every <img>'s natural width once the page has loaded."""
    probe = ('<script>window.addEventListener("load",()=>{document.body.setAttribute("data-widths",'
             'JSON.stringify([...document.images].map(i=>i.complete?i.naturalWidth:-1)));});</script>')
    page = tmp_path / f"probe-{html_path.parent.name}.html"
    page.write_text(html_path.read_text().replace("</body>", probe + "</body>"))
    out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=90, check=False)
    m = re.search(r'data-widths="([^"]*)"', out.stdout)
    assert m, f"chromium did not render the page: {out.stderr[-500:]}"
    return json.loads(m.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (apt-get install -y chromium); "
                                                "the browser check of report.html is skipped")
@pytest.mark.parametrize("qid", ["energy-oil-shocks", "finance-sp500-sectors"])
def test_every_figure_loads_in_a_headless_browser(offline_reports, qid, tmp_path):
    run = offline_reports[qid]
    n_figures = len(json.loads((run / "provenance.json").read_text())["figures"])
    widths = image_widths_in_browser(run / "report.html", tmp_path)
    assert len(widths) == n_figures >= 2
    assert all(w == 880 for w in widths), widths  # 8 in x 110 dpi, decoded


def test_documents_are_quoted_and_cited(tables_dir, tmp_path, tmp_path_factory, capsys):
    from lyceum.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gold-notes.md").write_text("# Why gold rallied\n\nCentral banks bought record amounts of gold in 2022 "
                                        "and 2023, and gold prices rallied as real rates peaked.\n")
    (docs / "unrelated.txt").write_text("Notes on sourdough baking and flour hydration.")
    code = main(["research", "run", "How have gold prices moved over the last five years?", "--tables",
                 str(tables_dir), "--docs", str(docs), "--db",
                 str(tmp_path_factory.getbasetemp() / "research-catalog.duckdb"), "--out", str(tmp_path / "run")])
    assert code == 0
    md = (tmp_path / "run" / "report.md").read_text()
    section = md.split("## What the documents say")[1].split("## Conclusion")[0]
    assert "Central banks bought record amounts of gold" in section
    ref = re.search(r"\[(\d+)\]", section).group(1)
    assert re.search(rf"^{ref}\. Why gold rallied\. Document `gold-notes.md`\.", md, re.MULTILINE)
    assert "rule-based report:" in capsys.readouterr().out


def test_bad_run_inputs_are_one_sentence_errors(tmp_path, capsys):
    from lyceum.cli import main

    assert main(["research", "run", "q?", "--tables", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"error: tables folder not found: {tmp_path / 'nope'}\n"
    assert main(["research", "run", "q?", "--out", str(tmp_path / "r")]) == 2
    assert "give at least one knowledge source" in capsys.readouterr().err


def test_the_final_pass_renumbers_citations_and_flags_unbacked_numbers(tmp_path):
    fig_path = tmp_path / "figures" / "a.png"
    fig_path.parent.mkdir()
    fig_path.write_bytes(b"png")
    prov = Provenance(tables=["t.csv"], method="rule")
    draft = Draft(question="Q?", title="Q?", mode="agents", abstract="Prices rose 12.5% [@doc:b.md][@table:t.csv].",
                  introduction="We use two sources [@table:t.csv].",
                  sections=[("Prices", ("{{ref:f1}} shows the rise to 40.2, then 77.7 [@doc:b.md].\n\n"
                                        "{{figure:f1}}\n\n{{table:t1}}"))],
                  conclusion="Done.", figures={"f1": Figure(fig_path, "Prices by year", prov)},
                  tables={"t1": Table("| a | b |\n|---|---:|\n| x | 1 |", "Values", prov)},
                  sources={"table:t.csv": Source("table:t.csv", "table", "Prices", "t.csv"),
                           "doc:b.md": Source("doc:b.md", "document", "Notes", "b.md")})
    final = finalize(draft, [12.5, 40.2])
    md = final.markdown
    assert "Prices rose 12.5% [1][2]." in md and "We use two sources [2]." in md
    assert "Figure 1 shows the rise to 40.2, then 77.7 (unverified) [1]." in md
    assert "![Figure 1: Prices by year](figures/a.png)" in md and "*Table 1: Values.*" in md
    assert "1. Notes. \n2. Prices. " in md
    assert final.unsupported == ["77.7"]
    assert "1 of 3 numbers in the text are not backed by any analysis output" in md
