import keras
import numpy as np
import pytest

from mmdsr_keras import available_backbones, build_mmdsr, get_backbone_spec
from mmdsr_keras.layers import ImagePreprocessing

FAST = {"mobilenet_0.25", "mobilenetv2"}
KERAS_APPLICATIONS = [
    "resnet50", "resnet101", "resnet152", "efficientnetv2b0", "efficientnetv2b3",
    "efficientnetv2s", "convnext_tiny", "convnext_small", "mobilenetv2", "mobilenet_0.25",
    "mobilenet_0.5", "mobilenet_0.75", "mobilenet_1.0", "densenet121",
]


def test_required_backbones_are_registered():
    assert set(KERAS_APPLICATIONS) <= set(available_backbones())


@pytest.mark.parametrize(
    "name",
    [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in available_backbones()],
)
def test_build_mmdsr_on_every_backbone(name):
    size = 64
    model = build_mmdsr(num_classes=5, backbone=name, image_size=size, weights=None,
                        units=16, num_heads=2)
    assert model.output_shape == (None, 5)
    strides = [size // t.shape[1] for t in model.get_layer("backbone").outputs]
    assert strides == [8, 16, 32]
    out = model.predict(np.full((1, size, size, 3), 128.0, "float32"), verbose=0)
    assert out.shape == (1, 5) and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "mode, reference",
    [
        ("caffe", keras.applications.resnet.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
    ],
)
def test_preprocessing_matches_keras_applications(mode, reference):
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(ImagePreprocessing(mode)(x))
    np.testing.assert_allclose(got, reference(x.copy()), rtol=1e-5, atol=1e-4)


def test_registered_preprocessing_modes():
    assert get_backbone_spec("resnet101").preprocessing == "caffe"
    assert get_backbone_spec("densenet121").preprocessing == "torch"
    assert get_backbone_spec("mobilenet_0.5").preprocessing == "tf"
    # these networks normalise their own [0, 255] input
    assert get_backbone_spec("efficientnetv2b0").preprocessing == "none"
    assert get_backbone_spec("convnext_tiny").preprocessing == "none"


def test_mobilenet_alpha_is_applied():
    widths = {}
    for alpha in ("0.25", "0.5"):
        model = build_mmdsr(num_classes=2, backbone=f"mobilenet_{alpha}", image_size=64,
                            weights=None, units=8, num_heads=2)
        widths[alpha] = model.get_layer("backbone").outputs[-1].shape[-1]
    assert widths == {"0.25": 256, "0.5": 512}
