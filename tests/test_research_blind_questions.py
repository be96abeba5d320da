"""Blind rounds: questions written before the analyst was changed for them, scored on their first run.

Round one (21 questions) covers question forms the earlier files leave out: how much larger one entity was than
another, ratios, the year of a peak or a trough, the change between two years in absolute and percent terms,
averages over a named span ("2015-2019", "since 2020", "the last five years of data"), the month of a peak,
a share of the world total, top and bottom N within a year (per capita included), counts (companies in a
sector, years above a threshold), volatility, correlation between two tables, the first year over a threshold,
nominal and real side by side, a currency conversion, three or four countries at once, country abbreviations
("USA", "the UK") and the latest value. Facts are computed here by pandas from the CSV files and scored by
``verified`` (the number within 2% in the sentence or table row that names its entity and year); an empty
entity or year means the question names none, and a tuple lists the legitimate readings of one fact.

Each round was committed before its first run; the first runs (verified recall; chance control) were: round one
29/48 (9/960) before any analyst change, round two 9/14 (0/126), round three 18/20 (4/180), round four 13/13
(0/65). Rounds one to three were then fixed by general rules (research/analysis/answers.py and its neighbours);
round one still misses Brent in euros (the exchange-rate table quotes euros per dollar though its README says the
opposite).
"""

import pytest
from test_research_new_questions import annual_mean, recall_and_chance

pd = pytest.importorskip("pandas")
pytest.importorskip("duckdb")


def _people_and_gdp(t):
    gdp = pd.read_csv(t / "gdp/data/gdp.csv")
    pop = pd.read_csv(t / "population/data/population.csv")
    both = gdp.merge(pop, on=["Country Name", "Year"], suffixes=("_gdp", "_pop"))
    per_person = both.assign(v=both["Value_gdp"] / both["Value_pop"]).set_index(["Country Name", "Year"])["v"]
    return (gdp.set_index(["Country Name", "Year"])["Value"], pop.set_index(["Country Name", "Year"])["Value"],
            per_person)


def _yearly(path, where=None):
    """Annual means of a dated table with a date column and a value column, by country when asked."""
    frame = pd.read_csv(path)
    frame = frame.assign(year=pd.to_datetime(frame.iloc[:, 0].astype(str)).dt.year)
    if where:
        frame = frame[frame["country"] == where]
    return frame.groupby("year")["price"].mean()


