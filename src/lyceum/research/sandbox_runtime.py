"""What generated analysis code can import inside the sandbox, as ``lyceum_runtime``.

This file is copied into the sandbox next to the runner; it needs only pandas. It hands the code the tables
it may use (read-only Parquet copies made by the analyzer), records which ones it loaded (provenance), and
gives it one way to publish a table and named numbers:

    from lyceum_runtime import load_table, save_table, emit, FIGURE
    df = load_table("oil-prices/data/brent-daily.csv")
    ...; plt.savefig(FIGURE)
    save_table(summary_df, "Annual average Brent price")
    emit("brent_2008_mean", 96.94)
"""

import json
import math
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_CONFIG = os.path.join(_HERE, "tables.json")
_PATHS = {}
if os.path.exists(_CONFIG):
    with open(_CONFIG) as _f:
        _PATHS = json.load(_f)
TABLES = sorted(_PATHS)
FIGURE = "figure.png"
_loaded = []
_numbers = {}


def _dump(name, obj):
    with open(name, "w") as f:
        json.dump(obj, f, indent=1, default=str)


def load_table(table_id):
    """The table as a pandas DataFrame (dates parsed, numbers typed, as profiled)."""
    import pandas as pd

    if table_id not in _PATHS:
        raise KeyError(f"unknown table {table_id!r}; the tables you may load are: {', '.join(TABLES)}")
    if table_id not in _loaded:
        _loaded.append(table_id)
        _dump("loaded_tables.json", _loaded)
    return pd.read_parquet(_PATHS[table_id])


def _cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        if v != 0 and abs(v) < 1:
            return f"{v:.3g}"
        return f"{v:,.2f}"
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d")
    return str(v).replace("|", "\\|")


def save_table(df, caption=""):
    """Publish a result table (at most 40 rows are kept) with its caption."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(df)
    df = df.head(40)
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else ":---" for c in df.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    with open("table.md", "w") as f:
        f.write("\n".join([header, rule, *rows]) + "\n")
    _dump("table.json", {"caption": str(caption)})
    for row in df.itertuples(index=False):
        for v in row:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v)):
                _numbers.setdefault(f"table value {len(_numbers)}", float(v))
    _dump("numbers.json", _numbers)


def emit(name, value):
    """Record a named number the analysis found (it backs the numbers the writer may state)."""
    _numbers[str(name)] = float(value)
    _dump("numbers.json", _numbers)
    print(f"{name} = {value}")
