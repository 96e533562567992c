"""The `mmdsr-keras` command line, end to end on a tiny shapes run."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mmdsr_keras.cli import main

TINY = ["--num-images", "48", "--epochs", "2", "--batch-size", "16", "--image-size", "64",
        "--backbone", "mobilenet_0.25", "--weights", "none", "--units", "16", "--num-heads", "2",
        "--warmup-epochs", "0"]


def _run_folders(root):
    return sorted(p for p in root.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "--runs-dir", str(root), *TINY]) == 0
    (run,) = _run_folders(root)
    return run


def test_train_writes_a_complete_run(trained_run):
    for name in ("config.json", "model.keras", "log.csv", "checkpoints/epoch_001.weights.h5",
                 "checkpoints/epoch_002.weights.h5", "report/metrics.json",
                 "report/pr_curves.png", "report/per_class_ap.png"):
        assert (trained_run / name).exists(), name
    metrics = json.loads((trained_run / "report" / "metrics.json").read_text())
    assert 0 <= metrics["mAP"] <= 100
    config = json.loads((trained_run / "config.json").read_text())
    assert config["arguments"]["dataset"] == "shapes" and config["training"]["epochs"] == 2
    assert not {"func", "explicit_arguments"} & set(config["arguments"])  # flags only


def test_evaluate_reproduces_metrics(trained_run):
    assert main(["evaluate", str(trained_run)]) == 0
    original = json.loads((trained_run / "report" / "metrics.json").read_text())
    again = json.loads((trained_run / "evaluation" / "metrics.json").read_text())
    for key in ("mAP", "CF1", "OF1", "CP", "OP"):
        assert again[key] == pytest.approx(original[key], abs=1e-6), key


def test_predict_draws_figures(trained_run, tmp_path):
    from PIL import Image

    paths = []
    for i in range(2):
        path = tmp_path / f"image_{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (50, 70, 3), np.uint8)).save(path)
        paths.append(str(path))
    out = tmp_path / "predictions"
    assert main(["predict", str(trained_run), *paths, "--out", str(out), "--top-k", "3"]) == 0
    result = json.loads((out / "predictions.json").read_text())
    assert [len(r["top"]) for r in result] == [3, 3]
    assert (out / "image_0.png").stat().st_size > 1000


def test_predict_of_two_files_with_one_stem_keeps_both(trained_run, tmp_path):
    from PIL import Image

    paths = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "x.jpg"
        Image.fromarray(np.random.default_rng(len(paths)).integers(
            0, 255, (40, 40, 3), np.uint8)).save(path)
        paths.append(str(path))
    out = tmp_path / "predictions"
    assert main(["predict", str(trained_run), *paths, "--out", str(out)]) == 0
    result = json.loads((out / "predictions.json").read_text())
    assert [r["image"] for r in result] == paths
    figures = [r["figure"] for r in result]
    assert len(set(figures)) == 2 and all(pathlib.Path(f).is_file() for f in figures)


def test_predict_decodes_a_16_bit_png_like_evaluation(trained_run, tmp_path, capsys):
    """PIL's convert("RGB") turns 16-bit gray to white; predict must not."""
    import keras
    from PIL import Image

    from mmdsr_keras.data import MultiLabelDataset

    gray = np.random.default_rng(3).integers(0, 256, (48, 64)).astype(np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(gray * 257).save(path)
    out = tmp_path / "predictions"
    assert main(["predict", str(trained_run), str(path), "--out", str(out), "--top-k", "1"]) == 0
    top = json.loads((out / "predictions.json").read_text())[0]["top"][0]
    model = keras.saving.load_model(trained_run / "model.keras")
    data = MultiLabelDataset(["x"], [[1.0]], paths=[str(path)])
    (images, _), = data.to_tf_dataset(model.input_shape[1], 1).take(1)
    probabilities = 1 / (1 + np.exp(-np.asarray(model.predict_on_batch(images))[0]))
    names = model.get_layer("logits").class_names
    assert top["label"] == names[int(np.argmax(probabilities))]
    assert top["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_a_cli_model_loads_in_a_fresh_process_after_import_mmdsr_keras(trained_run):
    code = ("import keras, mmdsr_keras, sys; "
            f"m = keras.saving.load_model({str(trained_run / 'model.keras')!r}); "
            "print(type(m.optimizer).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "ParameterGroupSGD"


def test_evaluate_on_data_lacking_some_classes_warns_and_scores(trained_run, tmp_path, capsys):
    from PIL import Image

    config = json.loads((trained_run / "config.json").read_text())
    import keras

    names = keras.saving.load_model(trained_run / "model.keras").get_layer("logits").class_names
    rows = []
    for i, name in enumerate(names[:2] * 2):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), np.uint8)).save(path)
        rows.append(f"{path},{name}\n")
    csv = tmp_path / "test.csv"
    csv.write_text("path,labels\n" + "".join(rows))
    out = tmp_path / "evaluation"
    assert config["arguments"]["dataset"] == "shapes"
    assert main(["evaluate", str(trained_run), "--dataset", "csv", "--csv", str(csv),
                 "--val-fraction", "1.0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"has no {len(names) - 2} of the model's classes" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["mAP"])


def test_a_second_run_never_reuses_a_folder(tmp_path):
    for _ in range(2):
        assert main(["train", "--runs-dir", str(tmp_path), *TINY, "--epochs", "1"]) == 0
    assert len(_run_folders(tmp_path)) == 2


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "not a run folder" in _one_error_line(capsys)


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "mmdsr_keras", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "train" in out and "evaluate" in out and "predict" in out


def test_export_writes_a_serving_version(trained_run, tmp_path):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the export tests run on TensorFlow")
    out = tmp_path / "export"
    for version in ("1", "2"):
        assert main(["export", str(trained_run), "--out", str(out)]) == 0
        assert (out / version / "saved_model.pb").is_file()
        labels = (out / version / "assets" / "labels.txt").read_text().split("\n")
        assert labels[:2] == ["circle", "square"]


TWO_PHASE = ["--num-images", "32", "--image-size", "32", "--backbone", "mobilenet_0.25",
             "--weights", "none", "--units", "8", "--num-heads", "2", "--recipe", "transfer",
             "--frozen-epochs", "2", "--epochs", "1", "--cache-views", "2", "--batch-size", "16"]


def test_transfer_recipe_runs_both_phases_and_resumes_across_the_boundary(tmp_path, capsys):
    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE]) == 0
    (run,) = _run_folders(tmp_path)
    printed = capsys.readouterr().out
    assert "phase 1, frozen backbone: 2 epochs" in printed and "phase 2, fine-tuning: 1" in printed
    # After fine-tuning the cache is stale: the calibration takes one plain pass.
    assert "on the training images (plain view)" in printed and "Calibrated the logits" in printed
    config = json.loads((run / "config.json").read_text())
    assert config["arguments"]["recipe"] == "transfer"
    assert config["training"]["frozen_epochs"] == 2 and config["training"]["epochs"] == 1
    assert config["training"]["optimizer"] == "adamw"
    assert config["training"]["train_backbone_batchnorm"] is False
    assert len((run / "frozen_log.csv").read_text().strip().splitlines()) == 3  # header + 2
    assert len((run / "log.csv").read_text().strip().splitlines()) == 2
    assert (run / "feature_cache" / "cache.json").is_file()
    # Interrupted after phase 1: resuming loads the head and skips straight to phase 2.
    (run / "model.keras").unlink()
    (run / "log.csv").unlink()
    import shutil

    shutil.rmtree(run / "backup")
    frozen = (run / "frozen_phase.weights.h5").stat().st_mtime_ns
    assert main(["train", "--resume", str(run)]) == 0
    assert "Frozen phase already done" in capsys.readouterr().out
    assert (run / "frozen_phase.weights.h5").stat().st_mtime_ns == frozen
    assert len((run / "log.csv").read_text().strip().splitlines()) == 2
    assert (run / "model.keras").is_file()


