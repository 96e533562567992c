"""KerasTuner search of MMDSR: trials, reload of the best model, NaN trials, resume, CLI."""

import json
import math

import keras
import keras_tuner
import numpy as np
import pytest

from mmdsr_keras.data import load_dataset
from tests.shared_data import SHARED
from mmdsr_keras.evaluation import AveragePrecisionMeter
from mmdsr_keras.training.multi_label_trainer import TrainingConfig
from mmdsr_keras.tuning import (
    MMDSRHyperModel,
    ProjectMismatchError,
    build_tuner,
    run_search,
    trial_rows,
    write_search_report,
)
from mmdsr_keras.tuning.search import check_project, project_facts
from mmdsr_keras.commands.tune_arguments import parse_fixed

IMAGE_SIZE = 64
# The ImageNet MobileNet 0.25 of ../shared when there (same cost as from scratch). A
# from-scratch MobileNet predicts the same scores for every image for its first
# hundreds of steps (its BatchNorm moving statistics still say mean 0, variance 1
# while the real activations have vanished), which would make the reload check weak.
PRETRAINED = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
WEIGHTS = str(PRETRAINED) if PRETRAINED.is_file() else None
# Tiny trials: one epoch of 64 images at 64 px, MobileNet 0.25, d = d_v = 16, no XLA.
TINY = dict(image_size=IMAGE_SIZE, backbone="mobilenet_0.25", weights=WEIGHTS, units=16,
            node_units=16, batch_size=16, epochs=1,
            base_config=TrainingConfig(warmup_epochs=0.0, jit_compile=False))


@pytest.fixture(scope="module")
def data():
    train = load_dataset("shapes", split="train", num_images=64, image_size=IMAGE_SIZE)
    val = load_dataset("shapes", split="val", num_images=32, image_size=IMAGE_SIZE)
    return train, val


def _hypermodel(train, cls=MMDSRHyperModel, **kwargs):
    return cls.from_dataset(train, **{**TINY, **kwargs})


def _statuses(tuner):
    return [r["status"] for r in trial_rows(tuner)]


@pytest.fixture(scope="module")
def random_search(data, tmp_path_factory):
    train, val = data
    directory = tmp_path_factory.mktemp("tuning")
    tuner, resumed = run_search(_hypermodel(train), train, val, tuner="random",
                                directory=directory, project_name="random", max_trials=3,
                                seed=1, verbose=0)
    return tuner, resumed, directory / "random"


@pytest.mark.slow
def test_random_search_completes_every_trial(random_search, tmp_path):
    tuner, resumed, project = random_search
    assert not resumed
    rows = trial_rows(tuner)
    assert [r["status"] for r in rows] == ["COMPLETED"] * 3
    assert all(0.0 <= r["val_mAP"] <= 100.0 for r in rows)
    assert len({json.dumps(r["hyperparameters"], sort_keys=True) for r in rows}) == 3
    rows, table = write_search_report(tuner, tmp_path)
    assert "val_mAP" in table and table.count("COMPLETED") == 3
    csv_lines = (tmp_path / "trials.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("trial_id,status,val_mAP")
    assert (tmp_path / "search.png").stat().st_size > 5000
    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert best["val_mAP"] == max(r["val_mAP"] for r in rows)
    assert (project / "mmdsr_tuning.json").is_file()


@pytest.mark.slow
def test_best_model_reloads_and_reproduces_val_map(random_search, data):
    tuner, _, _ = random_search
    _, val = data
    best_trial = tuner.oracle.get_best_trials(1)[0]
    (model,) = tuner.get_best_models(1)
    meter = AveragePrecisionMeter()
    for images, labels, mask in val.to_tf_dataset(IMAGE_SIZE, 32, with_ignore_mask=True):
        meter.add(keras.ops.convert_to_numpy(model.predict_on_batch(np.asarray(images))),
                  np.asarray(labels), np.asarray(mask))
    if WEIGHTS is not None:  # a real ranking, not ties everywhere
        assert np.ptp(meter.arrays()[0], axis=0).min() > 0
    assert meter.compute()["mAP"] == pytest.approx(best_trial.score, abs=1e-4)
    fresh = tuner.hypermodel.build(best_trial.hyperparameters)  # untrained: other weights
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), model.get_weights()))


