# Two commands on a fresh machine:  `make run` (the main job) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run data theory test compose-test lint typecheck check bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: get its dataset (robustness data fetch), serve, submit
# figure6-quick, follow it, print the table.
run: $(STAMP)
	$(VENV)/bin/robustness quickstart

# Where each dataset is, or how to get it (informational: a missing CIFAR-10 is not an error).
data: $(STAMP)
	-$(VENV)/bin/robustness data status

theory: $(STAMP)
	$(VENV)/bin/robustness theory --out .robustness/theory

# The test tools (postgresql, shellcheck, Docker, headless Chromium) first: installed with
# apt-get where root and missing, else the tests that need them skip. The compose stack's test
# (tests/deploy/test_compose_stack.py) runs where a Docker engine can run here;
# ROBUSTNESS_COMPOSE_TEST=0 skips it.
test: $(STAMP)
	scripts/test_deps.sh
	$(PY) -m pytest -q

# `docker compose up`, for real, alone: a private dockerd (no bridge), the images, the stack on
# loopback, a study through a worker's SIGKILL and an API restart, down/up, down -v; the dockerd
# stopped. Fails (never skips) where no Docker engine can run. docs/deploy.md says what it checks.
compose-test: $(STAMP)
	scripts/test_deps.sh
	ROBUSTNESS_COMPOSE_TEST=1 $(PY) -m pytest -q -rA tests/deploy/test_compose_stack.py

# ruff, then the import contracts (pyproject.toml's [tool.importlinter]; docs/ARCHITECTURE.md)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP)
	$(PY) bench/optimizer_step.py

# The compose test's Docker data-root (images, build cache, volumes) is under .robustness/docker:
# its daemon is stopped first.
clean:
	-scripts/private_dockerd.sh stop
	rm -rf $(VENV) .robustness .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
