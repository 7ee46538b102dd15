# fraudstream: `make demo` runs the whole system, `make test` passes the tests.
# Both install what they need (Debian packages, a virtualenv, the Kafka jars) and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := build/stamps
APT_PACKAGES := default-jdk-headless maven redis-server prometheus prometheus-alertmanager \
                docker-compose
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test test-unit test-integration lint bench stack-up stack-down clean

setup: $(STAMPS)/apt $(STAMPS)/venv deploy/kafka/libs/.complete

$(STAMPS)/apt:
	@missing=""; for c in java mvn redis-server prometheus prometheus-alertmanager docker-compose; do \
	  command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(APT_PACKAGES); \
	fi
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@mkdir -p $(STAMPS) && touch $@

deploy/kafka/libs/.complete: deploy/kafka/pom.xml | $(STAMPS)/apt $(STAMPS)/venv
	$(PY) -c "from deploy.local.kafka import ensure_jars; ensure_jars()"

demo: setup
	$(VENV)/bin/fraudstream demo

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

test: setup lint
	$(PY) -m pytest tests

test-unit: $(STAMPS)/venv
	$(PY) -m pytest tests/unit

test-integration: setup
	$(PY) -m pytest tests/integration

bench: setup
	$(VENV)/bin/fraudstream bench --json build/bench.json

stack-up: setup
	$(VENV)/bin/fraudstream stack up

stack-down:
	$(VENV)/bin/fraudstream stack down

clean:
	-$(VENV)/bin/fraudstream stack down
	rm -rf .stack build
