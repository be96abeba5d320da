"""Rule-based analyses and the small pieces under them: question scope, BM25, numbers, swings, the number check."""

import re

import pandas as pd
import pytest

from lyceum.research.analysis import largest_fall, swings
from lyceum.research.bm25 import BM25, tokenize
from lyceum.research.numbers import extract_numbers, fmt_scaled, stated
from lyceum.research.question import parse_question
from lyceum.research.writer import check_numbers, is_supported
from lyceum.tables import fmt


def test_question_scope():
    s = parse_question("How did crude oil prices evolve from 2000 to 2025, and what were the major price shocks?")
    assert (s.start_year, s.end_year, s.last_years) == (2000, 2025, None)
    assert {"growth", "peaks"} <= s.intents
    assert parse_question("How have gold prices moved over the last five years?").last_years == 5
    assert parse_question("How has China's economy grown relative to the US since 2000?").start_year == 2000
    assert "compare" in parse_question("How has China's economy grown relative to the US?").intents
    assert parse_question("GDP in the past decade").last_years == 10
    assert parse_question("Which sectors dominate by market cap?").intents >= {"share", "rank"}


def test_tokenizer_and_bm25():
    assert tokenize("Rising prices, risen PRICE; marketCap_growth") == ["rise", "pric", "risen", "pric", "market",
                                                                        "cap", "growth"]
    docs = [tokenize("Brent crude oil spot price daily"), tokenize("gold price monthly"),
            tokenize("population of countries")]
    index = BM25(docs)
    assert [i for i, _ in index.top(tokenize("crude oil prices"), k=3)] == [0, 1]
    assert index.top(tokenize("unrelated words"), k=3) == []


def test_numbers_are_read_in_every_form_a_fact_could_match():
    text = "China was 1.21 trillion USD in 2000 (69.5% of the US); gold 1,799.60; WTI -36.98 on 2020-04-20 [3]."
    got = {(n.text, n.kind): n.candidates for n in extract_numbers(text)}
    assert got[("1.21 trillion", "value")] == (1.21, 1.21e12)
    assert got[("69.5%", "value")] == (0.695, 69.5)
    assert got[("1,799.60", "value")] == (1799.6,)
    assert got[("-36.98", "value")] == (-36.98,)
    assert ("2000", "year") in got and ("2020", "date") in got and ("3", "label") in got
    numbers = extract_numbers(text)
    assert stated(0.695, numbers, 0.03).text == "69.5%"
    assert stated(1.2113, numbers, 0.02).text == "1.21 trillion"
    assert stated(1.5, numbers, 0.02) is None


def test_number_formatting():
    assert fmt(96.94434) == "96.94" and fmt(0.857) == "0.857" and fmt(1799.595) == "1,799.60"
    assert fmt_scaled(1.2113e12, "USD") == "1.21 trillion USD"
    assert fmt_scaled(4.2, "%") == "4.20%"


def test_the_number_check_accepts_rounded_values_and_flags_invented_ones():
    computed = [96.94434, 0.6946, 1.2113e12, -47.1]
    bad, checked = check_numbers("Brent averaged 96.94 in 2008; China was 69.5% of the US at 1.21 trillion USD; "
                                 "prices fell 47.1% and then 123.45 in 2009, the top 3 sectors.", computed)
    assert checked == 6
    assert [b.text for b in bad] == ["123.45"]
    assert is_supported(extract_numbers("about 97")[0], computed)
    assert not is_supported(extract_numbers("about 99")[0], computed)


def test_swings_find_each_boom_and_bust():
    t = list(pd.date_range("2000-01-01", periods=9, freq="MS"))
    v = [100, 150, 60, 70, 140, 50, 55, 90, 88]
    falls = swings(t, v, threshold=0.4)
    assert [(f["peak"], f["trough"]) for f in falls] == [(150, 60), (140, 50)]
    assert falls[0]["pct"] == pytest.approx(-60.0)


def test_largest_fall_and_whether_the_peak_was_regained():
    t = list(range(6))
    fall = largest_fall(t, [10, 20, 12, 8, 15, 21])
    assert (fall["peak"], fall["trough"], fall["recovered_time"]) == (20, 8, 5)
    assert fall["pct"] == pytest.approx(-60.0)
    assert largest_fall(t, [10, 20, 12, 8, 15, 19])["recovered_time"] is None
    assert largest_fall(t[:3], [1, 2, 3]) is None


@pytest.fixture(scope="module")
def catalog(tables_dir, tmp_path_factory):
    from lyceum.research.catalog import Catalog

    return Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")


