"""`mmdsr-keras predict`: top labels, attention maps and label graph for images."""

import json
import pathlib

import numpy as np
import tensorflow as tf

from mmdsr_keras.commands.trained_model import load_trained_model, output_folder
from mmdsr_keras.data.image_decoding import decode_with_pil
from mmdsr_keras.evaluation.prediction_figure import draw_prediction
from mmdsr_keras.models import build_explainer, class_names_of
from mmdsr_keras.models.mmdsr import HEAD_LAYER


def _read(path):
    try:
        return decode_with_pil(pathlib.Path(path).read_bytes())
    except Exception as error:  # noqa: BLE001  (any decoder failure names the file)
        raise SystemExit(f"Cannot read image {path}: {error}") from error


def run_predict(args):
    model, _ = load_trained_model(args.model_path)
    names = class_names_of(model)
    height, width = model.input_shape[1:3]
    has_graph = HEAD_LAYER in {layer.name for layer in model.layers}
    explainer = build_explainer(model) if has_graph else None
    out = output_folder(args.model_path, args.out, "predictions")
    results = []
    for path in args.images:
        image = _read(path)
        # Same warp as evaluation: bilinear resize of the whole image.
        resized = tf.image.resize(image, (height, width), antialias=True).numpy()
        batch = np.clip(resized, 0, 255)[None].astype("float32")
        if explainer is not None:
            details = {k: np.asarray(v) for k, v in explainer.predict(batch, verbose=0).items()}
            logits, attention, adjacency = (details["logits"][0], details["class_attention"][0],
                                            details["adjacency"][0])
        else:
            logits, attention, adjacency = model.predict(batch, verbose=0)[0], None, None
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        top = np.argsort(-probabilities, kind="stable")[: args.top_k]
        figure = out / f"{pathlib.Path(path).stem}.png"
        draw_prediction(figure, image, probabilities, names,
                        None if attention is None else attention, adjacency, args.top_k)
        labels = [{"label": names[c], "probability": float(probabilities[c])} for c in top]
        results.append({"image": str(path), "top": labels, "figure": str(figure)})
        print(f"{path}: " + ", ".join(f"{l['label']} {l['probability']:.2f}" for l in labels))
    with open(out / "predictions.json", "x") as f:
        json.dump(results, f, indent=2)
    print(f"Figures: {out}")
    return 0
