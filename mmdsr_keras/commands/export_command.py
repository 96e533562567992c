"""`mmdsr-keras export`: a TF Serving SavedModel from a run or a `.keras` file."""

import pathlib


def run_export(args):
    from mmdsr_keras.export import export_saved_model_from_file

    path = pathlib.Path(args.model_path)
    keras_file = path / "model.keras" if path.is_dir() else path
    if not keras_file.is_file():
        raise SystemExit(f"No trained model at {keras_file}.")
    version_dir = export_saved_model_from_file(keras_file, args.out, top_k=args.top_k)
    print(f"SavedModel: {version_dir}")
    return 0
