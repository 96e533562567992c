"""The input pipeline's per-worker shards (`shard=`), against the unsharded stream."""

import numpy as np
import pytest

from mmdsr_keras.data import MultiLabelDataset
from mmdsr_keras.data.input_pipeline import shard_positions


def test_shard_positions_by_hand():
    # 10 examples, global batch 4 over 2 shards: batches [0-3] [4-7] [8, 9].
    assert shard_positions(10, 4, 2, 0).tolist() == [0, 1, 4, 5, 8]
    assert shard_positions(10, 4, 2, 1).tolist() == [2, 3, 6, 7, 9]
    # Last batch of 3 over 2 shards: one row each, the third left out.
    assert shard_positions(11, 4, 2, 0).tolist() == [0, 1, 4, 5, 8]
    assert shard_positions(11, 4, 2, 1).tolist() == [2, 3, 6, 7, 9]
    with pytest.raises(ValueError, match="multiple of the number of shards"):
        shard_positions(10, 5, 2, 0)


def test_every_position_in_exactly_one_shard():
    for count, batch, shards in [(37, 8, 2), (64, 12, 3), (5, 8, 4)]:
        parts = [shard_positions(count, batch, shards, i) for i in range(shards)]
        union = np.sort(np.concatenate(parts))
        assert len(np.unique(union)) == len(union)
        last = count % batch
        assert len(union) == count - (last % shards)
        assert len({len(p) for p in parts}) == 1


def _dataset(count):
    rng = np.random.RandomState(0)
    labels = (rng.rand(count, 3) > 0.5).astype("float32")
    return MultiLabelDataset([f"c{i}" for i in range(3)], labels,
                             images=rng.randint(0, 256, (count, 20, 24, 3)).astype(np.uint8))


def test_shards_stacked_in_order_are_the_single_process_batches():
    # 22 examples, batch 8: the last batch (6) splits 3 + 3; two shuffled, augmented epochs.
    data = _dataset(22)
    full = list(data.to_tf_dataset(16, 8, training=True, seed=3, epochs=(0, 2)))
    parts = [list(data.to_tf_dataset(16, 8, training=True, seed=3, epochs=(0, 2), shard=(2, i)))
             for i in range(2)]
    assert [len(p) for p in parts] == [len(full)] * 2 == [6, 6]
    for whole, first, second in zip(full, *parts):
        assert len(first[0]) == len(second[0]) == len(whole[0]) // 2
        for k in range(2):  # images (cropped and flipped as unsharded) and labels
            np.testing.assert_array_equal(np.concatenate([first[k], second[k]]), whole[k])


def test_shard_needs_an_epoch_stream():
    with pytest.raises(ValueError, match="epochs=.first, stop. stream"):
        _dataset(4).to_tf_dataset(8, 2, training=True, shard=(2, 0))
