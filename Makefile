# Two commands for a fresh machine (see README):
#   make lab    set up, then open the course in JupyterLab
#   make test   set up, then run every test (tests/run_all.sh): the package's tests (two processes), `minikit build`
#               on an empty cache, every notebook alone on the built cache (nbval, MINIKIT_NO_TRAIN=1), the student
#               edition in reverse order, the widgets in a headless Chromium, and a Binder dry-run (artifacts in artifacts/)
# And helpers:
#   make build      train every artifact the chapters load, once, into the cache (python -m minikit build)
#   make execute    refresh the notebooks' stored outputs: build, then run each in course order on a quiet machine,
#                   stamped (tools/execute_notebooks.py); one notebook: make execute NOTEBOOKS=notebooks/04_metrics.ipynb
#   make chromium   install Debian's Chromium for the browser test (apt-get; sudo unless root)
#   make site       the course as a static website in _site/, from the notebooks' stored outputs (README, "The course site")
#   make student    the student edition: every notebook with its solutions replaced by stubs, in student/
PYTHON ?= python3
VENV ?= .venv
# Set to a CPU wheel index on a laptop where `pip install torch==2.13.0` would pick a CUDA build.
TORCH_INDEX ?=
# Extra pytest arguments, e.g. PYTEST_ARGS='-m "not browser"' on a machine without Chromium.
PYTEST_ARGS ?=
# make execute: the notebooks to run (default: all), and ALLOW_BUSY=1 to run on a machine that is not quiet.
NOTEBOOKS ?=
ALLOW_BUSY ?=
PIP = $(VENV)/bin/pip
STAMP = $(VENV)/.minikit-installed

.PHONY: setup lab build execute test chromium site student clean

setup: $(STAMP)

# The packages are installed by uv when the package index has it (~35 s against ~75 s for pip, the
# same versions), else by pip. uv compiles them to bytecode, as pip does: this environment sets
# PYTHONDONTWRITEBYTECODE, so without it every kernel would compile what it imports (~8 s each).
# uv reads its own settings, not pip's, so it is handed the indexes and wheel folders pip is
# configured with (pip.conf, PIP_* variables), and it picks the best match across them, as pip
# does: on a machine whose index serves torch's CPU build, that build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	@if $(PIP) install --quiet uv; then \
	  set -e; args=$$($(PIP) config list | sed -n -E "s/^[^.]*\.(index-url|extra-index-url|find-links)='(.*)'$$/\1 \2/p" \
	    | while read -r option values; do for value in $$values; do printf -- '--%s %s ' "$$option" "$$value"; done; done); \
	  echo "uv pip install torch==2.13.0 -e .[test] $$args"; \
	  $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python --index-strategy unsafe-best-match $$args \
	    $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch==2.13.0 -e ".[test]"; \
	else \
	  set -e; echo "uv is not available: installing with pip"; \
	  $(PIP) install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)); \
	  $(PIP) install --quiet -e ".[test]"; \
	fi
	touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

build: setup
	$(VENV)/bin/python -m minikit build

# The course site: the README, the course map, every chapter as executed (nothing runs), the glossary and
# the source texts, in _site/. SITE_NOTEBOOKS=DIR builds it from another folder of executed notebooks.
SITE_NOTEBOOKS ?= notebooks
SITE_OUT ?= _site
site: setup
	$(VENV)/bin/python tools/build_site.py --notebooks $(SITE_NOTEBOOKS) --out $(SITE_OUT)

# The notebooks without their solutions (cells tagged `solution` become stubs; outputs removed), in student/
# (git-ignored). Stops, naming the notebook and the cell, on a stored error or a solution it cannot stub.
student: setup
	$(VENV)/bin/python -m minikit student --out student

# Stored outputs come from this command only; tests/test_notebook_stamps.py fails on a notebook it did not stamp.
execute: setup
	$(VENV)/bin/python tools/execute_notebooks.py $(if $(ALLOW_BUSY),--allow-busy) $(NOTEBOOKS)

# The order and what each step proves: tests/run_all.sh. Every step runs; `make test` fails if any failed.
test: setup
	tests/run_all.sh $(VENV)/bin/python $(PYTEST_ARGS)

# The browser test drives this Chromium; Playwright never downloads one. The fonts make the test's
# screenshots look like a learner's screen (text, ✅/❌). Does nothing when chromium is installed.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-noto-color-emoji; }

clean:
	rm -rf $(VENV)
