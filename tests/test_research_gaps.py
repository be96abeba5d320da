"""Gaps of issue 18 closed one rule at a time: two-part asks, one table per measure, exchange-rate units, a series
set against inflation, the words of "in real terms", names and comparisons that read. Facts are computed here by
pandas from the published tables, never by the analyst."""

import json
import re

import pytest

from lyceum.research.answer_check import check_answer
from lyceum.research.catalog import TableProfile
from lyceum.research.records import Finding

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def catalog(tables_dir, tmp_path_factory):
    pytest.importorskip("duckdb")
    from lyceum.research.catalog import Catalog

    return Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")


def run(catalog, question, folder):
    from lyceum.research.pipeline import ResearchConfig, run_research

    result = run_research(ResearchConfig(question=question), folder, catalog=catalog)
    return result, (result.run_dir / "report.md").read_text()


def abstract(report: str) -> str:
    return report.split("## Abstract\n\n")[1].split("\n\n## ")[0]


# --- a. "when ... and how high": one sentence answers both parts -------------------------------------------------

def test_a_follow_up_ask_without_a_subject_is_answered_by_the_sentence_stating_the_peak():
    peak = "The largest consumer price inflation for United Kingdom was 24.21 % per year in 1975."
    finding = Finding(title="Growth and pace of change: consumer price inflation", kind="change",
                      sentences=["The average consumer price inflation of United Kingdom was 3.53 % in the 1960s.",
                                 peak])
    check = check_answer("When did UK inflation peak, and how high was it?", [finding], [])
    assert check.answers == [peak, peak]
    assert check.opening().count(peak) == 1 and "no analysis of the tables used answers" not in check.opening()


def test_a_follow_up_ask_takes_the_sentence_of_the_same_finding_closest_to_it():
    low = "Gold's highest monthly value in the period was 5,020.00 USD/oz in 2026-02; its lowest was 17.06 in 1931-01."
    fall = "Gold's largest fall in the period ran from 674.00 USD/oz (1980-09) to 256.00 USD/oz (1999-07), -62.0%."
    finding = Finding(title="Peaks, troughs and shocks in price", kind="peaks", sentences=[low, fall])
    check = check_answer("When was gold at its lowest, and how far had it fallen?", [finding], [])
    assert check.answers == [low, fall]


def test_when_did_uk_inflation_peak_and_how_high_is_answered_first(catalog, tables_dir, tmp_path):
    cpi = pd.read_csv(tables_dir / "cpi/data/cpi.csv")
    uk = cpi[cpi["Country"] == "United Kingdom"].set_index("Year")["CPI"]  # yearly % changes, as published
    result, report = run(catalog, "When did UK inflation peak, and how high was it?", tmp_path / "uk")
    first = abstract(report).split(". ")[0]  # the answer comes first: when, and how high
    assert "United Kingdom" in first and str(uk.idxmax()) in first and f"{uk.max():.2f}" in first
    assert result.summary["answer_check"]["answered"] is True


# --- b. one measure from one table --------------------------------------------------------------------------------

def _panel_table(name, entities, start, end, dataset="d"):
    return TableProfile(id=f"{dataset}/{name}.csv", sql_name=name, path="", dataset=dataset, time_column="year",
                        entity_column="country", entities=entities, time_start=str(start), time_end=str(end))


def test_two_tables_holding_one_measure_for_nested_entities_give_one_table():
    from lyceum.research.selection import one_table_per_measure

    every = [f"Country {i}" for i in range(40)] + ["India", "China"]
    wide, top = _panel_table("all", every, 1960, 2023), _panel_table("top", ["India", "China"], 2000, 2022)
    kept, notes = one_table_per_measure([top, wide], "How did India's GDP grow from 1990 to 2020?")
    assert kept == [wide] and "it is taken from `d/all.csv` only" in notes[0]
    # Real and nominal indexes of the same countries are two measures: both stay.
    real, nominal = _panel_table("real", every, 1970, 2025), _panel_table("nominal", every, 1970, 2025)
    assert one_table_per_measure([real, nominal], "US house prices")[0] == [real, nominal]


def test_a_gdp_question_is_answered_from_one_gdp_table_and_says_which(catalog, tables_dir, tmp_path):
    gdp = pd.read_csv(tables_dir / "gdp/data/gdp.csv").set_index(["Country Name", "Year"])["Value"]
    result, report = run(catalog, "How did US GDP grow between 1990 and 2020?", tmp_path / "gdp")
    assert json.loads((result.run_dir / "retrieval.json").read_text())["selected"] == ["gdp/data/gdp.csv"]
    assert "it is taken from `gdp/data/gdp.csv` only" in report and "top-economies.csv" not in abstract(report)
    assert abstract(report).startswith(f"United States was {gdp['United States', 1990] / 1e12:.2f} trillion USD in "
                                       f"1990 and {gdp['United States', 2020] / 1e12:.2f} trillion USD in 2020")


