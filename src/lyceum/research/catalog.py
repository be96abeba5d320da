"""The table catalog: ingest a folder of tables into DuckDB, profile each table, search them with BM25.

    catalog = Catalog.open_or_build("data/tables")          # cached by a fingerprint of the folder
    for profile, score in catalog.search("oil price shocks"): ...
    chosen = catalog.select("How did Brent and WTI evolve?")  # the tables the rule-based analyst will use
    frame = catalog.frame(chosen[0].id)

A table's id is its path relative to the tables folder ("oil-prices/data/brent-daily.csv"); a workbook sheet
adds "#Sheet". The profile is what a model sees instead of the data: columns, types, units, time range,
entities, row count and three sample rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lyceum.errors import UserError
from lyceum.research.bm25 import BM25, STOPWORDS, number_words_as_digits, tokenize
from lyceum.research.concepts import available as concepts_available
from lyceum.research.concepts import broader_text, compound_text, query_concepts
from lyceum.research.ingest import TABLE_SUFFIXES, PackageMeta, ResourceMeta, package_metadata, read_table
from lyceum.research.selection import GRANULARITY_WORDS, select_tables

CATALOG_VERSION = 7
FAMILY_WEIGHT = 0.7  # an indexed word of the same family as a question word ("transportation" for "transport")
RELATED_FAMILY_MIN = 0.3  # a related word this close to the question's own brings its family
BROADER_WEIGHT = 0.7  # a question word found among the broader words of a table's text, relative to its own words
_SKIP_NAMES = {"datapackage.json", "package.json", "readme.md", "readme.txt", "readme", "license", "license.md",
               "provenance", "changelog.md"}


@dataclass
class ColumnProfile:
    name: str
    type: str  # number | integer | date | year | text
    unit: str = ""
    description: str = ""
    missing: int = 0
    distinct: int = 0
    min: Any = None
    max: Any = None
    mean: float | None = None
    examples: list[Any] = field(default_factory=list)


@dataclass
class TableProfile:
    id: str
    sql_name: str
    path: str
    dataset: str
    dataset_title: str = ""
    title: str = ""
    description: str = ""
    n_rows: int = 0
    columns: list[ColumnProfile] = field(default_factory=list)
    time_column: str | None = None
    time_start: str | None = None
    time_end: str | None = None
    frequency: str | None = None
    entity_column: str | None = None
    entities: list[str] = field(default_factory=list)
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    search_text: str = ""
    name_words: list[str] = field(default_factory=list)  # file-name tokens: "co2", "gr", "mlo"
    name_aliases: dict[str, str] = field(default_factory=dict)  # "mlo" -> "Mauna Loa Observatory"

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def numeric_columns(self) -> list[ColumnProfile]:
        return [c for c in self.columns if c.type in ("number", "integer") and c.name != self.time_column]

    def summary(self, *, sample_rows: int = 3) -> str:
        """The profile as compact text for a prompt: never the full data."""
        lines = [f"table `{self.id}` ({self.n_rows} rows): {self.title}"]
        if self.description:
            lines.append(f"  description: {self.description[:400]}")
        if self.time_column:
            lines.append(f"  time: column '{self.time_column}', {self.frequency or 'irregular'}, "
                         f"{self.time_start} to {self.time_end}")
        if self.entity_column:
            shown = ", ".join(self.entities[:12]) + (" ..." if len(self.entities) > 12 else "")
            lines.append(f"  entities: column '{self.entity_column}' ({len(self.entities)} values: {shown})")
        for c in self.columns:
            rng = f", range {_short(c.min)} to {_short(c.max)}" if c.min is not None else ""
            unit = f", unit {c.unit}" if c.unit else ""
            desc = f" -- {c.description[:120]}" if c.description else ""
            lines.append(f"  - '{c.name}' {c.type}{unit}{rng}, {c.missing} missing{desc}")
        for row in self.sample_rows[:sample_rows]:
            lines.append(f"  sample: {json.dumps(row, default=str, ensure_ascii=False)}")
        return "\n".join(lines)


@dataclass
class FileReport:
    """What indexing did with one file."""

    file: str
    tables: list[str] = field(default_factory=list)
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# ---------------------------------------------------------------------------------------------------------------
# Units and search text


_UNIT_PATTERNS = [
    (r"usd per troy ounce|us dollars per troy ounce|usd/oz", "USD/oz"),
    (r"(us dollars|usd) per barrel|usd/bbl", "USD/bbl"),
    (r"\bppm\b|parts per million", "ppm"),
    (r"degrees? celsius|°c", "°C"),
    (r"usd trillions?|trillions? of (us )?dollars", "USD trillion"),
    (r"usd billions?|billions? of (us )?dollars", "USD billion"),
    (r"year-on-year|percentage change|per ?cent|\bpercent\b|in %", "%"),
    (r"base year (\d{4}) ?= ?100|(\d{4}) ?= ?100", "index"),
    (r"current us ?dollars|current usd|\(\$\)|in raw usd|in usd\b|us dollars|\busd\b", "USD"),
    (r"as a decimal", "fraction"),
]


def guess_unit(*texts: str) -> str:
    """A unit label from a column's description (first match wins, most specific first)."""
    text = " ".join(t for t in texts if t).lower()
    for pattern, unit in _UNIT_PATTERNS:
        m = re.search(pattern, text)
        if m:
            if unit == "index":
                year = next((g for g in m.groups() if g), "")
                return f"index ({year}=100)" if year else "index"
            return unit
    return ""


