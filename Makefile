# skewgate developer tasks (GNU make).
#
#   make venv          .venv with the package (editable) + dev tools, and node_modules (DynamoDB Local)
#   make run           local stack: DynamoDB Local, HTTP server on 127.0.0.1:3000 (demo page at /demo),
#                      stream poller
#   make demo          the /demo page's bundle (OTel JS web SDK + companion, esbuild); `run` needs it
#   make fixtures      re-record tests/fixtures/otel-js/ from the real OTel JS SDK in headless Chromium
#   make test          ruff + mypy, then pytest (last, so its summary line closes the output)
#   make sam-validate  sam validate --lint   (aws-sam-cli lives in its own venv, .venv-sam)
#   make sam-build     sam build (python3.13 / arm64 wheels, no Docker)
#   make bench         benchmarks
#   make clean

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

PYTHON ?= python3
NPM ?= npm

VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.skewgate-installed
# Re-install only when one of these changes.
VENV_DEPS := pyproject.toml requirements-dev.txt layers/skewgate/requirements.txt package.json \
             $(wildcard package-lock.json)

SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.skewgate-installed
SAM_CLI_VERSION ?= 1.170.0

# `sam build` runs pip for the python3.13 runtime and needs a working python3.13 on PATH.
# pyenv's shim for python3.13 exists but fails unless 3.13 is the selected version, so prefer
# pyenv's own 3.13 install dir (`pyenv root`, else $PYENV_ROOT or ~/.pyenv), then any python3.13
# on PATH that actually runs. Override with `make sam-build PY313_DIR=/path/to/bin`.
ifeq ($(origin PY313_DIR),undefined)
PY313_DIR := $(shell \
  for d in "$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}")"/versions/3.13*/bin; do \
    if [ -x "$$d/python3.13" ] && "$$d/python3.13" -c '' 2>/dev/null; then echo "$$d"; exit 0; fi; \
  done; \
  for p in $$(type -ap python3.13 2>/dev/null); do \
    if "$$p" -c '' 2>/dev/null; then dirname "$$p"; exit 0; fi; \
  done)
endif

# This machine's pip configuration names local wheel folders that may be absent; pip warns about
# each one per package. Drop those lines (pip's own exit status still counts: pipefail).
PIP_FILTER := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }

# Lint targets that exist in this checkout (git does not keep empty directories).
LINT_PATHS := $(wildcard layers functions tests benchmarks tools)

.PHONY: venv system-deps demo fixtures run test lint pytest sam-venv sam-validate sam-build bench clean distclean

venv: $(VENV_STAMP)

$(VENV_STAMP): $(VENV_DEPS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "skewgate needs Python >= 3.11 (PYTHON=$(PYTHON) is " + sys.version.split()[0] + ")")'
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip $(PIP_FILTER)
	$(PY) -m pip install --quiet --disable-pip-version-check -e . -r requirements-dev.txt $(PIP_FILTER)
	@if [ -f package-lock.json ]; then \
	  echo "$(NPM) ci"; $(NPM) ci --no-audit --no-fund --loglevel=error; \
	else \
	  echo "$(NPM) install"; $(NPM) install --no-audit --no-fund --loglevel=error; \
	fi
	@touch $@

# The local runner's demo page bundle: tests/browser/demo.mjs + the OTel JS web SDK (root
# node_modules) + clients/browser/skewgate.js. The script skips the build when its content hash
# is unchanged.
DEMO_JS := tools/skewgate_tools/local/static/demo.js
DEMO_SRC := tests/browser/demo.mjs tests/browser/build.mjs clients/browser/skewgate.js

demo: $(DEMO_JS)

$(DEMO_JS): $(DEMO_SRC) $(VENV_STAMP)
	node tests/browser/build.mjs demo $@ >/dev/null

# Real OTel JS exports, recorded by tests/browser/capture_fixtures.py (needs chromium, faketime).
fixtures: venv system-deps
	$(PY) tests/browser/capture_fixtures.py tests/fixtures/otel-js

run: venv demo
	$(PY) -m skewgate_tools.local.run

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest -q

# Lint first, pytest last so that the output ends with pytest's summary line. pytest runs even
# when lint fails; the target fails if either did.
system-deps:
	@bash scripts/system-deps.sh

test: venv system-deps
	@lint=0; $(MAKE) --no-print-directory lint || lint=$$?; \
	if [ $$lint -ne 0 ]; then echo "*** lint (ruff/mypy) FAILED - see above; running pytest anyway" >&2; fi; \
	$(MAKE) --no-print-directory pytest; \
	exit $$lint

sam-venv: $(SAM_STAMP)

$(SAM_STAMP):
	@[ -x $(SAM_VENV)/bin/python ] || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip $(PIP_FILTER)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  "aws-sam-cli==$(SAM_CLI_VERSION)" $(PIP_FILTER)
	@touch $@

# Neither target needs AWS credentials; a region is needed by cfn-lint / the translator.
SAM_ENV := AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} AWS_REGION=$${AWS_REGION:-us-east-1} \
           SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_UPDATE_CHECK=1

sam-validate: sam-venv
	$(SAM_ENV) $(SAM) validate --lint --template-file template.yaml

sam-build: sam-venv
	@if [ -z "$(PY313_DIR)" ]; then \
	  echo "sam-build: no working python3.13 found (looked in \$$(pyenv root)/versions/3.13*/bin and PATH)." >&2; \
	  echo "           Install Python 3.13 (e.g. 'pyenv install 3.13') and retry." >&2; \
	  exit 1; \
	fi
	PATH="$(PY313_DIR):$$PATH" $(SAM_ENV) $(SAM) build --template-file template.yaml

bench: venv
	$(PY) benchmarks/run.py

clean:
	rm -rf .aws-sam build dist *.egg-info layers/skewgate/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './node_modules/*' -not -path './.venv*' -prune -exec rm -rf {} +
	rm -f $(VENV_STAMP) $(SAM_STAMP) $(DEMO_JS)

# Also drops the virtual environments and node_modules.
distclean: clean
	rm -rf $(VENV) $(SAM_VENV) node_modules
