# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "needs $(PY) (set PY=python3 if that is 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/recgpt demo

test: $(STAMP)
	$(BIN)/ruff check model index service tests bench
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check model index service tests bench

clean:
	rm -rf $(VENV) runs
