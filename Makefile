# One entry point for humans and CI. Every target sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install test bench serve check fmt clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/regua check policies
	$(BIN)/regua fmt --check policies
	$(BIN)/regua test --min-coverage 100 policies
	$(BIN)/python -m pytest

# Local development server: bundled policies, embedded SQLite (var/regua.db), sandbox connectors.
serve: $(STAMP)
	$(BIN)/regua serve --sandbox --host 127.0.0.1 --port 8000 --db var/regua.db --policies policies

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_policy.py
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_collection.py
	$(BIN)/python benchmarks/bench_monitoring.py

check: $(STAMP)
	$(BIN)/regua check policies

fmt: $(STAMP)
	$(BIN)/regua fmt policies

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
