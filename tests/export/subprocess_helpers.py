"""Fresh-process halves of the SavedModel export tests (run as a script).

    python subprocess_helpers.py reload SAVED_MODEL_DIR INPUTS_NPZ OUT_NPZ IMAGE_FILE...
        Loads the SavedModel with `tf.saved_model.load` only (no Keras, no
        mmdsr_keras import: the artifact must stand alone) and calls
        `serving_default` on INPUTS_NPZ["images"] and `serve_bytes` on the
        bytes of IMAGE_FILE...; writes every output to OUT_NPZ.

    KERAS_BACKEND=jax python subprocess_helpers.py jax-train WORK_DIR INPUTS_NPZ
        Builds the tiny MMDSR, trains one step under JAX, saves
        WORK_DIR/model.keras and the JAX predictions on INPUTS_NPZ["images"]
        (WORK_DIR/jax_predictions.npz), then exports with
        `export_saved_model_from_file` from this JAX process (which runs the
        TensorFlow subprocess) to WORK_DIR/export; writes the version path to
        WORK_DIR/export_path.txt.
"""

import os
import pathlib
import sys


def reload(saved_model_dir, inputs_npz, out_npz, image_files):
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    images = np.load(inputs_npz)["images"]
    dense = loaded.signatures["serving_default"](image=tf.constant(images))
    encoded = [pathlib.Path(f).read_bytes() for f in image_files]
    from_bytes = loaded.signatures["serve_bytes"](image_bytes=tf.constant(encoded))
    arrays = {f"default_{k}": v.numpy() for k, v in dense.items()}
    arrays.update({f"bytes_{k}": v.numpy() for k, v in from_bytes.items()})
    arrays["bytes_labels"] = arrays["bytes_labels"].astype("U")  # no pickled objects
    np.savez(out_npz, **arrays)


def jax_train(work_dir, inputs_npz):
    import keras
    import numpy as np

    assert keras.backend.backend() == "jax", keras.backend.backend()
    from mmdsr_keras import build_mmdsr
    from mmdsr_keras.export import export_saved_model_from_file

    work_dir = pathlib.Path(work_dir)
    keras.utils.set_random_seed(0)
    model = build_mmdsr(
        class_names=["person", "bicycle", "car", "dog", "cat"],
        backbone="mobilenet_0.25", image_size=64, weights=None, units=16, num_heads=2,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    y = (rng.uniform(size=(4, 5)) < 0.4).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    keras_path = work_dir / "model.keras"
    model.save(keras_path)
    images = np.load(inputs_npz)["images"]
    logits = np.asarray(model.predict(images, verbose=0))
    np.savez(work_dir / "jax_predictions.npz", logits=logits)
    path = export_saved_model_from_file(keras_path, work_dir / "export", top_k=3)
    (work_dir / "export_path.txt").write_text(str(path))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "reload":
        reload(args[0], args[1], args[2], args[3:])
    elif command == "jax-train":
        jax_train(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
    os._exit(0)  # skip slow interpreter teardown of TF/JAX