def expand_abbreviations(name_words: list[str], context: str) -> dict[str, str]:
    """Spell out short file-name tokens from the dataset's own text: 'mlo' -> 'Mauna Loa Observatory'.

    A 2-4 letter token is matched against consecutive words whose initials spell it, else against a word it
    starts; file names in real data packages are full of such abbreviations ('gr', 'mm', 'gl').
    """
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", context)
    lower = [w.lower() for w in words]
    out: dict[str, str] = {}
    for tok in name_words:
        if not (2 <= len(tok) <= 4 and tok.isalpha()) or tok in STOPWORDS or tok in GRANULARITY_WORDS:
            continue
        n, found = len(tok), None
        for i in range(len(lower) - n + 1):
            window = lower[i : i + n]
            if "".join(w[0] for w in window) == tok and all(w not in STOPWORDS for w in window):
                found = " ".join(words[i : i + n])
                break
        if found is None:
            found = next((w for w, lw in zip(words, lower) if lw.startswith(tok) and len(lw) > n + 1), None)
        if found:
            out[tok] = found
    return out


def _name_words(table_id: str) -> list[str]:
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", table_id.split("/")[-1].split("#")[0])
    sheet = table_id.split("#")[1] if "#" in table_id else ""
    return [w for w in re.split(r"[^A-Za-z0-9]+", f"{stem} {sheet}".lower()) if w]


def build_search_text(p: TableProfile, pkg: PackageMeta, res: ResourceMeta | None) -> str:
    """The text BM25 indexes for a table: everything the data says about itself.

    The titles (written for people), then the file name and column names (often abbreviations) count more than
    long descriptions; then the descriptions, column descriptions and units, samples of the text values
    (categories, entities) the table holds, and the titles of its sources. A text that appears twice (a package
    with one table often repeats its description) is counted once.
    """
    name = " ".join(p.name_words + list(p.name_aliases.values()) + ([res.name] if res and res.name else []))
    titles = " ".join(_unique([pkg.title, p.title, *(res.views if res else [])]))
    # A name ingest made up ("column_1" for a blank header cell, "extra_1" for a surplus field) says nothing.
    columns = " ".join(c.name for c in p.columns if not _GENERATED_NAME.fullmatch(c.name))
    column_notes = " ".join(_unique([c.description for c in p.columns] + [c.unit for c in p.columns]))
    # Where the data comes from (a study, a survey, an agency, a book) is part of what it is about.
    sources = " ".join(_unique([src.get("title", "") for src in pkg.sources]))
    values = " ".join(_unique(p.entities[:30] + [str(v) for c in p.columns if c.type == "text" for v in c.examples]))
    parts = [name] * 2 + [titles] * 3 + [columns] * 2 + _unique([p.description, pkg.description]) + \
        [" ".join(pkg.keywords), column_notes, values, pkg.name.replace("-", " "), sources]
    return "\n".join(x for x in parts if x)


