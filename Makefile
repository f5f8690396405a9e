# Two commands: `make run` (set up and start everything) and `make test` (set up, run the suite).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv run test browser clean

venv: $(STAMP)

# torch first, pinned: 2.13.0 is the local CPU wheel; any other spec pulls CUDA gigabytes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $(STAMP)

run: venv
	$(VENV)/bin/gazelab db upgrade
	$(VENV)/bin/gazelab up

# Browser tests drive Debian's chromium; install it when missing and we may.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi; }

# The layer contracts (pyproject.toml [tool.importlinter]) first: an upward import fails the build.
test: venv browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
