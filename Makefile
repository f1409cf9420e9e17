VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test train clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# One pytest worker per core: most tests wait on XLA compilation, which uses one core each.
test: install
	$(PY) -m pytest -q -n auto

train: install
	$(PY) -m experiments.train

clean:
	rm -rf $(VENV) runs .pytest_cache
