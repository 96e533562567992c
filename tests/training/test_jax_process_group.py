"""`JaxProcessGroup` from flags and KERAS_DISTRIBUTION_* (the processes: test_multi_worker.py)."""

from mmdsr_keras.training.jax_process_group import JaxProcessGroup


def test_flags_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1234")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "4")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "3")
    from_env = JaxProcessGroup.from_arguments()
    assert (from_env.coordinator_address, from_env.num_processes, from_env.process_id) == (
        "10.0.0.1:1234", 4, 3)
    assert from_env.is_multi_process and not from_env.is_chief
    given = JaxProcessGroup.from_arguments("127.0.0.1:9", 2, 0)
    assert (given.coordinator_address, given.num_processes, given.process_id) == (
        "127.0.0.1:9", 2, 0)
    assert given.is_chief


def test_one_process_without_settings(monkeypatch):
    for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                 "KERAS_DISTRIBUTION_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    group = JaxProcessGroup.from_arguments()
    assert not group.is_multi_process and group.is_chief
