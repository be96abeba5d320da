"""Table retrieval on a folder of real data packages: does a natural query find the right dataset?

The queries (``retrieval_real_tables.jsonl``) use other words than the tables' titles ("inflation" for a consumer
price index, "yen" for exchange rates). A one-dataset query passes when a table of its dataset is among the top 2
results; a query naming n datasets ("US house prices vs inflation") when each is among the first n + 1 datasets the
results come from (a package's tables are near copies: monthly, annual). A dataset is its folder's name.

    python benchmarks/retrieval_real_tables.py --tables ../shared/data/tables

The catalog is built under --work (default $TMPDIR/lyceum-real-tables); nothing of the tables is written into
the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", required=True, help="the folder of data packages")
    ap.add_argument("--queries", default=str(HERE / "retrieval_real_tables.jsonl"))
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "lyceum-real-tables"))
    ap.add_argument("--out", help="write every query's ranks here as JSON")
    args = ap.parse_args(argv)

    from lyceum.research.catalog import Catalog

    catalog = Catalog.open_or_build(args.tables, Path(args.work) / "catalog.duckdb")
    queries = [json.loads(line) for line in Path(args.queries).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows, passed = [], 0
    for q in queries:
        # A dataset is named by its folder (the package's own "name" may differ).
        names = [p.id.split("/")[0] for p, _ in catalog.search(q["query"], k=10)]
        if len(q["answers"]) > 1:
            # A query about several subjects is judged by dataset (a package's tables are one source): each named
            # dataset among the first len(answers) + 1 datasets found.
            names = list(dict.fromkeys(names))
        ranks = {a: (names.index(a) + 1 if a in names else None) for a in q["answers"]}
        ok = all(r is not None and r <= (2 if len(ranks) == 1 else len(ranks) + 1) for r in ranks.values())
        passed += ok
        rows.append({"query": q["query"], "ranks": ranks, "pass": ok, "top3": names[:3]})
        shown = ", ".join(f"{a} {r or '-'}" for a, r in ranks.items())
        print(f"{'ok  ' if ok else 'MISS'} {q['query']:<40} {shown:<45} top: {', '.join(names[:3])}")
    print(json.dumps({"queries": len(rows), "passed": passed}))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