def round_one(t):
    gdp, people, per_person = _people_and_gdp(t)
    top = pd.read_csv(t / "gdp/data/top-economies.csv").set_index(["country", "year"])["gdp_trillion"] * 1e12
    both = lambda c, y: (gdp[c, y], top.get((c, y)))
    cpi = pd.read_csv(t / "cpi/data/cpi.csv")
    inflation = cpi.set_index(["Country", "Year"])["CPI"]
    germany = inflation["Germany"]
    brent_daily = pd.read_csv(t / "oil-prices/data/brent-daily.csv", parse_dates=["Date"]).set_index("Date")["Price"]
    brent = brent_daily.groupby(brent_daily.index.year).mean()
    brent_year = pd.read_csv(t / "oil-prices/data/brent-year.csv")
    brent_year = brent_year.set_index(pd.to_datetime(brent_year["Date"]).dt.year)["Price"]
    wti = annual_mean(t / "oil-prices/data/wti-daily.csv", "Date", "Price")
    wti_year = pd.read_csv(t / "oil-prices/data/wti-year.csv")
    wti_year = wti_year.set_index(pd.to_datetime(wti_year["Date"]).dt.year)["Price"]
    wti_top = int(wti.idxmax())
    brent_low = int(brent.loc[1990:].idxmin())
    growth_mlo = pd.read_csv(t / "co2-ppm/data/co2-gr-mlo.csv").dropna().set_index("Year")["Annual Increase"]
    last5 = growth_mlo.iloc[-5:]
    by_month = brent_daily["2022"].groupby(brent_daily["2022"].index.month).mean()
    brent_monthly = pd.read_csv(t / "oil-prices/data/brent-monthly.csv", parse_dates=["Date"]).set_index("Date")["Price"]
    top_month = int(by_month.idxmax())
    pc2020 = per_person.xs(2020, level="Year").nlargest(5)
    low2021 = cpi[cpi["Year"] == 2021].nsmallest(3, "CPI")
    sp = pd.read_csv(t / "s-and-p-500-companies-financials/data/constituents-financials.csv")
    hce = sp[sp["Sector"] == "Health Care Equipment"]
    years_over_100 = (int((brent.loc[2000:] > 100).sum()), int((brent_year.loc[2000:] > 100).sum()))
    brent_2020 = brent_daily["2020"]
    gold = annual_mean(t / "gold-prices/data/monthly.csv", "Date", "Price")
    gold_annual = pd.read_csv(t / "gold-prices/data/annual.csv").set_index("Date")["Price"]
    corr = (gold.loc[2000:2020].corr(brent.loc[2000:2020]), gold_annual.loc[2000:2020].corr(brent_year.loc[2000:2020]))
    co2 = pd.read_csv(t / "co2-ppm/data/co2-annmean-mlo.csv").set_index("Year")["Mean"]
    first_400 = int(co2[co2 > 400].index.min())
    nominal = _yearly(t / "house-prices-global/data/nominal_index.csv", "United Kingdom")
    real = _yearly(t / "house-prices-global/data/real_index.csv", "United Kingdom")
    fx = pd.read_csv(t / "exchange-rates/data/annual.csv")
    euro = fx[fx["Country"] == "Euro"]  # quoted as euros per US dollar (0.92 in 2023), whatever the README says
    euros_per_dollar = euro.set_index(pd.to_datetime(euro["Date"]).dt.year)["Exchange rate"]
    gold_monthly = pd.read_csv(t / "gold-prices/data/monthly.csv")
    latest = gold_monthly.iloc[-1]
    latest_year = int(str(latest["Date"])[:4])
    year_before = gold_monthly[gold_monthly["Date"] == f"{latest_year - 1}{str(latest['Date'])[4:]}"]["Price"]
    return [
        ("How much larger was the USA's economy than China's in 2020?",
         [("United States", 2020, both("United States", 2020)), ("China", 2020, both("China", 2020)),
          ("China", 2020, gdp["United States", 2020] - gdp["China", 2020])]),
        ("How many times larger was India's population than Nigeria's in 2022?",
         [("India", 2022, people["India", 2022]), ("Nigeria", 2022, people["Nigeria", 2022]),
          ("Nigeria", 2022, people["India", 2022] / people["Nigeria", 2022])]),
        ("In which year was the annual average WTI crude oil price highest, and what was it?",
         [("WTI", wti_top, (wti[wti_top], wti_year.get(wti_top)))]),
        ("In which year since 1990 was the average Brent crude price lowest, and what was it?",
         [("Brent", brent_low, (brent[brent_low], brent_year.get(brent_low)))]),
        ("By how much did the world's population grow between 1960 and 2020, in people and in percent?",
         [("World", 1960, people["World", 1960]), ("World", 2020, people["World", 2020]),
          ("World", 2020, people["World", 2020] - people["World", 1960]),
          ("World", 2020, people["World", 2020] / people["World", 1960] - 1)]),
        ("What was Germany's average annual inflation rate in 2015-2019, and what has it been since 2020?",
         [("Germany", 2015, germany.loc[2015:2019].mean()), ("Germany", 2020, germany.loc[2020:].mean())]),
        ("What was the average yearly increase in CO2 at Mauna Loa over the last five years of data?",
         [("", int(last5.index[0]), last5.mean())]),
        ("In which month of 2022 was the Brent crude oil price highest, and what was it?",
         [("Brent", 2022, (by_month[top_month], float(brent_monthly[f"2022-{top_month:02d}"].iloc[0])))]),
        ("What share of world GDP did China account for in 2020?",
         [("China", 2020, gdp["China", 2020]), ("World", 2020, gdp["World", 2020]),
          ("China", 2020, gdp["China", 2020] / gdp["World", 2020])]),
        ("Which five countries had the highest GDP per capita in 2020?",
         [(c, 2020, v) for c, v in pc2020.items()]),
        ("Which three countries had the lowest inflation rates in 2021, and what were they?",
         [(r.Country, 2021, r.CPI) for r in low2021.itertuples()]),
        (("How many S&P 500 companies are in the Health Care Equipment sector, and what is their combined market "
          "capitalisation?"),
         [("Health Care Equipment", "", len(hce)), ("Health Care Equipment", "", hce["Market Cap"].sum())]),
        ("In how many years since 2000 was the annual average Brent crude price above 100 dollars a barrel?",
         [("Brent", "", years_over_100)]),
        ("How volatile was the Brent crude price in 2020, measured by the standard deviation of its daily prices?",
         [("Brent", 2020, (brent_2020.std(), brent_2020.std(ddof=0)))]),
        (("How strongly were the annual average gold price and the Brent crude price correlated between 2000 and "
          "2020?"),
         [("", 2000, corr)]),
        ("In which year did the annual mean CO2 concentration at Mauna Loa first exceed 400 ppm?",
         [("", first_400, co2[first_400])]),
        ("How did nominal and real house prices in the UK change between 2000 and 2020?",
         [("United Kingdom", y, s[y]) for s in (nominal, real) for y in (2000, 2020)]),
        ("What was the average price of Brent crude in euros in 2015 and in 2022?",
         [("Brent", y, brent[y] * euros_per_dollar[y]) for y in (2015, 2022)]),
        ("How did GDP per capita in Brazil, Mexico and South Africa compare in 2022?",
         [(c, 2022, per_person[c, 2022]) for c in ("Brazil", "Mexico", "South Africa")]),
        ("How did inflation in the US, the UK, Japan and Germany compare in 2022?",
         [(c, 2022, inflation[c, 2022]) for c in ("United States", "United Kingdom", "Japan", "Germany")]),
        ("What is the latest gold price in the data, and how does it compare with a year earlier?",
         [("Gold", latest_year, latest["Price"]), ("Gold", latest_year - 1, float(year_before.iloc[0]))]),
    ]


