# The two commands a user needs: `make demo` and `make test`. Each sets up the venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-unit test-integration test-slow lint typecheck bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev tools

demo: $(STAMP) ## embedded broker + service + synthetic market; alerts printed live (Ctrl+C stops)
	$(BIN)/alerting demo $(ARGS)

test: $(STAMP) ## unit and integration tests (integration uses a real Kafka-protocol broker)
	$(BIN)/pytest -q

test-unit: $(STAMP) ## unit tests only (no broker)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP) ## integration tests only
	$(BIN)/pytest -q tests/integration

test-slow: $(STAMP) ## slow suites (soak, long runs)
	$(BIN)/pytest -q -m slow

lint: $(STAMP) ## ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

bench: $(STAMP) ## throughput of `alerting run` on the embedded broker
	$(BIN)/python benchmarks/bench_run.py

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