def test_build_is_deterministic(data):
    train, _ = data
    hypermodel = _hypermodel(train)
    hp = keras_tuner.HyperParameters()
    first = [w.copy() for w in hypermodel.build(hp).get_weights()]
    keras.utils.set_random_seed(123)  # whatever happened in between
    second = hypermodel.build(hp).get_weights()
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    other = _hypermodel(train, seed=1).build(hp).get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_search_space_declares_every_hyperparameter(data):
    train, _ = data
    hypermodel = _hypermodel(train, units=(16, 32), batch_size=(8, 16),
                             fixed={"graph": "static", "learning_rate": 0.05})
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    assert set(hp.values) == set(MMDSRHyperModel.hyperparameter_names()) - {
        "num_perspectives", "sparsity_threshold", "prior_weight",  # only with graph=dynamic
        "frozen_learning_rate"}  # only with a frozen-backbone phase
    assert hp.values["graph"] == "static" and hp.values["learning_rate"] == 0.05
    space = {h.name: h for h in hp.space}
    assert hp.values["units"] == 16 and set(space["units"].values) == {16, 32}
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        _hypermodel(train, fixed={"heads": 2})
    assert _hypermodel(train, units=(8, 16)).head_choices == (1, 2)  # 4 does not divide 8 / 4
    with pytest.raises(ValueError, match="at least 4"):
        _hypermodel(train, units=(2, 16))
    assert parse_fixed(["graph=none", "num_heads=2", "prior_weight=0.3", "cross_layer=false"]) == {
        "graph": "none", "num_heads": 2, "prior_weight": 0.3, "cross_layer": False}


class PoisonedFirstTrial(MMDSRHyperModel):
    """Test hook: the first trial's model starts with NaN weights, so its loss is NaN."""

    fit_calls = 0

    def fit(self, hp, model, *args, **kwargs):
        type(self).fit_calls += 1
        if type(self).fit_calls == 1:
            weight = model.trainable_weights[0]
            weight.assign(np.full(weight.shape, np.nan, dtype="float32"))
        return super().fit(hp, model, *args, **kwargs)


class CountingHyperModel(MMDSRHyperModel):
    fit_calls = 0

    def fit(self, hp, model, *args, **kwargs):
        type(self).fit_calls += 1
        return super().fit(hp, model, *args, **kwargs)


class InterruptedHyperModel(MMDSRHyperModel):
    """Test hook: Ctrl-C as the trial starts (KerasTuner does not catch it)."""

    def fit(self, hp, model, *args, **kwargs):
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def nan_project(data, tmp_path_factory):
    train, val = data
    directory = tmp_path_factory.mktemp("nan")
    tuner, _ = run_search(_hypermodel(train, cls=PoisonedFirstTrial), train, val,
                          directory=directory, project_name="p", max_trials=2, seed=3,
                          verbose=0)
    return directory, trial_rows(tuner), tuner.oracle.get_best_trials(1)[0].trial_id


@pytest.mark.slow
def test_nan_trial_is_failed_and_the_search_goes_on(nan_project):
    _, rows, best_id = nan_project
    assert [r["status"] for r in rows] == ["FAILED", "COMPLETED"]
    assert rows[0]["val_mAP"] is None and "diverged" in rows[0]["message"]
    assert math.isfinite(rows[1]["val_mAP"]) and best_id == rows[1]["trial_id"]


@pytest.mark.slow
def test_resume_runs_only_the_missing_trials(nan_project, data):
    directory, before, _ = nan_project
    train, val = data
    # A resumed search that is interrupted (Ctrl-C) as its new trial starts...
    with pytest.raises(KeyboardInterrupt):
        run_search(_hypermodel(train, cls=InterruptedHyperModel), train, val,
                   directory=directory, project_name="p", max_trials=3, seed=3, verbose=0)
    # ... and resumed again: only that trial runs; finished ones (even FAILED) are kept.
    CountingHyperModel.fit_calls = 0
    tuner, resumed = run_search(_hypermodel(train, cls=CountingHyperModel), train, val,
                                directory=directory, project_name="p", max_trials=3, seed=3,
                                verbose=0)
    assert resumed and CountingHyperModel.fit_calls == 1
    rows = trial_rows(tuner)
    assert [r["status"] for r in rows] == ["FAILED", "COMPLETED", "COMPLETED"]
    for old, new in zip(before, rows):
        assert (old["trial_id"], old["hyperparameters"], old["val_mAP"]) == (
            new["trial_id"], new["hyperparameters"], new["val_mAP"])
    # Resuming a finished search runs nothing.
    tuner, _ = run_search(_hypermodel(train, cls=CountingHyperModel), train, val,
                          directory=directory, project_name="p", max_trials=3, seed=3, verbose=0)
    assert CountingHyperModel.fit_calls == 1 and len(trial_rows(tuner)) == 3


def test_project_guard(data, tmp_path):
    train, val = data
    hypermodel = _hypermodel(train)
    facts = project_facts(hypermodel, "random", train, val)
    assert check_project(tmp_path / "new", facts, overwrite=False) is False
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "holiday.jpg").write_bytes(b"\xff\xd8")
    for overwrite in (False, True):
        with pytest.raises(ProjectMismatchError, match="not a tuning project"):
            check_project(stranger, facts, overwrite=overwrite)
    assert (stranger / "holiday.jpg").exists()
    project = tmp_path / "project"
    project.mkdir()
    (project / "mmdsr_tuning.json").write_text(json.dumps(facts, default=str))
    (project / "oracle.json").write_text("{}")
    assert check_project(project, facts, overwrite=False) is True
    other = project_facts(hypermodel, "random", val, val)
    # The library names its argument; the CLI translates it to --overwrite.
    with pytest.raises(ProjectMismatchError, match="`overwrite=True`"):
        check_project(project, other, overwrite=False)
    assert check_project(project, other, overwrite=True) is False


