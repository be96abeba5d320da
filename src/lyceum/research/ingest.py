"""Tolerant readers for real-world tables, and the descriptions that come with them.

Public data is messy: blank lines, rows with more fields than the header, numbers written as text, sentinel
values such as -99.99 for "missing", descriptor files that name columns or files that are not there. Every
reader here keeps going where it can and records, per file, one plain sentence per thing it had to repair or
could not read, so `lyceum research index` can show the user exactly what happened.

    frame, problems = read_table(Path("data/co2-mm-mlo.csv"))
    meta = package_metadata(Path("co2-ppm"))            # datapackage.json (+ README) descriptions
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".xlsx", ".xlsm", ".parquet", ".json", ".jsonl", ".ndjson"}
_MISSING_TEXT = {"", "na", "n/a", "nan", "null", "none", "-", "--", "..", "...", "#n/a", "?"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_YEAR = re.compile(r"^(1[5-9]\d\d|20\d\d|2100)$")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})(?:-(\d{1,2}))?(?:[T ].*)?$")
_TIME_NAMES = re.compile(r"(^|[^a-z])(date|time|year|month|period|quarter|day|week)([^a-z]|$)", re.IGNORECASE)
# Values that are labels built from digits, not numbers or dates: house numbers and codes ("136A", "207a",
# "B12"), seasons and fiscal years ("1920-21", "2019/20"). One of them in a column makes it an identifier.
_ID_LIKE = re.compile(r"^(\d+[A-Za-z]{1,3}|[A-Za-z]{1,3}\d+[A-Za-z]?|\d{4}\s*[-/–]\s*\d{2})$")


@dataclass
class FieldMeta:
    name: str
    type: str = ""
    description: str = ""


@dataclass
class ResourceMeta:
    """What a descriptor says about one table file (all optional)."""

    name: str = ""
    title: str = ""
    description: str = ""
    fields: list[FieldMeta] = field(default_factory=list)
    views: list[str] = field(default_factory=list)  # titles and descriptions of charts built on this table


@dataclass
class PackageMeta:
    """A folder's descriptor: datapackage.json and/or a README, with per-file resource entries."""

    name: str = ""
    title: str = ""
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)
    resources: dict[str, ResourceMeta] = field(default_factory=dict)  # relative file path -> resource
    problems: list[str] = field(default_factory=list)


