# Two commands do all the set-up on a fresh machine with Python >= 3.10 and pip:
#   make demo   create .venv if missing, install disgen (without the dev extras), train (a short
#               5-epoch run) + evaluate a classifier on the bundled digits
#   make test   install the dev dependencies, run the layout checks (make lint) and the test suite
#               (make test-slow: the longer runs)
# torch is pinned to the CPU build (2.13.0); for a GPU see README ("Installing for a GPU").

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
DISGEN  := $(VENV)/bin/disgen
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.disgen-installed
DEV     := $(VENV)/.disgen-dev-installed

.PHONY: demo test test-slow lint install install-dev bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# What `disgen` itself needs (the demo): torch and disgen's own dependencies.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e .
	touch $(STAMP)

# The dev extras on top (pytest, the explorer's server, Hugging Face datasets, ONNX, the linters):
# what `make test` and `make lint` need.
$(DEV): $(STAMP)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(DEV)

install: $(STAMP)

install-dev: $(DEV)

# The demo trains DEMO_EPOCHS epochs of the default preset (30): a short run, to see every step.
DEMO_EPOCHS ?= 5

demo: $(STAMP)
	@set -e; run=runs/demo-$$(date +%Y%m%d-%H%M%S); \
	echo "a short demo run: cnn-classifier, $(DEMO_EPOCHS) epochs of its default preset's 30 (the full preset:" \
	     "$(DISGEN) train cnn-classifier --dataset mnist-mini)"; \
	$(DISGEN) train cnn-classifier --dataset mnist-mini --epochs $(DEMO_EPOCHS) --run-dir $$run; \
	$(DISGEN) eval $$run; \
	$(DISGEN) predict $$run src/disgen/data/mnist_mini/t10k-images-idx3-ubyte.gz --out $$run/predictions.csv; \
	echo; echo "run directory: $$run"; \
	echo "  images:  $$run/images/ (train_batch.png, predictions_before.png, predictions_after.png, curves.png)"; \
	echo "  metrics: $$run/metrics.jsonl  eval: $$run/eval.json  predictions: $$run/predictions.csv"

# The layout's checks, in seconds: ruff (lint and format) and the import contract in pyproject.toml
# (layers that import downward only, no cycles).
lint: $(DEV)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

test-slow: $(DEV)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/bench_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
