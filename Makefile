# Two commands do all set-up on a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint bench clean browser sandbox docs-numbers docs-check

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned, so nothing else pulls a CUDA build from the registry.
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[all,dev]" $(TORCH)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/lyceum distill demo

# The demo's and the lab's numbers in README.md and docs/: run the current code (the demo over 5 seeds, then
# `lab reproduce --seeds 3`: hours on 2 cores; finished seeds are kept on a rerun), keep the numbers in
# docs/numbers/*.json, rewrite the marked blocks of the docs from them.
docs-numbers: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python tools/docs_numbers.py run
	$(BIN)/python tools/docs_numbers.py collect
	$(BIN)/python tools/docs_numbers.py render

# the docs' marked blocks match docs/numbers/*.json (fast; the tests check it too)
docs-check: $(STAMP)
	$(BIN)/python tools/docs_numbers.py check

test: $(STAMP) browser sandbox
	$(BIN)/python -m pytest -q

# The HTML-report tests render in headless Chromium. Install it from the system package manager when we can
# (root on Debian, as in CI); the tests skip with a clear message where it is impossible.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the HTML rendering tests will be skipped"; }

# Generated analysis code runs under bubblewrap (docs/research.md, "The sandbox: threat model"). Installed the
# same way; without it the sandbox tests skip and `research run` refuses unless given --unsafe-no-sandbox.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
	  || echo "bubblewrap not installed: the sandbox tests will be skipped"; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]" $(TORCH)
	$(BIN)/python benchmarks/opd_vs_trl.py

clean:
	rm -rf $(VENV) runs
