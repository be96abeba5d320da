"""Unstructured knowledge: a local folder of documents (markdown, text, HTML, PDF) searched by BM25 over chunks.

Search goes through the ``SearchProvider`` protocol, so a web search (or any other index) can take the local
folder's place: write a class with ``search(query, k) -> list[Note]`` and pass it as
``--search-provider mypackage.module:make_provider`` (a callable returning the provider, or the class itself).

    docs = LocalDocuments("notes/")
    for note in docs.search("oil price shock 2008", k=3): print(note.source_id, note.text[:80])
"""

from __future__ import annotations

import html
import importlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Protocol, runtime_checkable

from lyceum.errors import UserError
from lyceum.research.bm25 import BM25, tokenize
from lyceum.research.records import Note

DOC_SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf"}


@runtime_checkable
class SearchProvider(Protocol):
    """Anything that turns a query into passages with their sources."""

    name: str

    def search(self, query: str, k: int = 5) -> list[Note]: ...


@dataclass
class Chunk:
    doc_id: str  # path relative to the folder
    title: str
    text: str
    index: int


class _TextOfHTML(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "noscript", "nav", "footer"):
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag in ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section", "article"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "noscript", "nav", "footer") and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def read_document(path: Path) -> tuple[str, str]:
    """(title, plain text) of one document; raises ValueError with a reason when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        try:
            from pypdf import PdfReader

            reader = PdfReader(str(path))
            text = "\n".join(page.extract_text() or "" for page in reader.pages)
            title = str((reader.metadata or {}).get("/Title") or "") if reader.metadata else ""
        except Exception as e:
            raise ValueError(f"not a readable PDF ({type(e).__name__})") from e
        if not text.strip():
            raise ValueError("the PDF has no extractable text (scanned pages need OCR)")
        return title or path.stem, text
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    if suffix in (".html", ".htm"):
        parser = _TextOfHTML()
        parser.feed(text)
        body = html.unescape("".join(parser.parts))
        return (parser.title.strip() or path.stem), re.sub(r"\n\s*\n+", "\n\n", body).strip()
    heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    if suffix in (".md", ".markdown"):
        text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images
        text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links keep their text
    return (heading.group(1).strip() if heading else path.stem), text


def chunk_text(text: str, *, words: int = 160, overlap: int = 40) -> list[str]:
    """Overlapping windows of about ``words`` words, cut at paragraph ends where possible."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    chunks, current = [], []
    for p in paragraphs:
        tokens = p.split()
        while tokens:
            room = words - len(current)
            current += tokens[:room]
            tokens = tokens[room:]
            if len(current) >= words:
                chunks.append(" ".join(current))
                current = current[-overlap:] if overlap else []
    if current and (not chunks or len(current) > overlap):
        chunks.append(" ".join(current))
    return chunks


class LocalDocuments:
    """A folder of documents, chunked and indexed with BM25 in memory."""

    name = "local"

    def __init__(self, folder: str | Path, *, words: int = 160, overlap: int = 40):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UserError(f"documents folder not found: {self.folder}")
        self.chunks: list[Chunk] = []
        self.problems: dict[str, str] = {}
        self.titles: dict[str, str] = {}
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES):
            rel = path.relative_to(self.folder).as_posix()
            try:
                title, text = read_document(path)
            except (ValueError, OSError) as e:
                self.problems[rel] = str(e)
                continue
            self.titles[rel] = title
            for i, piece in enumerate(chunk_text(text, words=words, overlap=overlap)):
                self.chunks.append(Chunk(rel, title, piece, i))
        self._index = BM25([tokenize(c.title + " " + c.text) for c in self.chunks])

    def __len__(self) -> int:
        return len(self.titles)

    def search(self, query: str, k: int = 5) -> list[Note]:
        """The ``k`` best chunks, at most two per document so one long file does not crowd out the rest."""
        out, per_doc = [], {}
        for i, score in self._index.top(tokenize(query), k=k * 4):
            c = self.chunks[i]
            if per_doc.get(c.doc_id, 0) >= 2:
                continue
            per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
            out.append(Note(text=c.text, source_id=c.doc_id, title=c.title, score=score))
            if len(out) == k:
                break
        return out


def load_provider(spec: str) -> SearchProvider:
    """Import a user's search provider from ``package.module:name`` (a class or a factory taking no arguments)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"a search provider is given as 'module:name', got '{spec}'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot load the search provider '{spec}' ({e})") from e
    provider = target() if isinstance(target, type) or not hasattr(target, "search") else target
    if not isinstance(provider, SearchProvider):
        raise UserError(f"'{spec}' does not provide a search(query, k) method and a name")
    return provider
