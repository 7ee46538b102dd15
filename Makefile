# fraudstream: `make demo` runs the whole system, `make test` passes the tests.
# Both install what they need (Debian packages, a virtualenv, the Kafka jars) and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Kept inside the venv: deleting .venv makes the next `make setup` build it again (a stamp
# under build/ outlived it and left setup failing on a missing .venv/bin/python).
INSTALLED := $(VENV)/.fraudstream-installed
APT_PACKAGES := default-jdk-headless maven redis-server prometheus prometheus-alertmanager \
                docker-compose python3-venv chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup apt demo test test-unit test-integration test-e2e soak lint bench stack-up stack-down clean

setup: apt $(INSTALLED) deploy/kafka/libs/.complete

# Checked on every run (it is cheap), so a package removed later is installed again. Services
# the install starts are stopped and disabled, only those of packages it installed.
apt:
	@SUDO="$(SUDO)" PYTHON="$(PYTHON)" deploy/local/install-packages.sh $(APT_PACKAGES)

$(INSTALLED): pyproject.toml | apt
	@$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

deploy/kafka/libs/.complete: deploy/kafka/pom.xml | apt $(INSTALLED)
	$(PY) -c "from fraudstream.deploy.local.kafka import ensure_jars; ensure_jars()"

demo: setup
	$(VENV)/bin/fraudstream demo

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy fraudstream tests
	$(VENV)/bin/lint-imports

test: setup lint
	$(PY) -m pytest tests --ignore=tests/soak -m "not control" --durations=25

test-unit: $(INSTALLED)
	$(PY) -m pytest tests/unit

test-integration: setup
	$(PY) -m pytest tests/integration

# The dashboard in headless chromium; the screenshot under load lands in build/dashboard.png.
test-e2e: setup
	$(PY) -m pytest tests/e2e

# Long or known-unstable runs kept out of `make test` (see tests/soak/*.py for why each is there).
# Controls (-m control) rerun a test without the protection it checks, to show it can fail.
soak: setup
	$(PY) -m pytest tests/soak
	$(PY) -m pytest tests -m control --ignore=tests/soak

bench: setup
	$(VENV)/bin/fraudstream bench --json build/bench.json

stack-up: setup
	$(VENV)/bin/fraudstream stack up

stack-down:
	$(VENV)/bin/fraudstream stack down

clean:
	-$(VENV)/bin/fraudstream stack down
	rm -rf .stack build
