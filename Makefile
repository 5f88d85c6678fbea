# Two entry points: `make run` (the main job) and `make test` (the whole suite, once per backend).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BACKENDS ?= jax tensorflow torch

.PHONY: run test bench clean run-deps test-deps

# Debian packages, installed when missing and apt-get is usable; otherwise what needs them is
# skipped and says why. `make run` needs graphviz (the study's model pictures); `make test` also
# needs chromium (the report rendering tests). $(1): the commands to look for, $(2): packages.
define debian-deps
	@missing=""; for pair in $(2); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "could not install$$missing; $(1) that need them will be skipped"; \
	  else echo "not installed:$$missing (apt-get install$$missing); $(1) that need them will be skipped"; fi; \
	fi
endef

run-deps:
	$(call debian-deps,pictures,dot:graphviz)

test-deps:
	$(call debian-deps,tests,dot:graphviz chromium:chromium)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[jax,study]"
	touch $@

# keras-hub (the oneshot KerasHub tests) without its `tensorflow-text` requirement, which would
# pull the full `tensorflow` beside `tensorflow-cpu`; keras-hub's other requirements are listed
# from its 0.32.0 metadata. The tests use no tensorflow-text op (keras-hub imports it optionally).
HUB := keras-hub==0.32.0
HUB_REQUIREMENTS := absl-py "kagglehub!=1.0.1" kagglesdk==0.1.28 regex sentencepiece tokenizers

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q $(HUB_REQUIREMENTS)
	$(PY) -m pip install -q --no-deps $(HUB)
	touch $@

run: $(VENV)/.run-installed run-deps
	KERAS_BACKEND=jax $(VENV)/bin/prunekit study

test: $(VENV)/.test-installed test-deps
	@status=0; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b ==="; \
	  KERAS_BACKEND=$$b $(PY) -m pytest -q -p no:cacheprovider || status=1; \
	done; exit $$status

bench: $(VENV)/.test-installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info