def round_two(t):
    """Ten more, of forms round one does not have, written after the changes round one led to and committed before
    their first run: a growth rate in one year, the year of the largest change, a count of countries past a
    threshold, a quarter, a count of trading days, a multiple between two years, the sector with the most
    companies, two sources side by side, per-capita growth in percent and cumulative inflation."""
    gdp, _, per_person = _people_and_gdp(t)
    top = pd.read_csv(t / "gdp/data/top-economies.csv").set_index(["country", "year"])["gdp_trillion"]
    growth_mlo = pd.read_csv(t / "co2-ppm/data/co2-gr-mlo.csv").dropna().set_index("Year")["Annual Increase"]
    biggest = int(growth_mlo.idxmax())
    cpi = pd.read_csv(t / "cpi/data/cpi.csv")
    in_2022 = cpi[cpi["Year"] == 2022]
    from lyceum.research.analysis.panels import is_aggregate

    countries = in_2022[[not is_aggregate(c) for c in in_2022["Country"]]]
    over_10 = (int((countries["CPI"] > 10).sum()), int((in_2022["CPI"] > 10).sum()))
    house = pd.read_csv(t / "house-prices-global/data/real_index.csv", parse_dates=["date"])
    us_2007 = house[(house["country"] == "United States") & (house["date"].dt.year == 2007)]
    wti_daily = pd.read_csv(t / "oil-prices/data/wti-daily.csv", parse_dates=["Date"]).set_index("Date")["Price"]
    days_below_20 = int((wti_daily["2020"] < 20).sum())
    gold = annual_mean(t / "gold-prices/data/monthly.csv", "Date", "Price")
    gold_annual = pd.read_csv(t / "gold-prices/data/annual.csv").set_index("Date")["Price"]
    sp = pd.read_csv(t / "s-and-p-500-companies-financials/data/constituents-financials.csv")
    sectors = sp["Sector"].value_counts()
    temp = pd.read_csv(t / "global-temp/data/annual.csv").set_index(["Source", "Year"])["Mean"]
    us = cpi[cpi["Country"] == "United States"].set_index("Year")["CPI"]
    cumulative = ((1 + us.loc[2001:2020] / 100).prod() - 1, (1 + us.loc[2000:2020] / 100).prod() - 1)
    return [
        ("What was China's GDP growth rate in 2015, in percent?",
         [("China", 2015, (gdp["China", 2015] / gdp["China", 2014] - 1, top["China", 2015] / top["China", 2014] - 1))]),
        ("Which year saw the largest annual increase in CO2 concentration at Mauna Loa, and how large was it?",
         [("", biggest, growth_mlo[biggest])]),
        ("How many countries had consumer price inflation above 10% in 2022?",
         [("", 2022, over_10)]),
        ("In which quarter of 2007 were real house prices in the United States highest, and what was the index then?",
         [("United States", 2007, us_2007["price"].max())]),
        ("On how many trading days in 2020 did the WTI price close below 20 dollars a barrel?",
         [("WTI", 2020, days_below_20)]),
        ("How many times higher was the average gold price in 2020 than in 2000?",
         [("Gold", 2020, (gold[2020] / gold[2000], gold_annual[2020] / gold_annual[2000]))]),
        ("Which sector of the S&P 500 has the most companies, and how many companies does it have?",
         [(sectors.index[0], "", int(sectors.iloc[0]))]),
        ("How much did the GISTEMP and gcag estimates of the global temperature anomaly differ in 2020?",
         [("GISTEMP", 2020, temp["GISTEMP", 2020]), ("GCAG", 2020, temp["gcag", 2020]),
          ("", 2020, temp["GISTEMP", 2020] - temp["gcag", 2020])]),
        ("By what percentage did India's GDP per capita grow between 2000 and 2020?",
         [("India", 2000, per_person["India", 2000]), ("India", 2020, per_person["India", 2020]),
          ("India", 2020, per_person["India", 2020] / per_person["India", 2000] - 1)]),
        ("By how much did US consumer prices rise in total between 2000 and 2020?",
         [("United States", 2020, cumulative)]),
    ]


