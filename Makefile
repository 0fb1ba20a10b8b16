# Two commands: `make run` (set up + start the dashboard) and `make test` (set up + whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run lint test test-fast bench clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m streamlit run app/main.py --server.address 127.0.0.1 --server.port $(PORT)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: lint
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not e2e and not slow"

bench: $(VENV)/.test
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .churn .pytest_cache
