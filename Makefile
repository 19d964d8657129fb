# `make demo` and `make test` each build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/digest --config config.toml demo

test: $(VENV)/.installed-test
	$(BIN)/pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check digest tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Each benchmark prints its figures and a ratio against a baseline run in the same process.
bench: $(VENV)/.installed-test
	@set -e; for f in bench/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f; done

# Mutation testing (not in CI; minutes per module group): `make mutate` for every group,
# `make mutate GROUPS="tokens rank"` for some. Scores per module; see docs/testing.md.
mutate: $(VENV)/.installed-test
	$(BIN)/python tests/mutate.py $(GROUPS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