# --- c. exchange rates carry their unit ----------------------------------------------------------------------------

def test_an_exchange_rate_is_stated_in_its_currency_per_us_dollar(catalog, tables_dir, tmp_path):
    from lyceum.research.analysis.currency import quote_unit

    assert quote_unit("Japan", "") == "Japanese yen per US dollar"
    assert quote_unit("Euro", "Rate to USD. Only AUD, IEP, NZD, GBP and EUR to USD.") == "US dollars per euro"
    assert quote_unit("Euro", "Some countries have inverted values. Only EUR to USD.") == "euros per US dollar"
    fx = pd.read_csv(tables_dir / "exchange-rates/data/monthly.csv")
    india = fx[fx["Country"] == "India"]
    rate_2000 = india[india["Date"].str.startswith("2000")]["Exchange rate"].mean()
    _, report = run(catalog, "How has the exchange rate of the Indian rupee against the US dollar changed since 2000?",
                    tmp_path / "inr")
    assert abstract(report).startswith(f"India averaged {rate_2000:.2f} Indian rupees per US dollar in 2000")


def test_gold_in_euros_reads_the_packages_rates_as_euros_per_dollar(catalog, tables_dir, tmp_path):
    # The exchange-rates package says it inverted the five rates FRED quotes in dollars: its euro is 0.70 in
    # January 2010, when a euro cost 1.43 dollars; gold in euros is the dollar price times that rate.
    gold = pd.read_csv(tables_dir / "gold-prices/data/monthly.csv")
    fx = pd.read_csv(tables_dir / "exchange-rates/data/monthly.csv")
    fx = fx[fx["Country"] == "Euro"]
    joined = gold.assign(month=gold["Date"].str[:7]).merge(fx.assign(month=fx["Date"].str[:7]), on="month")
    eur_2010 = (joined["Price"] * joined["Exchange rate"])[joined["month"].str.startswith("2010")].mean()
    _, report = run(catalog, "How has the price of gold in euros changed since 2010?", tmp_path / "eur")
    assert abstract(report).startswith(f"Gold averaged {eur_2010:,.2f} EUR/oz in 2010")


# --- house prices against inflation: a derived comparison with its provenance ----------------------------------

def test_house_prices_are_set_against_cumulative_inflation_with_provenance(catalog, tables_dir, tmp_path):
    t = tables_dir
    house = pd.read_csv(t / "house-prices-global/data/nominal_index.csv")
    house = house[house["country"] == "United States"]
    house = house.groupby(pd.to_datetime(house["date"]).dt.year)["price"].mean()
    cpi = pd.read_csv(t / "cpi/data/cpi.csv")
    levels = (1 + cpi[cpi["Country"] == "United States"].set_index("Year")["CPI"].sort_index() / 100).cumprod()
    change = (house[2024] / house[2000] - 1) * 100
    inflation = (levels[2024] / levels[2000] - 1) * 100
    real = ((1 + change / 100) / (1 + inflation / 100) - 1) * 100
    result, report = run(catalog, "How have US house prices moved compared with inflation since 2000?",
                         tmp_path / "house")
    m = re.search(r"From 2000 to 2024, United States \(Nominal\) went from [\d.,]+ to [\d.,]+, a change of "
                  r"\+([\d.]+)%, while consumer prices in United States rose \+([\d.]+)% in total: .*? a change of "
                  r"\+([\d.]+)% in real terms", abstract(report))
    assert m, abstract(report)[:600]
    assert [float(x) for x in m.groups()] == [pytest.approx(v, abs=0.06) for v in (change, inflation, real)]
    prov = json.loads((result.run_dir / "provenance.json").read_text())
    methods = [x for x in prov["tables"] if "real change = (1 + change) / (1 + inflation) - 1" in x["method"]]
    assert methods and set(methods[0]["tables"]) >= {"house-prices-global/data/nominal_index.csv", "cpi/data/cpi.csv"}
    assert "real change = (1 + change) / (1 + inflation) - 1" in report  # and in the report itself
    # Two indexes are compared by their changes, never by the ratio of their levels.
    assert not re.search(r"United States \(\w+\) was [\d.]+ times", report)


