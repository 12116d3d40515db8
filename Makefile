# Two commands on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
# Each creates what it needs (virtualenv, packages, Chromium for the browser test) by itself.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# sudo only when not root and sudo exists (root on a fresh Debian machine has no sudo).
SUDO   := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null && echo sudo; })

.PHONY: demo test lint typecheck pytest bench chromium clean help nox package labext

help:
	@echo "make demo   - JupyterLab with the demo notebooks (real API if COMETAPI_KEY is set, else the simulator)"
	@echo "make test   - every test, lint and type check"
	@echo "make bench  - benchmarks against the alternatives; writes benchmarks/RESULTS.md"
	@echo "make nox    - the suite on each installed Python 3.10-3.13"
	@echo "make package - build, twine check, install into a fresh venv and smoke-test"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "cometnb needs Python >= 3.10"'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -yq python3-venv; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/jupyter-builder develop --overwrite .
	touch $(STAMP)

# The history sidebar (labextension/, TypeScript) built from source with this machine's
# Node.js >= 20: tsc --strict first, so a type error fails `make test`. The editable install
# links the output (cometnb/labextension) into the venv, so JupyterLab loads what this built.
LABEXT := labextension/lib/.built
$(LABEXT): $(STAMP) labextension/package.json labextension/package-lock.json labextension/tsconfig.json $(wildcard labextension/src/*.ts labextension/style/*)
	@$(PY) hatch_build.py
	cd labextension && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	cd labextension && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build:prod
	touch $(LABEXT)

labext: $(LABEXT)

# Debian's Chromium for the real-browser test (Playwright may not download its own browser).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -yq chromium; }

lint: $(STAMP)
	$(VENV)/bin/ruff check cometnb tests benchmarks
	$(VENV)/bin/ruff format --check cometnb tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP) $(LABEXT)
	$(VENV)/bin/mypy

pytest: $(STAMP) $(LABEXT) chromium
	$(PY) -m pytest

test: lint typecheck pytest

demo: $(STAMP) $(LABEXT)
	$(PY) -m cometnb.demo

bench: $(STAMP) $(LABEXT)
	$(PY) benchmarks/run.py

# The suite on every installed Python 3.10-3.13 (missing ones are skipped), each in its own venv.
nox: $(STAMP)
	$(VENV)/bin/nox -s tests

# Wheel + sdist checked by twine, then the wheel in a fresh venv: %load_ext and a keyless image.
package: $(STAMP)
	$(VENV)/bin/nox -s build package

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	rm -rf labextension/node_modules labextension/lib labextension/tsconfig.tsbuildinfo cometnb/labextension
