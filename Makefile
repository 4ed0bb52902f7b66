# sqm: `make help` lists the targets. Every target installs what it needs into .venv by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install peers run test test-unit test-integration test-e2e lint audit bench clean
# Debian packages the tests run for real: Alertmanager (a delivery peer), promtool, PostgreSQL's server
# binaries (tests start a throw-away server unless SQM_TEST_POSTGRES_URL names one), Chromium and a
# CJK font for the board's browser tests (Playwright drives Debian's chromium; nothing is downloaded)
PEER_PACKAGES := prometheus-alertmanager prometheus postgresql chromium fonts-wqy-microhei
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

# the runtime packages at the image's versions (requirements.lock, its pins without the hashes, which
# pip cannot check for an editable install), the dev tools as pyproject.toml pins them
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	grep -E '^[A-Za-z0-9_.-]+==' requirements.lock | sed 's/ *\\$$//' > $(VENV)/constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned dependencies

peers: ## install the real peers the integration tests use (Debian packages), if missing
	@command -v prometheus-alertmanager >/dev/null && command -v promtool >/dev/null \
	  && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null \
	  && fc-list | grep -qi wenquanyi || { \
	  echo "installing $(PEER_PACKAGES) (apt)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(PEER_PACKAGES) >/dev/null; }

run: $(STAMP) ## start the whole monitor (embedded broker if needed, worker, API + board, demo traffic)
	SQM_DEMO=$${SQM_DEMO:-1} $(PY) -m services.run_all

lint: $(STAMP) ## ruff and mypy (strict on the pure modules)
	$(VENV)/bin/ruff check services stream edge api alerts db history tests bench deploy/grafana
	$(VENV)/bin/mypy stream edge api services alerts db history
	$(VENV)/bin/mypy --strict deploy/grafana

test-unit: $(STAMP) peers ## pure tests, no broker (PostgreSQL: a throw-away server)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP) peers ## tests against the real embedded broker and databases
	$(PY) -m pytest -q tests/integration

test-e2e: $(STAMP) peers ## the board in a real headless Chromium (screenshots in test-artifacts/)
	$(PY) -m pytest -q tests/e2e

test: $(STAMP) peers lint ## everything: lint, unit, integration, browser (e2e)
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/integration tests/e2e

# pip-audit asks PyPI for the known vulnerabilities (the PyPA advisory database) of every pinned version
# of the image (requirements.lock): it needs the network, so it is not part of `make test` (offline).
audit: $(STAMP) ## known vulnerabilities of the image's dependencies (requirements.lock; needs the network)
	$(VENV)/bin/pip-audit --strict --disable-pip --require-hashes -r requirements.lock

bench: $(STAMP) ## benchmarks; results in bench/results.json and bench/results.md
	$(PY) -m bench.run

clean: ## remove .venv and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
