"""The KDR-style benchmark: question files, judge-free scores, the judged scores, and the bench command."""

import json
import shutil

import pytest

from lyceum.errors import UserError
from lyceum.research.bench import (
    BenchQuestion,
    Fact,
    KeyPoint,
    figure_health,
    judged_scores,
    load_questions,
    numeric_fact_recall,
)

QUESTION = BenchQuestion(
    id="oil", question="How did oil prices evolve?", main_conclusions=["Prices are volatile."],
    key_points=[KeyPoint("Brent peaked at about 143.95 on 2008-07-03.", [Fact(143.95, 0.01)]),
                KeyPoint("China was about 69.5% of US GDP in 2022.", [Fact(0.695, 0.03)]),
                KeyPoint("GDP was 1.21 trillion in 2000 and 6.09 trillion in 2010.", [Fact(1.2113, 0.02),
                                                                                     Fact(6.0872, 0.02)]),
                KeyPoint("Prices averaged 61.7 in 2009.", [Fact(61.74, 0.02)])],
    gold_tables=["a.csv"])

REPORT = """# Oil

## Abstract

Brent hit 143.95 USD/bbl on 2008-07-03. China reached 69.5% of the US in 2022. GDP was 1.21 trillion USD in 2000.
In 2015 prices averaged 61.80.

## References

1. Some table with 6.09 in it.

## Number check

All 6.09 numbers.
"""


def test_numeric_fact_recall_reads_numbers_without_a_judge():
    r = numeric_fact_recall(REPORT, QUESTION)
    assert r["numeric_fact_recall"] == pytest.approx(4 / 5)
    # 61.80 matches 61.74 within 2%, but its sentence names 2015, not the key point's 2009: not anchored.
    assert r["anchored_fact_recall"] == pytest.approx(3 / 5)
    assert [f["value"] for f in r["facts_missed"]] == [6.0872]  # only in the references / number check tail
    assert [f["as_stated"] for f in r["facts_found"]] == ["143.95", "69.5%", "1.21 trillion", "61.80"]
    assert r["key_points_all_facts_stated"] == pytest.approx(3 / 4)


def test_figure_health_counts_broken_and_unembedded_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "figures").mkdir()
    plt.plot([1, 2])
    plt.savefig(tmp_path / "figures" / "ok.png")
    plt.close()
    (tmp_path / "figures" / "empty.png").write_bytes(b"")
    (tmp_path / "report.md").write_text("![a](figures/ok.png)\n\n![b](figures/empty.png)\n\n![c](figures/gone.png)\n"
                                        "\n*Table 1: x.*\n")
    (tmp_path / "report.html").write_text('<img src="data:image/png;base64,AAA">')
    h = figure_health(tmp_path)
    assert (h["figures"], h["tables"], h["embedded_in_html"]) == (3, 1, 1)
    assert h["broken"] == ["figures/empty.png", "figures/gone.png"]
    assert h["broken_figures"] == 2 + 2  # two unreadable files, two images the HTML did not embed


def test_question_files_are_validated(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q", "key_points": [{"text": "t", "facts": [{"value": "x"}]}]}\n')
    with pytest.raises(UserError, match="record 1 is not a benchmark question"):
        load_questions(bad)
    bad.write_text('{"id": "a", "question": "q"}\n{"id": "a", "question": "r"}\n')
    with pytest.raises(UserError, match="repeats question ids"):
        load_questions(bad)
    bad.write_text("{oops\n")
    with pytest.raises(UserError, match="bad.jsonl:1 is not valid JSON"):
        load_questions(bad)


def test_judged_scores_are_cached_and_repeats_give_a_spread(chat_server, tmp_path):
    from chat_server import user_texts

    from lyceum.models.chat import ChatClient

    calls = {"race": 0}

    def judge(request):
        text = user_texts(request)
        if "on each dimension" in text:
            calls["race"] += 1
            v = 6 if calls["race"] == 1 else 8
            return json.dumps({"comprehensiveness": v, "depth": v, "instruction_following": v, "readability": v})
        if "Expert main conclusions" in text:
            return '{"scores": [7]}'
        return json.dumps({"points": [{"covered": True, "support": 2}, {"covered": True, "support": 1},
                                      {"covered": False, "support": 0}, {"covered": True, "support": 2}]})

    chat_server.default = judge
    (tmp_path / "report.md").write_text(REPORT)
    client = ChatClient(chat_server.base_url, "judge", cache=tmp_path / "cache.sqlite")
    scores = judged_scores(client, None, QUESTION, tmp_path, repeats=2)
    assert scores["race_depth"]["mean"] == pytest.approx(0.7) and scores["race_depth"]["std"] == pytest.approx(0.1)
    assert scores["race_overall"]["n"] == 2
    assert scores["conclusion_alignment"] == {"mean": pytest.approx(0.7), "std": 0.0, "n": 2}
    assert scores["key_point_coverage"]["mean"] == pytest.approx(0.75)
    assert scores["key_point_supportiveness"]["mean"] == pytest.approx(5 / 8)
    asked = len(chat_server.requests)
    assert asked == 6
    again = judged_scores(ChatClient(chat_server.base_url, "judge", cache=tmp_path / "cache.sqlite"), None,
                          QUESTION, tmp_path, repeats=2)
    assert again == scores and len(chat_server.requests) == asked  # every judged score came from the cache


@pytest.fixture(scope="session")
def dev_file(shared_data):
    path = shared_data / "kdr" / "dev.jsonl"
    if not path.is_file():
        pytest.skip(f"KDR dev questions not found at {path}")
    return path


def test_bench_command_prints_scores_and_the_recall_note(dev_file, tables_dir, tmp_path, tmp_path_factory, capsys):
    from lyceum.cli import main

    pytest.importorskip("duckdb")
    code = main(["research", "bench", "--questions", str(dev_file), "--tables", str(tables_dir), "--db",
                 str(tmp_path_factory.getbasetemp() / "research-catalog.duckdb"), "--out", str(tmp_path / "bench"),
                 "--limit", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "mean numeric_fact_recall: 1.000" in out
    assert "note: numeric fact recall (no judge) is 11/11 = 100.0% of key-point facts" in out
    assert "Control (facts looked up in the other questions' reports)" in out
    rows = [json.loads(line) for line in (tmp_path / "bench" / "scores.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["energy-oil-shocks", "climate-co2-acceleration"]
    assert all(r["figures"] >= 2 and r["broken_figures"] == 0 and r["gold_table_recall"] == 1.0 for r in rows)
    assert (tmp_path / "bench" / "energy-oil-shocks" / "report.html").is_file()


def test_bench_command_rejects_bad_settings(dev_file, tmp_path, capsys):
    from lyceum.cli import main

    assert main(["research", "bench", "--questions", str(tmp_path / "none.jsonl"), "--tables", str(tmp_path),
                 "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.startswith("error: file not found")
    shutil.copy(dev_file, tmp_path / "dev.jsonl")
    assert main(["research", "bench", "--questions", str(tmp_path / "dev.jsonl"), "--tables", str(tmp_path),
                 "--out", str(tmp_path / "b"), "--limit", "0"]) == 2
    assert capsys.readouterr().err == "error: --limit must be at least 1\n"
