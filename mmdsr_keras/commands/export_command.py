"""`mmdsr-keras export`: a TF Serving SavedModel from a run or a `.keras` file."""

from mmdsr_keras.commands.trained_model import model_file
from mmdsr_keras.export import export_saved_model_from_file


def run_export(args):
    keras_file = model_file(args.model_path)
    if not keras_file.is_file():
        raise SystemExit(f"No trained model at {keras_file}.")
    version_dir = export_saved_model_from_file(keras_file, args.out, top_k=args.top_k)
    print(f"SavedModel: {version_dir}")
    return 0
