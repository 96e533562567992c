import keras
import numpy as np

from mmdsr_keras.training.parameter_group_adamw import ParameterGroupAdamW


def _torch_adamw_reference(params, grads_per_step, lrs, wd, b1=0.9, b2=0.999, eps=1e-7):
    """PyTorch AdamW with one parameter group per tensor, written out in float64."""
    params = [p.astype("float64").copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            params[i] = params[i] * (1 - lrs[i] * wd)
            m[i] = b1 * m[i] + (1 - b1) * g
            s[i] = b2 * s[i] + (1 - b2) * g * g
            step = lrs[i] * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            params[i] = params[i] - step * m[i] / (np.sqrt(s[i]) + eps)
    return params


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="body"),
                             keras.layers.Dense(1, name="head")], name="net")


def _run(opt, model, steps):
    opt.build(model.trainable_variables)
    for grads in steps:
        opt.apply([keras.ops.convert_to_tensor(g) for g in grads], model.trainable_variables)
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.trainable_variables]


def test_matches_pytorch_adamw_parameter_groups():
    rng = np.random.default_rng(0)
    model = _model()
    start = [np.array(keras.ops.convert_to_numpy(v)) for v in model.trainable_variables]
    paths = [v.path for v in model.trainable_variables]
    steps = [[rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
             for _ in range(4)]
    multipliers = {"net/body/kernel": 0.1, "net/body/bias": 0.1}
    got = _run(ParameterGroupAdamW(0.05, weight_decay=0.1, lr_multipliers=multipliers),
               model, steps)
    lrs = [0.05 * multipliers.get(p, 1.0) for p in paths]
    expected = _torch_adamw_reference(start, steps, lrs, wd=0.1)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    # The slow group moved about ten times less than it would have at the full rate.
    full_rate = _torch_adamw_reference(start, steps, [0.05] * 4, wd=0.1)
    moved, would_move = np.abs(got[0] - start[0]).sum(), np.abs(full_rate[0] - start[0]).sum()
    assert 0.05 < moved / would_move < 0.2


def test_without_multipliers_equals_keras_adamw():
    rng = np.random.default_rng(1)
    steps = [[rng.normal(size=v.shape).astype("float32") for v in _model().trainable_variables]
             for _ in range(3)]
    ours = _run(ParameterGroupAdamW(0.01, weight_decay=0.05), _model(), steps)
    stock = _run(keras.optimizers.AdamW(0.01, weight_decay=0.05), _model(), steps)
    for a, b in zip(ours, stock):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_fit_and_config_round_trip():
    model = _model()
    opt = ParameterGroupAdamW(0.05, weight_decay=0.01, lr_multipliers={"net/body/bias": 0.1},
                              global_clipnorm=5.0)
    model.compile(optimizer=opt, loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    losses = model.fit(x, y, epochs=20, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    clone = ParameterGroupAdamW.from_config(opt.get_config())
    assert clone.lr_multipliers == {"net/body/bias": 0.1}
    assert clone.decoupled_weight_decay == 0.01 and clone.global_clipnorm == 5.0
