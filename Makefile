# The two commands of the README:
#   make demo   set up a virtual environment and run the demo on its embedded default
#   make test   set up everything the tests need (Python packages, Debian's prometheus and
#               postgresql) and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv system-deps lint typecheck unit bench clean

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

unit: venv
	bash scripts/run-pytest.sh $(BIN)/python tests

test: system-deps venv lint typecheck unit

bench: venv
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-columns=min,median,mean,stddev,rounds

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks
