# `make repro` runs the whole pipeline (the demo world by default); `make test` runs lint and the test suite.
# `make docs` builds the manual (docs/, mkdocs.yml) offline into site/, a broken link or anchor failing it.
# All create the virtual environment on first use and install the pinned versions.
VENV ?= .venv
PY := $(VENV)/bin/python
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: setup repro test lint docs bench

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

repro: setup
	dvc repro

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/pytest -q

docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

bench: setup
	$(PY) -m benchmarks.bench_generate
	$(PY) -m benchmarks.bench_extract
	$(PY) -m benchmarks.bench_model --vle-layers 2 --ofe-layers 1
	$(PY) -m benchmarks.bench_metrics
	$(PY) -m benchmarks.bench_cli
	$(PY) -m benchmarks.bench_shards
	$(PY) -m benchmarks.bench_joint_unit
	$(PY) -m benchmarks.bench_gpu_extract --small
