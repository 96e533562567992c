"""TF Serving SavedModel export: signatures, fresh-process equality, versions, errors.

One tiny MMDSR is exported once per module (about 20 s on 2 CPU cores);
the slow tests add fresh processes (reload, saved_model_cli, a JAX-trained
model) and the ONNX / LiteRT conversions.

Tolerances. Both the exported graph and the Keras model run the same
TensorFlow kernels on the same float32 inputs, so outputs agree to float32
rounding (measured: 0.0); 1e-5 allows a different op fusion on another
machine. For `serve_bytes` the Keras reference runs on pixels decoded and
resized in this test with the same `tf.io.decode_image` + `tf.image.resize`
(JPEG), or decoded independently with PIL (lossless PNG: gray, RGBA,
palette), so the only difference is again float32 rounding.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.shared_data import SHARED

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="SavedModel export tests run on the TensorFlow backend",
)

tf = pytest.importorskip("tensorflow")

from mmdsr_keras import build_mmdsr  # noqa: E402
from mmdsr_keras.export import (  # noqa: E402
    BYTES_INPUT,
    BYTES_SIGNATURE,
    existing_versions,
    export_saved_model,
    export_saved_model_from_file,
)
from mmdsr_keras.export import saved_model_export as sme  # noqa: E402

HELPERS = pathlib.Path(__file__).with_name("subprocess_helpers.py")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CLASS_NAMES = ["person", "bicycle", "café", "traffic light", "cat"]
SIZE = 64
TOP_K = 3
TOLERANCE = 1e-5


def tiny_model():
    return build_mmdsr(
        class_names=CLASS_NAMES, backbone="mobilenet_0.25", image_size=SIZE,
        weights=None, units=16, num_heads=2,
    )


def coco_images(count=4):
    folder = SHARED / "data" / "coco-mini" / "train2017" / "images"
    files = sorted(folder.glob("*.jpg"))[:count]
    if len(files) < count:
        pytest.skip(f"{folder} has fewer than {count} images")
    return files


def tf_decode_resize(encoded):
    """The evaluation pipeline's decode + resize, done here on the test side."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, (SIZE, SIZE), method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0).numpy()


def pil_decode_resize(path):
    """Independent decode (PIL, lossless formats only) + the same resize."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    image = tf.image.resize(pixels, (SIZE, SIZE), method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0).numpy()


def keras_logits(model, images):
    return np.asarray(model(np.asarray(images, "float32"), training=False))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    export_dir = tmp_path_factory.mktemp("export")
    path = export_saved_model(model, export_dir, top_k=TOP_K)
    return export_dir, path


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported[1]))


@pytest.fixture(scope="module")
def png_variants(tmp_path_factory):
    """A gray, an RGBA and a palette PNG made from a COCO image."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("png")
    with Image.open(coco_images(1)[0]) as source:
        source = source.convert("RGB").resize((80, 60))
        rgba = source.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(source.size))
        variants = {"gray": source.convert("L"), "rgba": rgba,
                    "palette": source.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)}
        paths = []
        for name, image in variants.items():
            path = folder / f"{name}.png"
            image.save(path)
            paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# Layout, signatures, requests (one shared export)
# ---------------------------------------------------------------------------


def test_layout_and_labels_asset(exported):
    export_dir, path = exported
    assert path == export_dir / "1"
    assert (path / "saved_model.pb").is_file()
    assert (path / "variables" / "variables.index").is_file()
    labels = (path / "assets" / "labels.txt").read_text(encoding="utf-8")
    assert labels.splitlines() == CLASS_NAMES
    # Only the version directory is left (the staging directory is gone).
    assert sorted(p.name for p in export_dir.iterdir()) == ["1"]