_GENERATED_NAME = re.compile(r"(column|extra)_\d+")  # the names ingest gives unnamed columns


def _unique(texts: list[str]) -> list[str]:
    seen, out = set(), []
    for t in texts:
        key = (t or "").strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(t.strip())
    return out


# ---------------------------------------------------------------------------------------------------------------
# Profiling


def profile_frame(frame, table_id: str, path: Path, pkg: PackageMeta, res: ResourceMeta | None,
                  problems: list[str]) -> TableProfile:
    fields = {f.name: f for f in (res.fields if res else [])}
    columns = []
    for name in frame.columns:
        col = frame[name]
        meta = fields.get(str(name))
        desc = meta.description if meta else ""
        cp = ColumnProfile(name=str(name), type=_column_type(col), description=desc, missing=int(col.isna().sum()),
                           distinct=int(col.nunique(dropna=True)))
        values = col.dropna()
        if not values.empty and cp.type in ("number", "integer", "year"):
            cp.min, cp.max = _plain(values.min()), _plain(values.max())
            cp.mean = float(values.astype("float64").mean()) if cp.type != "year" else None
        elif not values.empty and cp.type == "date":
            cp.min, cp.max = values.min().date().isoformat(), values.max().date().isoformat()
        cp.examples = [_plain(v) for v in values.drop_duplicates().head(3)]
        if cp.type in ("number", "integer"):
            cp.unit = guess_unit(desc, str(name))
        columns.append(cp)
    numeric = [c for c in columns if c.type in ("number", "integer")]
    if len(numeric) == 1 and not numeric[0].unit:
        # One measured column: the table's own description names its unit ("in USD per barrel").
        numeric[0].unit = guess_unit(res.description if res else "", pkg.description)
    title = (res.title if res and res.title else "") or (res.description.split(".")[0] if res and res.description
                                                          else "") or f"{pkg.title}: {Path(table_id).stem}"
    p = TableProfile(id=table_id, sql_name=_sql_name(table_id), path=str(path), dataset=pkg.name,
                     dataset_title=pkg.title, title=title, description=(res.description if res else "") or
                     pkg.description, n_rows=len(frame), columns=columns, sources=pkg.sources,
                     problems=list(problems))
    _find_time(p, frame)
    _find_entities(p, frame)
    sample = frame.head(3).astype(object).where(frame.head(3).notna(), None)
    p.sample_rows = [{str(k): _plain(v) for k, v in row.items()} for row in sample.to_dict(orient="records")]
    p.name_words = _name_words(table_id)
    # Abbreviations are spelled out anywhere in the package (a view of one file names "Mauna Loa Observatory").
    context = " ".join([pkg.title, pkg.description] + [" ".join([*r.views, r.title, r.description,
                                                                 *(f.description for f in r.fields)])
                                                       for r in pkg.resources.values()])
    p.name_aliases = expand_abbreviations(p.name_words, context)
    p.search_text = build_search_text(p, pkg, res)
    return p


def _column_type(col) -> str:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col):
        return "date"
    if str(col.dtype) == "Int64":
        return "year"
    if pd.api.types.is_bool_dtype(col):
        return "text"
    if pd.api.types.is_numeric_dtype(col):
        values = col.dropna()
        return "integer" if len(values) and (values == values.round()).all() else "number"
    return "text"


