# Two commands for a fresh machine (see README):
#   make lab    set up, then open the course in JupyterLab
#   make test   set up, then run every test: the package's tests (two processes), every notebook (nbval),
#               the widgets in a headless Chromium, and a Binder dry-run that checks each notebook's time
#               and memory budget (tests/learner; artifacts in artifacts/)
# And one helper:
#   make chromium   install Debian's Chromium for the browser test (apt-get; sudo unless root)
PYTHON ?= python3
VENV ?= .venv
# Set to a CPU wheel index on a laptop where `pip install torch==2.13.0` would pick a CUDA build.
TORCH_INDEX ?=
# Extra pytest arguments, e.g. PYTEST_ARGS='-m "not browser"' on a machine without Chromium.
PYTEST_ARGS ?=
PIP = $(VENV)/bin/pip
STAMP = $(VENV)/.minikit-installed

.PHONY: setup lab test chromium clean

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

# The package's tests run in two processes (pytest-xdist; a test file stays in one process, so its
# module-level artifacts are whole) while the Binder dry-run's build (a venv and pip, ~90 s) runs in a
# third, in the background; then the course runs in one process, in course order
# (nbval, the browser test, the dry-run's notebooks), where time and memory are measured on an
# otherwise idle machine. Both pytest runs always run; `make test` fails if either fails.
test: setup
	@build=$$(mktemp -d -t minikit-binder-XXXXXX); status=0; \
	$(VENV)/bin/python -m tests.learner.binder_build "$$build" >/dev/null 2>&1 & builder=$$!; \
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile tests --ignore=tests/learner $(PYTEST_ARGS) || status=$$?; \
	MINIKIT_BINDER_BUILD="$$build" $(VENV)/bin/python -m pytest notebooks tests/learner $(PYTEST_ARGS) || status=$$?; \
	kill $$builder 2>/dev/null; wait $$builder 2>/dev/null; rm -rf "$$build"; exit $$status

# The browser test drives this Chromium; Playwright never downloads one. The fonts make the test's
# screenshots look like a learner's screen (text, ✅/❌). Does nothing when chromium is installed.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-noto-color-emoji; }

clean:
	rm -rf $(VENV)
