# Quick start: `make demo` (train + evaluate on Fashion-MNIST, write a report) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= /usr/share/datasets/fashion-mnist
BASE := $(VENV)/.installed-base
TESTDEPS := $(VENV)/.installed-test

.PHONY: demo test faults lint data clean-venv

# The package alone (enough for the demo), then the test dependencies on top.
$(BASE): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TESTDEPS): $(BASE)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# Fashion-MNIST comes from Debian's package; nothing is downloaded at run time.
data:
	@if [ -f $(DATA_DIR)/train-images-idx3-ubyte.gz ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }; \
	fi; \
	if [ ! -f $(DATA_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST is missing from $(DATA_DIR): run 'sudo apt-get install -y dataset-fashion-mnist'" >&2; \
		exit 2; \
	fi

# The main job: train + evaluate on Fashion-MNIST, report in runs/demo/report.md (replaces an earlier demo run).
demo: $(BASE) data
	$(BIN)/inception-v3 train --recipe demo --data-dir $(DATA_DIR) --overwrite

# Two pytest workers (one thread each); tests that share an expensive fixture share an xdist group (one worker).
TEST_WORKERS ?= 2
test: $(TESTDEPS) data
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25 tests

# The fault-injection and bad-input tests alone (make test runs them too).
faults: $(TESTDEPS) data
	$(BIN)/python -m pytest -q tests/test_faults.py tests/test_bad_inputs.py tests/test_train_errors.py

# Style (ruff) everywhere, types (mypy, settings in pyproject.toml) on the package.
lint: $(TESTDEPS)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

clean-venv:
	rm -rf $(VENV)
