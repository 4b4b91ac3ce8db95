# Pulse: the front door. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv installs the locked dependencies; if it is not on PATH, pip fetches it once from PyPI.
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen --no-sync
PULSE := $(RUN) pulse

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## install Python dependencies exactly as locked (uv.lock)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.9,<1"
	@$(UV) sync --frozen --quiet

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

.PHONY: test
test: install lint ## lint, type-check, then run all tests (starts the stack if needed)
	@$(RUN) pytest

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
bench: install ## all benchmarks against the running stack (`make up` first; needs kcat; ~25 min)
	@$(RUN) python -m bench.run

.PHONY: bench-smoke
bench-smoke: install ## the benchmarks with tiny sizes, in seconds (checks they run)
	@$(RUN) python -m bench.run --smoke

.PHONY: clean
clean: down ## stop the stack and delete its state (.state/); keeps the download cache
	rm -rf .state
