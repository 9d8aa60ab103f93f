# Everything a fresh machine needs, from Python 3.11+ and make alone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install dev test lint typecheck pytest bench soak clean db-stop

$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/uv --version >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv sync --frozen --extra dev --quiet
	@touch $@

install: $(STAMP)

## make dev: the whole local stack on http://127.0.0.1:8080 (Ctrl-C stops it, database included)
dev: $(STAMP)
	$(BIN)/threativator dev

## make test: every test in parallel (PYTEST_WORKERS, 3: the tests wait on I/O as much as on the cores), with lint and type-check
## beside them, against an embedded PostgreSQL. One file: .venv/bin/pytest tests/test_money.py
PYTEST_WORKERS ?= 3
test: $(STAMP)
	@$(MAKE) --no-print-directory -j3 --output-sync=target lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/shellcheck deploy.sh
	$(BIN)/squawk sql/0*.sql

typecheck: $(STAMP)
	$(BIN)/mypy shared tests bench $$(ls functions/*/main.py 2>/dev/null)

pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

## make bench: the benchmarks; figures go to docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m bench.cold_start 10
	$(BIN)/python -m bench.detection 3
	$(BIN)/python -m bench.overhead 10
	$(BIN)/python -m bench.dispatch 10000
	$(BIN)/python -m bench.dispatch_limits 400
	$(BIN)/python -m bench.proof_hashes 200
	$(BIN)/python -m bench.grading_cost

## make soak: the reliability suite's long profile
soak: $(STAMP)
	FUZZ_EXAMPLES=500 PROPERTY_EXAMPLES=300 CRASH_TRIALS=500 $(BIN)/pytest tests/reliability

db-stop: $(STAMP)
	$(BIN)/threativator db stop

clean:
	-$(BIN)/threativator db stop
	rm -rf $(VENV) .threativator .pytest_cache .mypy_cache .ruff_cache build
