"""Multi-worker `mmdsr-keras train` with real worker processes on 127.0.0.1.

TensorFlow (`--distribution multi-worker`, TF_CONFIG) and JAX (`--distribution
data-parallel --num-processes 2`), each in fresh processes started from this
(TensorFlow) suite. A tiny model without dropout and with the backbone's
BatchNorm in inference mode (the transfer recipe), so that two workers with
half of each global batch compute the single process's update.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).with_name("multi_worker_script.py")
REPO = pathlib.Path(__file__).resolve().parents[2]
# 32 images, global batch 8: 4 steps per epoch, each batch split 4 + 4.
TRAIN = ["--dataset", "shapes", "--num-images", "32", "--image-size", "32",
         "--backbone", "mobilenet_0.25", "--weights", "none", "--recipe", "transfer",
         "--model", "gap", "--batch-size", "8", "--warmup-epochs", "0", "--epochs", "3",
         "--frozen-epochs", "0"]
DISTRIBUTION = {"tensorflow": ["--distribution", "multi-worker"],
                "jax": ["--distribution", "data-parallel"]}
# float32 sums over 4 + 4 rows instead of 8 reorder the additions.
TOLERANCE = 1e-5
TIMEOUT_S = 240


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(backend, out, arguments, tmp, env_extra=None, log=None):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(REPO), TMPDIR=str(tmp),
               TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.Popen([sys.executable, str(SCRIPT), str(out), *arguments], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _worker_environments(backend, count):
    """Per worker: (extra CLI arguments, extra environment variables)."""
    ports = _free_ports(count)
    if backend == "tensorflow":
        cluster = ",".join(f'"127.0.0.1:{p}"' for p in ports)
        return [([], {"TF_CONFIG": f'{{"cluster": {{"worker": [{cluster}]}}, '
                                   f'"task": {{"type": "worker", "index": {i}}}}}'})
                for i in range(count)]
    return [(["--coordinator-address", f"127.0.0.1:{ports[0]}", "--num-processes",
              str(count), "--process-id", str(i)], {}) for i in range(count)]


def _wait(processes, logs, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    try:
        for p in processes:
            p.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail("a worker did not finish in time:\n" + _tails(logs))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [p.returncode for p in processes]


def _tails(logs):
    return "\n".join(f"--- {log}\n{pathlib.Path(log).read_text(errors='replace')[-2500:]}"
                     for log in logs)


def _run_workers(backend, tmp, tag, arguments, count=2, exit_at=None):
    """Starts `count` workers of one run and waits for them; returns their results."""
    outs = [tmp / f"{tag}-{i}.npz" for i in range(count)]
    logs = [tmp / f"{tag}-{i}.log" for i in range(count)]
    processes = []
    for i, (extra, env) in enumerate(_worker_environments(backend, count)):
        if exit_at is not None and i == exit_at[0]:
            env = dict(env, MMDSR_TEST_EXIT_AT=exit_at[1])
        processes.append(_start(backend, outs[i], [*arguments, *DISTRIBUTION[backend], *extra],
                                tmp / "tmp", env, logs[i]))
    if exit_at is not None:
        # The killed worker leaves; its peers would wait for it in the next
        # collective (or fail): the whole job is stopped, as a cluster would.
        victim = processes[exit_at[0]]
        try:
            victim.wait(timeout=TIMEOUT_S)
        finally:
            time.sleep(2)
            for p in processes:
                if p.poll() is None:
                    p.kill()
                p.wait()
        assert victim.returncode == 3, _tails(logs)
        return None
    codes = _wait(processes, logs)
    assert codes == [0] * count, _tails(logs)
    return [dict(np.load(out)) for out in outs]


def _single_process(backend, tmp):
    out, log = tmp / "single.npz", tmp / "single.log"
    process = _start(backend, out, [*TRAIN, "--runs-dir", str(tmp / "single-runs")],
                     tmp / "tmp", log=log)
    assert _wait([process], [log]) == [0], _tails([log])
    return dict(np.load(out))


def _weights(result):
    return [result[k] for k in sorted(result) if k.startswith("w")]


def _max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(_weights(a), _weights(b)))


def _run_folder(runs):
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def _check_backend(backend, tmp_path, victim):
    (tmp_path / "tmp").mkdir()
    single = _single_process(backend, tmp_path)

    # (a), (b), (c): two workers, one uninterrupted run.
    runs = tmp_path / "runs"
    chief, worker = _run_workers(backend, tmp_path, "two", [*TRAIN, "--runs-dir", str(runs)])
    assert int(chief["steps"]) == int(single["steps"]) == 3 * 4
    between_workers = _max_difference(chief, worker)
    versus_single = _max_difference(chief, single)
    assert between_workers == 0.0
    assert versus_single < TOLERANCE
    run = _run_folder(runs)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch_001.weights.h5", "epoch_002.weights.h5", "epoch_003.weights.h5"]
    assert (run / "model.keras").is_file() and (run / "report" / "metrics.json").is_file()
    assert not (run / "FAILED.txt").exists()
    assert len((run / "log.csv").read_text().strip().splitlines()) == 1 + 3
    assert list((tmp_path / "tmp").glob("mmdsr-worker*")) == []  # workers' folders removed

    # (d): worker `victim` dies in epoch 2 (after its second step); the job
    # restarts with --resume.
    killed_runs = tmp_path / "killed-runs"
    _run_workers(backend, tmp_path, "killed", [*TRAIN, "--runs-dir", str(killed_runs)],
                 exit_at=(victim, "1,1"))
    # A killed worker cannot remove its temporary folder (the system's
    # temporary-file cleanup does; one that sees its peer die and fails
    # removes it): at most worker 1's is left, and the resumed run adds none.
    left_by_kill = sorted((tmp_path / "tmp").glob("mmdsr-worker*"))
    assert len(left_by_kill) <= 1 and all("worker1-" in p.name for p in left_by_kill)
    run = _run_folder(killed_runs)
    assert not (run / "model.keras").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_001.weights.h5"]
    chief, worker = _run_workers(backend, tmp_path, "resumed", ["--resume", str(run)])
    assert int(chief["epochs"]) == 2  # the two epochs the killed run had not finished
    assert _max_difference(chief, worker) == 0.0
    resumed_versus_single = _max_difference(chief, single)
    assert resumed_versus_single < TOLERANCE
    assert _run_folder(killed_runs) == run and (run / "model.keras").is_file()
    assert sorted((tmp_path / "tmp").glob("mmdsr-worker*")) == left_by_kill
    print(f"\n{backend} (process {victim} killed): max |w| difference between workers "
          f"{between_workers:.1e}, "
          f"vs one process {versus_single:.1e}, resumed vs one process "
          f"{resumed_versus_single:.1e}; all-reduce of {sum(w.size for w in _weights(chief))} "
          f"values {1000 * float(chief['all_reduce_s']):.2f} ms; fit {float(chief['fit_s']):.1f} s "
          f"(2 workers) vs {float(single['fit_s']):.1f} s (1 process)")


@pytest.mark.slow
def test_tensorflow_multi_worker_matches_one_process_and_resumes(tmp_path):
    _check_backend("tensorflow", tmp_path, victim=1)  # a worker dies


@pytest.mark.slow
def test_jax_multi_process_matches_one_process_and_resumes(tmp_path):
    pytest.importorskip("jax")
    _check_backend("jax", tmp_path, victim=0)  # the chief (and JAX's coordinator) dies