def round_three(t):
    """Ten more, written after the fixes round two led to and committed before their first run: round one's forms
    on other tables and in other words (a gap between two tables, a combined share, a peak year of a population,
    the last ten years, a conversion into Swiss francs, a ranking of four named countries per capita, years above a
    temperature, the spread of a rate over a span, the latest monthly rate and a year before, a cross-section
    average and its largest row)."""
    gdp, people, per_person = _people_and_gdp(t)
    brent = annual_mean(t / "oil-prices/data/brent-daily.csv", "Date", "Price")
    wti = annual_mean(t / "oil-prices/data/wti-daily.csv", "Date", "Price")
    japan = people["Japan"]
    japan_top = int(japan.idxmax())
    inflation = pd.read_csv(t / "cpi/data/cpi.csv").set_index(["Country", "Year"])["CPI"]
    india = inflation["India"].sort_index()
    gold = annual_mean(t / "gold-prices/data/monthly.csv", "Date", "Price")
    fx = pd.read_csv(t / "exchange-rates/data/annual.csv")
    chf = fx[fx["Country"] == "Switzerland"]
    francs_per_dollar = chf.set_index(pd.to_datetime(chf["Date"]).dt.year)["Exchange rate"]
    temp = pd.read_csv(t / "global-temp/data/annual.csv")
    warm = tuple(int((g.set_index("Year")["Mean"].loc[1980:] > 0.5).sum()) for _, g in temp.groupby("Source"))
    turkey = inflation["Turkiye"].loc[2000:2020]
    monthly = pd.read_csv(t / "exchange-rates/data/monthly.csv")
    rupee = monthly[monthly["Country"] == "India"].set_index("Date")["Exchange rate"]
    last = rupee.index[-1]
    year_before = f"{int(last[:4]) - 1}{last[4:]}"
    sp = pd.read_csv(t / "s-and-p-500-companies-financials/data/constituents-financials.csv")
    largest = sp.loc[sp["Market Cap"].idxmax()]
    return [
        ("How much lower was the average WTI price than the average Brent price in 2019?",
         [("WTI", 2019, wti[2019]), ("Brent", 2019, brent[2019]), ("WTI", 2019, brent[2019] - wti[2019])]),
        ("What share of the world's GDP did the United States and China produce together in 2022?",
         [("United States", 2022, gdp["United States", 2022] / gdp["World", 2022]),
          ("China", 2022, gdp["China", 2022] / gdp["World", 2022]),
          ("", 2022, (gdp["United States", 2022] + gdp["China", 2022]) / gdp["World", 2022])]),
        ("In which year did Japan's population peak, and how many people lived there then?",
         [("Japan", japan_top, japan[japan_top])]),
        ("What was the average annual inflation rate in India over the last ten years of data?",
         [("India", int(india.index[-10]), india.iloc[-10:].mean())]),
        ("What was the average price of gold in Swiss francs in 2011 and in 2021?",
         [("Gold", y, gold[y] * francs_per_dollar[y]) for y in (2011, 2021)]),
        ("How did Germany, France, Italy and Spain rank by GDP per capita in 2021?",
         [(c, 2021, per_person[c, 2021]) for c in ("Germany", "France", "Italy", "Spain")]),
        ("In how many years since 1980 was the global temperature anomaly above 0.5 degrees?",
         [("", "", warm)]),
        ("What was the standard deviation of Turkey's yearly inflation rate between 2000 and 2020?",
         [("Turk", 2000, (turkey.std(), turkey.std(ddof=0)))]),
        (("What is the most recent exchange rate of the Indian rupee against the US dollar, and what was it a year "
          "before?"),
         [("India", int(last[:4]), rupee[last]), ("India", int(year_before[:4]), rupee[year_before])]),
        ("What is the average market capitalisation of an S&P 500 company, and which company is the largest?",
         [("", "", sp["Market Cap"].mean()), (largest["Name"], "", largest["Market Cap"])]),
    ]


