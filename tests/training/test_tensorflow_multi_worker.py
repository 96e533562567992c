"""TF_CONFIG parsing of `TensorFlowWorkerGroup` (the workers themselves: test_multi_worker.py)."""

import json

import pytest

from mmdsr_keras.training.tensorflow_multi_worker import TensorFlowWorkerGroup

CLUSTER = {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]}


def test_reads_the_cluster_and_index_from_the_environment(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": CLUSTER,
                                                "task": {"type": "worker", "index": 2}}))
    group = TensorFlowWorkerGroup()
    assert (group.num_processes, group.process_id, group.is_chief) == (3, 2, False)
    assert group.is_multi_process
    assert TensorFlowWorkerGroup({"cluster": CLUSTER, "task": {"index": 0}}).is_chief


@pytest.mark.parametrize("config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"index": 0}}', "must hold cluster.worker"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 3}}), r"index in 0\.\.2"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "ps", "index": 0}}),
     "expected type 'worker'"),
])
def test_bad_tf_config_is_refused_clearly(monkeypatch, config, message):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(ValueError, match=message):
        TensorFlowWorkerGroup()
