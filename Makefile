# Two commands for a fresh machine (see README):
#   make lab    set up, then open the course in JupyterLab
#   make test   set up, then run every test (package tests and every notebook through nbval)
PYTHON ?= python3
VENV ?= .venv
# Set to a CPU wheel index on a laptop where `pip install torch==2.13.0` would pick a CUDA build.
TORCH_INDEX ?=
PIP = $(VENV)/bin/pip
STAMP = $(VENV)/.minikit-installed

.PHONY: setup lab test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

test: setup
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV)