def round_four(t):
    """Six more, written after every fix above and committed before their first run."""
    _, people, _ = _people_and_gdp(t)
    gold = annual_mean(t / "gold-prices/data/monthly.csv", "Date", "Price")
    gold_annual = pd.read_csv(t / "gold-prices/data/annual.csv").set_index("Date")["Price"]
    top = pd.read_csv(t / "gdp/data/top-economies.csv")
    smallest = top[top["year"] == 2010].nsmallest(1, "gdp_trillion").iloc[0]
    co2 = pd.read_csv(t / "co2-ppm/data/co2-annmean-gl.csv").set_index("Year")["Mean"]
    fx = pd.read_csv(t / "exchange-rates/data/annual.csv")
    cad = fx[fx["Country"] == "Canada"]
    cad = cad.set_index(pd.to_datetime(cad["Date"]).dt.year)["Exchange rate"]
    sp = pd.read_csv(t / "s-and-p-500-companies-financials/data/constituents-financials.csv")
    hce = sp[sp["Sector"] == "Health Care Equipment"]["Price/Earnings"].dropna()
    both = lambda y: (gold[y], gold_annual.get(y))
    return [
        ("How much cheaper was gold in 2015 than in 2012, in dollars per ounce and in percent?",
         [("Gold", 2012, both(2012)), ("Gold", 2015, both(2015)), ("Gold", 2015, gold[2012] - gold[2015]),
          ("Gold", 2015, (gold[2015] / gold[2012] - 1, gold[2012] / gold[2015] - 1))]),
        ("What proportion of the world's population lived in China in 1990 and in 2020?",
         [("China", y, people["China", y] / people["World", y]) for y in (1990, 2020)]),
        ("Which of the ten largest economies had the smallest GDP in 2010, and what was it?",
         [(smallest["country"], 2010, smallest["gdp_trillion"])]),
        ("By how many ppm did the global CO2 concentration rise between 1980 and 2020?",
         [("", 1980, co2[1980]), ("", 2020, co2[2020]), ("", 2020, co2[2020] - co2[1980])]),
        ("How did the Canadian dollar exchange rate against the US dollar change from 2012 to 2016?",
         [("Canada", y, cad[y]) for y in (2012, 2016)]),
        ("What is the median price/earnings ratio of S&P 500 companies in the Health Care Equipment sector?",
         [("Health Care Equipment", "", hce.median())]),
    ]


