# One-command entry points. Each target creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lock notebook run test test-fast lint format reproduce reproduce-literature benchmark clean-venv

LOCK   := requirements.lock

# the exact environment of the committed results (requirements.lock), then vaelab itself on top
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e ".[dev]"
	touch $(STAMP)

## lock: write requirements.lock from .venv (after `.venv/bin/pip install 'X==V'` and `make test`; header kept)
lock: $(STAMP)
	{ sed -n '/^#/p' $(LOCK); $(PY) -m pip freeze --exclude-editable | grep -v '^vaelab=='; } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)
	touch $(STAMP)

## run: the paper experiment, latent dims 1 and 2, as one multirun
run: $(STAMP)
	$(PY) -m vaelab.train -m experiment=paper model.latent_dim=1,2

## reproduce: the report's table from nothing: 12 training runs, evaluation, results/ (scripts/reproduce.sh paper;
##            set VAELAB_DATA_ROOT to the folder holding MNIST/raw/; ARGS="..." passes options and Hydra overrides,
##            e.g. make reproduce ARGS="trainer=gpu hydra.launcher.n_jobs=12")
reproduce: $(STAMP)
	PYTHON=$(PY) scripts/reproduce.sh paper $(ARGS)

## reproduce-literature: the Gaussian-VAE protocol of Davidson et al. 2018 (binarised MNIST, d=2 and 5, IW NLL k=500;
##            scripts/reproduce.sh literature, ARGS as for reproduce)
reproduce-literature: $(STAMP)
	PYTHON=$(PY) scripts/reproduce.sh literature $(ARGS)

## test: lint, then the whole test suite (two pytest-xdist workers, one torch thread each: tests/conftest.py)
test: lint
	$(PY) -m pytest -q -n 2 --dist worksteal tests

## test-fast: the suite without the tests marked slow (wheel build, chaos runs)
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow" tests

## lint: ruff's linter and formatter check, with the settings in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/ruff format --check src tests scripts bench

## format: apply ruff's fixes and formatting
format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests scripts bench
	$(VENV)/bin/ruff format src tests scripts bench

## benchmark: real training path vs a plain PyTorch loop and the torchvision DataLoader path (bench/README.md)
benchmark: $(STAMP)
	$(PY) bench/benchmark.py

## notebook: execute notebooks/latent_space.ipynb on the run dir RUN=<dir> and render it, outputs included, into OUT
##           (default outputs/notebook, which git ignores; OUT=docs/notebook updates the committed rendering), with the
##           active environment's Python (VIRTUAL_ENV or CONDA_PREFIX) when there is one, else .venv
ACTIVE_ENV := $(or $(VIRTUAL_ENV),$(CONDA_PREFIX))
NB_PY      := $(if $(ACTIVE_ENV),$(ACTIVE_ENV)/bin/python,$(PY))
OUT        ?= outputs/notebook
notebook: $(if $(ACTIVE_ENV),,$(STAMP))
	@test -n "$(RUN)" || { echo "error: give the run dir: make notebook RUN=<run dir>" >&2; exit 2; }
	VAELAB_RUN_DIR=$(RUN) MPLBACKEND=module://matplotlib_inline.backend_inline $(NB_PY) -m jupyter nbconvert --to markdown --execute notebooks/latent_space.ipynb --output-dir $(OUT)

clean-venv:
	rm -rf $(VENV)
