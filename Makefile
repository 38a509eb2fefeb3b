# `make demo` and `make test` set everything up on a fresh machine.
# TORCH_SPEC picks the PyTorch build installed first; the default is the CPU build
# (set e.g. TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>" for a GPU).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo test docs bench lint mutants clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

demo: $(STAMP)
	$(BIN)/python tutorials/quickstart.py

# the suite in up to 4 worker processes (pytest-xdist): about 8 min on 2 cores, 14 in one
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --numprocesses=auto --maxprocesses=4 --doctest-modules ppl inference models tests docs/render_tutorials.py

# the documentation site, into docs/_build/html (warnings are errors: a broken reference or
# a docstring docutils cannot read fails it; the tutorials run in fast mode, about 1.5 min)
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check ppl inference models tests tutorials benchmarks docs
	$(BIN)/lint-imports

# mutation testing of the modules that compute answers (tens of minutes; not in CI)
mutants: $(STAMP)
	$(BIN)/python -m pip install --quiet mutmut==3.8.1
	$(BIN)/python .ci/mutants.py

clean:
	rm -rf $(VENV) build *.egg-info mutants-report docs/_build docs/tutorials
