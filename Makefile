# Two commands matter: `make demo` (set up + open the TUI on a demo workspace) and
# `make test` (set up + run the whole test suite). Everything else is a building block.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo

.PHONY: setup system-deps demo test bench screenshot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	bash scripts/system-deps.sh

$(DEMO)/config.toml: | $(STAMP)
	$(BIN)/zelda-tui demo init $(DEMO)

demo: setup $(DEMO)/config.toml
	$(BIN)/zelda-tui --config $(DEMO)/config.toml

test: setup system-deps
	$(BIN)/python -m pytest -n 2 -q

bench: setup
	$(BIN)/python bench/bench_qa.py
	$(BIN)/python bench/bench_mix.py

screenshot: setup
	$(BIN)/python scripts/screenshot.py docs/inventory.svg docs/mix.svg

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache snapshot_report.html
