# The two commands a new user runs. Each creates .venv and installs into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/shapes_cells.py
WORKDIR ?= runs/demo

.PHONY: demo test soak install clean bench

# jax[tpu] brings libtpu so `arm-jax aot` can compile for TPU slices on this host (and its test
# runs); on a host without TPUs JAX_PLATFORMS=cpu keeps libtpu from probing for chips.
export JAX_PLATFORMS ?= cpu

$(STAMP): requirements.txt requirements-torch.txt requirements-tpu.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-torch.txt -r requirements-tpu.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/arm-jax demo --config $(CONFIG) --workdir $(WORKDIR)

# -rs: skipped tests say why (the tmpfs disk-full test needs unshare(1) to mount a private tmpfs).
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs -n 2 --dist loadfile tests

# Random kill -9 / SIGTERM points across a short pretraining and RL run (tests/soak.py); not in
# `make test`.
soak: $(STAMP)
	$(BIN)/python tests/soak.py

bench: $(STAMP)
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs
