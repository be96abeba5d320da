"""The direct-answer rules (research/analysis/answers.py) on small panels built here: each question form gets its
number stated next to its entity and period."""

import pytest

pd = pytest.importorskip("pandas")

from lyceum.research.analysis.answers import answer_findings, asked_threshold
from lyceum.research.analysis.panels import Panel
from lyceum.research.question import parse_question


def annual_panel(values: dict[str, dict[int, float]], unit: str = "USD", measure: str = "GDP") -> Panel:
    rows = [{"time": pd.Timestamp(f"{y}-07-01"), "year": y, "entity": e, "value": v}
            for e, series in values.items() for y, v in series.items()]
    return Panel(measure=measure, unit=unit, frequency="annual", data=pd.DataFrame(rows), tables=["t.csv"],
                 is_change=False, entities=list(values))


def monthly_panel(entity: str, start: str, values: list[float], unit: str = "USD/bbl") -> Panel:
    times = pd.date_range(start, periods=len(values), freq="MS")
    data = pd.DataFrame({"time": times, "year": times.year, "entity": entity, "value": values})
    return Panel(measure="Price", unit=unit, frequency="monthly", data=data, tables=["m.csv"], is_change=False,
                 entities=[entity])


def answers(panel: Panel, question: str) -> str:
    found = answer_findings([panel], parse_question(question), question)
    return " ".join(s for f in found for s in f.sentences)


def test_a_threshold_is_read_with_its_scale_and_direction_and_a_year_is_not_one():
    assert asked_threshold("When did the world population first exceed 7 billion?")[:2] == (7e9, True)
    assert asked_threshold("In how many years was Brent above $100 a barrel?")[:2] == (100.0, True)
    assert asked_threshold("How often was inflation below zero?")[:2] == (0.0, False)
    assert asked_threshold("How did prices move after 2000?") is None


def test_two_entities_in_a_named_year_get_their_difference_and_ratio_larger_first():
    panel = annual_panel({"China": {2020: 14.7e12}, "United States": {2020: 21.3e12}})
    text = answers(panel, "How much smaller was China's economy than the United States' in 2020?")
    assert "In 2020, the GDP stood at China 14.70 trillion USD, United States 21.30 trillion USD." in text
    assert "United States' GDP was 6.60 trillion USD higher than China's" in text and "1.45 times as large" in text


def test_an_aggregate_named_with_a_member_gives_the_member_share():
    panel = annual_panel({"China": {2020: 14.7e12}, "World": {2020: 85.0e12}})
    assert "In 2020, China accounted for 17.3% of the World total" in answers(panel, "What share of world GDP did "
                                                                                     "China have in 2020?")


def test_a_how_much_question_over_a_named_span_states_the_absolute_and_percent_change():
    panel = annual_panel({"World": {1960: 3.0e9, 1990: 5.3e9, 2020: 7.8e9}}, unit="", measure="Population")
    text = answers(panel, "By how much did the world's population grow between 1960 and 2020?")
    assert "Between 1960 and 2020, World's population rose by 4.80 billion, from 3.00 billion to 7.80 billion " \
           "(+160.0%)." in text


def test_averages_over_a_named_range_and_since_a_year():
    panel = annual_panel({"Germany": {y: float(y - 2010) for y in range(2010, 2025)}}, unit="%", measure="Inflation")
    text = answers(panel, "What was Germany's average inflation in 2015-2019, and what has it been since 2020?")
    assert "Over 2015–2019, Germany's inflation averaged 7.00%" in text
    assert "Over 2020–2024, Germany's inflation averaged 12.00%" in text


def test_the_month_of_a_year_with_the_highest_average():
    panel = monthly_panel("Brent", "2022-01-01", [80, 90, 117, 105, 112, 122.7, 111, 100, 90, 93, 91, 81])
    assert "Brent's monthly average price in 2022 was highest in June 2022 (122.70 USD/bbl)." in answers(
        panel, "In which month of 2022 was Brent highest?")


def test_volatility_is_the_standard_deviation_of_the_observations_in_the_named_year():
    values = [60, 50, 30, 20, 30, 40, 43, 45, 42, 41, 43, 50]
    panel = monthly_panel("Brent", "2020-01-01", values)
    sd = pd.Series(values, dtype=float).std()
    assert f"In 2020, Brent's monthly price had a standard deviation of {sd:.2f} USD/bbl" in answers(
        panel, "How volatile was Brent in 2020?")


def test_the_latest_value_is_set_against_a_year_earlier():
    panel = monthly_panel("Gold", "2024-01-01", [2000.0 + 50 * i for i in range(18)], unit="USD/oz")
    assert "The latest price for Gold is 2,850.00 USD/oz (June 2025); a year earlier (June 2024) Gold was " \
           "2,250.00 USD/oz, a change of +26.7%." in answers(panel, "What is the latest gold price?")


def test_years_past_a_threshold_are_counted_and_the_first_is_named():
    panel = annual_panel({"Brent": {2009: 62.0, 2010: 80.0, 2011: 111.0, 2012: 112.0, 2013: 109.0, 2014: 99.0}},
                         unit="USD/bbl", measure="Price")
    text = answers(panel, "In how many years since 2009 was Brent above 100 dollars?")
    assert "Brent's annual value was above 100.00 USD/bbl in 3 of the 6 years 2009–2014 (2011, 2012, 2013); the " \
           "first was 2011, at 111.00 USD/bbl." in text


def test_the_year_of_a_peak_is_the_highest_annual_value():
    panel = annual_panel({"United States": {2005: 150.0, 2006: 160.0, 2007: 155.0}}, unit="index (2010=100)",
                         measure="Price")
    assert "Over 2005–2007, United States' price was highest in 2006, at 160" in answers(
        panel, "When did United States house prices peak?")


