# The obvious targets. Each one first makes sure .venv exists and holds
# exactly requirements.txt (created on first use, reinstalled when it changes).

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup repro test lint format ui stop server server-stop server-user sweep verify bench lock clean

help:
	@echo "make repro   set up .venv if needed, then run the pipeline (dvc repro)"
	@echo "make test    set up .venv if needed, then run the whole test suite"
	@echo "make lint    ruff check and format check"
	@echo "make ui      MLflow UI for this repository's runs, on 127.0.0.1:5000 (or PORT=...)"
	@echo "make stop    stop the warm stage processes now (they leave after 10 idle minutes)"
	@echo "make server  the team's MLflow server on PostgreSQL, with logins, on 127.0.0.1:5050 (or MLFLOW_PORT=...)"
	@echo "make server-stop  stop the server and its local PostgreSQL"
	@echo "make server-user NAME=alice  an account on the server; prints its password once"
	@echo "make sweep   run a sweep through DVC's queue (SWEEP=sweeps/noise.yaml, JOBS=2), then its summary"
	@echo "make verify  rerun the pipeline from scratch in a temporary clone; compare with dvc.lock"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make lock    refreeze requirements.txt from requirements.in"

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@echo "==> installing requirements.txt into $(VENV) (python: $(PYTHON))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

repro: setup
	@echo "==> dvc repro"
	dvc repro

test: setup
	@echo "==> pytest (slow tests included)"
	python -m pytest -n auto --dist worksteal

lint: setup
	ruff check .
	ruff format --check .

format: setup
	ruff check --fix .
	ruff format .

PORT ?= 5000
ui: setup
	python -m pipeline.tools.ui $(PORT)

stop: setup
	python -m pipeline.runtime.server stop

server: setup
	python -m pipeline.tools.team_server start

server-stop: setup
	python -m pipeline.tools.team_server stop

server-user: setup
	python -m pipeline.tools.team_server add-user "$(NAME)"

# One DVC experiment per point of the sweep file, JOBS queue workers; data/sweeps/<name>/.
SWEEP ?= sweeps/noise.yaml
JOBS ?= 2
sweep: setup
	python -m pipeline.tools.sweep run $(SWEEP) -j $(JOBS)

verify: setup
	@echo "==> rerunning the pipeline in a temporary clone and comparing with dvc.lock"
	python -m pipeline.tools.verify rerun

bench: setup
	@for script in benchmarks/bench_*.py; do module=$$(basename $$script .py); echo "==> benchmarks.$$module"; python -m benchmarks.$$module || exit 1; done

lock:
	@echo "==> resolving requirements.in in a fresh environment and freezing it to requirements.txt"
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.in
	{ echo "# Exact versions of everything make installs into .venv (pip freeze of requirements.in)."; \
	  echo "# Update: edit requirements.in, then make lock."; \
	  .lock-venv/bin/python -m pip freeze | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.txt
	rm -rf .lock-venv

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis
