# Every target sets itself up: a virtual environment installed from the lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check setup clean bench

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/switchyard demo

# The static checks first: a type or lint error fails in seconds, before the suite's minutes.
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m ruff check service tests
	bash scripts/test-deps.sh
	bash scripts/bench-deps.sh
	$(BIN)/python -m pytest

# Static checks: mypy --strict on service/ and ruff on service/ and tests/ (settings in pyproject.toml).
check: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m ruff check service tests

bench: $(STAMP)
	bash scripts/bench-deps.sh
	$(BIN)/python -m benchmarks.perf


clean:
	rm -rf $(VENV) .switchyard .pytest_cache
