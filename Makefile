# The two commands of the README:
#   make demo   set up a virtual environment and run the demo on its embedded default
#   make test   set up everything the tests need (Python packages, Debian's prometheus,
#               postgresql and chromium) and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv system-deps lint typecheck unit contract bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

system-deps:
	bash scripts/install-system-deps.sh

demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	$(BIN)/hypoprobe demo

lint: venv
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: venv
	$(BIN)/mypy

# The suite runs in two processes (pytest-xdist; a file's tests stay together): it mostly
# waits on servers and subprocesses, and every collection in a process walks every series
# the earlier tests left there. PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= 2

unit: venv
	bash scripts/run-pytest.sh $(BIN)/python tests -n $(PYTEST_WORKERS) --dist loadfile
	# every benchmark once, untimed, so the suite cannot rot (budgets: make bench); a
	# warning is an error here too (pyproject's filterwarnings)
	bash scripts/run-pytest.sh $(BIN)/python benchmarks --benchmark-disable -q

# The shared acceptance contract: shared/ beside the checkout (a clone: ../shared; a git
# worktree one level deeper: ../../shared), or CONTRACT=path. Under CI=true it must run.
CONTRACT ?= $(firstword $(wildcard $(CURDIR)/../shared/acceptance/contract_core.py \
	$(CURDIR)/../../shared/acceptance/contract_core.py))

contract: venv
	@if [ -n "$(CONTRACT)" ] && [ -f "$(CONTRACT)" ]; then \
		echo "contract: $(CONTRACT)"; \
		cd /tmp && $(CURDIR)/$(BIN)/python "$(CONTRACT)"; \
	elif [ "$${CI:-}" = "true" ]; then \
		echo "contract: no shared/acceptance/contract_core.py in ../shared or ../../shared (set CONTRACT=path)" >&2; exit 1; \
	else echo "contract: not run: no shared/acceptance/contract_core.py in ../shared or ../../shared; set CONTRACT=path to run it"; fi

test: system-deps venv lint typecheck unit contract

bench: venv
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-columns=min,median,mean,stddev,rounds -W default

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks
