# The README's two commands: `make demo` (set up, serve locally, answer real photos) and
# `make test`. Everything else here is what those two need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch (the export extra, only `make test` and `make export-tools` install it) from another package
# index, e.g. PyTorch's CPU-only wheels: make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
TORCH_PIP_ARGS := $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
# The test data folder (real photos and models; docs/testing.md): ../shared on the development
# machines. Tests that need it skip, naming it, where it is absent.
TRITON_VISION_DATA ?= ../shared
export TRITON_VISION_DATA
# The demo's photos: real ones from the data folder; elsewhere the demo uses scikit-image's.
# DEMO_IMAGES to classify, DEMO_PEOPLE to segment and detect.
DEMO_IMAGES ?= $(wildcard $(TRITON_VISION_DATA)/images/*.jpg)
DEMO_PEOPLE ?= $(wildcard $(TRITON_VISION_DATA)/images/persons.jpg)
# Triton Model Analyzer, in an environment of its own (its dependencies stay out of .venv).
MA_VENV ?= .venv-ma
MODEL_ANALYZER_VERSION ?= 1.58.0
PYVER  := $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
# Debian packages: the Python backend stub links the system libpython; perf_analyzer links libb64.
# jemalloc: tritonserver returns the memory of floods of big requests (docs/reliability.md#bounded-bytes-and-memory).
SYSTEM_LIBS := libpython$(PYVER).so.1.0:libpython$(PYVER) libb64.so.0d:libb64-0d libjemalloc.so.2:libjemalloc2
# Debian packages by a file they install: the UI's browser tests drive headless Chromium; the dashboard
# test scrapes serve with Prometheus.
SYSTEM_FILES := /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver /usr/bin/prometheus:prometheus

.PHONY: help demo test unit integration chaos lint kubernetes-validate setup demo-setup export-tools system-deps \
	clean model-analyzer-env

# pytest's exit 5 ("no tests ran") is a failure here, said by name.
define pytest
	@$(BIN)/python -m pytest -q $(1); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; fi; exit $$status
endef

help: ## this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: demo-setup ## set up, prepare model files, serve locally, answer real photos
	$(BIN)/triton-vision demo $(DEMO_IMAGES) $(addprefix --people ,$(DEMO_PEOPLE))

test: setup lint model-analyzer-env ## everything CI runs: the linters, the unit and integration tiers
	$(call pytest,)

unit: $(VENV)/.installed ## the unit tier alone (no server, no system packages, about a minute)
	$(call pytest,tests/unit)

integration: setup model-analyzer-env ## the integration tier: tests against the real tritonserver
	$(call pytest,tests/integration)

# The chaos soak runs in `make test` for 90 s; `make chaos CHAOS_S=600` runs it alone, longer.
CHAOS_S ?= 600
chaos: setup ## the chaos soak alone, longer (CHAOS_S seconds)
	TRITON_VISION_CHAOS_S=$(CHAOS_S) $(BIN)/python -m pytest -q -s tests/integration/test_chaos.py

# setup: everything the tests need (dev and export extras); demo-setup: serving only, no torch.
setup: system-deps $(VENV)/.installed
demo-setup: system-deps $(VENV)/.installed-demo
export-tools: $(VENV)/.pip ## add torch and torchvision to the demo's environment (exports only)
	$(BIN)/python -m pip install -q -e ".[export]" $(TORCH_PIP_ARGS)

# Deployment files are checked offline (no Docker engine, no cluster): the model repository with
# `triton-vision check`, the Dockerfile with hadolint, the compose file against the Compose
# specification's schema, the Kubernetes package (every overlay and example overlay rendered by
# `kubectl kustomize`, the KServe resources) against the pinned Kubernetes version's schemas and the
# vendored CRD schemas.
K8S_VERSION   ?= 1.30.0

lint: $(VENV)/.installed ## ruff, mypy, the import layers, check, the deployment files (no apt)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/triton-vision check model_repository
	$(BIN)/hadolint docker/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml
	@$(MAKE) --no-print-directory kubernetes-validate

kubernetes-validate: $(VENV)/.installed
	$(BIN)/python docker/kubernetes/validate.py $(K8S_VERSION)

system-deps:
	@missing=""; for pair in $(SYSTEM_LIBS); do \
	  lib=$${pair%%:*}; pkg=$${pair##*:}; \
	  ldconfig -p | grep -q "$$lib" || missing="$$missing $$pkg"; \
	done; \
	for pair in $(SYSTEM_FILES); do \
	  [ -e "$${pair%%:*}" ] || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; } || \
	  { echo "could not install$$missing: install them with apt-get"; exit 1; }; \
	fi

# What each environment takes on disk (docs/install.md#disk-space), checked before pip starts: pip would
# stop half-way with "No space left on device" (and torch's CUDA wheels are ~3 GB of downloads on a
# machine without them in a local package index). Without pip's cache the downloads are not kept twice.
TEST_ENV_GB ?= 8
DEMO_ENV_GB ?= 2
free_gb = $$(df -Pk $(1) | awk 'NR==2 {printf "%d", $$4 / 1048576}')
define need_space
	@free=$(call free_gb,$(VENV)); if [ "$$free" -lt $(1) ]; then \
	  echo "$(2) needs about $(1) GB free on this disk, $$free GB are free here (df -h $(VENV)): free some space" \
	       "or set VENV to a place with more (make $(3) VENV=/bigger/disk/venv)"; exit 1; fi
endef

$(VENV)/.pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	touch $@

$(VENV)/.installed: pyproject.toml | $(VENV)/.pip
	$(call need_space,$(TEST_ENV_GB),the test environment (dev and export extras with torch),test)
	$(BIN)/python -m pip install -q --no-cache-dir -e ".[dev,export]" $(TORCH_PIP_ARGS)
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(VENV)/.pip
	$(call need_space,$(DEMO_ENV_GB),the demo's environment (.[demo]),demo)
	$(BIN)/python -m pip install -q --no-cache-dir -e ".[demo]"
	touch $@

model-analyzer-env: $(MA_VENV)/.installed ## Triton Model Analyzer in an environment of its own (.venv-ma)

$(MA_VENV)/.installed:
	$(PYTHON) -m venv $(MA_VENV)
	$(MA_VENV)/bin/python -m pip install -q --upgrade pip
	$(MA_VENV)/bin/python -m pip install -q "triton-model-analyzer==$(MODEL_ANALYZER_VERSION)" "numpy<2"
	touch $@

clean: ## remove the environments, out/ and the prepared model files
	rm -rf $(VENV) $(MA_VENV) out
	find model_repository -name model.onnx -delete -o -name model.source.json -delete
