# Two entry points: `make run` (the main job) and `make test` (the whole suite, once per backend).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BACKENDS ?= jax tensorflow torch

.PHONY: run test bench clean system-deps

# Debian packages used by the report tests (chromium) and model pictures (graphviz). Installed
# when missing and apt-get is usable; otherwise the dependent tests skip and say why.
system-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "could not install$$missing; tests that need them will be skipped"; \
	  else echo "not installed:$$missing (apt-get install$$missing); tests that need them will be skipped"; fi; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[jax,study]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

run: $(VENV)/.run-installed system-deps
	KERAS_BACKEND=jax $(VENV)/bin/prunekit study

test: $(VENV)/.test-installed system-deps
	@status=0; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(PY) -m pytest -q -p no:cacheprovider || status=1; \
	done; exit $$status

bench: $(VENV)/.test-installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info