def test_time_series_analyses_on_real_oil_prices(catalog, tmp_path):
    from lyceum.research.analysis import analyze_tables

    question = "How did crude oil prices (Brent and WTI) evolve from 2000 to 2025, and what were the major price shocks?"
    findings = analyze_tables(catalog, catalog.select(question), question, tmp_path)
    kinds = [f.kind for f in findings]
    assert kinds == ["levels", "change", "peaks", "comparison"]
    peaks = " ".join(findings[2].sentences)
    assert "143.95 USD/bbl on 2008-07-03" in peaks and "-36.98 USD/bbl on 2020-04-20" in peaks
    assert "| 2008 | 96.94 | 99.67 |" in findings[0].tables[0].markdown
    assert all(f.path.is_file() for x in findings for f in x.figures)
    assert findings[0].figures[0].provenance.tables == ["oil-prices/data/brent-daily.csv",
                                                         "oil-prices/data/wti-daily.csv"]


def test_cross_section_analyses_on_sp500(catalog, tmp_path):
    from lyceum.research.analysis import analyze_tables

    question = "Which sectors dominate the S&P 500 by market capitalisation, and how do sector P/E ratios compare?"
    findings = analyze_tables(catalog, catalog.select(question), question, tmp_path)
    assert [f.kind for f in findings] == ["ranking", "valuation", "correlation"]
    ranking = findings[0]
    assert ranking.sentences[0].startswith("The table lists 503 rows in 127 sector groups")
    assert "Interactive Media & Services is the largest group with 9.81 trillion USD" in ranking.sentences[1]
    assert "| Semiconductors | 13 | 8.85 |" in ranking.tables[0].markdown


def test_last_years_window_uses_complete_years_and_marks_the_partial_one(catalog, tmp_path):
    from lyceum.research.analysis import analyze_tables

    question = "How have gold prices moved over the last five years, and how unusual is the recent rally?"
    findings = analyze_tables(catalog, catalog.select(question), question, tmp_path)
    levels = findings[0]
    assert levels.sentences[0].startswith("Gold averaged 1,799.60 USD/oz in 2021 and 3,441.48 USD/oz in 2025, a "
                                          "change of +91.2%")
    assert "| 2026 (partial year) |" in levels.tables[0].markdown
    unusual = next(f for f in findings if f.kind == "unusual")
    assert "The 4-year move of +91.2% for Gold (2021 to 2025)" in unusual.sentences[0]


def test_labels_of_two_peaks_on_the_same_day_do_not_overprint():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lyceum.research.charts import separate_labels

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([0, 1, 2], [100, 145.3, 90])
    ax.plot([0, 1, 2], [98, 143.9, 88])
    labels = [ax.annotate(text, (1, y), textcoords="offset points", xytext=(8, 0), va="center", fontsize=8)
              for text, y in (("WTI high 145.31", 145.31), ("Brent high 143.95", 143.95))]
    fig.tight_layout()
    separate_labels(fig, ax, labels)
    renderer = fig.canvas.get_renderer()
    a, b = (t.get_window_extent(renderer) for t in labels)
    frame = ax.get_window_extent(renderer)
    assert not a.overlaps(b)
    assert all(frame.y0 <= box.y0 and box.y1 <= frame.y1 and box.x1 <= frame.x1 for box in (a, b))
    plt.close(fig)


def test_a_fall_ends_at_the_trough_that_follows_its_peak():
    # Peak 145 falls to 31, the market recovers most of it (a new cycle), then 76 falls to -37: two falls, not
    # one from 145 to -37; the deepest is the second, which went below zero and is not read as a percentage.
    t = list(range(9))
    fall = largest_fall(t, [100, 145, 31, 110, 26, 76, -37, 40, 60])
    assert (fall["peak"], fall["trough"], fall["below_zero"]) == (76, -37, True)
    first = largest_fall(t[:4], [100, 145, 31, 110])
    assert (first["peak"], first["trough"]) == (145, 31)


def test_captions_keep_their_acronyms_inside_a_sentence():
    from lyceum.research.writer import lower_first

    assert lower_first("Annual GDP of China") == "annual GDP of China"
    assert lower_first("GDP of China") == "GDP of China"
    assert lower_first("CO2 at Mauna Loa") == "CO2 at Mauna Loa"


