"""The numbers in README.md and docs/ are written from committed run artefacts (docs/numbers/*.json) by
tools/docs_numbers.py, never by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("docs_numbers", ROOT / "tools" / "docs_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_marked_block_in_the_docs_is_what_the_artefacts_give(capsys):
    assert _tool().render(check=True) == 0, capsys.readouterr().out


def test_render_rewrites_only_the_inside_of_a_marked_block():
    tool = _tool()
    text = "before\n<!-- numbers:demo-table -->\nhand-typed 79.0%\n<!-- /numbers -->\nafter\n"
    out = tool.render_text(text, {"demo-table": "| a | b | c |\n"})
    assert out == "before\n<!-- numbers:demo-table -->\n| a | b | c |\n<!-- /numbers -->\nafter\n"
    assert tool.render_text(text, {}) == text  # numbers not collected yet: the block stays


def test_the_demo_table_in_the_docs_is_seed_0_of_the_artefact():
    demo = json.loads((ROOT / "docs" / "numbers" / "demo.json").read_text())
    text = (ROOT / "docs" / "distill.md").read_text()
    for label, before, after in demo["seeds"]["0"]["table"]:
        assert f"| {label} | {before} | {after} |" in text
