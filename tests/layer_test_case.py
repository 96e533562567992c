"""`run_layer_test`: the checks every mmdsr_keras layer must pass, in one call.

A helper module, not a test module (pytest does not collect it): layer tests
import `run_layer_test` from here and keep their own numeric checks against
numpy references.
"""

import json
import os
import tempfile

import keras
import numpy as np

PACKAGE = "mmdsr_keras"


def _json(obj):
    return json.loads(json.dumps(obj))


def _numpy(tensors):
    return [keras.ops.convert_to_numpy(keras.ops.cast(t, "float32")).astype("float64")
            for t in keras.tree.flatten(tensors)]


def _assert_same_outputs(got, want, atol, what):
    got, want = _numpy(got), _numpy(want)
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what}, output {i}: shape {g.shape}, expected {w.shape}"
        np.testing.assert_allclose(g, w, rtol=0, atol=atol, err_msg=f"{what}, output {i}")


def _perturb(layer, rng):
    # Moves every trainable weight off its initial value, so that an equal
    # output after a round trip shows the weights were carried over, not
    # merely re-initialised the same way.
    for v in layer.trainable_weights:
        value = keras.ops.convert_to_numpy(keras.ops.cast(v, "float32"))
        v.assign((value + rng.normal(scale=0.2, size=v.shape)).astype("float32"))


def _symbolic_inputs(input_data):
    def spec(x):
        x = np.asarray(x)
        return keras.Input(shape=x.shape[1:], dtype=str(x.dtype))

    if isinstance(input_data, (list, tuple)):
        return [spec(x) for x in input_data]
    return spec(input_data)


def _shapes(tensors):
    return [tuple(t.shape) for t in keras.tree.flatten(tensors)]


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    *,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    mixed_precision_output_dtype="float16",
    mixed_precision_tolerance=(0.1, 0.05),
    run_mixed_precision=True,
    prepare_layer=None,
    atol=1e-6,
    seed=0,
):
    """Builds `layer_cls(**init_kwargs)` on `input_data` and checks what every layer must do.

    1. Output shape (`expected_output_shape`: a tuple, or a list of tuples for
       a layer with several outputs) and the numbers of trainable and
       non-trainable weights, when given.
    2. `from_config(get_config())` gives an equal config (also when read back
       from JSON) and, with the weights copied, the same outputs.
    3. `keras.saving.serialize_keras_object` names the class registered under
       the `mmdsr_keras` package, and `deserialize_keras_object` of its JSON
       gives the same config and, with the weights copied, the same outputs.
    4. A functional model holding the layer (unknown batch size) has the
       symbolic output shapes of the eager call and survives a `.keras` save
       and load with the same outputs.
    5. Under the global `mixed_float16` policy, a new layer from `init_kwargs`
       runs, gives `mixed_precision_output_dtype` and finite outputs, and (with
       the float32 layer's weights) outputs within `mixed_precision_tolerance`
       `(atol, rtol)` of the float32 ones.

    The float32 layer's trainable weights are moved off their initial values
    first (and `prepare_layer(layer, rng)` is applied, when given), so that
    equal outputs show that the weights were carried over.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: a numpy array, or a list of arrays for a multi-input layer.
        expected_output_shape: checked when given. Defaults to None.
        expected_num_trainable_weights: checked when given. Defaults to None.
        expected_num_non_trainable_weights: checked when given. Defaults to None.
        mixed_precision_output_dtype: the documented output dtype under
            `mixed_float16`. Defaults to `"float16"`.
        mixed_precision_tolerance: `(atol, rtol)` of the mixed-precision
            outputs against float32, or None to skip the comparison. Defaults
            to `(0.1, 0.05)`.
        run_mixed_precision: run check 5. Defaults to True.
        prepare_layer: optional `f(layer, rng)` run on the built layer, e.g. to
            set positive variances. Defaults to None.
        atol: tolerance of the round trips (same backend, same computation:
            equal up to kernel choice). Defaults to 1e-6.
        seed: for the weight perturbation. Defaults to 0.

    Returns:
        The built float32 layer and its outputs on `input_data`.
    """
    rng = np.random.default_rng(seed)
    layer = layer_cls(**init_kwargs)
    layer(input_data)
    _perturb(layer, rng)
    if prepare_layer is not None:
        prepare_layer(layer, rng)
    outputs = layer(input_data)

    # 1. Shapes and weight counts.
    if expected_output_shape is not None:
        expected = (expected_output_shape if isinstance(expected_output_shape, list)
                    else [expected_output_shape])
        assert _shapes(outputs) == [tuple(s) for s in expected], _shapes(outputs)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, [
            v.path for v in layer.trainable_weights]
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, [
            v.path for v in layer.non_trainable_weights]

    # 2. Config round trip.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    # and as read back from a file, where tuples have become lists
    from_json = _json(config)
    assert _json(layer_cls.from_config(from_json).get_config()) == from_json
    clone(input_data)
    clone.set_weights(layer.get_weights())
    _assert_same_outputs(clone(input_data), outputs, atol, "from_config(get_config())")

    # 3. Keras serialization, through JSON as in a saved file.
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"{PACKAGE}>{layer_cls.__name__}", serialized[
        "registered_name"]
    restored = keras.saving.deserialize_keras_object(_json(serialized))
    assert type(restored) is layer_cls
    assert _json(restored.get_config()) == from_json
    restored(input_data)
    restored.set_weights(layer.get_weights())
    _assert_same_outputs(restored(input_data), outputs, atol, "deserialize_keras_object")

    # 4. A model holding the layer, saved and loaded.
    inputs = _symbolic_inputs(input_data)
    model = keras.Model(inputs, layer(inputs))
    eager = [(None,) + s[1:] for s in _shapes(outputs)]
    assert _shapes(model.outputs) == eager, (_shapes(model.outputs), eager)
    _assert_same_outputs(model(input_data), outputs, atol, "functional model")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    _assert_same_outputs(loaded(input_data), outputs, atol, ".keras save and load")

    # 5. Mixed precision by the global policy, as a model is built with it.
    if run_mixed_precision:
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            mixed = layer_cls(**init_kwargs)
            mixed(input_data)
        finally:
            keras.config.set_dtype_policy(previous)
        mixed.set_weights(layer.get_weights())
        mixed_outputs = keras.tree.flatten(mixed(input_data))
        for i, t in enumerate(mixed_outputs):
            dtype = keras.backend.standardize_dtype(t.dtype)
            assert dtype == mixed_precision_output_dtype, f"output {i}: {dtype}"
        values = _numpy(mixed_outputs)
        assert all(np.all(np.isfinite(v)) for v in values), "non-finite mixed-precision output"
        if mixed_precision_tolerance is not None:
            mixed_atol, mixed_rtol = mixed_precision_tolerance
            for i, (g, w) in enumerate(zip(values, _numpy(outputs))):
                np.testing.assert_allclose(g, w, atol=mixed_atol, rtol=mixed_rtol,
                                           err_msg=f"mixed_float16, output {i}")
    return layer, outputs