def test_transfer_recipe_auto_epochs_follow_the_training_set_size(tmp_path):
    from mmdsr_keras.training.training_recipe import frozen_phase_epochs

    flags = [f for f in TWO_PHASE]
    flags[flags.index("--frozen-epochs") + 1] = "auto"
    flags[flags.index("--epochs") + 1] = "0"
    assert main(["train", "--runs-dir", str(tmp_path), *flags]) == 0
    (run,) = _run_folders(tmp_path)
    config = json.loads((run / "config.json").read_text())
    # 32 shapes images: 12,000 views / 32 = 375 epochs, capped at 40.
    assert config["training"]["frozen_epochs"] == frozen_phase_epochs(32) == 40
    assert len((run / "frozen_log.csv").read_text().strip().splitlines()) == 41


def test_deep_supervision_is_refused_for_a_baseline_before_any_folder(tmp_path, capsys):
    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--model", "gap",
                 "--deep-supervision", "0.5"]) == 1
    assert "--model mmdsr only" in _one_error_line(capsys)
    assert not tmp_path.exists() or _run_folders(tmp_path) == []


@pytest.mark.parametrize("flags, message", [
    (["--model", "mlgcn", "--linear-l2", "0.005", "--frozen-epochs", "0"],
     "needs the frozen phase"),
    (["--model", "mmdsr", "--no-global-linear", "--linear-l2", "0.005"], "--no-global-linear"),
    (["--model", "gap", "--global-linear"], "--global-linear adds"),
    (["--model", "gap", "--linear-first"], "--linear-first fits"),
    (["--model", "gap", "--global-pooling", "max"], "--global-pooling chooses"),
    (["--model", "mmdsr", "--no-global-linear", "--global-pooling", "max"], "--no-global-linear"),
    (["--model", "gap", "--head-l2", "0.005"], "--head-l2 penalises"),
    (["--model", "gap", "--linear-l2", "0.005", "--frozen-epochs", "0"], "needs the frozen phase"),
])
def test_linear_path_options_are_refused_where_there_is_no_linear_path(tmp_path, capsys, flags,
                                                                        message):
    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, *flags]) == 1
    assert message in _one_error_line(capsys)
    assert not tmp_path.exists() or _run_folders(tmp_path) == []


