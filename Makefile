# digitserve: every developer and CI command in one place.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS_DIR ?= models
PORT ?= 50051
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help host install proto run train serve test test-fast test-containers bench soak lint screenshot clean

help:
	@echo "make run    - install into $(VENV), train the default models if $(MODELS_DIR)/ is empty, serve on :$(PORT)"
	@echo "make test   - install what the tests need (as root: xvfb, podman) and run the whole suite"
	@echo "make test-fast - the inner loop: all but the slow and heavy tests, over two processes, timed"
	@echo "make test-containers - build the images and run the compose stack under podman"
	@echo "make bench  - accuracy, latency and throughput against the in-process baselines; image sizes"
	@echo "make soak   - load, reload and bad-input campaigns for a bounded time"
	@echo "make proto  - regenerate the Python stubs from protos/"
	@echo "make lint   - validate docker-compose.yml and the Kubernetes manifests, lint the Dockerfile"
	@echo "make screenshot - retake docs/tk-client.png, docs/tk-client-number.png and docs/tk-client-lines.png under Xvfb"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp re-installs whenever the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# System packages and the container runtime the tests use (installed when root, named otherwise).
host:
	PYTHON=$(PYTHON) deploy/setup-host.sh

proto: install
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. \
		--include_source_info --include_imports --descriptor_set_out=digitserve/descriptors.binpb \
		protos/digitserve/v1/digits.proto protos/digitserve/open_inference/grpc_service.proto

train: install
	$(BIN)/digits-train --out $(MODELS_DIR) --if-missing

serve: install
	$(BIN)/digits-server --models-dir $(MODELS_DIR) --port $(PORT)

run: train serve

test: host install
	$(BIN)/python -m pytest

# The inner loop over two processes; it prints its wall and CPU time (bench/fast_tests.py).
test-fast: install
	$(BIN)/python -m bench.fast_tests

test-containers: host install
	$(BIN)/python -m pytest tests/test_containers.py

bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.metrics
	$(BIN)/python -m bench.abuse
	$(BIN)/python -m bench.open_inference
	$(BIN)/python -m bench.capacity
	$(BIN)/python -m bench.containers
	$(BIN)/python -m bench.numbers --models-dir $(MODELS_DIR)
	$(BIN)/python -m bench.ruled --models-dir $(MODELS_DIR)
	$(BIN)/python -m bench.fast_tests --cold --out bench/results-fast-tests.json

soak: install
	$(BIN)/python -m bench.soak

lint: install
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(BIN)/hadolint Dockerfile
	for k in deploy/kubernetes/overlays/dev deploy/kubernetes/overlays/prod deploy/kubernetes/retrain; do \
		kubectl kustomize $$k | $(BIN)/kubernetes-validate --strict --quiet - || exit 1; done

screenshot: install
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest tests/test_draw.py -k screenshot

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
