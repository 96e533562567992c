#!/usr/bin/env python
"""Searches MMDSR hyperparameters with KerasTuner; the same as `mmdsr-keras tune`.

    python tuning/tune_mmdsr.py                                    # random search on shapes
    python tuning/tune_mmdsr.py --tuner bayesian --max-trials 20
    python tuning/tune_mmdsr.py --tuner hyperband --max-epochs 9 --factor 3
    python tuning/tune_mmdsr.py --dataset coco-json --images IMGS --annotations train.json \\
        --val-images VAL_IMGS --val-annotations val.json --backbone resnet101 --weights imagenet

Running it again with the same --directory/--project-name resumes the search
(finished trials are kept, an interrupted one is rerun); --overwrite starts
over. `python tuning/tune_mmdsr.py --help` lists every option; see
tuning/README.md.
"""

import sys

from mmdsr_keras.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
