# The two entry points a fresh machine needs: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0

.PHONY: setup demo test check contracts lint types bench clean

$(BIN)/ftod: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first: a bare `torch` requirement on a machine without it pulls a CUDA build.
	$(BIN)/pip install "$(TORCH_PIN)"
	$(BIN)/pip install -e '.[dev]'
	touch $(BIN)/ftod

setup: $(BIN)/ftod

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/ftod demo

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -n 2 -q

lint: setup
	$(BIN)/ruff check core store tui tests bench
	$(BIN)/ruff format --check core store tui tests bench

types: setup
	$(BIN)/mypy

# Import contracts: no cycle between files (lazy and type-only imports included) and
# imports only tui → core → store.
contracts: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q tests/test_import_graph.py tests/test_layers.py

check: lint types contracts test

bench: setup
	$(BIN)/pip install -e '.[bench]'
	$(BIN)/python bench/data_check.py --rows 1000000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
