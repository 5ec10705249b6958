# apim-dr: the two commands are `make demo` and `make test`; everything else is a step they use.
# Both install what they need (.venv, node packages, the checkov venv) and are idempotent:
# a stamp file per environment is rebuilt only when its requirements change.
# Python requirements: edit requirements*.in (the ranges), run `make lock`; the requirements*.txt it
# writes (the whole closure, exact versions with hashes) are what gets installed, here and in Azure.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: demo test setup tools chromium lint unit e2e bench emulator lock clean help

help:
	@echo "make demo   run a backup end to end on local Azure (Azurite + APIM emulator + host stand-in)"
	@echo "make test   set up and run the whole suite (lint, types, unit, end-to-end, infra checks)"
	@echo "make lock   re-resolve requirements*.in into the pinned, hashed requirements*.txt (UPGRADE=1: newest allowed)"

# The editable install provides the `apim-dr` command. It is built with the setuptools pinned in
# requirements-dev.txt (no isolated build fetching an unpinned one); -qq hides the notice setuptools
# prints on every editable install.
$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r requirements-dev.txt
	$(PY) -m pip install $(PIP_FLAGS) -q --no-deps --no-build-isolation -e .
	@touch $@

node_modules/.stamp: package.json package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20 is needed for Azurite (npm azurite 3.35.0)"; exit 1; }
	npm ci --no-audit --no-fund --silent
	@touch $@

$(CHECKOV_VENV)/.stamp: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install $(PIP_FLAGS) --require-hashes -r requirements-checkov.txt
	@touch $@

setup: $(VENV)/.stamp node_modules/.stamp

# Pins every requirement set: the runtime one (deployed; the Flex Consumption remote build installs
# requirements.txt with pip or uv, both of which check the hashes, see docs/deploy.md), the dev one
# (held at the runtime pins by `-c requirements.txt`) and checkov's. pip-compile reads pip's own
# configuration (index, find-links) and writes none of it into the files. Deterministic: a pin that
# its .in still allows is kept, so an unchanged .in gives a byte-identical .txt; UPGRADE=1 takes the
# newest versions the ranges allow.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --newline=LF \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(if $(UPGRADE),--upgrade)
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile $(LOCK_FLAGS)

lock: $(VENV)/.stamp
	$(PIP_COMPILE) --output-file=requirements.txt requirements.in
	$(PIP_COMPILE) --output-file=requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) --output-file=requirements-checkov.txt requirements-checkov.in

tools: $(CHECKOV_VENV)/.stamp chromium

# Debian's Chromium for the status page's browser test and the demo's screenshot (Playwright drives
# it and never downloads a browser of its own). Installed only when missing and only where apt can
# install (root); otherwise the browser test skips and says why.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium (browser test of the status page)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; } \
	    >/dev/null || echo "chromium could not be installed: the browser test will be skipped"; \
	else \
	  echo "chromium is missing and apt-get is not usable here (not root): the browser test will be skipped"; \
	fi

demo: setup chromium
	$(PY) -m emulator.demo

lint: $(VENV)/.stamp
	$(PY) -m ruff check .
	$(PY) -m mypy

# Parallel workers, each with its own local Azure (Azurite, emulator, host stand-in on free ports).
# The e2e tests mostly wait on queues and operations, so 3 workers pay off even on 2 cores.
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3

test: setup tools lint
	$(PY) -m pytest -n $(TEST_WORKERS)

unit: $(VENV)/.stamp
	$(PY) -m pytest tests/unit

e2e: setup
	$(PY) -m pytest -n $(TEST_WORKERS) tests/e2e

bench: setup
	$(PY) -m bench.run

emulator: setup
	$(PY) -m emulator.apim --seed emulator/seed.example.json

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .local .pytest_cache .mypy_cache .ruff_cache
