# Two commands do all set-up on a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint bench clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]" $(TORCH)
	$(BIN)/python benchmarks/opd_vs_trl.py

clean:
	rm -rf $(VENV) runs