def _reports(questions, tables_dir, tmp_path_factory, name):
    from lyceum.research.catalog import Catalog
    from lyceum.research.pipeline import ResearchConfig, run_research

    catalog = Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")
    out = tmp_path_factory.mktemp(name)
    reports = []
    for i, (question, _) in enumerate(questions):
        run = run_research(ResearchConfig(question=question), out / f"q{i}", catalog=catalog)
        reports.append((run.run_dir / "report.md").read_text())
    return reports


def _score(label, questions, reports):
    hits, total, missed, chance, chance_total = recall_and_chance(questions, reports)
    print(f"{label} verified recall {hits}/{total}; chance control {chance}/{chance_total}")
    for m in missed:
        print("  missed:", m)
    return hits, total, missed, chance, chance_total


def test_verified_recall_on_blind_round_one(tables_dir, tmp_path_factory):
    """Verified recall at least 80%, and the chance control (the same facts looked up in the other questions'
    reports) under 15%."""
    questions = round_one(tables_dir)
    reports = _reports(questions, tables_dir, tmp_path_factory, "blind1")
    hits, total, missed, chance, chance_total = _score("round one", questions, reports)
    assert hits / total >= 0.8, (hits, total, missed)
    assert chance / chance_total < 0.15, (chance, chance_total)


def test_verified_recall_on_blind_round_three(tables_dir, tmp_path_factory):
    """Round three, scored the same way."""
    questions = round_three(tables_dir)
    reports = _reports(questions, tables_dir, tmp_path_factory, "blind3")
    hits, total, missed, chance, chance_total = _score("round three", questions, reports)
    assert hits / total >= 0.8, (hits, total, missed)
    assert chance / chance_total < 0.15, (chance, chance_total)


def test_verified_recall_on_blind_round_four(tables_dir, tmp_path_factory):
    """Round four, scored the same way."""
    questions = round_four(tables_dir)
    reports = _reports(questions, tables_dir, tmp_path_factory, "blind4")
    hits, total, missed, chance, chance_total = _score("round four", questions, reports)
    assert hits / total >= 0.8, (hits, total, missed)
    assert chance / chance_total < 0.15, (chance, chance_total)


def test_verified_recall_on_blind_round_two(tables_dir, tmp_path_factory):
    """Round two, scored the same way."""
    questions = round_two(tables_dir)
    reports = _reports(questions, tables_dir, tmp_path_factory, "blind2")
    hits, total, missed, chance, chance_total = _score("round two", questions, reports)
    assert hits / total >= 0.8, (hits, total, missed)
    assert chance / chance_total < 0.15, (chance, chance_total)
