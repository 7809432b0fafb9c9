# Two commands for a fresh machine: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
APT_PACKAGES := redis-server chromium

.PHONY: run test test-python test-js test-npm-pack lint format system-packages venv npm dist docs clean bench bench-full bench-node soak

# Every extra, plus the test and docs tools (PEP 735 dependency groups in pyproject.toml,
# which need pip >= 25.1: hence the upgrade first).
DEV_INSTALL := -e '.[all]' --group test --group docs --group bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(DEV_INSTALL)
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

test: system-packages venv npm lint test-js test-npm-pack dist docs test-python test-django6

test-python: $(STAMP) bench-node
	$(PY) -m pytest -q -rs

# The baseline is Python 3.11 + Django 5.2 LTS; Django 6 needs Python >= 3.12. Run the
# unit tests there too; not the end-to-end ones, nor the packaging ones (one pure-Python
# wheel, checked once), which add nothing version-specific.
test-django6:
	@py=""; for c in python3.12 python3.13 $$HOME/.pyenv/versions/3.12*/bin/python3.12 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	  if $$c -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then py=$$c; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "No Python >= 3.12 found: cannot test Django 6"; exit 1; fi; \
	test -x .venv-django6/bin/python || $$py -m venv .venv-django6; \
	.venv-django6/bin/python -m pip install --quiet --upgrade pip; \
	.venv-django6/bin/python -m pip install --quiet $(DEV_INSTALL) 'django>=6'; \
	.venv-django6/bin/python -m pytest -q -p no:cacheprovider --ignore=tests/e2e --ignore=tests/test_bench_smoke.py \
	  --ignore=tests/packaging --ignore=tests/test_packaging.py

test-js:
	@if [ -f frontend/package.json ]; then cd frontend && npm test && npm run typecheck; fi

# The npm tarball as `npm pack` makes it, installed, bundled and type-checked in a scratch
# project (frontend/package.json, test:pack).
test-npm-pack: npm
	cd frontend && npm run test:pack

# The wheel and sdist PyPI would get, and twine's check of their metadata and README.
dist: $(STAMP)
	rm -rf build/dist
	$(PY) -m build --outdir build/dist .
	$(VENV)/bin/twine check --strict build/dist/*

# The documentation site (mkdocs.yml); --strict makes a broken link or reference fail.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

lint: $(STAMP)
	$(VENV)/bin/ruff check floorchannels sampleproject tests
	$(VENV)/bin/ruff format --check floorchannels sampleproject tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix floorchannels sampleproject tests
	$(VENV)/bin/ruff format floorchannels sampleproject tests

# Benchmarks (bench/, docs/benchmarks.md): quick mode prints one JSON line last (about 5 min, with the Node.js and python-socketio peers);
# BENCH_LAYER=memory|core|pubsub picks the layer. bench-full sweeps sizes and rewrites the doc.
# The Node.js Socket.IO peer's packages (the harness also installs them when missing).
bench-node:
	@cd bench/node && npm ci --no-audit --no-fund --loglevel=error

bench: $(STAMP) bench-node
	$(PY) -m bench.run

# bench-full: the target table (3 alternated rounds), the sweep, several processes, Redis's
# cost, written to docs/benchmarks.md with charts; BENCH_FULL_ARGS="--rounds 2 --sizes 100,1000,5000,10000".
bench-full: $(STAMP) bench-node
	$(PY) -m bench.run --full $(BENCH_FULL_ARGS)

# Churn soak (bench/soak.py): cycles of windows connecting and leaving; prints RSS and Redis
# connections per cycle and a plateau verdict last. SOAK_ARGS="--cycles 30 --tracemalloc 10" etc.
soak: $(STAMP) system-packages
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .venv-django6 frontend/node_modules build
