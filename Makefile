# The two commands of the README: `make demo` (the main job) and `make test`. Both set up .venv first.
VENV   := .venv
PY     := $(VENV)/bin/python
SQGAN  := $(VENV)/bin/sqgan
DEMO   := out/demo

.PHONY: install test test-slow test-all demo bench clean

install:
	@bash tools/install.sh

test: install
	$(PY) -m pytest -q -m "not slow"

test-slow: install
	$(PY) -m pytest -q -m slow

test-all: install
	$(PY) -m pytest -q

demo: install
	$(SQGAN) demo --out $(DEMO) --profile bursty_15pct

bench: install
	$(SQGAN) bench codec --config small --json

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
