# Marketing Strategy Platform — every entry point a newcomer needs.
# `make demo` and `make test` install what is missing (.venv from requirements/lock.txt), check
# Java for Spark, start the services the tests need, then run. Nothing has to be installed by hand
# beyond Python 3.11 and Java 17+.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432

export MSP_HOME := $(CURDIR)
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow
export PYTHONDONTWRITEBYTECODE := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help demo test test-unit bench lint format clean distclean lock venv java postgres browser ui stack-up stack-down stack-status

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(STAMP)  ## create or refresh .venv from the lock file

$(STAMP): requirements/lock.txt setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found. Install Python 3.11 (e.g. 'apt-get install python3.11 python3.11-venv' or pyenv), or run 'make PYTHON=/path/to/python3.11 ...'." >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { echo "error: $(PYTHON) is $$($(PYTHON) --version); the lock file is for Python 3.11." >&2; exit 1; }
	@echo "==> installing the pinned environment into $(VENV) (first time: a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@# compiled at install: otherwise the first demo (or test run) compiles TensorFlow's, Airflow's and MLflow's modules
	@$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes requirements/lock.txt
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

java:  ## check that Java 17+ is installed (Spark needs it)
	@command -v java >/dev/null || { echo "error: java not found; Spark needs Java 17 or newer. Install it with 'apt-get install -y openjdk-17-jre-headless' (Debian/Ubuntu) or from https://adoptium.net, then rerun." >&2; exit 1; }
	@v=$$(java -version 2>&1 | awk -F'"' '/version/ {print $$2}' | awk -F. '{print ($$1 == 1 ? $$2 : $$1)}'); \
	  [ "$${v:-0}" -ge 17 ] || { echo "error: Java $$v found; Spark 4 needs Java 17 or newer ('apt-get install -y openjdk-17-jre-headless')." >&2; exit 1; }

postgres:  ## make sure the local PostgreSQL answers on $(PG_HOST):$(PG_PORT) (starts the Debian cluster if needed)
	@if command -v pg_isready >/dev/null && pg_isready -q -h $(PG_HOST) -p $(PG_PORT); then exit 0; fi; \
	 if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then \
	   echo "==> starting PostgreSQL"; \
	   pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -n 1) main start || true; \
	   for i in $$(seq 1 30); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && exit 0; sleep 1; done; \
	 fi; \
	 echo "note: no PostgreSQL on $(PG_HOST):$(PG_PORT); tests that need it start a private server themselves (initdb) or fail." >&2

demo: venv java  ## run the whole pipeline end to end on embedded defaults
	@$(BIN)/msp demo

ui: venv  ## serve the Airflow UI (:8080) and the MLflow UI (:5000) on 127.0.0.1 for the demo's runs and models
	@$(BIN)/msp ui

browser:  ## install Debian's Chromium and ChromeDriver if missing (the stack-mode UI test drives them headless)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	 if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then SUDO=; \
	 elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	 else echo "note: install chromium and chromium-driver (Debian/Ubuntu: apt-get install chromium chromium-driver); the stack-mode UI test needs them and fails in CI without them" >&2; exit 0; fi; \
	 echo "==> installing chromium and chromium-driver (apt-get; first time: a minute or two)"; \
	 export DEBIAN_FRONTEND=noninteractive; \
	 $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	   { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }

stack-up: venv java postgres  ## start the production-like stack on loopback: Airflow + MLflow on PostgreSQL, Spark master + worker
	@$(BIN)/msp stack up

stack-down: venv  ## stop every stack service
	@$(BIN)/msp stack down

stack-status: venv  ## each stack service's process and health (exit 1 if any is down)
	@$(BIN)/msp stack status

test: venv java postgres browser  ## run the whole test suite (unit, integration, end to end)
	@$(BIN)/python -m pytest

test-unit: venv java  ## only the fast unit tests
	@$(BIN)/python -m pytest tests/unit

bench: venv java postgres  ## run every benchmark (about 1.7 h, the demo included; runs the demo first if its state is missing); writes docs/BENCHMARKS.md and var/bench/results.json
	@$(BIN)/python -c 'from pathlib import Path; from tests.bench.scoring import demo_state; demo_state(Path("var"))' 2>/dev/null \
	  || { echo "==> the scoring benchmark reads the demo's shop and models: running make demo first"; $(BIN)/msp demo; }
	@$(BIN)/python -m tests.bench.run

lint: venv  ## ruff (including the Airflow 3 rules) and the format check
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

format: venv  ## apply ruff's formatter and safe fixes
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

lock: venv  ## regenerate requirements/lock.txt from requirements/requirements.in
	@$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	  --override requirements/overrides.txt requirements/requirements.in -o requirements/lock.txt
	@echo "requirements/lock.txt regenerated; run 'make venv' to install it"

clean:  ## remove generated state (var/: lake, truth, Airflow/MLflow stores, warehouse) and caches
	rm -rf var .pytest_cache .ruff_cache build dist *.egg-info tests/artifacts
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean  ## also remove the virtual environment
	rm -rf $(VENV)
