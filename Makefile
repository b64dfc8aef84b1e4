# One entry point for humans and CI. Every target sets up what it needs, and no more:
# `make serve` installs only what serving needs; `make test` adds the test tools; `make bench`
# adds the engines it compares against.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install test lint bench bench-quick serve check fmt clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras; each is redone when pyproject.toml changes.
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-serve

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-serve

install: $(VENV)/.installed-serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

test: $(VENV)/.installed-test lint
	$(BIN)/regua check policies
	$(BIN)/regua fmt --check policies
	$(BIN)/regua test --min-coverage 100 policies
	$(BIN)/pytest

# Local development server: bundled policies, embedded SQLite (var/regua.db), sandbox connectors.
serve: $(VENV)/.installed-serve
	$(BIN)/regua serve --sandbox --host 127.0.0.1 --port 8000 --db var/regua.db --policies policies

# bench_quick first: one PASS/MISS line per issue-14 target (in process, compile, CLI, HTTP); its
# exit status does not stop the longer benchmarks after it (the `-`).
bench: $(VENV)/.installed-bench
	-$(BIN)/python benchmarks/bench_quick.py
	$(BIN)/python benchmarks/bench_policy.py
	$(BIN)/python benchmarks/bench_compile_phases.py
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_collection.py
	$(BIN)/python benchmarks/bench_monitoring.py
	$(BIN)/python benchmarks/bench_editor.py
	$(BIN)/python benchmarks/bench_lab.py
	$(BIN)/python benchmarks/bench_console.py
	$(BIN)/python benchmarks/bench_postgres.py
	$(BIN)/python benchmarks/bench_kpis.py
	$(BIN)/python benchmarks/bench_experiments.py

# Regression gate for the performance targets (under a minute; not part of `make test`): one
# PASS/MISS line per target, exit 1 on a miss beyond its noise margin (benchmarks/bench_quick.py).
bench-quick: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_quick.py

check: $(VENV)/.installed-serve
	$(BIN)/regua check policies

fmt: $(VENV)/.installed-serve
	$(BIN)/regua fmt policies

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
