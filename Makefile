# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)
export PYTHONUNBUFFERED := 1

.PHONY: install system-deps demo test dev bench gpu-check soak clean

# Debian's Chromium and its chromedriver: the scraper drives them; nothing is downloaded at run time.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi
# Debian's PostgreSQL server: the Postgres-instance test starts its own on loopback (deploy/dagster-postgres.yaml).
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql; \
	fi

# The stamp makes `install` idempotent; it is remade when pyproject.toml changes.
$(VENV)/.install-stamp: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: system-deps $(VENV)/.install-stamp

demo: install
	$(PY) -m fashion_pipeline.demo

test: install
	$(PY) -m pytest -q

# Dagster's `dg dev`: the webserver and the daemon (schedules, automation, run retries) on the instance at the repo root,
# under a supervisor that stops it within 10 s on Ctrl-C or SIGTERM (fashion_pipeline/devserver.py).
# A run launched without config gets the demo's settings here (the instance `make demo` filled);
# `make dev SETTINGS=thesis` gives it the thesis's (fashion_pipeline/common/settings.py).
SETTINGS ?= demo
dev: install
	FASHION_PIPELINE_SETTINGS=$(SETTINGS) VIRTUAL_ENV=$(CURDIR)/$(VENV) $(PY) -m fashion_pipeline.devserver

bench: install
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) -m bench.run_all

# The gpu-marked tests and the GPU benchmarks; says so and exits 0 without CUDA. Needs only torch,
# torchvision, numpy, PIL and pytest (no install, no dagster): `make gpu-check PYTHON=python3` on a bare GPU box.
gpu-check:
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m bench.gpu_check

# A soak under faults (issue 19): 10-15 minutes of dagster-daemon, one-minute scrapes of 3 brands, and
# injected faults, on a temporary instance and data root (never the repo's). Not part of `make test`.
# SOAK_ARGS passes options, e.g. SOAK_ARGS="--ticks 4 --dir /tmp/soak" (python -m fashion_pipeline.soak --help).
soak: install
	$(PY) -m fashion_pipeline.soak $(SOAK_ARGS)

clean:
	rm -rf data storage history logs schedules compute_logs .logs_queue .nux .telemetry
