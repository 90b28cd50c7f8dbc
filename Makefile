# Two entry points (see README): `make demo` runs the whole workflow on the simulated demo cohort,
# `make test` runs the test suite. Both create the virtual environment first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
# PyTorch: the releases this project is tested with. pyproject.toml keeps ranges, so a GPU machine
# may install its own CUDA build first (make TORCH_PIN="torch==X+cuYYY ...").
ifeq ($(shell uname -m),aarch64)
TORCH_PIN ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
endif
CORES ?= all

.PHONY: demo reproduce test test-fast test-reproduce report lint bench-qsm bench-heldout pretrained clean-results

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# --logger deepnuclei: one progress line per finished job (deepnuclei.progress); the last step prints where
# the report is and the headline numbers
demo: $(VENV)/.installed
	PATH=$(BIN):$$PATH snakemake --cores $(CORES) --logger deepnuclei
	PATH=$(BIN):$$PATH snakemake --report results/report.html
	@$(BIN)/deepnuclei headline --results results --report results/report.html

# Every row of both papers' tables (config/reproduce.yaml: every method of their tables, 30 + 22 subjects),
# then the report; see docs/reproduce.md for its size and time.
reproduce: $(VENV)/.installed
	PATH=$(BIN):$$PATH snakemake --cores $(CORES) --configfile config/reproduce.yaml -- reproduce
	PATH=$(BIN):$$PATH snakemake --configfile config/reproduce.yaml --report results/report.html -- reproduce

# Two pytest workers (pytest-xdist), a test file each at a time, the end-to-end files first
# (tests/conftest.py): their Snakemake runs beside the unit tests. One thread per worker: the two share
# the cores (unit tests 170 s instead of 196 on 2 cores). The 30 slowest tests are listed at the end.
TEST_WORKERS ?= 2
test: $(VENV)/.installed
	OMP_NUM_THREADS=1 PATH=$(BIN):$$PATH pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

# The unit tests alone, while working: no Snakemake run (those tests are marked slow); loadfile keeps a file's
# session fixtures on one worker
test-fast: $(VENV)/.installed
	OMP_NUM_THREADS=1 PATH=$(BIN):$$PATH pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# The `reproduce` target end to end on the tiny cohort (tests/workflow/test_reproduce_run.py, about 8 minutes)
test-reproduce: $(VENV)/.installed
	PATH=$(BIN):$$PATH pytest -m reproduce tests/workflow/test_reproduce_run.py

report: $(VENV)/.installed
	PATH=$(BIN):$$PATH snakemake --report results/report.html

# QSM accuracy on cases made by another group's forward model (benchmarks/bench_qsm_accuracy.py):
# every case, every method of config/config.yaml's qsm.methods; on 2 cores about 11 minutes to simulate the 14 cases
# and 36 to score three methods and one --extra on them (2026-12-07).
bench-qsm: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_qsm_accuracy.py

# The shipped models (src/deepnuclei/pretrained/) and the atlas baseline on labelled sets that another generator
# made (benchmarks/bench_heldout.py: 3 T and 7 T, oblique and thick slabs): one table in results/benchmarks/heldout/.
# BUNDLES=results/bundles scores the demo's instead.
BUNDLES ?= pretrained
bench-heldout: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_heldout.py --bundles $(BUNDLES)

# The models that ship in the package, trained on a cohort of varied simulated heads (config/pretrained.yaml;
# docs/pretrained.md), then copied into it. Resumable: a rerun continues where it stopped.
pretrained: $(VENV)/.installed
	PATH=$(BIN):$$PATH snakemake --cores $(CORES) --configfile config/pretrained.yaml --logger deepnuclei --rerun-incomplete
	cp results-pretrained/bundles/linus.zip results-pretrained/bundles/dbresunet.zip src/deepnuclei/pretrained/

lint: $(VENV)/.installed
	PATH=$(BIN):$$PATH snakemake --lint

# Documents made from the workflow itself: config/README.md from the config schema's descriptions
# (workflow/scripts/config_readme.py), and the picture of the default run's rules, docs/images/rulegraph.svg.
.PHONY: docs config-readme plan-schemas rulegraph
docs: config-readme plan-schemas rulegraph

config-readme: $(VENV)/.installed
	$(BIN)/python workflow/scripts/config_readme.py

plan-schemas: $(VENV)/.installed
	$(BIN)/python -c 'from deepnuclei.plan_files import write_schemas; write_schemas("workflow/schemas/plan")'

rulegraph: $(VENV)/.installed
	@command -v dot >/dev/null || { echo "make rulegraph: Graphviz's dot is missing: install graphviz (e.g. apt-get install graphviz)"; exit 1; }
	@mkdir -p .snakemake
	PATH=$(BIN):$$PATH snakemake --rulegraph > .snakemake/rulegraph.dot
	dot -Tsvg .snakemake/rulegraph.dot -o docs/images/rulegraph.svg

clean-results:
	rm -rf results resources/demo .snakemake