# --- d. the words of "in real terms" name no table, and names read as names ----------------------------------------

def test_real_terms_pull_in_the_price_index_not_a_real_house_price_table(catalog, tmp_path):
    result, report = run(catalog, "How has the price of Brent crude oil changed in real terms since 1990?",
                         tmp_path / "real")
    assert result.summary["tables_used"] == ["cpi/data/cpi.csv", "oil-prices/data/brent-daily.csv"]
    assert result.summary["answer_check"]["answered"] is True
    assert abstract(report).startswith("Brent (in constant 2024 USD) was ")


def test_a_caption_starting_with_a_name_of_several_words_keeps_its_capitals():
    from lyceum.research.writer import lower_first

    assert lower_first("United States (Nominal)'s price as a percentage") == \
        "United States (Nominal)'s price as a percentage"
    assert lower_first("Yearly consumer price inflation") == "yearly consumer price inflation"


def test_verbs_asking_how_a_series_did_name_no_subject():
    from lyceum.research.answer_check import question_subjects

    assert question_subjects("How did WTI and Brent prices behave in 2020?") == ["wti", "brent", "prices"]
    assert question_subjects("What did gold cost in British pounds?") == ["gold", "british", "pounds"]
    assert "cost" in question_subjects("How has the cost of living in Japan changed?")
    assert question_subjects("How many Japanese yen did one US dollar buy in 2012?") == ["japanese", "yen"]
    assert question_subjects("When did gold fall the most, and how much did it lose?") == ["gold"]


def test_one_series_at_two_frequencies_is_taken_from_one_table():
    from lyceum.research.catalog import ColumnProfile
    from lyceum.research.selection import one_table_per_measure

    def series(name, freq, col):
        return TableProfile(id=f"co2/{name}.csv", sql_name=name, path="", dataset="co2", time_column="t",
                            frequency=freq, name_words=name.split("-"),
                            columns=[ColumnProfile(name="t", type="date"), ColumnProfile(col, "number", unit="ppm")])

    monthly, annual = series("co2-mm-mlo", "monthly", "Average"), series("co2-annmean-mlo", "annual", "Mean")
    kept, notes = one_table_per_measure([annual, monthly], "How much has CO2 risen since 1980?")
    assert kept == [monthly] and "hold the same series, monthly and annual" in notes[0]
    assert one_table_per_measure([annual, monthly], "What was the annual mean CO2 in 1990?")[0] == [annual]
    other_site = series("co2-annmean-gl", "annual", "Mean")  # another place, not another frequency
    assert one_table_per_measure([monthly, other_site], "CO2")[0] == [monthly, other_site]


def test_the_warmest_years_are_ranked_from_the_annual_table_for_each_record(catalog, tables_dir, tmp_path):
    temp = pd.read_csv(tables_dir / "global-temp/data/annual.csv")
    temp = temp[temp["Year"].astype(str).str.fullmatch(r"\d{4}")].assign(Year=lambda d: d["Year"].astype(int))
    last_common = int(temp.groupby("Source")["Year"].max().min())  # a year only one record has is partial
    gcag = temp[(temp["Source"] == "gcag") & (temp["Year"] <= last_common)].nlargest(5, "Mean")
    result, report = run(catalog, "What were the five warmest years on record for the global average temperature?",
                         tmp_path / "warm")
    assert result.summary["tables_used"] == ["global-temp/data/annual.csv"]
    from lyceum.tables import fmt

    listed = ", ".join(f"{r.Year} ({fmt(r.Mean)} °C)" for r in gcag.itertuples())
    assert abstract(report).startswith(f"The 5 years with the highest annual value of GCAG in 1850–{last_common} "
                                       f"were {listed}. The 5 years with the highest annual value of GISTEMP")
    # An anomaly around zero has no percentage falls or changes and no boom-bust cycles.
    assert "boom-bust" not in report and "largest fall" not in report and "yearly change (%)" not in report


def test_a_share_question_naming_an_entity_states_its_share_and_rank(catalog, tables_dir, tmp_path):
    top = pd.read_csv(tables_dir / "gdp/data/top-economies.csv")
    year = top[top["year"] == 2020].set_index("country")["gdp_trillion"]
    share = year["United States"] / year.sum() * 100
    rank = int(year.rank(ascending=False)["United States"])
    _, report = run(catalog, "What share of the top 10 economies' GDP did the United States hold in 2020?",
                    tmp_path / "share")
    assert abstract(report).startswith(f"In 2020, United States had {year['United States']:.2f} trillion USD, "
                                       f"{share:.1f}% of the {len(year)} listed (number {rank} of {len(year)}).")


