"""The `mmdsr-keras` sub-commands (the application layer on top of the package)."""

from mmdsr_keras.commands.evaluate_command import run_evaluate
from mmdsr_keras.commands.export_command import run_export
from mmdsr_keras.commands.predict_command import run_predict
from mmdsr_keras.commands.train_command import run_train
from mmdsr_keras.commands.tune_command import run_tune