def _plain(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "isoformat"):
        try:
            return v.date().isoformat() if hasattr(v, "date") else v.isoformat()
        except (ValueError, AttributeError):
            return str(v)
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def _find_time(p: TableProfile, frame) -> None:
    import pandas as pd

    candidates = [c for c in p.columns if c.type in ("date", "year")]
    if not candidates:
        return
    c = candidates[0]
    p.time_column = c.name
    values = frame[c.name].dropna()
    if c.type == "year":
        p.time_start, p.time_end = str(int(values.min())), str(int(values.max()))
        p.frequency = "annual"
        return
    p.time_start, p.time_end = values.min().date().isoformat(), values.max().date().isoformat()
    days = pd.Series(sorted(values.unique())).diff().dt.days.dropna()
    if days.empty:
        return
    step = float(days.median())
    p.frequency = ("daily" if step <= 3 else "weekly" if step <= 10 else "monthly" if step <= 40
                   else "quarterly" if step <= 120 else "annual" if step <= 400 else "irregular")


def _find_entities(p: TableProfile, frame) -> None:
    """The column naming the things measured (countries, companies, sectors): repeated text values."""
    texts = [c for c in p.columns if c.type == "text" and 1 < c.distinct <= 5000]
    if not texts:
        return
    n = max(p.n_rows, 1)
    if p.time_column:
        # A panel: each entity repeats over time. Prefer full names over codes (longer mean length).
        repeated = [c for c in texts if n / c.distinct >= 2]
        if not repeated:
            return
        best = max(repeated, key=lambda c: (frame[c.name].dropna().astype(str).str.len().mean(), -c.distinct))
    else:
        # A cross-section: the grouping column (sectors), not the per-row label (company names).
        grouping = [c for c in texts if c.distinct <= n / 3]
        if not grouping:
            return
        best = max(grouping, key=lambda c: (n / c.distinct >= 3, -abs(c.distinct - 12)))
    p.entity_column = best.name
    counts = frame[best.name].dropna().astype(str).value_counts()
    p.entities = [str(v) for v in counts.index[:1000]]


