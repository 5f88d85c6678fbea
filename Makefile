# Two entry points: `make run` (the main job) and `make test` (the whole suite, once per backend).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BACKENDS ?= jax tensorflow torch

.PHONY: run test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[jax,study]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

run: $(VENV)/.run-installed
	KERAS_BACKEND=jax $(VENV)/bin/prunekit demo

test: $(VENV)/.test-installed
	@status=0; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(PY) -m pytest -q -p no:cacheprovider tests || status=1; \
	done; exit $$status

bench: $(VENV)/.test-installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info
