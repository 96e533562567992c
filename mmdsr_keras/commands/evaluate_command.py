"""`mmdsr-keras evaluate`: the metrics of a trained model on a dataset split."""

import argparse

from mmdsr_keras.commands.dataset_arguments import load_split
from mmdsr_keras.commands.trained_model import load_trained_model, output_folder
from mmdsr_keras.evaluation import evaluate_and_report
from mmdsr_keras.models import class_names_of


def run_evaluate(args):
    model, run_arguments = load_trained_model(args.model_path)
    # The run's data options (dataset, held-out split, seed) apply unless given again.
    merged = {"dataset": "shapes", "val_fraction": 0.2, "on_error": "skip",
              "drop_unlabeled": False, **run_arguments}
    merged.update({k: v for k, v in vars(args).items() if v is not None})
    options = argparse.Namespace(**merged)
    data = load_split(options, args.split)
    data, missing = data.with_class_order(class_names_of(model))
    if missing:
        print(f"warning: the evaluation data has no {len(missing)} of the model's classes "
              f"({missing[:10]}{' ...' if len(missing) > 10 else ''}): they are left out of mAP.")
    image_size = model.input_shape[1]
    pipeline = data.to_tf_dataset(image_size, args.batch_size, with_ignore_mask=True,
                                  on_error=options.on_error)
    evaluate_and_report(model, pipeline, data.class_names,
                        output_folder(args.model_path, args.out, "evaluation"))
    return 0
