# make train : set up and train the seed's MLP with the defaults on the real Fashion-MNIST, then test it
# make test  : set up and run the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATASET := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data test-system train test test-oldest test-fast lint format bench gpu-carry tensorboard clean-logs default-config

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

# The real data: Debian's package when apt is available (no network needed at training time);
# otherwise the first `fit` downloads it through torchvision's mirror.
data:
	@if [ -f $(DATASET) ]; then echo "Fashion-MNIST: $(DATASET)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else echo "No Debian package installed: fit will download through torchvision's mirror."; fi

# What the tests need beyond Python: a real browser for the page (Debian's chromium and its driver) and a real
# database server for the multi-worker sweep (Debian's postgresql; the test starts its own cluster).
TEST_DEBS := chromium chromium-driver postgresql
test-system:
	@missing=$$(for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "Debian packages for the tests: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "Missing Debian packages ($$missing): the tests that need them are skipped."; fi

train: setup data
	$(BIN)/fashion-lightning fit --test_after_fit true

test: setup data test-system
	$(BIN)/python -m pytest

# The fast tests again against the oldest Lightning that pyproject.toml accepts (installed beside the venv's).
LIGHTNING_OLDEST := $(shell grep -o '"lightning>=[0-9.]*' pyproject.toml | head -1 | cut -d= -f2)
OLDEST_DIR := .lightning-oldest
test-oldest: setup
	$(BIN)/pip install -q --no-deps --upgrade --target $(OLDEST_DIR) lightning==$(LIGHTNING_OLDEST) pytorch-lightning==$(LIGHTNING_OLDEST)
	PYTHONPATH=$(OLDEST_DIR) $(BIN)/python -c "import lightning; assert lightning.__version__ == '$(LIGHTNING_OLDEST)', lightning.__version__; print('Lightning', lightning.__version__)"
	PYTHONPATH=$(OLDEST_DIR) $(BIN)/python -m pytest -m "not slow" -q

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup data
	$(BIN)/python benchmarks/epoch_time.py

# What benchmarks/gpu_check.sh needs beside the repository on a lent GPU machine (no network there): the pure-Python
# packages its python3 lacks, at this venv's versions, and the four data files. The device tool carries both folders.
GPU_WHEELS := jsonargparse docstring-parser typeshed-client torchdata
gpu-carry: setup data
	rm -rf .device_wheels .device_data && mkdir -p .device_wheels .device_data
	$(BIN)/pip download -q --no-deps --only-binary=:all: -d .device_wheels \
		$$(for p in $(GPU_WHEELS); do echo "$$p==$$($(BIN)/pip show $$p | sed -n 's/^Version: //p')"; done)
	cp $(dir $(DATASET))*-ubyte.gz .device_data/
	@ls .device_wheels .device_data

tensorboard: setup
	$(BIN)/tensorboard --logdir lightning_logs

clean-logs:
	rm -rf lightning_logs/fashion

# configs/default.yaml is generated from the code's defaults (tests/test_configs.py fails when they drift apart).
default-config configs/default.yaml: setup
	{ printf '# The shipped defaults of `fashion-lightning fit`: every option, with its documentation and type.\n'; \
	  printf '# `fashion-lightning fit` and `fashion-lightning fit --config configs/default.yaml` are the same run\n'; \
	  printf '# (tests/test_configs.py compares the whole config). Generated: `make configs/default.yaml`.\n'; \
	  $(BIN)/fashion-lightning fit --print_config=comments; } > configs/default.yaml.tmp
	mv configs/default.yaml.tmp configs/default.yaml