def _sql_name(table_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", table_id).strip("_").lower()
    return ("t_" + name)[:120]


# ---------------------------------------------------------------------------------------------------------------
# The catalog


def _candidate_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith(".") or name.lower() in _SKIP_NAMES:
                continue
            if p.suffix.lower() in TABLE_SUFFIXES and not (p.suffix.lower() == ".txt" and "readme" in name.lower()):
                files.append(p)
    return files


def fingerprint(root: Path) -> str:
    """Changes whenever a table or descriptor under ``root`` changes (paths, sizes, modification times)."""
    h = hashlib.sha1(f"v{CATALOG_VERSION}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() in TABLE_SUFFIXES or name.lower() in _SKIP_NAMES:
                st = path.stat()
                h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def default_db_path(tables_dir: Path) -> Path:
    cache = Path(os.environ.get("LYCEUM_CACHE") or Path.home() / ".cache" / "lyceum")
    digest = hashlib.sha1(str(tables_dir.resolve()).encode()).hexdigest()[:12]
    return cache / "research" / f"catalog-{digest}.duckdb"


def _package_for(path: Path, root: Path, cache: dict[Path, PackageMeta]) -> tuple[PackageMeta, Path]:
    """The nearest folder (up to ``root``) with a datapackage.json/README describes the file."""
    folder = path.parent
    while True:
        if (folder / "datapackage.json").is_file() or (folder / "README.md").is_file() or folder == root:
            break
        folder = folder.parent
    if folder not in cache:
        cache[folder] = package_metadata(folder)
        if folder == root and not (folder / "datapackage.json").is_file():
            cache[folder].name = path.parent.name if path.parent != root else root.name
    return cache[folder], folder


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _refuse_to_overwrite(db_path: Path) -> None:
    """``--db`` may replace an older catalog, never a file that is something else (a typo must not destroy data)."""
    import duckdb

    if db_path.is_dir():
        raise UserError(f"--db {db_path} is a folder; give a catalog file path")
    try:
        con = duckdb.connect(str(db_path), read_only=True)
        try:
            con.execute("SELECT count(*) FROM _catalog WHERE key = 'meta'").fetchone()
        finally:
            con.close()
    except duckdb.Error:
        raise UserError(f"{db_path} exists and is not a lyceum table catalog; refusing to overwrite it "
                        f"(choose another --db path or delete the file)") from None


class Catalog:
    """Profiles and search over a folder of tables, backed by a DuckDB file holding the cleaned data."""

    def __init__(self, db_path: Path, root: Path, profiles: list[TableProfile], reports: list[FileReport]):
        self.db_path = Path(db_path)
        self.root = Path(root)
        self.profiles = profiles
        self.reports = reports
        self.by_id = {p.id: p for p in profiles}
        # A table with a time column answers for the years it covers (see ``covered_years``), not for the years
        # its description happens to name ("the 1990 Gulf War spike" does not make oil prices a 1990 table).
        self._index = BM25([[t for t in tokenize(number_words_as_digits(p.search_text))
                             if not (covered_years(p) and _YEAR.fullmatch(t))] for p in profiles])
        self._broader: BM25 | None = None
        self._con = None
        self.meta: dict[str, Any] = {}
        self._vectors: list[list[float]] | None = None
        self._embed_fn = None

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, tables_dir: str | Path, db_path: str | Path | None = None, *, progress_desc: str = "indexing"):
        import duckdb

        from lyceum.runs import progress

        root = Path(tables_dir)
        if not root.is_dir():
            raise UserError(f"tables folder not found: {root}")
        db_path = Path(db_path) if db_path else default_db_path(root)
        files = _candidate_files(root)
        if not files:
            raise UserError(f"no table files (CSV, TSV, XLSX, Parquet, JSON) under {root}")
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the catalog folder {db_path.parent}: {e.strerror}") from e
        if db_path.exists():
            _refuse_to_overwrite(db_path)
        tmp = db_path.with_name(db_path.name + f".tmp{os.getpid()}")
        try:
            tmp.unlink(missing_ok=True)
            con = duckdb.connect(str(tmp))
        except (OSError, duckdb.Error) as e:
            raise UserError(f"cannot write the catalog {db_path}: {_first_line(e)}") from e
        packages: dict[Path, PackageMeta] = {}
        profiles: list[TableProfile] = []
        reports: list[FileReport] = []
        used: set[str] = set()
        for path in progress(files, desc=progress_desc):
            rel = path.relative_to(root).as_posix()
            report = FileReport(file=rel)
            reports.append(report)
            pkg, folder = _package_for(path, root, packages)
            res = pkg.resources.get(path.relative_to(folder).as_posix())
            try:
                parts = read_table(path, res.fields if res else None)
            except ValueError as e:
                report.error = str(e)
                continue
            except (OSError, UnicodeError) as e:
                report.error = f"cannot read the file ({type(e).__name__}: {e})"
                continue
            for suffix, frame, problems in parts:
                if frame.empty or len(frame.columns) == 0:
                    report.problems.append(f"{suffix or 'the file'} holds no data rows")
                    continue
                p = profile_frame(frame, rel + suffix, path, pkg, res, problems)
                while p.sql_name in used:
                    p.sql_name += "_"
                used.add(p.sql_name)
                con.register("incoming", frame)
                con.execute(f'CREATE TABLE "{p.sql_name}" AS SELECT * FROM incoming')
                con.unregister("incoming")
                profiles.append(p)
                report.tables.append(p.id)
                report.rows += p.n_rows
                report.problems += problems
        # Descriptor problems (missing listed files, broken JSON) belong to the descriptor file.
        for folder, pkg in packages.items():
            if pkg.problems:
                rel = ((folder / "datapackage.json").relative_to(root)).as_posix()
                reports.append(FileReport(file=rel, problems=list(pkg.problems)))
        con.execute("CREATE TABLE _catalog (key VARCHAR, value VARCHAR)")
        meta = {"version": CATALOG_VERSION, "root": str(root.resolve()), "fingerprint": fingerprint(root)}
        rows = [("meta", json.dumps(meta))]
        rows += [("profile", json.dumps(asdict(p), default=str)) for p in profiles]
        rows += [("report", json.dumps(asdict(r))) for r in reports]
        con.executemany("INSERT INTO _catalog VALUES (?, ?)", rows)
        con.close()
        try:
            os.replace(tmp, db_path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write the catalog {db_path}: {e.strerror}") from e
        cat = cls(db_path, root, profiles, reports)
        cat.meta = meta
        return cat

    @classmethod
    def open(cls, db_path: str | Path) -> Catalog:
        import duckdb

        db_path = Path(db_path)
        if not db_path.is_file():
            raise UserError(f"catalog not found: {db_path} (build it with `lyceum research index`)")
        try:
            con = duckdb.connect(str(db_path), read_only=True)
            rows = con.execute("SELECT key, value FROM _catalog").fetchall()
            con.close()
        except duckdb.Error as e:
            raise UserError(f"{db_path} is not a lyceum table catalog ({str(e).splitlines()[0]})") from e
        meta = json.loads(next(v for k, v in rows if k == "meta"))
        profiles = [_profile_from_dict(json.loads(v)) for k, v in rows if k == "profile"]
        reports = [FileReport(**json.loads(v)) for k, v in rows if k == "report"]
        cat = cls(db_path, Path(meta["root"]), profiles, reports)
        cat.meta = meta
        return cat

    @classmethod
    def open_or_build(cls, tables_dir: str | Path, db_path: str | Path | None = None) -> Catalog:
        """Reuse the catalog when the folder has not changed since it was built; rebuild it otherwise."""
        root = Path(tables_dir)
        if not root.is_dir():
            raise UserError(f"tables folder not found: {root}")
        db_path = Path(db_path) if db_path else default_db_path(root)
        if db_path.is_file():
            try:
                cat = cls.open(db_path)
                if cat.meta.get("version") == CATALOG_VERSION and cat.meta.get("fingerprint") == fingerprint(root) \
                        and cat.meta.get("root") == str(root.resolve()):
                    return cat
            except (UserError, StopIteration, KeyError, json.JSONDecodeError, TypeError):
                pass
        return cls.build(root, db_path)

    # -- data access ------------------------------------------------------------------------------------------
    def connection(self):
        import duckdb

        if self._con is None:
            self._con = duckdb.connect(str(self.db_path), read_only=True)
        return self._con

    def frame(self, table_id: str):
        """The cleaned table as a pandas DataFrame."""
        p = self.get(table_id)
        return self.connection().execute(f'SELECT * FROM "{p.sql_name}"').df()

    def sql(self, query: str):
        return self.connection().execute(query).df()

    def get(self, table_id: str) -> TableProfile:
        if table_id not in self.by_id:
            raise UserError(f"no table '{table_id}' in the catalog at {self.db_path}")
        return self.by_id[table_id]

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- search -----------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, *, embed=None, weight: float = 0.5,
               expand: bool = True) -> list[tuple[TableProfile, float]]:
        """Tables ranked by BM25 over their descriptions, plus a bonus for entities the query names.

        With ``expand`` (the default) the query also counts, at lower weights, the words WordNet relates to its
        own (see ``concepts.py``), so a question can find a table that describes itself in other words; and a
        question word counts, at ``BROADER_WEIGHT``, where a table's words are kinds of it (a question about
        rodents finds a table about rats, one about conifers a table about spruce trees) or where the lexicon
        relates it to a compound term of the table's titles ("inflation" to a "consumer price index", see
        ``concepts.compound_relatives``). Number words count as
        the digits documentation writes ("twelve children" finds "families of size 12").

        With ``embed`` (texts -> vectors, see ``embeddings.py``) the BM25 score is blended with the cosine
        similarity between the query and each table's title and description.
        """
        query = number_words_as_digits(query)
        terms = tokenize(query)
        if expand and concepts_available():
            if self._broader is None:
                self._broader = BM25([broader_text(p.search_text) + compound_text(_head_text(p)) + covered_years(p)
                                      for p in self.profiles])
            concepts = [self._with_word_family(c) for c in query_concepts(query)]
            scores = self._index.concept_scores(concepts, broader=self._broader, broader_weight=BROADER_WEIGHT)
        else:
            scores = self._index.scores(terms)
        if embed is not None:
            from lyceum.research.embeddings import cosine, hybrid

            if getattr(self, "_vectors", None) is None or self._embed_fn is not embed:
                self._vectors = embed([f"{p.dataset_title}. {p.title}. {p.description[:500]}" for p in self.profiles])
                self._embed_fn = embed
            q = embed([query])[0]
            scores = [s * 10 for s in hybrid(scores, [cosine(q, v) for v in self._vectors], weight)]
        ranked = []
        for p, s in zip(self.profiles, scores):
            named = matched_entities(query, p.entities)
            bonus = 1.5 * len(named) if named else 0.0
            if s + bonus > 0:
                ranked.append((p, s + bonus))
        ranked.sort(key=lambda x: -x[1])
        return ranked[:k]

    def _with_word_family(self, concept: dict[str, float]) -> dict[str, float]:
        """A concept plus the indexed words of the same family as its own word, sharing its first six letters
        or more ("transport" / "transportation", "immigrant" / "immigration"), at FAMILY_WEIGHT."""
        if not hasattr(self, "_by_prefix"):
            self._by_prefix: dict[str, list[str]] = {}
            for term in self._index.idf:
                if len(term) >= 6 and term.isalpha():
                    self._by_prefix.setdefault(term[:6], []).append(term)
        out = dict(concept)
        # A related word's family counts too, below it ("inhabitant" -> "populate" -> "population").
        for own, w in [(t, w) for t, w in concept.items() if w >= RELATED_FAMILY_MIN and len(t) >= 6 and t.isalpha()]:
            for term in self._by_prefix.get(own[:6], []):
                shared = len(os.path.commonprefix([own, term]))
                if term != own and shared >= max(6, min(len(own), len(term)) - 3) and _same_family(own, term, shared):
                    out[term] = max(out.get(term, 0.0), FAMILY_WEIGHT * min(w, 1.0))
        return out

    def select(self, question: str, *, max_tables: int = 3, embed=None) -> list[TableProfile]:
        """The tables a rule-based analysis should use; see ``lyceum.research.selection``."""
        return select_tables(self, question, max_tables=max_tables, embed=embed)


_YEAR = re.compile(r"(1[5-9]|20)\d\d")


# Endings that make one word of a family from another ("transport" -> "transportation", "immigrant" ->
# "immigration"); what else follows a shared beginning makes another word ("district" / "distribution").
_FAMILY_ENDINGS = frozenset([
    "", "ation", "ition", "tion", "sion", "ion", "ional", "al", "ally", "ly", "ity", "ive", "ively", "ivity", "ment",
    "ments", "ness", "er", "ers", "or", "ors", "ist", "ists", "ism", "ic", "ical", "ics", "ant", "ants", "ent", "ents",
    "ance", "ence", "ancy", "ency", "ary", "ory", "ous", "able", "ible", "ian", "ial", "tial", "ential", "ure", "y",
    "e", "s", "es", "ate", "at", "ative", "iz", "ization", "ing", "ed"])


def _same_family(a: str, b: str, shared: int) -> bool:
    """Whether two stems sharing their first ``shared`` letters are one word family: each goes on from there by
    at most a derivational ending."""
    rest_a, rest_b = a[shared:], b[shared:]
    # The shorter may also end in a letter or two of its own ("immigra-nt" / "immigra-tion").
    return (rest_a in _FAMILY_ENDINGS or len(rest_a) <= 2) and rest_b in _FAMILY_ENDINGS or \
        (len(rest_b) <= 2 and rest_a in _FAMILY_ENDINGS)


def _head_text(p: TableProfile) -> str:
    """What a table says it is, in few words: its titles and column descriptions (not a long README)."""
    return " . ".join(_unique([p.dataset_title, p.title, *(c.description for c in p.columns)]))


def covered_years(p: TableProfile) -> list[str]:
    """The years a table's time column spans: a question about 1990 is about every table that covers 1990, not
    only those whose description happens to mention it."""
    try:
        start, end = int(str(p.time_start)[:4]), int(str(p.time_end)[:4])
    except (TypeError, ValueError):
        return []
    return [str(y) for y in range(start, end + 1)] if 0 <= end - start <= 500 else []


def _profile_from_dict(d: dict[str, Any]) -> TableProfile:
    d = dict(d)
    d["columns"] = [ColumnProfile(**c) for c in d.get("columns", [])]
    return TableProfile(**d)


# ---------------------------------------------------------------------------------------------------------------
# Entities named in a question


COUNTRY_ALIASES = {"US": "United States", "U.S.": "United States", "USA": "United States",
                   "America": "United States", "UK": "United Kingdom", "U.K.": "United Kingdom",
                   "Britain": "United Kingdom", "EU": "European Union"}
# Countries known by several names: a question may use one and a table another ("Turkey" / "Turkiye").
_NAME_VARIANTS = [("Turkey", "Turkiye", "Türkiye"), ("South Korea", "Korea", "Korea, Rep."),
                  ("Russia", "Russian Federation"), ("Czech Republic", "Czechia"), ("Iran", "Iran, Islamic Rep."),
                  ("Egypt", "Egypt, Arab Rep."), ("Vietnam", "Viet Nam"), ("Hong Kong", "Hong Kong SAR",
                  "Hong Kong SAR, China"), ("Slovakia", "Slovak Republic"), ("Venezuela", "Venezuela, RB"),
                  ("Syria", "Syrian Arab Republic"), ("Laos", "Lao PDR"), ("Kyrgyzstan", "Kyrgyz Republic")]


def matched_entities(question: str, entities: list[str]) -> list[str]:
    """Entity values the question names, in the order it names them (whole words, common aliases)."""
    if not entities:
        return []
    text = question
    for short, full in COUNTRY_ALIASES.items():
        text = re.sub(rf"(?<![A-Za-z]){re.escape(short)}(?![A-Za-z])", full, text)
    for names in _NAME_VARIANTS:
        if any(re.search(rf"(?<![A-Za-z]){re.escape(n)}(?![A-Za-z])", question) for n in names):
            text += " " + " ; ".join(names)
    # "Japanese", "Chinese", "German": an adjective of a country names the country (WordNet's pertainym).
    from lyceum.research.concepts import pertainyms

    for word in set(re.findall(r"\b[A-Z][a-z]{3,}\b", text)):
        names = sorted(pertainyms(word))
        if names:
            text += " " + " ".join(n.title() for n in names)
    low = " " + re.sub(r"[^a-z0-9&]+", " ", text.lower()) + " "
    found = []
    for e in entities:
        key = re.sub(r"[^a-z0-9&]+", " ", e.lower()).strip()
        if len(key) < 3 or key in STOPWORDS:
            continue
        pos = low.find(f" {key} ")
        if pos < 0 and " " in key:  # "South African", "Sri Lankan", "South Korean": the people's adjective
            pos = next((i for i in (low.find(f" {key}{end} ") for end in ("n", "an", "ian", "ese")) if i >= 0), -1)
        if pos < 0 and len(key) >= 6:  # one and many: "semiconductor companies" names "Semiconductors"
            alts = [key[:-3] + "y", key[:-1]] if key.endswith("ies") else [key[:-1]] if key.endswith("s") else \
                [key[:-1] + "ies", key + "s"] if key.endswith("y") else [key + "s"]
            pos = next((i for i in (low.find(f" {a} ") for a in alts) if i >= 0), -1)
        if pos >= 0:
            found.append((pos, -len(key), e))
    found.sort()
    # Drop entities inside a longer match ("Kingdom" inside "United Kingdom").
    out, spans = [], []
    for pos, neg_len, e in found:
        end = pos - neg_len
        if any(s <= pos and end <= t for s, t in spans):
            continue
        spans.append((pos, end))
        if any(e in names and set(names) & set(out) for names in _NAME_VARIANTS):
            continue  # one country under two of its names: the first found is enough
        out.append(e)
    return out
