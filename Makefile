# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# paddlepaddle-gpu where an NVIDIA GPU answers, paddlepaddle (CPU) otherwise.
EXTRA  := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-$(EXTRA): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(EXTRA),test,visualdl,onnx]"
	touch $@

install: $(VENV)/.installed-$(EXTRA)

demo: install
	$(BIN)/flow run mnist

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) data runs .flow
