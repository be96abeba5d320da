"""Render a finished report: ``report.md`` beside its ``figures/``, and a self-contained ``report.html``.

The HTML embeds every figure as a base64 data URL, styles the tables, links each citation ``[n]`` to its
reference, and carries each figure's and table's provenance (source tables, method, code) in a collapsible
note, so the one file can be mailed or archived and still renders.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from lyceum.research.records import Provenance
from lyceum.research.writer import FinalReport

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 52rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.55; color: #1f2328; }
h1 { font-size: 1.7rem; border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
blockquote { margin: 1rem 0; padding: .5rem 1rem; background: #fff8c5; border-left: 4px solid #d4a72c; }
img { max-width: 100%; height: auto; display: block; margin: 1rem auto .3rem; border: 1px solid #eaeef2; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
em { color: #57606a; }
a.cite { text-decoration: none; }
details { font-size: .85rem; color: #57606a; margin: .2rem 0 1rem; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; }
.unverified { background: #ffebe9; }
"""


def write_report(final: FinalReport, out_dir: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``provenance.json`` into ``out_dir`` (figures already there)."""
    out_dir = Path(out_dir)
    md_path = out_dir / "report.md"
    md_path.write_text(final.markdown, encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(final, out_dir), encoding="utf-8")
    prov_path = out_dir / "provenance.json"
    prov_path.write_text(json.dumps(provenance_record(final), indent=2, default=str), encoding="utf-8")
    return {"markdown": md_path, "html": html_path, "provenance": prov_path}


def _prov_dict(p: Provenance) -> dict:
    return {"tables": p.tables, "method": p.method, "code": p.code, "numbers": p.numbers, "stdout": p.stdout}


def provenance_record(final: FinalReport) -> dict:
    return {
        "mode": final.mode,
        "figures": [{"number": n, "file": f"figures/{f.path.name}", "caption": f.caption,
                     **_prov_dict(f.provenance)} for n, f in final.figures],
        "tables": [{"number": n, "caption": t.caption, "markdown": t.markdown, **_prov_dict(t.provenance)}
                   for n, t in final.tables],
        "references": [{"number": n, "key": s.key, "kind": s.kind, "title": s.title, "locator": s.locator}
                       for n, s in final.references],
        "unsupported_numbers": final.unsupported,
        "checked_numbers": final.checked_numbers,
    }


def render_html(final: FinalReport, out_dir: Path) -> str:
    import markdown

    body = markdown.markdown(final.markdown, extensions=["tables", "sane_lists"], output_format="html")
    body = _embed_images(body, Path(out_dir))
    body = _link_citations(body, len(final.references))
    body = _add_provenance(body, final)
    body = body.replace("(unverified)", '<span class="unverified">(unverified)</span>')
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"lyceum research ({html.escape(final.mode)})\">\n"
            f"<title>{html.escape(final.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _embed_images(body: str, out_dir: Path) -> str:
    def embed(m: re.Match) -> str:
        src = html.unescape(m.group(2))
        path = (out_dir / src).resolve()
        if src.startswith("data:") or not path.is_file():
            return m.group(0)
        mime = "image/svg+xml" if path.suffix == ".svg" else "image/jpeg" if path.suffix in (".jpg", ".jpeg") \
            else "image/png"
        data = base64.b64encode(path.read_bytes()).decode()
        return f'{m.group(1)}data:{mime};base64,{data}{m.group(3)}'

    return re.sub(r'(<img[^>]*?src=")([^"]+)(")', embed, body)


def _link_citations(body: str, n_refs: int) -> str:
    # The references list is the last <ol>: give its items anchors, link every [n] in the text to them.
    idx = body.rfind("<h2>References</h2>")
    if idx < 0:
        return body
    head, tail = body[:idx], body[idx:]
    counter = iter(range(1, n_refs + 1))
    tail = re.sub(r"<li>", lambda m: f'<li id="ref-{next(counter, 0)}">', tail, count=n_refs)

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        return f'<a class="cite" href="#ref-{n}">[{n}]</a>' if 1 <= n <= n_refs else m.group(0)

    head = re.sub(r"\[(\d+)\](?!\()", link, head)
    return head + tail


def _add_provenance(body: str, final: FinalReport) -> str:
    """A collapsible note after each figure and table caption: which tables, which method, which code."""
    def note(kind: str, n: int, p: Provenance) -> str:
        parts = [f"<details><summary>Provenance of {kind} {n}</summary>",
                 (f"<p>Source tables: {', '.join(html.escape(t) for t in p.tables) or 'none'}. "
                  f"Method: {html.escape(p.method)}.</p>")]
        if p.code:
            parts.append(f"<pre><code>{html.escape(p.code)}</code></pre>")
        parts.append("</details>")
        return "".join(parts)

    for kind, items in (("Figure", final.figures), ("Table", final.tables)):
        for n, item in items:
            extra = note(kind, n, item.provenance)
            body = re.sub(rf"(<p><em>{kind} {n}:.*?</em></p>)", lambda m, extra=extra: m.group(1) + extra, body,
                          count=1, flags=re.DOTALL)
    return body