def test_bayesian_and_hyperband_tuners_build(data, tmp_path):
    train, _ = data
    hypermodel = _hypermodel(train)
    bayesian = build_tuner(hypermodel, "bayesian", directory=tmp_path, project_name="b",
                           max_trials=2)
    assert isinstance(bayesian.oracle, keras_tuner.oracles.BayesianOptimizationOracle)
    hyperband = build_tuner(hypermodel, "hyperband", directory=tmp_path, project_name="h",
                            max_epochs=2)
    assert isinstance(hyperband.oracle, keras_tuner.oracles.HyperbandOracle)
    assert bayesian.oracle.objective.name == "val_mAP"
    assert bayesian.oracle.objective.direction == "max"


@pytest.mark.slow
def test_cli_tune_writes_the_table(tmp_path, capsys):
    from mmdsr_keras.cli import main

    args = ["tune", "--num-images", "48", "--backbone", "mobilenet_0.25", "--weights", "none",
            "--image-size", str(IMAGE_SIZE), "--units", "16", "--node-units", "16",
            "--epochs", "1", "--batch-size", "16", "--xla", "off", "--max-trials", "1",
            "--directory", str(tmp_path), "--project-name", "cli", "--tensorboard",
            "--verbose", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "New project" in out and "COMPLETED" in out
    for name in ("trials.csv", "search.png", "best_hyperparameters.json"):
        assert (tmp_path / "cli" / name).is_file(), name
    assert any((tmp_path / "cli" / "tensorboard").rglob("*tfevents*"))
    assert main(args) == 0  # resumes the finished project: nothing to run
    assert "Resumed project" in capsys.readouterr().out
    assert main(args + ["--units", "32"]) == 1  # another search space: refused
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "other settings" in error[0]
    assert "--project-name" in error[0] and "--overwrite" in error[0]


def test_head_arguments_reach_every_trial_model_and_the_description(data):
    from mmdsr_keras.training.training_recipe import TRANSFER_MMDSR_HEAD

    hypermodel = _hypermodel(data[0], head_arguments=TRANSFER_MMDSR_HEAD)
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert {k: model.head_args[k] for k in TRANSFER_MMDSR_HEAD} == TRANSFER_MMDSR_HEAD
    assert model.get_layer("semantic_graph").graph_kernel.regularizer is not None
    assert "global_linear" in [layer.name for layer in model.layers]
    assert hypermodel.describe()["head_arguments"] == TRANSFER_MMDSR_HEAD
    assert "head_arguments" not in _hypermodel(data[0]).describe()
    for bad in ({"num_heads": 2}, {"label_density": 0.1}, {"no_such_argument": 1}):
        with pytest.raises(ValueError, match="head_arguments"):
            _hypermodel(data[0], head_arguments=bad)


@pytest.mark.slow
def test_transfer_recipe_trials_share_one_feature_cache(data, tmp_path):
    from mmdsr_keras.training.training_recipe import recipe_defaults, recipe_head_arguments

    train, val = data
    recipe = {**recipe_defaults("transfer"), "frozen_epochs": 2, "cache_views": 2,
              "jit_compile": False}
    cache_dir = tmp_path / "feature_cache"
    hypermodel = _hypermodel(train, base_config=TrainingConfig(**recipe),
                             feature_cache_dir=str(cache_dir),
                             head_arguments=recipe_head_arguments("transfer"))
    tuner, _ = run_search(hypermodel, train, val, tuner="random", directory=str(tmp_path),
                          project_name="transfer", max_trials=2, seed=3, verbose=0)
    rows = trial_rows(tuner)
    assert [r["status"] for r in rows] == ["COMPLETED"] * 2
    rates = [r["hyperparameters"]["frozen_learning_rate"] for r in rows]
    assert all(3e-4 <= r <= 3e-2 for r in rates) and rates[0] != rates[1]
    # AdamW fine-tuning rates are searched on AdamW's scale.
    assert all(1e-5 <= r["hyperparameters"]["learning_rate"] <= 1e-2 for r in rows)
    metadata = json.loads((cache_dir / "cache.json").read_text())
    assert metadata["views_done"] == 2 and metadata["num_images"] == len(train)
    # The frozen phase set the linear path's standardisation from the cache.
    best = tuner.get_best_models(1)[0]
    mean = np.asarray(best.get_layer("global_linear_standardization").adapt_mean)
    assert np.abs(mean).max() > 0