def package_metadata(folder: Path) -> PackageMeta:
    """Read ``datapackage.json`` and ``README.md`` of a dataset folder; a broken descriptor is a problem, not a crash."""
    meta = PackageMeta(name=folder.name)
    dp = folder / "datapackage.json"
    if dp.is_file():
        try:
            data = json.loads(dp.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            meta.problems.append(f"{dp.name} is not valid JSON ({e}); its descriptions were ignored")
            data = {}
        if isinstance(data, dict):
            _fill_from_datapackage(meta, data, folder)
    readme = next((p for p in (folder / "README.md", folder / "README.txt", folder / "README") if p.is_file()), None)
    if readme is not None:
        intro = readme_intro(readme.read_text(encoding="utf-8", errors="replace"))
        if intro and not meta.description:
            meta.description = intro
        elif intro and intro not in meta.description:
            meta.description = (meta.description + " " + intro).strip()
    if not meta.title:
        meta.title = folder.name.replace("-", " ").replace("_", " ")
    return meta


def _fill_from_datapackage(meta: PackageMeta, data: dict[str, Any], folder: Path) -> None:
    meta.name = str(data.get("name") or folder.name)
    meta.title = str(data.get("title") or "")
    meta.description = str(data.get("description") or "")
    if not meta.description and isinstance(data.get("readme"), str):
        meta.description = readme_intro(data["readme"])
    meta.keywords = [str(k) for k in data.get("keywords") or [] if isinstance(k, str)]
    meta.sources = [{"title": str(s.get("title") or s.get("name") or ""), "path": str(s.get("path") or "")}
                    for s in data.get("sources") or [] if isinstance(s, dict)]
    by_name: dict[str, ResourceMeta] = {}
    for r in data.get("resources") or []:
        if not isinstance(r, dict) or not isinstance(r.get("path"), str):
            continue
        fields = [FieldMeta(str(f.get("name", "")), str(f.get("type") or ""), str(f.get("description") or ""))
                  for f in (r.get("schema") or {}).get("fields") or [] if isinstance(f, dict)]
        res = ResourceMeta(name=str(r.get("name") or ""), title=str(r.get("title") or ""),
                           description=str(r.get("description") or ""), fields=fields)
        rel = r["path"].lstrip("./")
        if not (folder / rel).is_file():
            meta.problems.append(f"datapackage.json lists {rel}, which is not in the folder")
            continue
        meta.resources[rel] = res
        by_name[res.name] = res
    # Views (chart specs) carry the best human descriptions of what a table shows; attach them to tables.
    for v in data.get("views") or []:
        if not isinstance(v, dict):
            continue
        names = v.get("resources") or ([v["resourceName"]] if v.get("resourceName") else [])
        text = " ".join(str(v.get(k) or "") for k in ("title", "description")).strip()
        for n in names:
            target = by_name.get(n) or _resource_by_alias(by_name, str(n))
            if target is not None and text:
                target.views.append(text)


def _resource_by_alias(by_name: dict[str, ResourceMeta], name: str) -> ResourceMeta | None:
    """Views sometimes name a resource slightly differently ('brent-week' for 'brent-weekly')."""
    for key, res in by_name.items():
        if key.startswith(name) or name.startswith(key):
            return res
    return None


def readme_intro(text: str) -> str:
    """The descriptive part of a README: text before the first section about preparation, licence or scripts."""
    keep = []
    for line in text.splitlines():
        if re.match(r"^#+\s*(preparation|license|licence|scripts?|usage|install|development|contributing)", line, re.IGNORECASE):
            break
        if line.strip().startswith(("<", "![", "[![", "```")):
            continue
        keep.append(line.strip("# >").strip())
    return re.sub(r"\s+", " ", " ".join(keep)).strip()[:2000]


# ---------------------------------------------------------------------------------------------------------------
# Readers: every format becomes (pandas DataFrame, list of problems)


def read_table(path: Path, fields: list[FieldMeta] | None = None) -> list[tuple[str, Any, list[str]]]:
    """Read one file into one or more tables: ``[(suffix, frame, problems)]`` (several for multi-sheet workbooks).

    Raises ``ValueError`` with a one-sentence reason when the file cannot be read as a table at all.
    """
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".tab", ".txt"}:
        rows, problems = _delimited_rows(path)
        frame, more = frame_from_rows(rows, fields)
        return [("", frame, problems + more)]
    if suffix in {".xlsx", ".xlsm"}:
        return _read_workbook(path, fields)
    if suffix == ".parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as e:
            raise ValueError(f"not a readable Parquet file ({type(e).__name__})") from e
        frame, problems = clean_frame(frame, fields)
        return [("", frame, problems)]
    if suffix in {".json", ".jsonl", ".ndjson"}:
        frame, problems = _read_json(path)
        frame, more = clean_frame(frame, fields)
        return [("", frame, problems + more)]
    raise ValueError(f"unsupported file type {suffix or '(none)'}")


def _decode(raw: bytes) -> tuple[str, list[str]]:
    for enc in ("utf-8-sig", "utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return raw.decode(enc), []
        except UnicodeDecodeError:
            pass
    return raw.decode("cp1252", errors="replace"), ["the file is not UTF-8; it was read as Windows-1252"]


def _delimited_rows(path: Path) -> tuple[list[list[str]], list[str]]:
    text, problems = _decode(path.read_bytes())
    if not text.strip():
        raise ValueError("the file is empty")
    lines = [ln for ln in text.splitlines() if ln.strip()][:50]
    delimiter = _sniff_delimiter(lines, default="\t" if path.suffix.lower() in {".tsv", ".tab"} else ",")
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    return rows, problems


def _sniff_delimiter(lines: list[str], default: str) -> str:
    """The delimiter that splits the first lines into the most consistent number (> 1) of fields."""
    best, best_key = default, (0, 0)
    for d in (",", "\t", ";", "|"):
        counts = [len(next(csv.reader([ln], delimiter=d))) for ln in lines]
        if not counts or max(counts) < 2:
            continue
        mode = max(set(counts), key=counts.count)
        key = (counts.count(mode), mode) if mode > 1 else (0, 0)
        if key > best_key:
            best, best_key = d, key
    return best


def _read_workbook(path: Path, fields: list[FieldMeta] | None) -> list[tuple[str, Any, list[str]]]:
    try:
        import openpyxl
    except ImportError as e:  # pragma: no cover - declared in the research extra
        raise ValueError("reading .xlsx needs openpyxl") from e
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:
        raise ValueError(f"not a readable Excel workbook ({type(e).__name__})") from e
    out = []
    for sheet in book.worksheets:
        rows = [["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]
        if not any(any(str(v).strip() for v in r) for r in rows):
            continue
        frame, problems = frame_from_rows(rows, fields)
        out.append(("" if len(book.worksheets) == 1 else f"#{sheet.title}", frame, problems))
    book.close()
    if not out:
        raise ValueError("the workbook has no non-empty sheet")
    return out


def _read_json(path: Path):
    import pandas as pd

    text, problems = _decode(path.read_bytes())
    try:
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            records = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        else:
            records = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno})") from e
    if isinstance(records, dict):  # {"data": [...]} or {"column": [values]}
        lists = {k: v for k, v in records.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values()))):
            records = next(iter(lists.values()))
        elif lists and len({len(v) for v in lists.values()}) == 1:
            records = [dict(zip(lists, vals)) for vals in zip(*lists.values())]
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise ValueError("the JSON is not a list of records")
    return pd.json_normalize(records), problems


