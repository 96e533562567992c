import keras
import numpy as np
import pytest

from mmdsr_keras.training.parameter_group_sgd import ParameterGroupSGD, backbone_lr_multipliers


def _torch_sgd_reference(params, grads_per_step, lrs, momentum, wd, clip):
    """PyTorch semantics, written out: clip_grad_norm_, then SGD with param-group lrs."""
    params = [p.astype("float64").copy() for p in params]
    bufs = [None] * len(params)
    for grads in grads_per_step:
        norm = np.sqrt(sum(np.sum(g.astype("float64") ** 2) for g in grads))
        scale = min(1.0, clip / (norm + 1e-6))
        for i, (p, g) in enumerate(zip(params, grads)):
            d = g * scale + wd * p
            bufs[i] = d if bufs[i] is None else momentum * bufs[i] + d
            params[i] = p - lrs[i] * bufs[i]
    return params


def test_matches_pytorch_parameter_groups():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="body"),
                              keras.layers.Dense(1, name="head")], name="net")
    start = [v.numpy() if hasattr(v, "numpy") else keras.ops.convert_to_numpy(v)
             for v in model.trainable_variables]
    paths = [v.path for v in model.trainable_variables]
    multipliers = {"net/body/kernel": 0.1, "net/body/bias": 0.1}
    opt = ParameterGroupSGD(0.5, momentum=0.9, l2_weight_decay=0.01, clip_global_norm=1.0,
                            lr_multipliers=multipliers)
    opt.build(model.trainable_variables)
    steps = [[rng.normal(scale=2.0, size=v.shape).astype("float32")
              for v in model.trainable_variables] for _ in range(3)]
    for grads in steps:
        opt.apply(grads, model.trainable_variables)
    lrs = [0.5 * multipliers.get(p, 1.0) for p in paths]
    expected = _torch_sgd_reference(start, steps, lrs, 0.9, 0.01, 1.0)
    for v, e in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(v), e, rtol=1e-4, atol=1e-6)


def test_fit_and_config_round_trip():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="head")])
    opt = ParameterGroupSGD(0.05, lr_multipliers={"head/bias": 0.1})
    model.compile(optimizer=opt, loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    losses = model.fit(x, y, epochs=15, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    clone = ParameterGroupSGD.from_config(opt.get_config())
    assert clone.lr_multipliers == {"head/bias": 0.1}
    assert clone.l2_weight_decay == 1e-4 and clone.clip_global_norm == 10.0


def test_rejects_keras_decay_arguments():
    with pytest.raises(ValueError, match="l2_weight_decay"):
        ParameterGroupSGD(0.1, weight_decay=1e-4)


def test_backbone_multipliers_cover_the_backbone_only():
    import mmdsr_keras

    model = mmdsr_keras.build_mmdsr(num_classes=2, backbone="mobilenet_0.25", image_size=64,
                                    weights=None, units=8, num_heads=2)
    groups = backbone_lr_multipliers(model, 0.1)
    backbone = {v.path for v in model.get_layer("backbone").trainable_variables}
    assert set(groups) == backbone and set(groups.values()) == {0.1}
    head = [v.path for v in model.get_layer("semantic_graph").trainable_variables]
    assert not set(head) & set(groups)
