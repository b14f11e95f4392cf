# The obvious targets. Each one first makes sure .venv exists and holds
# exactly requirements.txt (created on first use, reinstalled when it changes).

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup repro test lint format ui stop server server-stop server-user sweep verify bench lock clean

help: ## this list, read from the Makefile's own `##` comments
	@awk -F':.*## ' '/^[a-z][a-z-]*:.*## / {printf "make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed ## create .venv and install requirements.txt into it (other targets do it first)

$(VENV)/.installed: requirements.txt
	@echo "==> installing requirements.txt into $(VENV) (python: $(PYTHON))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

repro: setup ## run the pipeline (dvc repro)
	@echo "==> dvc repro"
	dvc repro

test: setup ## the whole test suite, slow tests included
	@echo "==> pytest (slow tests included)"
	python -m pytest -n auto --dist worksteal

lint: setup ## ruff check and format check
	ruff check .
	ruff format --check .

format: setup ## ruff's fixes and formatting, applied
	ruff check --fix .
	ruff format .

PORT ?= 5000
ui: setup ## MLflow UI on this repository's store, on 127.0.0.1:5000 (PORT=...)
	python -m pipeline.tools.ui $(PORT)

stop: setup ## stop this checkout's warm stage processes (they leave after 10 idle minutes)
	python -m pipeline.runtime.server stop

server: setup ## the team's MLflow server (PostgreSQL, logins) on port 5050 (MLFLOW_PORT=...)
	python -m pipeline.tools.team_server start

server-stop: setup ## stop the team's server and its local PostgreSQL
	python -m pipeline.tools.team_server stop

server-user: setup ## an account on the team's server (NAME=alice); prints its password once
	python -m pipeline.tools.team_server add-user "$(NAME)"

# One DVC experiment per point of the sweep file, JOBS queue workers; data/sweeps/<name>/.
SWEEP ?= sweeps/noise.yaml
JOBS ?= 2
sweep: setup ## a sweep through DVC's queue, then its summary (SWEEP=sweeps/noise.yaml, JOBS=2)
	python -m pipeline.tools.sweep run $(SWEEP) -j $(JOBS)

verify: setup ## rerun the pipeline from nothing in a temporary clone; compare with dvc.lock
	@echo "==> rerunning the pipeline in a temporary clone and comparing with dvc.lock"
	python -m pipeline.tools.verify rerun

bench: setup ## every benchmark in benchmarks/
	@for script in benchmarks/bench_*.py; do module=$$(basename $$script .py); echo "==> benchmarks.$$module"; python -m benchmarks.$$module || exit 1; done

lock: ## refreeze requirements.txt from requirements.in
	@echo "==> resolving requirements.in in a fresh environment and freezing it to requirements.txt"
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.in
	{ echo "# Exact versions of everything make installs into .venv (pip freeze of requirements.in)."; \
	  echo "# Update: edit requirements.in, then make lock."; \
	  .lock-venv/bin/python -m pip freeze | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.txt
	rm -rf .lock-venv

clean: ## remove the caches of pytest, ruff and hypothesis
	rm -rf .pytest_cache .ruff_cache .hypothesis