def test_linear_l2_and_linear_first_reach_the_model_and_config(tmp_path):
    import keras

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--global-linear",
                 "--linear-l2", "0.005", "--linear-first"]) == 0
    (run,) = _run_folders(tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["linear_first"] is True
    assert config["arguments"]["linear_l2"] == 0.005
    model = keras.saving.load_model(run / "model.keras")
    assert model.head_args["linear_l2"] == 0.005
    assert model.get_layer("global_linear_standardization").adapt_mean.shape == (512,)


def test_linear_l2_of_mlgcn_standardises_its_features_and_gives_it_a_bias(tmp_path):
    import keras

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--epochs", "0",
                 "--model", "mlgcn", "--linear-l2", "0.002"]) == 0
    (run,) = _run_folders(tmp_path)
    assert json.loads((run / "config.json").read_text())["arguments"]["linear_l2"] == 0.002
    model = keras.saving.load_model(run / "model.keras")
    assert model.linear_l2 == 0.002
    graph = model.get_layer("static_graph")
    assert graph.use_bias and graph.kernel_2.regularizer is not None
    assert model.get_layer("static_graph_standardization").adapt_mean.shape == (256,)


def test_global_pooling_reaches_the_model_and_config(tmp_path):
    import keras

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--epochs", "0",
                 "--global-pooling", "average_max"]) == 0
    (run,) = _run_folders(tmp_path)
    assert json.loads((run / "config.json").read_text())["arguments"]["global_pooling"] == (
        "average_max")
    model = keras.saving.load_model(run / "model.keras")
    assert model.head_args["global_pooling"] == "average_max"
    # [mean, max] of MobileNet-0.25's 256 channels, standardised from the cache.
    assert model.get_layer("global_linear_standardization").adapt_mean.shape == (512,)


def test_head_l2_reaches_the_model_and_config(tmp_path, capsys):
    import keras

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--head-l2", "0.002"]) == 0
    assert "L2 0.002 on the head's kernels" in capsys.readouterr().out
    (run,) = _run_folders(tmp_path)
    assert json.loads((run / "config.json").read_text())["arguments"]["head_l2"] == 0.002
    model = keras.saving.load_model(run / "model.keras")
    graph = model.get_layer("semantic_graph")
    assert model.head_args["head_l2"] == 0.002 and graph.graph_kernel.regularizer is not None


def test_transfer_recipe_gives_mmdsr_the_linear_path_and_head_penalty(tmp_path, capsys):
    import keras

    from mmdsr_keras.training.training_recipe import TRANSFER_MMDSR_HEAD

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--epochs", "0"]) == 0
    out = capsys.readouterr().out
    assert "a global linear path (average_max pooling) beside the graph" in out
    assert "L2 0.005 on the head's kernels" in out
    (run,) = _run_folders(tmp_path)
    arguments = json.loads((run / "config.json").read_text())["arguments"]
    assert {k: arguments[k] for k in TRANSFER_MMDSR_HEAD} == TRANSFER_MMDSR_HEAD == {
        "global_linear": True, "global_pooling": "average_max", "linear_l2": 0.005,
        "head_l2": 0.005}
    model = keras.saving.load_model(run / "model.keras")
    assert {k: model.head_args[k] for k in TRANSFER_MMDSR_HEAD} == TRANSFER_MMDSR_HEAD
    assert model.get_layer("global_linear_standardization").adapt_mean.shape == (512,)