def test_each_table_cites_its_own_series_sources():
    from lyceum.research.catalog import TableProfile
    from lyceum.research.writer import own_sources

    sources = [{"title": f"{f} {s} Spot Price", "path": f"https://x/{code}{f[0].lower()}.xls"}
               for s, code in (("Europe Brent", "RBRTE"), ("Cushing, OK WTI", "RWTC"))
               for f in ("Daily", "Weekly")]
    wti = TableProfile(id="oil/data/wti-daily.csv", sql_name="t", path="", dataset="oil", title="WTI daily",
                       sources=sources, name_words=["wti", "daily"])
    assert [s["title"] for s in own_sources(wti)] == ["Daily Cushing, OK WTI Spot Price"]


def test_reports_state_decade_paces_in_order_without_a_ratio_of_paces(catalog, tmp_path):
    from lyceum.research.pipeline import ResearchConfig, run_research

    q = "How did crude oil prices (Brent and WTI) evolve from 2000 to 2025, and what were the major price shocks?"
    md = (run_research(ResearchConfig(question=q), tmp_path / "oil", catalog=catalog).run_dir / "report.md").read_text()
    assert "times the earlier pace" not in md
    assert ("The average yearly change of Brent was 3.68 USD/bbl in the 2000s (2001–2009), 0.256 USD/bbl in the "
            "2010s and 0.807 USD/bbl in the 2020s (2020–2025): slower in the latest decade than in the first.") in md
    assert "-125" not in md and "that took it below zero" in md


def test_a_ranking_question_ranks_the_year_it_names_and_the_group_size_it_asks(catalog, tmp_path):
    from lyceum.research.pipeline import ResearchConfig, run_research

    scope = parse_question("What share did the top 5 economies hold in 2015?")
    assert (scope.top_n, scope.years_named) == (5, [2015])
    result = run_research(ResearchConfig(question="What share of world GDP did the top 5 economies hold in 2015?"),
                          tmp_path / "top5", catalog=catalog)
    md = (result.run_dir / "report.md").read_text()
    assert "## Ranking in 2015" in md
    # The five in order, each with its value, and their share together.
    assert re.search(r"The top 5 in 2015 were United States \([^)]+\), China \([^)]+\), Japan \([^)]+\), Germany "
                     r"\([^)]+\) and United Kingdom \([^)]+\); together they account for [\d.]+% of", md)


def test_entity_codes_take_the_descriptions_spelling_and_long_form():
    from lyceum.research.analysis.panels import abbreviation_definitions, written_as

    text = ("Data are included from the GISS Surface Temperature (GISTEMP) analysis and the global component of "
            "Climate at a Glance (GCAG). Two datasets are provided.")
    assert written_as("gcag", text) == "GCAG" and written_as("China", text) == "China"
    assert abbreviation_definitions(["GISTEMP", "GCAG"], text) == {
        "GISTEMP": "GISS Surface Temperature", "GCAG": "global component of Climate at a Glance"}


def test_every_period_a_question_names_is_analysed_side_by_side(catalog, tmp_path):
    from lyceum.research.pipeline import ResearchConfig, run_research

    q = "How did the 2014-16 oil price crash compare with the 2008-09 crash for Brent and WTI?"
    scope = parse_question(q)
    assert scope.periods == [(2014, 2016), (2008, 2009)] and (scope.start_year, scope.end_year) == (2008, 2016)
    md = (run_research(ResearchConfig(question=q), tmp_path / "crash", catalog=catalog).run_dir / "report.md").read_text()
    assert ("For Brent, in 2014–2016 it fell from 115.19 USD/bbl (2014-06-19) to 26.01 USD/bbl (2016-01-20), -77.4%; "
            "in 2008–2009 it fell from 143.95 USD/bbl (2008-07-03) to 33.73 USD/bbl (2008-12-26), -76.6%.") in md


def test_a_dip_of_a_few_percent_does_not_end_a_fall():
    fall = largest_fall(list(range(6)), [100, 144, 138, 143.7, 60, 80])
    assert (fall["peak"], fall["trough"]) == (144, 60)


def test_a_question_ranking_years_is_read_with_its_size_and_direction():
    from lyceum.research.question import ranked_years

    assert parse_question("Which were the five warmest years on record?").ranked_years == (5, "highest")
    assert ranked_years("which year was the coldest?") == (1, "lowest")
    assert ranked_years("the 3 years with the lowest oil prices") == (3, "lowest")
    assert ranked_years("how did gdp grow since 2000?") is None


def test_a_year_naming_a_crash_is_a_period_of_its_own():
    s = parse_question("How far did Brent fall in the 2008 crash and in the 2014-2016 collapse?")
    assert s.periods == [(2014, 2016), (2008, 2009)] and "peaks" in s.intents
    assert parse_question("Compare the 2014-16 and 2008-09 oil crashes").periods == [(2014, 2016), (2008, 2009)]
