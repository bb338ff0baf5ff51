# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench default-model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check geoseg tests benchmarks examples scripts

bench: $(STAMP)
	$(PY) benchmarks/bench_predict.py

# Retrain the bundled default model (about 10 minutes on 2 CPU cores) and put it into the package.
default-model: $(STAMP)
	$(VENV)/bin/geoseg train configs/brandenburg_default.yaml -o runs/default
	$(PY) scripts/bundle_default_model.py runs/default configs/brandenburg_default.yaml

clean:
	rm -rf $(VENV) demo_output .pytest_cache