def frame_from_rows(rows: list[list[Any]], fields: list[FieldMeta] | None = None):
    """Rows of cells (the first non-blank row is the header) -> typed DataFrame, repairing what it can."""
    import pandas as pd

    problems: list[str] = []
    blank = sum(1 for r in rows if not any(str(c).strip() for c in r))
    rows = [list(r) for r in rows if any(str(c).strip() for c in r)]
    if blank:
        problems.append(f"skipped {blank} blank line{'s' * (blank > 1)}")
    if len(rows) < 2:
        raise ValueError("no data rows under the header")
    header = [str(c).strip() for c in rows[0]]
    while header and not header[-1] and all(len(r) < len(header) or not str(r[len(header) - 1]).strip()
                                            for r in rows[1:]):
        header.pop()  # trailing delimiter in the header only
    body = rows[1:]
    repeated = sum(1 for r in body if [str(c).strip() for c in r[: len(header)]] == header)
    if repeated:
        body = [r for r in body if [str(c).strip() for c in r[: len(header)]] != header]
        problems.append(f"dropped {repeated} repeated header row{'s' * (repeated > 1)}")
    # Note lines ("Source: ...") under a wide header: one filled cell where many are expected.
    if len(header) > 2:
        filled = [[str(c).strip() for c in r if str(c).strip()] for r in body]
        is_note = [_is_note(f, len(header)) for f in filled]
        if any(is_note):
            first = next(", ".join(f) for f, n in zip(filled, is_note) if n)
            body = [r for r, n in zip(body, is_note) if not n]
            problems.append(f"dropped {sum(is_note)} note line{'s' * (sum(is_note) > 1)} such as '{first[:40]}'")
    width = max(len(r) for r in body)
    if width > len(header):
        longer = sum(1 for r in body if len(r) > len(header))
        extra = [f"extra_{i}" for i in range(1, width - len(header) + 1)]
        problems.append(f"{longer} rows have {width - len(header)} more field(s) than the header; "
                        f"kept as {', '.join(extra)}")
        header += extra
    shorter = sum(1 for r in body if len(r) < len(header))
    if shorter:
        problems.append(f"{shorter} rows have fewer fields than the header; missing cells left empty")
    header = _unique_names(header, problems)
    body = [list(r) + [""] * (len(header) - len(r)) for r in body]
    frame = pd.DataFrame(body, columns=header, dtype=object)
    frame, more = clean_frame(frame, fields)
    return frame, problems + more


