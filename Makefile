# One-command entry points. Each target creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test reproduce benchmark sweep-speedup clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run: the paper experiment, latent dims 1 and 2, as one multirun
run: $(STAMP)
	$(PY) -m vaelab.train -m experiment=paper model.latent_dim=1,2

## test: the whole test suite
test: $(STAMP)
	$(PY) -m pytest -q tests

## benchmark: real training path vs a plain PyTorch loop and the torchvision DataLoader path
benchmark: $(STAMP)
	$(PY) scripts/benchmark.py

## sweep-speedup: wall time of a sweep, sequential vs joblib-parallel
sweep-speedup: $(STAMP)
	$(PY) scripts/sweep_speedup.py

clean-venv:
	rm -rf $(VENV)
