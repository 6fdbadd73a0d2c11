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

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) install --quiet -e ".[test]"
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
