# Two commands for a fresh machine: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
APT_PACKAGES := redis-server chromium

.PHONY: run test test-python test-js lint format system-packages venv npm clean bench bench-full

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# redis-server for the multi-process tests, chromium for the browser tests.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing$$missing with apt-get"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

npm:
	@if [ -f frontend/package.json ]; then cd frontend && npm ci --no-audit --no-fund --loglevel=error; fi

run: $(STAMP)
	$(PY) manage.py migrate --verbosity 0
	$(PY) manage.py demo_accounts
	@echo "Serving the sample project at http://127.0.0.1:8000 ($${REDIS_URL:+Redis layer at $$REDIS_URL}$${REDIS_URL:-in-memory layer})"
	$(VENV)/bin/daphne -b 127.0.0.1 -p 8000 sampleproject.asgi:application

test: system-packages $(STAMP) npm lint test-js test-python

test-python: $(STAMP)
	$(PY) -m pytest -q -rs

test-js:
	@if [ -f frontend/package.json ]; then cd frontend && npm test; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check floorchannels sampleproject tests
	$(VENV)/bin/ruff format --check floorchannels sampleproject tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix floorchannels sampleproject tests
	$(VENV)/bin/ruff format floorchannels sampleproject tests

# Benchmarks (bench/, docs/benchmarks.md): quick mode prints one JSON line last (< 5 min);
# BENCH_LAYER=memory|core|pubsub picks the layer. bench-full sweeps sizes and rewrites the doc.
bench: $(STAMP)
	$(PY) -m bench.run

bench-full: $(STAMP)
	$(PY) -m pip install --quiet matplotlib
	$(PY) -m bench.run --full

clean:
	rm -rf $(VENV) frontend/node_modules
