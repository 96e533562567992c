# `make test` is the project's test command (CI runs exactly this): the whole
# suite on TensorFlow, then the layer/model suites on JAX and PyTorch.
PYTHON ?= python
PYTEST = $(PYTHON) -m pytest -q -p no:cacheprovider
MODEL_TESTS = tests/layers tests/models tests/backbones/test_backbone_registry.py tests/test_label_prior.py

.PHONY: test test-fast test-tensorflow test-jax test-torch install

install:
	$(PYTHON) -m pip install -e ".[test,jax,torch,lite]"

test: test-tensorflow test-jax test-torch

test-tensorflow:
	KERAS_BACKEND=tensorflow $(PYTEST) tests

test-jax:
	KERAS_BACKEND=jax $(PYTEST) $(MODEL_TESTS) -m "not slow"

test-torch:
	KERAS_BACKEND=torch $(PYTEST) $(MODEL_TESTS) -m "not slow"

test-fast:
	KERAS_BACKEND=tensorflow $(PYTEST) tests -m "not slow"
