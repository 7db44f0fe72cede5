# LogWarden — `make serve` and `make test` are the whole quickstart.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv test lint format serve protos check-protos bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

protos: $(STAMP)
	$(PY) -m logwarden.protos.codegen

check-protos: $(STAMP)
	$(PY) -m logwarden.protos.codegen --check

bench: $(STAMP)
	$(PY) benchmarks/parsing.py
	$(PY) benchmarks/hdfs.py
	$(PY) benchmarks/scoring.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
