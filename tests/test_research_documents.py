"""The document side: reading markdown, text, HTML and PDF, chunking, BM25 search, and plug-in providers."""

import pytest

from lyceum.errors import UserError
from lyceum.research.documents import LocalDocuments, SearchProvider, chunk_text, load_provider, read_document


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of Helvetica text, written by hand (no PDF library needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> >>"),
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "oil.md").write_text("# Oil shocks\n\nThe 2008 oil price spike ended with a crash when demand collapsed.\n\n"
                              "See [the EIA](https://www.eia.gov) for data. ![chart](x.png)\n")
    (d / "gold.html").write_text("<html><head><title>Gold notes</title><style>p {color: red}</style></head><body>"
                                 "<nav>menu</nav><p>Central banks bought gold as a reserve asset.</p>"
                                 "<script>var x = 1;</script></body></html>")
    (d / "co2.txt").write_text("Carbon dioxide at Mauna Loa keeps rising every year.")
    (d / "housing.pdf").write_bytes(minimal_pdf("Spanish house prices fell sharply after 2008."))
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return d


def test_each_format_is_read_as_plain_text(corpus):
    assert read_document(corpus / "oil.md") == (
        "Oil shocks", ("# Oil shocks\n\nThe 2008 oil price spike ended with a crash when demand collapsed.\n\n"
                       "See the EIA for data. \n"))
    title, text = read_document(corpus / "gold.html")
    assert title == "Gold notes" and text == "Central banks bought gold as a reserve asset."
    assert read_document(corpus / "housing.pdf")[1].strip() == "Spanish house prices fell sharply after 2008."


def test_search_returns_passages_with_their_sources(corpus):
    docs = LocalDocuments(corpus)
    assert len(docs) == 4
    assert list(docs.problems) == ["broken.pdf"]
    hits = docs.search("why did house prices in Spain fall", k=2)
    assert hits[0].source_id == "housing.pdf"
    assert docs.search("oil crash 2008", k=1)[0].source_id == "oil.md"
    assert isinstance(docs, SearchProvider)


def test_chunks_overlap_and_respect_the_size():
    text = "\n\n".join(" ".join(f"w{p}_{i}" for i in range(50)) for p in range(6))
    chunks = chunk_text(text, words=100, overlap=20)
    assert [len(c.split()) for c in chunks] == [100, 100, 100, 60]
    assert chunks[1].split()[:20] == chunks[0].split()[-20:]


def test_a_search_provider_can_be_plugged_in(tmp_path, monkeypatch):
    (tmp_path / "my_search.py").write_text(
        "from lyceum.research.records import Note\n"
        "class Web:\n"
        "    name = 'web'\n"
        "    def search(self, query, k=5):\n"
        "        return [Note(text='result for ' + query, source_id='https://example.org/a', title='A')]\n"
        "def make():\n    return Web()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("my_search:Web", "my_search:make"):
        provider = load_provider(spec)
        assert provider.name == "web"
        assert provider.search("oil")[0].source_id == "https://example.org/a"
    with pytest.raises(UserError, match="is given as 'module:name'"):
        load_provider("my_search")
    with pytest.raises(UserError, match="cannot load the search provider"):
        load_provider("my_search:Missing")


def test_a_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="documents folder not found"):
        LocalDocuments(tmp_path / "nope")
