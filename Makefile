# `make test` is the project's test command (CI runs exactly this): the whole
# suite and the docstring examples on TensorFlow, then the layer/model suites
# on JAX and PyTorch. The doctests run on their own: with `tests` in the same
# run, --doctest-modules would also import every script under tests/.
PYTHON ?= python
PYTEST = $(PYTHON) -m pytest -q -p no:cacheprovider
MODEL_TESTS = tests/layers tests/models tests/tasks/test_mmdsr_image_classifier.py tests/tasks/test_baseline_image_classifier.py tests/backbones/test_backbone_registry.py tests/test_label_prior.py

.PHONY: test test-fast test-tensorflow test-jax test-torch install

install:
	$(PYTHON) -m pip install -e ".[test,jax,torch,lite,hub]"

test: test-tensorflow test-jax test-torch

test-tensorflow:
	KERAS_BACKEND=tensorflow $(PYTEST) tests
	KERAS_BACKEND=tensorflow $(PYTEST) --doctest-modules mmdsr_keras

test-jax:
	KERAS_BACKEND=jax $(PYTEST) $(MODEL_TESTS) -m "not slow"

test-torch:
	KERAS_BACKEND=torch $(PYTEST) $(MODEL_TESTS) -m "not slow"

test-fast:
	KERAS_BACKEND=tensorflow $(PYTEST) tests -m "not slow"
