# segnode — the two commands a fresh Debian machine needs:
#   make demo   a synthetic DCE study in, through the node, result out
#   make test   every test (unit, integration against DCMTK / Orthanc / dciodvfy / highdicom)
# Both run `make setup` first (idempotent: apt packages, the torch venv, cargo config).

SHELL := /bin/bash
CARGO ?= cargo
VENV ?= $(HOME)/.cache/segnode/venv
PYTHON := $(VENV)/bin/python
MODELS_DIR ?= models
export SEGNODE_VENV := $(VENV)

.PHONY: setup build models test test-fast lint demo bench clean-data fuzz

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --bins

models: setup
	@if [ -f tools/build_models.py ]; then $(PYTHON) tools/build_models.py --out-dir $(MODELS_DIR); fi

test: setup models
	@if [ -f tools/test_models.py ]; then $(PYTHON) tools/test_models.py; fi
	$(CARGO) test --all-targets --no-fail-fast

# The fast tier: unit tests and the suites that start no external peer (no DCMTK, Orthanc,
# Python, browser or collector): the node in-process or as its own binary. tests/README.md
# says what each suite proves; `make test` stays the whole suite and what CI runs.
FAST_SUITES := fuzz_parsers volume_geometry cli_check_config node_called_ae crash_recovery
test-fast: setup models
	$(CARGO) test --lib --bins --no-fail-fast $(foreach s,$(FAST_SUITES),--test $(s))

# Longer property-based fuzzing of everything that reads a peer's bytes (never in CI).
fuzz: setup
	PROPTEST_CASES=20000 $(CARGO) test --release --test fuzz_parsers
	PROPTEST_CASES=20000 $(CARGO) test --release --lib -- scp::reassembly

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

demo: build models
	@bash scripts/demo.sh

# make demo through a real Orthanc started from conf/orthanc (Lua routing, SEG back into the
# study); prints the Orthanc URLs. DEMO_KEEP=1 keeps Orthanc and segnode up until Enter.
.PHONY: demo-orthanc
demo-orthanc: build models
	@bash scripts/demo-orthanc.sh

# Benchmarks (never in CI): segnode vs storescp / Orthanc / MONAI on this machine; tables on
# stdout, CSV and JSON under the cargo target dir's bench/. BENCH_ARGS=--quick: a smoke run.
BENCH_ARGS ?=
bench: setup models
	$(CARGO) build --release --bins --examples
	$(PYTHON) scripts/bench/bench.py $(BENCH_ARGS)

clean-data:
	rm -rf segnode-data demo-output