def test_a_fall_question_opens_with_the_largest_fall_and_long_histories_list_few_decades(catalog, tmp_path):
    result, report = run(catalog, "When did gold fall the most, and how much did it lose?", tmp_path / "fall")
    assert abstract(report).startswith("Gold's largest fall in the period ran from ")
    assert result.summary["answer_check"]["answered"] is True
    paces = re.search(r"The average yearly change of Gold was ([^:]*):", report).group(1)
    assert paces.count(" in the ") == 5 and "every decade is in the table" in report


def test_a_dataset_matching_only_the_form_of_a_question_yields_to_one_naming_its_subject(catalog):
    # "largest" matches the ten largest economies; the question is about WTI.
    assert {p.dataset for p in catalog.select("What was the largest fall in WTI oil prices since 2000?")} == \
        {"oil-prices"}


def test_a_gap_in_a_named_year_is_stated_for_that_year(catalog, tables_dir, tmp_path):
    def mean_2011(name):
        d = pd.read_csv(tables_dir / f"oil-prices/data/{name}-daily.csv")
        return d[d["Date"].str.startswith("2011")]["Price"].mean()

    brent, wti = mean_2011("brent"), mean_2011("wti")
    _, report = run(catalog, "What was the gap between Brent and WTI prices in 2011?", tmp_path / "gap")
    assert abstract(report).startswith(f"In 2011, Brent was {brent - wti:.2f} USD/bbl above WTI ({brent:.2f} USD/bbl "
                                       f"against {wti:.2f} USD/bbl).")


def test_an_index_is_ranked_without_shares_of_a_total(catalog, tables_dir, tmp_path):
    from lyceum.research.analysis.cross_section import latest_ranking_finding
    from lyceum.research.analysis.panels import FigureSink

    t = catalog.by_id["house-prices-global/data/real_index.csv"]
    f = latest_ranking_finding(catalog.frame(t.id), t, "price", FigureSink(tmp_path), year=2022, top_n=3)
    house = pd.read_csv(tables_dir / "house-prices-global/data/real_index.csv")
    house = house[house["date"].str.startswith("2022")].groupby("country")["price"].mean()
    top = house[[c for c in house.index if c not in ("Euro area", "World")]].nlargest(1)
    assert f.sentences[0].startswith("In 2022, the 3 highest by price of the ") and top.index[0] in f.sentences[0]
    assert "%" not in " ".join(f.sentences) and "Share" not in f.tables[0].markdown


def test_a_per_capita_answer_names_its_measure_for_each_country_asked(catalog, tables_dir, tmp_path):
    gdp = pd.read_csv(tables_dir / "gdp/data/gdp.csv")
    pop = pd.read_csv(tables_dir / "population/data/population.csv")
    both = gdp.merge(pop, on=["Country Name", "Year"], suffixes=("_gdp", "_pop"))
    pc = (both["Value_gdp"] / both["Value_pop"]).set_axis(pd.MultiIndex.from_frame(both[["Country Name", "Year"]]))
    _, report = run(catalog, "What was GDP per capita in India and China in 2010 and 2020?", tmp_path / "pc")
    sentences = abstract(report).split(". ")
    for country in ("India", "China"):
        for year in (2010, 2020):  # a sentence that names the measure, the country, the year and the value
            assert any("GDP per capita" in s and country in s and str(year) in s and f"{pc[country, year]:,.2f} USD" in s
                       for s in sentences), (country, year)


def test_which_year_rose_the_most_is_answered_by_the_largest_yearly_move(catalog, tables_dir, tmp_path):
    # Rows carry more fields than the header names: read the first and third (Date, Average) by position.
    monthly = pd.read_csv(tables_dir / "co2-ppm/data/co2-mm-mlo.csv", header=None, skiprows=1, usecols=[0, 2],
                          names=["Date", "Average"])
    annual = monthly.groupby(pd.to_datetime(monthly["Date"]).dt.year)["Average"].mean()
    annual = annual[annual.index < annual.index.max()]  # the latest year is partial
    growth = pd.read_csv(tables_dir / "co2-ppm/data/co2-gr-mlo.csv").set_index("Year")["Annual Increase"]
    years = {str(annual.diff().idxmax()), str(growth.idxmax())}  # from the levels, or as published
    _, report = run(catalog, "In which year did CO2 at Mauna Loa rise the most?", tmp_path / "co2")
    first = abstract(report).split(". ")[0]
    assert re.search(r"biggest yearly rise|largest annual increase", first) and any(y in first for y in years)