def _is_note(filled: list[str], width: int) -> bool:
    """A footnote row ("Source: ...", "Note: ...") or a sentence sitting in a mostly empty row."""
    if not filled:
        return False
    first = filled[0]
    if re.match(r"^(sources?|notes?|footnotes?|remarks?)\b\s*[:.]", first, re.IGNORECASE):
        return True
    return len(filled) <= max(1, width // 2) and len(first.split()) >= 3 and re.search(r"[A-Za-z]", first) is not None


def _unique_names(header: list[str], problems: list[str]) -> list[str]:
    out, seen = [], {}
    for i, name in enumerate(header):
        if not name:
            name = f"column_{i + 1}"
            problems.append(f"column {i + 1} has no name; called it {name}")
        if name in seen:
            seen[name] += 1
            new = f"{name}_{seen[name]}"
            problems.append(f"column name '{name}' repeats; the repeat is called {new}")
            name = new
        else:
            seen[name] = 1
        out.append(name)
    return out


def missing_sentinels(description: str) -> list[float]:
    """Values a column description declares as 'missing' ('Missing months are denoted by -99.99')."""
    found = re.findall(r"denoted by (-?\d+(?:\.\d+)?)|(-?\d+(?:\.\d+)?) (?:denotes|means|indicates) (?:no data|missing)",
                       description, re.IGNORECASE)
    return [float(a or b) for a, b in found]


def clean_frame(frame, fields: list[FieldMeta] | None = None):
    """Type each column (number, date, year, text), turn declared sentinels into missing, note what changed."""
    import pandas as pd

    problems: list[str] = []
    declared = {f.name: f for f in fields or []}
    if fields:
        absent = [f.name for f in fields if f.name not in frame.columns]
        if absent and len(absent) < len(fields):
            problems.append(f"the descriptor names column(s) {', '.join(absent)} that the file does not have")
        elif absent:
            problems.append("none of the descriptor's column names match the file's header")
    out = {}
    for name in frame.columns:
        col = frame[name]
        if col.dtype == object:
            is_text = col.map(type) == str
            if is_text.any():
                stripped = col[is_text].str.strip()
                stripped = stripped.mask(stripped.str.lower().isin(_MISSING_TEXT))
                col = col.copy()
                col[is_text] = stripped
                col = col.where(col.notna(), None)
        out[name] = _type_column(str(name), col, problems)
        meta = declared.get(str(name))
        if meta is not None and pd.api.types.is_numeric_dtype(out[name]):
            for s in missing_sentinels(meta.description):
                hits = int((out[name] == s).sum())
                if hits:
                    out[name] = out[name].mask(out[name] == s)
                    problems.append(f"column '{name}': {hits} value(s) {s:g} mean 'missing' per its description")
    frame = pd.DataFrame(out)
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty and len(empty) < len(frame.columns):
        frame = frame.drop(columns=empty)
        problems.append(f"dropped empty column(s) {', '.join(map(str, empty))}")
    return frame, problems


def _type_column(name: str, col, problems: list[str]):
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col
    if pd.api.types.is_numeric_dtype(col):
        whole = col.dropna()
        if _TIME_NAMES.search(name) and len(whole) and (whole == whole.round()).all() \
                and whole.between(1500, 2100).all():
            return col.astype("Int64")  # a typed file's year column (Parquet, Excel)
        return col.astype("float64") if not pd.api.types.is_integer_dtype(col) else col
    values = col.dropna()
    if values.empty:
        return col
    text = values.astype(str)
    if _identifier_column(text):
        return col.astype(object).where(col.notna(), None)
    # Dates first: "2020-04-20", "1958-03", and year columns named like time.
    if text.str.match(_DATE).mean() >= 0.95:
        parts = col.astype(object).where(col.notna(), "").astype(str).str.extract(_DATE)
        iso = parts[0] + "-" + parts[1].str.zfill(2) + "-" + parts[2].fillna("1").str.zfill(2)
        parsed = pd.to_datetime(iso, errors="coerce", format="%Y-%m-%d")
        bad = int(parsed.isna().sum() - col.isna().sum())
        if bad:
            problems.append(f"column '{name}': {bad} value(s) are not dates; set to missing")
        return parsed
    if text.str.contains(r"\d", regex=True).mean() < 0.9:
        return col.astype(object).where(col.notna(), None)
    numbers = pd.to_numeric(col, errors="coerce")
    retry = numbers.isna() & col.notna()
    if retry.any():  # only the odd cells ("1,234", "$5", "(12)") go through the slow path
        numbers = numbers.astype("float64")
        numbers[retry] = col[retry].map(_to_number).astype("float64")
    ok = numbers.notna().sum()
    if ok and ok >= 0.9 * len(values):
        bad = len(values) - int(ok)
        if bad:
            examples = ", ".join(repr(v) for v in values[numbers[values.index].isna()].astype(str).unique()[:3])
            problems.append(f"column '{name}': {bad} non-numeric value(s) set to missing (e.g. {examples})")
        numbers = numbers.astype("float64")
        whole = numbers.dropna()
        if _TIME_NAMES.search(name) and (whole == whole.round()).all() and text.str.match(_YEAR).mean() >= 0.95:
            return numbers.astype("Int64")
        return numbers
    return col.astype(object).where(col.notna(), None)


def _identifier_column(text) -> bool:
    """A column of mostly numbers with some digit-built labels ("136A", "1920-21") holds identifiers.

    Reading it as numbers would turn exactly those labels into missing values, so it stays text. A date that
    parses ("1958-03") is not a label; "1920-21" is, because 21 is not a month.
    """
    stripped = text.str.strip()
    labels = stripped[stripped.str.match(_ID_LIKE)]
    if labels.empty:
        return False
    seasons = labels[labels.str.match(r"^\d{4}\s*[-/–]\s*\d{2}$")]
    real_dates = seasons[seasons.str.extract(r"[-/–]\s*(\d{2})$")[0].astype(int).between(1, 12)]
    if len(real_dates) == len(labels):
        return False
    rest = stripped[~stripped.str.match(_ID_LIKE)]
    return bool(rest.empty or rest.str.match(_NUMBER).all() or rest.str.match(_DATE).all())


def _to_number(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    s = str(v).strip().replace("\u2212", "-")
    s = re.sub(r"^[$€£¥]|[$€£¥%]$", "", s).replace(" ", "")
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if s.startswith("(") and s.endswith(")"):  # accounting negatives
        s = "-" + s[1:-1]
    return float(s) if _NUMBER.match(s) else None
