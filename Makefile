# Animesion Book. The two commands: `make book` (main job) and `make test`.
# Both create or reuse the virtual environment in $(VENV) and install what they need.

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
# Real face crops (DAF:re layout); the real-data chapters and tests use them when present.
REAL_DATA ?= ../shared/data/holo14
# The embedded default dataset, generated on first use (never committed).
SYNTHETIC ?= data/synthetic-$(PROFILE)
# the generator has smoke and cpu presets; the paper profile's synthetic chapters use cpu's
SYNTHETIC_PRESET := $(if $(filter smoke,$(PROFILE)),smoke,cpu)
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed

.PHONY: help setup test test-fast book data notebooks html reproduce reproduction-report benchmarks clean

help:
	@echo "make book        set up, generate the synthetic data, run every notebook ($(PROFILE) profile), build the book"
	@echo "make test        set up and run the whole test suite (unit, integration, notebooks, book)"
	@echo "make setup       create/refresh $(VENV) only"
	@echo "make data        generate the embedded synthetic dataset in $(SYNTHETIC)"
	@echo "make lab         open JupyterLab on notebooks/ (127.0.0.1, with a token), the smoke data ready"
	@echo "make test-fast   the tests not marked slow"
	@echo "make benchmarks  print the throughput tables"
	@echo "make reproduce PROFILE=paper DATA=/path/to/dafre   paper-scale runs on a GPU machine"
	@echo "make reproduction-report   after make book: the fresh records against the committed ones"

setup: $(STAMP)

# Reinstall when the dependency lists change. torch/torchvision come from the local wheel cache.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -c constraints.txt -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

data: setup
	$(VENV)/bin/animesion make-synthetic --out $(SYNTHETIC) --profile $(SYNTHETIC_PRESET) --if-stale

notebooks: setup data
	$(PY) -m animesion_book.runner --profile $(PROFILE) --synthetic $(SYNTHETIC) --real-data $(REAL_DATA)

html: setup
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

book: notebooks html
	@echo "The book is in _build/html/index.html"

reproduce: setup
	@test -n "$(DATA)" || (echo "usage: make reproduce PROFILE=paper DATA=/path/to/dafre" && exit 2)
	$(PY) -m animesion_book.runner --profile $(PROFILE) --synthetic $(SYNTHETIC) --real-data $(DATA)

# after `make book` rewrote results/$(PROFILE)/: every number against its seed noise, every changed verdict
reproduction-report: setup
	$(VENV)/bin/animesion reproduction-report --profile $(PROFILE) --output _build/reproduction-$(PROFILE).md

benchmarks: setup data
	$(PY) benchmarks/data_pipeline.py --synthetic $(SYNTHETIC) --real-data $(REAL_DATA)

# the notebooks' own defaults read the smoke data; a second `make lab` prints where the first one is
.PHONY: lab
lab: setup
	$(MAKE) --no-print-directory data PROFILE=smoke
	$(PY) -m animesion_lib.cli.lab

clean:
	rm -rf _build notebooks/_executed
