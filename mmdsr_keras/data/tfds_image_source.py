"""Images of a prepared TFDS split, streamed as encoded bytes."""

import tensorflow as tf
import tensorflow_datasets as tfds


class TfdsImageSource:
    """Reads `(key, encoded image)` records from a prepared TFDS split.

    Images stay encoded until the input pipeline decodes them (with EXIF
    orientation and file-naming error handling, as for files on disk). Each
    record is identified by a unique string feature (the image file name),
    which `MultiLabelDataset` maps back to its label row, so the records may
    be read in any order and a subset simply ignores the others.

    Args:
        builder: a prepared `tfds.core.DatasetBuilder`.
        split: TFDS split expression, e.g. `"train+validation"`.
        key: the unique per-example string feature. Defaults to
            `"image/filename"`.

    Example:
    >>> source = TfdsImageSource(builder, "test")  # doctest: +SKIP
    >>> next(iter(source.records()))["name"]  # doctest: +SKIP
    <tf.Tensor: shape=(), dtype=string, numpy=b'000001.jpg'>
    """

    def __init__(self, builder, split, key="image/filename"):
        self.builder = builder
        self.split = split
        self.key = key

    def __repr__(self):
        return f"TfdsImageSource({self.builder.info.full_name!r}, {self.split!r})"

    def _as_dataset(self, shuffle_files=False, seed=0):
        read_config = tfds.ReadConfig(shuffle_seed=int(seed) if shuffle_files else None)
        return self.builder.as_dataset(
            split=self.split,
            # The pipeline decodes; skipping here keeps the bytes (and EXIF).
            decoders={"image": tfds.decode.SkipDecoding()},
            shuffle_files=shuffle_files,
            read_config=read_config,
        )

    def records(self, shuffle_files=False, seed=0):
        """Dataset of `{"name": key, "encoded": bytes}` records.

        Args:
            shuffle_files: read the split's files in a seeded random order.
                Defaults to False (the split's fixed record order).
            seed: file-order seed. Defaults to 0.

        Returns:
            `tf.data.Dataset`.
        """
        key = self.key

        def to_record(example):
            return {"name": example[key], "encoded": example["image"]}

        return self._as_dataset(shuffle_files, seed).map(
            to_record, num_parallel_calls=tf.data.AUTOTUNE
        )

    def annotations(self, select):
        """Iterates the split once in record order, without decoding images.

        Args:
            select: function mapping a TFDS example (tensors) to the structure
                to return per example; the image bytes should not be in it.

        Returns:
            Iterator of numpy structures, one per example, in record order.
        """
        dataset = self._as_dataset().map(select, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
