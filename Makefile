# NeuroMoCo toolkit: install, test, demo.
# `make test` and `make demo` (re)create .venv when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip
# Lava is archived: its last releases declare Python < 3.11 and old pins, so they are installed
# without their declared dependencies; their real runtime needs are in pyproject.toml.
LAVA   := lava-nc==0.10.0 lava-dl==0.6.0
# neurobench 2.3.0 declares torchaudio (another torch build) and numba; its metrics, models and Benchmark import
# and run with snntorch beside it and nothing else, so both are installed without their declared dependencies.
# They serve the NeuroBench cross-check only (tests/test_neurobench_crosscheck.py, benchmarks/neurobench_check.py).
NEUROBENCH := neurobench==2.3.0 snntorch==1.0.0

.PHONY: install test demo lint typecheck docs bench neurobench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(PIP) install -q --disable-pip-version-check --no-deps --ignore-requires-python $(LAVA)
	$(PIP) install -q --disable-pip-version-check --no-deps $(NEUROBENCH)
	touch $(STAMP)

# The suite runs on TEST_WORKERS pytest-xdist workers (two: CI's cores), each with one thread per op, a worker
# that runs out taking over the other's remaining tests (work stealing). Measured 2026-12-06 on this 2-core machine: 14 min 50 s serially
# with two threads per op, 11 min 10 s on two workers with two threads each (oversubscribed), 7 min 26 s like
# this. `python -m pytest` alone still runs serially; tests/test_lif_kernels.py holds the native kernels to the
# same bits on 1, 2 and 3 threads, since the suite itself runs one.
TEST_WORKERS ?= 2
test: install lint typecheck docs
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

# ruff's rule set (E, F, I, B, UP) is in pyproject.toml
lint: install
	$(BIN)/ruff check .

# mypy on the package under its import names: the source folders map to neuromoco.* (package-dir), which mypy
# cannot follow through the editable install, so .typecheck/neuromoco links them where it can
typecheck: install
	rm -rf .typecheck/neuromoco && mkdir -p .typecheck/neuromoco
	for f in neuromoco/*; do ln -s "$(CURDIR)/$$f" .typecheck/neuromoco/; done
	ln -s "$(CURDIR)/train" .typecheck/neuromoco/train && ln -s "$(CURDIR)/deploy" .typecheck/neuromoco/deploy
	cd .typecheck && MYPYPATH=. ../$(BIN)/mypy --config-file ../pyproject.toml -p neuromoco

# the API reference (docs/api.md, "API reference"): pdoc renders the public modules' docstrings into docs/_build/api
# (git-ignored), offline, in ~10 s; pdoc's own warnings (an unimportable module, a broken docstring or annotation)
# are UserWarnings, made errors here (the import-time FutureWarnings of torch and norse are not ours to fix)
DOCS_OUT := docs/_build/api
docs: install
	rm -rf $(DOCS_OUT)
	PDOC_ALLOW_EXEC=1 $(BIN)/python -W error::UserWarning -m pdoc --docformat restructuredtext -o $(DOCS_OUT) \
		neuromoco neuromoco.deploy.api neuromoco.train.api '!neuromoco\.(?!deploy\.api|train\.api|deploy$$|train$$).*'

# SpikingJelly 2.0.0 for benchmarks/spikingjelly_compare.py, here only, not by `install`: it declares torchaudio
# (built for another torch), SciencePlots, tensorboard...; the activation_based modules need only loguru beside
# the venv's packages. Both wheels go --no-deps into benchmarks/.deps (git-ignored), which the script puts on
# sys.path: the venv and its torch are untouched.
SJ_DEPS := benchmarks/.deps
bench: install
	$(PIP) download -q --disable-pip-version-check --no-deps -d $(SJ_DEPS)/wheels spikingjelly==2.0.0 'loguru>=0.7,<1'
	$(PIP) install -q --disable-pip-version-check --no-deps --upgrade --target $(SJ_DEPS) $(SJ_DEPS)/wheels/*.whl
	PATH="$(CURDIR)/$(BIN):$$PATH" bash benchmarks/run_all.sh

# our NeuroBench metrics against the neurobench package's own, written to benchmarks/results/neurobench_check.json
neurobench: install
	$(BIN)/python benchmarks/neurobench_check.py

clean:
	rm -rf $(VENV) runs .pytest_cache .typecheck docs/_build