def test_a_unit_carrying_a_scale_word_puts_the_scale_next_to_the_number():
    from lyceum.research.analysis.wording import with_unit

    assert with_unit(21.32, "USD trillion") == "21.32 trillion USD"


def test_entities_named_by_the_table_s_own_codes():
    from types import SimpleNamespace

    from lyceum.research.analysis.panels import coded_entities

    frame = pd.DataFrame({"Country Name": ["Germany", "France", "Italy"], "Country Code": ["DEU", "FRA", "ITA"]})
    t = SimpleNamespace(entity_column="Country Name",
                        columns=[SimpleNamespace(name="Country Name", type="text"),
                                 SimpleNamespace(name="Country Code", type="text")])
    assert coded_entities(frame, t, "What was the GDP of FRA and DEU in 2019?") == ["France", "Germany"]


def test_two_series_from_different_tables_are_divided_both_ways_in_a_named_year():
    gold = annual_panel({"Gold": {2020: 1770.0}}, unit="USD/oz", measure="Price")
    gold.tables = ["gold.csv"]
    brent = annual_panel({"Brent": {2020: 42.0}}, unit="USD/bbl", measure="Price")
    question = "How many barrels of Brent could an ounce of gold buy in 2020?"
    found = answer_findings([brent, gold], parse_question(question), question)
    assert found[0].sentences == [("In 2020, Brent's price (42.00 USD/bbl) was 0.0237 times Gold's price "
                                   "(1,770.00 USD/oz); Gold to Brent was 42.14.")]


def test_a_named_month_gets_its_average_and_range():
    panel = monthly_panel("WTI", "2020-01-01", [57.0, 50.0, 29.0, 16.5, 28.0])
    assert "In April 2020, WTI's price was 16.50 USD/bbl." in answers(panel, "What was WTI in April 2020?")


def test_rates_of_two_countries_differ_in_percentage_points():
    panel = annual_panel({"Germany": {2022: 6.9}, "Turkiye": {2022: 72.3}}, unit="%", measure="Inflation")
    assert "In 2022, Turkiye's inflation was 65.40 percentage points higher than Germany's." in answers(
        panel, "How much higher was inflation in Turkiye than in Germany in 2022?")


def test_two_entities_of_one_table_are_correlated_over_the_period():
    panel = annual_panel({"Spain": {2000 + i: float(i) for i in range(6)},
                          "Ireland": {2000 + i: float(2 * i) for i in range(6)}}, unit="index (2010=100)", measure="Price")
    assert "Over 2000–2005, the annual price of Spain and Ireland have a correlation of 1.00 in levels (6 years)." in \
        answers(panel, "How closely are house prices in Spain and Ireland correlated?")


def test_yearly_rates_compound_into_a_total_rise_between_two_years():
    panel = annual_panel({"United States": {2000: 3.0, 2001: 10.0, 2002: 10.0}}, unit="%",
                         measure="consumer price inflation")
    panel.is_change = True
    assert "Compounding the yearly rates of 2001–2002, United States' consumer price inflation adds up to a total " \
           "rise of +21.0% between 2000 and 2002" in answers(panel, "How much did prices rise in total between 2000 "
                                                                   "and 2002?")


def test_the_quarter_of_a_year_with_the_highest_value():
    times = pd.date_range("2007-03-31", periods=4, freq="QE")
    data = pd.DataFrame({"time": times, "year": times.year, "entity": "United States", "value": [140.0, 146.7, 144, 141]})
    panel = Panel(measure="Price", unit="index (2010=100)", frequency="quarterly", data=data, tables=["q.csv"],
                  is_change=False, entities=["United States"])
    assert "United States' quarterly average price in 2007 was highest in Q2 2007 (146.70)." in answers(
        panel, "In which quarter of 2007 were US house prices highest?")


def test_observations_past_a_threshold_are_counted_in_a_named_year():
    panel = monthly_panel("WTI", "2020-01-01", [57.0, 50.0, 19.0, 16.5, 18.0, 38.0, 40.0])
    assert "In 2020, WTI's monthly price was below 20.00 USD/bbl in 3 of its 7 observations." in answers(
        panel, "In how many months of 2020 was WTI below 20 dollars?")


def test_members_named_together_get_their_combined_share_of_the_aggregate():
    panel = annual_panel({"United States": {2022: 25.0e12}, "China": {2022: 18.0e12}, "World": {2022: 100.0e12}})
    assert "In 2022, United States and China together accounted for 43.0% of the World total" in answers(
        panel, "What share of world GDP did the United States and China produce together in 2022?")


def test_a_rate_changing_between_two_years_moves_in_percentage_points():
    panel = annual_panel({"United States": {2022: 8.0, 2023: 4.1}}, unit="%", measure="consumer price inflation")
    panel.is_change = True
    assert "Between 2022 and 2023, United States' consumer price inflation fell by 3.90 percentage points, from " \
           "8.00% to 4.10%." in answers(panel, "How much did US inflation fall from 2022 to 2023?")


def test_three_or_more_named_entities_are_ranked_when_the_question_asks_for_an_order():
    panel = annual_panel({"Italy": {2021: 36.0}, "Germany": {2021: 51.0}, "Spain": {2021: 30.0}}, unit="USD",
                         measure="GDP per capita")
    assert "Ranked from highest in 2021: 1. Germany (51.00 USD); 2. Italy (36.00 USD); 3. Spain (30.00 USD)." in \
        answers(panel, "How did Italy, Germany and Spain rank by GDP per capita in 2021?")