@pytest.mark.parametrize("flags", [["--no-global-linear"], ["--frozen-epochs", "0"],
                                   ["--recipe", "ml-gcn"]])
def test_mmdsr_without_the_transfer_path_is_the_design_head(tmp_path, flags):
    import keras

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--epochs", "1", *flags]) == 0
    (run,) = _run_folders(tmp_path)
    arguments = json.loads((run / "config.json").read_text())["arguments"]
    assert (arguments["global_linear"], arguments["linear_l2"], arguments["head_l2"],
            arguments["global_pooling"]) == (False, 0.0, 0.0, None)
    model = keras.saving.load_model(run / "model.keras")
    assert "global_linear" not in [layer.name for layer in model.layers]
    assert model.get_layer("semantic_graph").graph_kernel.regularizer is None


def test_transfer_recipe_fits_the_gap_classifier_as_a_probe(tmp_path, capsys):
    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--model", "gap",
                 "--epochs", "0"]) == 0
    assert "standardised features with L2 0.005" in capsys.readouterr().out
    (run,) = _run_folders(tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["arguments"]["linear_l2"] == 0.005


def test_transfer_recipe_ends_with_platt_calibration_on_the_cached_views(tmp_path, capsys):
    import keras
    from scipy.optimize import minimize

    from mmdsr_keras.training import StageFeatureCache, predict_cached

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--model", "gap",
                 "--epochs", "0"]) == 0
    assert "Platt calibration of the logits on the training images (every cached view" in (
        capsys.readouterr().out)
    (run,) = _run_folders(tmp_path)
    assert json.loads((run / "config.json").read_text())["training"]["calibrate"] is True
    model = keras.saving.load_model(run / "model.keras")
    scale, bias = model.get_layer("logits").get_calibration()
    assert not np.allclose(scale, 1.0)
    # Recompute the fit independently: undo the saved calibration on the cached
    # views, then minimise Platt's objective with a general optimiser.
    cache = StageFeatureCache(run / "feature_cache")
    raw = np.concatenate([(predict_cached(model, cache, views=(v,)) - bias) / scale
                          for v in range(cache.num_views)])
    labels = np.tile(cache.labels, (cache.num_views, 1))
    for c in range(len(scale)):
        y, z = labels[:, c], raw[:, c]
        if y.min() == y.max():
            assert (scale[c], bias[c]) == (1.0, 0.0)
            continue
        n_pos, n_neg = y.sum(), (1 - y).sum()
        t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        def objective(p):
            return np.sum(np.logaddexp(0, p[0] * z + p[1]) - t * (p[0] * z + p[1]))

        # An untrained random backbone gives near-constant logits, so the
        # optimum is flat along a: compare the objective reached, not (a, b).
        ref = minimize(objective, [1.0, 0.0], method="L-BFGS-B",
                       bounds=[(1e-3, None), (None, None)],  # a_c > 0, as documented
                       options=dict(ftol=1e-15, gtol=1e-10, maxiter=10_000))
        assert objective([scale[c], bias[c]]) <= ref.fun + 1e-3 * max(1.0, abs(ref.fun))
        assert objective([scale[c], bias[c]]) < objective([1.0, 0.0]) - 1e-6


@pytest.mark.parametrize("flags", [["--no-calibrate"], ["--recipe", "ml-gcn"]])
def test_calibration_is_off_when_asked_and_under_the_ml_gcn_recipe(tmp_path, flags):
    import keras

    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--model", "gap",
                 "--epochs", "1", *flags]) == 0
    (run,) = _run_folders(tmp_path)
    assert json.loads((run / "config.json").read_text())["training"]["calibrate"] is False
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("logits").get_config()["calibration"] is False


def test_without_a_frozen_phase_the_gap_classifier_is_plain(tmp_path):
    assert main(["train", "--runs-dir", str(tmp_path), *TWO_PHASE, "--model", "gap",
                 "--frozen-epochs", "0"]) == 0
    (run,) = _run_folders(tmp_path)
    assert json.loads((run / "config.json").read_text())["arguments"]["linear_l2"] == 0.0
