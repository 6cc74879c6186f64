# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# paddlepaddle-gpu where an NVIDIA GPU answers, paddlepaddle (CPU) otherwise.
EXTRA  := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
# Every package's tested version: constraints/cpu.txt (paddlepaddle 3.x) or constraints/gpu.txt
# (paddlepaddle-gpu 2.6.2). A changed pyproject.toml or lock file reinstalls.
LOCK   := constraints/$(EXTRA).txt

.PHONY: install demo test bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-$(EXTRA): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install -q -c $(LOCK) -e ".[$(EXTRA),test,visualdl,onnx,kaggle]"
	touch $@

install: $(VENV)/.installed-$(EXTRA)

demo: install
	$(BIN)/flow run mnist

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run_all.py

# Refresh the pins: constraints/lock.sh makes a throwaway venv in a temp dir (never .venv), installs
# -e ".[cpu,test,visualdl,onnx,kaggle]" there with no constraints, so the newest versions pyproject.toml
# allows, and writes its `pip freeze --exclude-editable` to constraints/cpu.txt; then it resolves
# the same pins with paddlepaddle-gpu 2.6.2 and paddle2onnx 1.x instead (a dry run) into
# constraints/gpu.txt.
# Run `make test` after it, and commit both files.
lock:
	PYTHON=$(PYTHON) bash constraints/lock.sh

clean:
	rm -rf $(VENV) data runs .flow
