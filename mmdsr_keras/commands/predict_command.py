"""`mmdsr-keras predict`: top labels, attention maps and label graph for images."""

import json
import pathlib

import numpy as np

from mmdsr_keras.commands.trained_model import load_trained_model, output_folder
from mmdsr_keras.data.image_decoding import read_image_file
from mmdsr_keras.data.input_pipeline import resize_for_model
from mmdsr_keras.evaluation.prediction_figure import draw_prediction
from mmdsr_keras.models import build_explainer, class_names_of
from mmdsr_keras.models.mmdsr import HEAD_LAYER


def figure_names(paths):
    """A distinct figure file name per image: the stem, with parent folders when stems clash.

    Example:
    >>> figure_names(["a/x.jpg", "b/x.jpg", "c/y.png"])
    ['a_x.png', 'b_x.png', 'y.png']
    """
    stems = [pathlib.Path(p).stem for p in paths]
    names = []
    for path, stem in zip(paths, stems):
        if stems.count(stem) == 1:
            names.append(f"{stem}.png")
            continue
        parts = pathlib.Path(path).with_suffix("").parts
        names.append("_".join(p for p in parts[-2:] if p not in ("/", "")) + ".png")
    taken = {}
    unique = []
    for name in names:  # still equal (same folder name too): number them
        count = taken.get(name, 0)
        taken[name] = count + 1
        unique.append(name if count == 0 else f"{name[:-4]}_{count}.png")
    return unique


def run_predict(args):
    model, _ = load_trained_model(args.model_path)
    names = class_names_of(model)
    height, width = model.input_shape[1:3]
    has_graph = HEAD_LAYER in {layer.name for layer in model.layers}
    explainer = build_explainer(model) if has_graph else None
    out = output_folder(args.model_path, args.out, "predictions")
    results = []
    for path, figure_name in zip(args.images, figure_names(args.images)):
        # The decoder and warp of training and evaluation.
        image = read_image_file(path)
        batch = np.asarray(resize_for_model(image, height, width))[None].astype("float32")
        image = np.asarray(image)
        if explainer is not None:
            details = {k: np.asarray(v) for k, v in explainer.predict(batch, verbose=0).items()}
            logits, attention, adjacency = (details["logits"][0], details["class_attention"][0],
                                            details["adjacency"][0])
        else:
            logits, attention, adjacency = model.predict(batch, verbose=0)[0], None, None
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        top = np.argsort(-probabilities, kind="stable")[: args.top_k]
        figure = out / figure_name
        draw_prediction(figure, image, probabilities, names,
                        None if attention is None else attention, adjacency, args.top_k)
        labels = [{"label": names[c], "probability": float(probabilities[c])} for c in top]
        results.append({"image": str(path), "top": labels, "figure": str(figure)})
        print(f"{path}: " + ", ".join(f"{l['label']} {l['probability']:.2f}" for l in labels))
    with open(out / "predictions.json", "x") as f:
        json.dump(results, f, indent=2)
    print(f"Figures: {out}")
    return 0
