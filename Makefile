# vitsom — two commands on a fresh machine:
#   make reproduce   install, run every experiment at PROFILE (default: smoke, CPU), build the book
#   make test        install, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
SEEDS ?=
DATASETS ?=
# Results folder (default: ./results). A fresh folder makes `reproduce` retrain what is committed.
RESULTS ?=
# Where the datasets are (or will be downloaded to). Override: make reproduce VITSOM_DATA=/path
VITSOM_DATA ?= $(CURDIR)/data
export VITSOM_DATA

.PHONY: install test reproduce notebooks book plan summary clean bench help

help:
	@echo "make install | test | reproduce [PROFILE=smoke|quick|paper SEEDS='0 1' DATASETS='usps mnist' RESULTS=dir] | book | plan | summary | bench | clean"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

reproduce: install
	$(PY) -m vitsom.pipeline --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(DATASETS),--datasets $(DATASETS)) $(if $(RESULTS),--results $(RESULTS))

book: install
	$(PY) -m vitsom.pipeline --profile $(PROFILE) --book-only $(if $(RESULTS),--results $(RESULTS))

# which runs of PROFILE have a record and which are missing (nothing is trained)
plan: install
	$(PY) -m vitsom plan --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(DATASETS),--datasets $(DATASETS)) $(if $(RESULTS),--results $(RESULTS))

# rewrite README.md's results table from the paper-profile records (a test checks it is current)
summary: install
	$(PY) -m vitsom summary --write README.md

bench: install
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf book/_build book/executed runs results/smoke .pytest_cache
