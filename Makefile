# The two set-up commands of the README: `make demo` and `make test`.
# Both create the virtual environment on first use (pins in constraints.txt).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rsgeo-installed

.PHONY: demo test test-core test-qgis docs notebooks plugin benchmark clean

$(STAMP): pyproject.toml constraints.txt benchmarks/requirements.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,docs]' -r benchmarks/requirements.txt
	touch $(STAMP)

## Main job: zero-shot land cover and two text queries on the sample scene, default model (rs-m-clip).
demo: $(STAMP)
	mkdir -p out
	$(BIN)/rsgeo classify data/sample/L7_ETMs.tif -o out/olinda.gpkg --bands 3,2,1 --overwrite \
	    --classes "dense forest,urban area,sea,beach,river,farmland"
	$(BIN)/rsgeo query out/olinda.gpkg --text "harbour with ships" --text "dense residential blocks"

## Every test, offline: the library and CLI, then the QGIS plugin in a real headless QGIS.
test: test-core test-qgis

test-core: $(STAMP) docs
	$(BIN)/python -m mypy rsgeo
	$(BIN)/python -m pytest -q

test-qgis: $(STAMP)
	RSGEO_PYTHON=$(abspath $(BIN))/python bash scripts/test-qgis.sh

## The documentation site, into site/: README + docs/ + the CLI and API references, warnings are errors.
docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict --site-dir site

## Rewrite notebooks/quickstart.ipynb from its script, then execute every notebook in place (outputs committed).
notebooks: $(STAMP)
	$(BIN)/python scripts/make_quickstart_notebook.py
	$(BIN)/python scripts/run_notebooks.py

plugin:
	bash scripts/package-plugin.sh

benchmark: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) .venv-qgis out dist site
