"""keras-hub `FeaturePyramidBackbone`s under MMDSR, built from configs (no download)."""

import keras
import numpy as np
import pytest

import mmdsr_keras
from mmdsr_keras.models.head_model import build_stage_feature_model

keras_hub = pytest.importorskip("keras_hub")


def _resnet():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16, 16, 32], stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
        image_shape=(None, None, 3))


def _densenet():
    return keras_hub.models.DenseNetBackbone(
        stackwise_num_repeats=[1, 1, 1, 1], growth_rate=8, image_shape=(64, 64, 3))


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 64, 64, 3)).astype("float32")


@pytest.mark.parametrize("make_backbone", [_resnet, _densenet], ids=["resnet", "densenet"])
def test_pyramid_outputs_p3_to_p5_feed_mmdsr_and_it_trains(make_backbone, tmp_path):
    backbone = make_backbone()
    keras.utils.set_random_seed(0)
    model = mmdsr_keras.build_mmdsr(num_classes=3, backbone=backbone, image_size=64,
                                    units=16, num_heads=2)
    assert model.backbone is backbone
    x = _images(4)
    # The stage features are exactly the backbone's P3, P4 and P5.
    pyramid = keras.Model(backbone.inputs, [backbone.pyramid_outputs[k]
                                            for k in ("P3", "P4", "P5")])
    for got, expected in zip(build_stage_feature_model(model).predict(x, verbose=0),
                             pyramid.predict(x, verbose=0)):
        assert got.shape[1:3] in {(8, 8), (4, 4), (2, 2)}
        np.testing.assert_allclose(got, expected, atol=1e-5)
    y = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]], "float32")
    model.compile()
    before = [keras.ops.convert_to_numpy(v).copy() for v in backbone.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    moved = [np.abs(keras.ops.convert_to_numpy(v) - b).max()
             for v, b in zip(backbone.trainable_weights, before)]
    assert max(moved) > 0
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_the_presets_own_image_converter_can_be_the_preprocessing(tmp_path):
    backbone = _resnet()
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(64, 64), scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)],
        offset=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    model = mmdsr_keras.build_mmdsr(num_classes=2, backbone=backbone, image_size=64,
                                    units=16, num_heads=2, preprocessing=converter)
    x = _images(2)
    # ImageNet mean/std by hand: the converter is what the backbone sees.
    by_hand = (x / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert model.image_preprocessing is converter and converter in model.layers
    np.testing.assert_allclose(keras.ops.convert_to_numpy(converter(x)), by_hand, atol=1e-4)
    model.save_to_preset(tmp_path / "preset")
    loaded = mmdsr_keras.MMDSRImageClassifier.from_preset(tmp_path / "preset")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_a_backbone_without_a_pyramid_needs_stage_names():
    plain = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="needs `stages`"):
        mmdsr_keras.build_mmdsr(num_classes=2, backbone=plain, image_size=64)
