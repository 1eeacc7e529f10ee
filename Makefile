# Run `make` or `make help` to list the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: help install constraints postgres pgbouncer node browser dev test lint format bench bench-quick template validate clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml platform/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,local]' -e ./platform
	touch $@

install: $(VENV)/.installed ## Create the virtualenv and install the project with its dev tools

constraints: ## Upgrade the virtualenv within pyproject.toml's ranges and record the versions in constraints.txt
	$(PY) -m pip install -q -U -e '.[dev,local]' -e ./platform
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | sort; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

postgres: ## Install the PostgreSQL server from Debian packages if it is missing
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  echo "installing postgresql"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

pgbouncer: ## Install PgBouncer from Debian packages if it is missing (the connection-pooling tests)
	@test -x /usr/sbin/pgbouncer || command -v pgbouncer >/dev/null || { \
	  echo "installing pgbouncer"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }

node: ## Install Node.js and npm from Debian packages if missing (pg-boss, for the conformance suite)
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "installing nodejs and npm"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

browser: ## Install Chromium from Debian packages if it is missing (the dashboard's browser tests)
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

dev: install postgres ## Run the system locally on embedded defaults (ARGS="--once" for one demo round)
	$(PY) -m local.dev $(ARGS)

test: install postgres pgbouncer node browser ## Run the whole test suite against a real, throwaway Postgres (and Chromium)
	REQUIRE_BROWSER=1 $(PY) -m pytest $(ARGS)

lint: install ## ruff, mypy and the import contracts of the layers (pyproject.toml)
	$(VENV)/bin/ruff check shared platform tests bench functions
	$(VENV)/bin/ruff format --check shared platform tests bench functions
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install ## Format and auto-fix the code
	$(VENV)/bin/ruff format shared platform tests bench functions
	$(VENV)/bin/ruff check --fix shared platform tests bench functions

bench: install postgres ## Benchmarks against a raw-SQL baseline (results in bench/results/)
	$(PY) -m bench $(ARGS)

bench-quick: install postgres ## The benchmarks with small counts (about a minute)
	$(PY) -m bench --quick $(ARGS)

template: install ## Regenerate template.yaml from the platform's job types (JOBS_PLATFORM, default pods.jobs)
	$(PY) -m deploy.template

SAM_VENV ?= .venv-sam
# sam build needs the Lambda runtime's Python (3.12) on PATH. pyenv keeps one here;
# its shim is no use (it answers for the global version only), so look past it.
PY312 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null))
PY312_DIR := $(if $(PY312),$(dir $(PY312)))

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli cfn-lint
	touch $@

validate: $(SAM_VENV)/.installed ## cfn-lint, sam validate --lint and sam build (SAM in its own virtualenv)
	$(SAM_VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --region eu-west-1
	@test -n "$(PY312_DIR)" || { echo "sam build needs python3.12 on PATH (e.g. pyenv install 3.12)"; exit 1; }
	PATH="$(PY312_DIR):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build --build-dir .aws-sam/build --region eu-west-1

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .mypy_cache .ruff_cache