def test_each_weight_stored_once(model, exported):
    """No duplicate checkpoint entries (ExportArchive.track(model) doubles them)."""
    entries = tf.train.list_variables(str(exported[1] / "variables" / "variables"))
    stored = sum(int(np.prod(shape)) for name, shape in entries
                 if name != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert stored == model.count_params()


def test_in_process_signatures_match_keras(model, loaded):
    images = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    out = loaded.signatures["serving_default"](image=tf.constant(images))
    assert sorted(out) == ["logits", "probabilities"]
    expected = keras_logits(model, images)
    np.testing.assert_allclose(out["logits"].numpy(), expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(
        out["probabilities"].numpy(), sigmoid(expected), rtol=0, atol=TOLERANCE
    )


def test_predict_requests_match_signatures(loaded):
    from tensorflow_serving.apis import predict_pb2

    images = np.zeros((2, SIZE, SIZE, 3), "float32")
    requests = {
        "serving_default": {"image": tf.make_tensor_proto(images)},
        "serve_bytes": {"image_bytes": tf.make_tensor_proto([b"\xff\xd8\xff", b"x"])},
    }
    for signature, inputs in requests.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mmdsr"
        request.model_spec.signature_name = signature
        for key, proto in inputs.items():
            request.inputs[key].CopyFrom(proto)
        request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
        _, kwargs = loaded.signatures[signature].structured_input_signature
        assert set(request.inputs) == set(kwargs), signature
        for key, spec in kwargs.items():
            proto = request.inputs[key]
            assert tf.dtypes.as_dtype(proto.dtype) == spec.dtype, (signature, key)
            shape = tf.TensorShape([d.size for d in proto.tensor_shape.dim])
            assert spec.shape.is_compatible_with(shape), (signature, key, shape)
            tensor = tf.make_ndarray(proto)
            assert tensor.shape == tuple(shape)


def test_garbage_bytes_clear_error_then_still_usable(loaded):
    good = coco_images(1)[0].read_bytes()
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"serve_bytes: could not decode image 1 as JPEG/PNG",
    ):
        loaded.signatures["serve_bytes"](image_bytes=tf.constant([good, b"not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image 0"):
        loaded.signatures["serve_bytes"](image_bytes=tf.constant([b""]))
    # A truncated JPEG passes the header check; TF's decoder reports it.
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serve_bytes"](image_bytes=tf.constant([good[:300]]))
    out = loaded.signatures["serve_bytes"](image_bytes=tf.constant([good, good]))
    assert out["labels"].shape == (2, TOP_K)


def test_an_empty_batch_gets_empty_outputs(loaded):
    out = loaded.signatures["serve_bytes"](image_bytes=tf.constant([], tf.string))
    assert out["logits"].shape == (0, len(CLASS_NAMES)) and out["labels"].shape == (0, TOP_K)
    out = loaded.signatures["serving_default"](image=tf.zeros((0, SIZE, SIZE, 3)))
    assert out["probabilities"].shape == (0, len(CLASS_NAMES))


# ---------------------------------------------------------------------------
# Versions (export logic with a stand-in archive: no TF tracing needed)
# ---------------------------------------------------------------------------


class _StubArchive:
    def write_out(self, path, verbose=False):
        os.makedirs(os.path.join(path, "variables"))
        pathlib.Path(path, "saved_model.pb").write_bytes(b"stub")


@pytest.fixture
def stub_archive(monkeypatch):
    monkeypatch.setattr(sme, "build_serving_archive", lambda *args, **kwargs: _StubArchive())


def test_versions_auto_increment_and_never_overwrite(model, tmp_path, stub_archive):
    assert existing_versions(tmp_path / "missing") == []
    assert export_saved_model(model, tmp_path) == tmp_path / "1"
    assert export_saved_model(model, tmp_path) == tmp_path / "2"
    (tmp_path / "notes").mkdir()  # non-integer entries are ignored
    (tmp_path / "010").mkdir()  # not a canonical version name either
    assert export_saved_model(model, tmp_path, version=7) == tmp_path / "7"
    assert export_saved_model(model, tmp_path) == tmp_path / "8"
    marker = tmp_path / "2" / "saved_model.pb"
    marker.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=r"Version 2 already exists"):
        export_saved_model(model, tmp_path, version=2)
    assert marker.read_bytes() == b"keep me"
    (tmp_path / "9").mkdir()  # an existing empty directory also counts
    with pytest.raises(FileExistsError, match="Version 9"):
        export_saved_model(model, tmp_path, version=9)
    assert existing_versions(tmp_path) == [1, 2, 7, 8, 9]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_version_claimed_meanwhile_is_not_overwritten(model, tmp_path, monkeypatch):
    class Racing(_StubArchive):
        def write_out(self, path, verbose=False):
            super().write_out(path)
            theirs = tmp_path / "3"
            if not theirs.exists():  # another exporter finishes first
                theirs.mkdir()
                (theirs / "saved_model.pb").write_bytes(b"theirs")

    monkeypatch.setattr(sme, "build_serving_archive", lambda *args, **kwargs: Racing())
    with pytest.raises(FileExistsError, match="Version 3"):
        export_saved_model(model, tmp_path, version=3)
    assert (tmp_path / "3" / "saved_model.pb").read_bytes() == b"theirs"
    assert export_saved_model(model, tmp_path) == tmp_path / "4"  # auto: next free


@pytest.mark.parametrize("version", [0, -1, "v1", 1.5, True])
def test_bad_versions(model, tmp_path, version):
    with pytest.raises(ValueError, match="positive int"):
        export_saved_model(model, tmp_path, version=version)


def test_argument_checks(model, tmp_path):
    with pytest.raises(ValueError, match="3 class names"):
        export_saved_model(model, tmp_path, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="one line"):
        export_saved_model(model, tmp_path, class_names=["a", "b\nc", "d", "e", "f"])
    with pytest.raises(ValueError, match="built for 64x64"):
        export_saved_model(model, tmp_path, image_size=96)
    with pytest.raises(ValueError, match="format"):
        export_saved_model(model, tmp_path, format="tflite")
    with pytest.raises(FileNotFoundError):
        export_saved_model_from_file(tmp_path / "missing.keras", tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# Fresh processes (slow)
# ---------------------------------------------------------------------------


def _run(args, env=None, timeout=600):
    completed = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
        env=dict(os.environ, **(env or {})),
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


@pytest.mark.slow
def test_fresh_process_reload_matches_keras(model, exported, png_variants, tmp_path):
    jpegs = coco_images(4)
    images = np.stack([tf_decode_resize(p.read_bytes()) for p in jpegs])
    np.savez(tmp_path / "inputs.npz", images=images)
    files = [*jpegs, *png_variants]
    _run([sys.executable, str(HELPERS), "reload", str(exported[1]),
          str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz"), *map(str, files)])
    out = np.load(tmp_path / "out.npz")

    expected = keras_logits(model, images)
    deltas = {"serving_default": np.abs(out["default_logits"] - expected).max()}
    np.testing.assert_allclose(
        out["default_probabilities"], sigmoid(expected), rtol=0, atol=TOLERANCE
    )

    # serve_bytes: JPEGs decoded by TF here, PNGs decoded independently by PIL.
    reference = np.stack(
        [tf_decode_resize(p.read_bytes()) for p in jpegs]
        + [pil_decode_resize(p) for p in png_variants]
    )
    expected = keras_logits(model, reference)
    deltas["serve_bytes"] = np.abs(out["bytes_logits"] - expected).max()
    probabilities = sigmoid(expected)
    np.testing.assert_allclose(out["bytes_probabilities"], probabilities, rtol=0, atol=TOLERANCE)
    # Top-k: scores are the k largest probabilities, labels name those classes.
    assert out["bytes_labels"].shape == out["bytes_scores"].shape == (len(files), TOP_K)
    np.testing.assert_allclose(
        out["bytes_scores"], -np.sort(-probabilities, axis=1)[:, :TOP_K], rtol=0, atol=TOLERANCE
    )
    label_index = np.vectorize(CLASS_NAMES.index)(out["bytes_labels"])
    np.testing.assert_allclose(
        np.take_along_axis(probabilities, label_index, axis=1), out["bytes_scores"],
        rtol=0, atol=TOLERANCE,
    )
    print(f"max |delta logits| vs Keras: {deltas}")
    assert max(deltas.values()) <= TOLERANCE, deltas


def _saved_model_cli():
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def _parse_signatures(text):
    """{signature: {"inputs"|"outputs": {name: (dtype, shape)}}} from `show --all`."""
    signatures = {}
    pattern = re.compile(
        r"(inputs|outputs)\['([^']+)'\] tensor_info:\s*dtype: (\w+)\s*shape: ([^\n]+)"
    )
    for block in re.split(r"\nsignature_def\['", text)[1:]:
        name, body = block.split("']", 1)
        body = body.split("Method name is")[0]
        entry = signatures.setdefault(name, {"inputs": {}, "outputs": {}})
        for kind, key, dtype, shape in pattern.findall(body):
            entry[kind][key] = (dtype, shape.strip())
    return signatures


@pytest.mark.slow
def test_saved_model_cli_lists_signatures(exported):
    completed = _run([*_saved_model_cli(), "show", "--all", "--dir", str(exported[1])])
    signatures = _parse_signatures(completed.stdout)
    c, k = len(CLASS_NAMES), TOP_K
    assert signatures["serving_default"] == {
        "inputs": {"image": ("DT_FLOAT", f"(-1, {SIZE}, {SIZE}, 3)")},
        "outputs": {"logits": ("DT_FLOAT", f"(-1, {c})"),
                    "probabilities": ("DT_FLOAT", f"(-1, {c})")},
    }
    assert signatures["serve_bytes"] == {
        "inputs": {"image_bytes": ("DT_STRING", "(-1)")},
        "outputs": {"labels": ("DT_STRING", f"(-1, {k})"),
                    "logits": ("DT_FLOAT", f"(-1, {c})"),
                    "probabilities": ("DT_FLOAT", f"(-1, {c})"),
                    "scores": ("DT_FLOAT", f"(-1, {k})")},
    }
    assert completed.stdout.count("Method name is: tensorflow/serving/predict") == 2


def test_rest_bodies_in_docs_name_the_exported_inputs():
    """The REST bodies in docs/serving.md parse and use the signature's input name."""
    text = (REPO_ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    bodies = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]
    assert len(bodies) == 2
    for body in bodies:
        assert body["signature_name"] == BYTES_SIGNATURE
        for item in body["instances"]:
            if BYTES_INPUT in item:
                assert list(item) == [BYTES_INPUT]
                item = item[BYTES_INPUT]
            assert list(item) == ["b64"] and isinstance(item["b64"], str)
    assert "docker run -p 8501:8501" in text


@pytest.mark.slow
def test_export_of_jax_trained_model_matches_jax(tmp_path):
    pytest.importorskip("jax")
    jpegs = coco_images(2)
    rng = np.random.default_rng(3)
    images = np.concatenate([
        np.stack([tf_decode_resize(p.read_bytes()) for p in jpegs]),
        rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32"),
    ])
    np.savez(tmp_path / "inputs.npz", images=images)
    _run([sys.executable, str(HELPERS), "jax-train", str(tmp_path), str(tmp_path / "inputs.npz")],
         env={"KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO_ROOT)})
    path = pathlib.Path((tmp_path / "export_path.txt").read_text())
    assert path == tmp_path / "export" / "1"
    jax_logits = np.load(tmp_path / "jax_predictions.npz")["logits"]
    exported = tf.saved_model.load(str(path))
    out = exported.signatures["serving_default"](image=tf.constant(images))
    delta = np.abs(out["logits"].numpy() - jax_logits).max()
    print(f"max |delta logits| JAX model vs its SavedModel: {delta:.3g}")
    assert delta <= TOLERANCE
    out = exported.signatures["serve_bytes"](image_bytes=tf.constant([p.read_bytes() for p in jpegs]))
    np.testing.assert_allclose(out["logits"].numpy(), jax_logits[:2], rtol=0, atol=TOLERANCE)
    labels = (path / "assets" / "labels.txt").read_text(encoding="utf-8").splitlines()
    assert labels == ["person", "bicycle", "car", "dog", "cat"]


# ---------------------------------------------------------------------------
# ONNX / LiteRT through Keras' own model.export (slow)
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_export_matches_keras(model, tmp_path):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    path = export_saved_model(model, tmp_path, format="onnx")
    assert path == tmp_path / "1"
    assert (path / "labels.txt").read_text(encoding="utf-8").splitlines() == CLASS_NAMES
    session = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    images = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    (logits,) = session.run(None, {"image": images})
    delta = np.abs(logits - keras_logits(model, images)).max()
    print(f"max |delta logits| ONNX Runtime vs Keras: {delta:.3g}")
    assert delta <= TOLERANCE


@pytest.mark.slow
def test_litert_export(model, tmp_path):
    path = export_saved_model(model, tmp_path, format="litert")
    interpreter = tf.lite.Interpreter(model_path=str(path / "model.tflite"))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [2, SIZE, SIZE, 3])
    interpreter.allocate_tensors()
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    interpreter.set_tensor(detail["index"], images)
    try:
        interpreter.invoke()
    except RuntimeError as error:
        if "Select TensorFlow op" in str(error):
            pytest.xfail(
                "CrossLayerAttention's 6-D einsum converts to FlexBatchMatMulV2: the "
                ".tflite file needs the Select-TF-ops (Flex) runtime"
            )
        raise
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(logits, keras_logits(model, images), rtol=0, atol=1e-4)
