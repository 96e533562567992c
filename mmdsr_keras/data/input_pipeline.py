"""The `tf.data` input pipeline behind `MultiLabelDataset.to_tf_dataset`.

tf.data feeds `model.fit` on every Keras backend (TensorFlow, JAX, PyTorch):
Keras converts each batch to the backend's arrays. Stages:

    rows (shuffled with a seed when training)
    -> read + decode (parallel; a failing image is skipped with a warning
       naming it, or raises naming it)
    -> MultiScaleCrop + flip (training) or plain resize (evaluation)
    -> batch -> prefetch
"""

import logging

import numpy as np
import tensorflow as tf

from mmdsr_keras.data.image_decoding import (
    ImageReadError,
    decode_image,
    inspect_encoded_image,
)
from mmdsr_keras.data.multi_scale_crop import MultiScaleCrop

logger = logging.getLogger("mmdsr_keras.data")
AUTOTUNE = tf.data.AUTOTUNE
# TFDS records stream in file order, so shuffling needs a buffer of encoded
# images (COCO: ~160 kB each): 2048 of them is ~330 MB.
TFDS_SHUFFLE_BUFFER = 2048


def resize_for_model(image, height, width):
    """Evaluation's warp of a decoded image to the model input, float32 in [0, 255].

    Bilinear with antialiasing (the whole image, aspect ratio not kept), then
    clipped: the one resize of evaluation, `predict` and `serve_bytes`.

    Example:
    >>> resize_for_model(tf.zeros((10, 20, 3), tf.uint8), 4, 4).shape
    TensorShape([4, 4, 3])
    """
    image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def shard_positions(count, batch_size, num_shards, index):
    """The positions of an epoch of `count` examples that shard `index` of `num_shards` feeds.

    Every global batch of `batch_size` is cut into `num_shards` equal runs
    of consecutive rows, in shard order, so the shards' batches stacked in
    shard order are the single-process batch row for row. A last batch that
    does not split evenly loses its final `L mod num_shards` rows (at most
    `num_shards - 1` examples per epoch, different ones each shuffled epoch):
    data-parallel replicas need equal batches.

    Args:
        count: examples in the epoch.
        batch_size: the global batch size B, a multiple of `num_shards`.
        num_shards: number of shards (worker processes).
        index: this shard, 0 to `num_shards - 1`.

    Returns:
        int64 array of positions, in order.

    Example:
    >>> shard_positions(10, 4, 2, 1).tolist()
    [2, 3, 6, 7, 9]
    """
    if batch_size % num_shards:
        raise ValueError(f"the batch size {batch_size} must be a multiple of the number of "
                         f"shards ({num_shards}).")
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} is not in 0..{num_shards - 1}.")
    positions = np.arange(count, dtype=np.int64)
    start, offset = positions - positions % batch_size, positions % batch_size
    size = np.minimum(batch_size, count - start)
    rows_per_shard = size // num_shards
    keep = (offset >= index * rows_per_shard) & (offset < (index + 1) * rows_per_shard)
    return positions[keep]


def _shuffled_rows(count, shuffle, seed, epoch=None, shard=None):
    if epoch is not None:
        # Epoch-indexed streams: the order of epoch e is a pure function of
        # (seed, e), so a resumed run sees exactly the epochs it missed.
        rows = tf.range(count, dtype=tf.int64)
        if shuffle:
            rows = tf.random.experimental.stateless_shuffle(
                rows, seed=tf.stack([tf.constant(seed, tf.int64), epoch])
            )
        if shard is not None:
            # Cut before decoding, so that a worker decodes only its images.
            rows = tf.gather(rows, shard_positions(count, *shard))
        return tf.data.Dataset.from_tensor_slices(rows)
    rows = tf.data.Dataset.range(count)
    if shuffle:
        rows = rows.shuffle(max(count, 1), seed=seed, reshuffle_each_iteration=True)
    return rows


def _memory_elements(dataset, shuffle, seed, epoch=None, shard=None):
    images = tf.constant(dataset.images)
    labels = tf.constant(dataset.labels)
    masks = tf.constant(dataset.ignore_mask)

    def element(row):
        return {
            "image": tf.gather(images, row),
            "labels": tf.gather(labels, row),
            "ignore_mask": tf.gather(masks, row),
        }

    return _shuffled_rows(len(dataset), shuffle, seed, epoch, shard).map(
        element, num_parallel_calls=AUTOTUNE
    )


def _file_elements(dataset, shuffle, seed, on_error, epoch=None, shard=None):
    infos = dataset.scan_images()
    keep = []
    for row, info in enumerate(infos):
        if info.error is None:
            keep.append(row)
        elif on_error == "raise":
            raise ImageReadError(info.error)
        else:
            logger.warning("Skipping %s", info.error)
    keep = np.asarray(keep, dtype=np.int64)
    paths = tf.constant([dataset.paths[r] for r in keep], tf.string)
    use_pil = tf.constant([infos[r].use_pil for r in keep], tf.bool)
    orientation = tf.constant([infos[r].orientation for r in keep], tf.int32)
    labels = tf.constant(dataset.labels[keep].reshape(-1, dataset.num_classes))
    masks = tf.constant(dataset.ignore_mask[keep].reshape(-1, dataset.num_classes))

    def element(row):
        return {
            "name": tf.gather(paths, row),
            "use_pil": tf.gather(use_pil, row),
            "orientation": tf.gather(orientation, row),
            "labels": tf.gather(labels, row),
            "ignore_mask": tf.gather(masks, row),
        }

    def decode(element):
        encoded = tf.io.read_file(element["name"])
        return decode_image(encoded, element["use_pil"], element["orientation"])

    rows = _shuffled_rows(len(keep), shuffle, seed, epoch, shard).map(element)
    return _decode_or_report(rows, decode, on_error)


def _tfds_elements(dataset, shuffle, seed, on_error):
    keys = tf.constant([str(k) for k in dataset.image_ids], tf.string)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(dataset), dtype=tf.int64)),
        default_value=-1,
    )
    labels = tf.constant(dataset.labels)
    masks = tf.constant(dataset.ignore_mask)

    def with_row(record):
        return dict(record, row=table.lookup(record["name"]))

    def in_dataset(record):
        return record["row"] >= 0

    def element(record):
        return {
            "name": record["name"],
            "encoded": record["encoded"],
            "labels": tf.gather(labels, record["row"]),
            "ignore_mask": tf.gather(masks, record["row"]),
        }

    def decode(element):
        # The header is only known from the bytes here (no scan beforehand).
        use_pil, orientation = tf.numpy_function(
            inspect_encoded_image, [element["encoded"]], [tf.bool, tf.int32], stateful=False
        )
        return decode_image(element["encoded"], use_pil, orientation)

    records = dataset.tfds_source.records(shuffle_files=shuffle, seed=seed)
    records = records.map(with_row).filter(in_dataset)
    if shuffle:
        records = records.shuffle(
            min(max(len(dataset), 1), TFDS_SHUFFLE_BUFFER),
            seed=seed,
            reshuffle_each_iteration=True,
        )
    return _decode_or_report(records.map(element), decode, on_error)


def _report_failure(on_error):
    def report(name):
        name = name.decode("utf-8", "replace")
        if on_error == "raise":
            raise ImageReadError(f"cannot decode image file {name} (corrupt or truncated data)")
        logger.warning("Skipping undecodable image file %s", name)
        return np.bool_(False)

    return report


def _decode_or_report(elements, decode, on_error):
    """Decodes each element; a failure is reported by name instead of crashing.

    tf.data cannot catch an op error inside a map, and `ignore_errors()` on
    the whole stream would drop a bad image silently. So each element is
    decoded in its own one-element dataset with `ignore_errors()`, followed
    by a sentinel marked not-ok: `take(1)` yields the image, or the sentinel
    when decoding failed, and the sentinel's name is reported.
    """
    report = _report_failure(on_error)

    def attempt(element):
        kept = {k: element[k] for k in ("name", "labels", "ignore_mask")}

        def decoded(e):
            return dict(kept, image=decode(e), ok=tf.constant(True))

        success = tf.data.Dataset.from_tensors(element).map(decoded).ignore_errors()
        failure = tf.data.Dataset.from_tensors(
            dict(kept, image=tf.zeros((0, 0, 3), tf.uint8), ok=tf.constant(False))
        )
        return success.concatenate(failure).take(1)

    def checked(element):
        ok = tf.cond(
            element["ok"],
            lambda: tf.constant(True),
            lambda: tf.numpy_function(report, [element["name"]], tf.bool),
        )
        return dict(element, ok=ok)

    def is_ok(element):
        return element["ok"]

    decoded = elements.interleave(
        attempt, cycle_length=AUTOTUNE, num_parallel_calls=AUTOTUNE, deterministic=True
    )
    return decoded.map(checked).filter(is_ok)


def build_input_pipeline(
    dataset,
    image_size,
    batch_size,
    seed=0,
    with_ignore_mask=False,
    on_error="skip",
    shuffle=False,
    augment=False,
    crop=None,
    epochs=None,
    shard=None,
):
    """Builds the batched `tf.data.Dataset` for a `MultiLabelDataset`.

    Args:
        dataset: the `MultiLabelDataset`.
        image_size: output side S.
        batch_size: batch size B (the last batch may be smaller).
        seed: shuffle and augmentation seed. Defaults to 0.
        with_ignore_mask: also yield the ignore mask. Defaults to False.
        on_error: `"skip"` or `"raise"` (see `to_tf_dataset`). Defaults to
            `"skip"`.
        shuffle: shuffle the rows (seeded, reshuffled each epoch). Defaults
            to False.
        augment: MultiScaleCrop + random flip instead of a plain resize.
            Defaults to False.
        crop: the `MultiScaleCrop` to use. Defaults to None (the field's).
        epochs: `(first, stop)`: one stream holding epochs first..stop-1 back
            to back, each shuffled and augmented as a pure function of
            (seed, epoch) and batched on its own (use with `steps_per_epoch`);
            resuming at epoch k with `(k, stop)` replays exactly what an
            uninterrupted run sees. Not for TFDS sources (their shuffle is a
            streaming buffer). Defaults to None: one epoch, reshuffled on
            each iteration.
        shard: `(num_shards, index)`: this worker's rows of each global
            batch of `batch_size` (see `shard_positions`), with the
            augmentation each row gets in the unsharded stream; batches of
            `batch_size / num_shards`. Needs `epochs`. Defaults to None.

    Returns:
        `tf.data.Dataset` of `(images, labels)` or `(images, labels, mask)`.

    Example:
    >>> import numpy as np
    >>> from mmdsr_keras.data import MultiLabelDataset
    >>> data = MultiLabelDataset(["a"], [[1.0]], images=np.zeros((1, 9, 9, 3), np.uint8))
    >>> images, labels = next(iter(build_input_pipeline(data, 4, 2)))
    >>> images.shape, labels.shape
    (TensorShape([1, 4, 4, 3]), TensorShape([1, 1]))
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
    image_size = int(image_size)
    if shard is not None:
        if epochs is None or dataset.tfds_source is not None:
            raise ValueError("shard=(num_shards, index) needs an epochs=(first, stop) stream "
                             "of an in-memory or file dataset.")
        num_shards, index = (int(v) for v in shard)
        # What _file_elements keeps of the rows: those whose header scan passed.
        count = (len(dataset) if dataset.images is not None
                 else sum(info.error is None for info in dataset.scan_images()))
        shard = (batch_size, num_shards, index)
        shard_rows = shard_positions(count, *shard)
        batch_size //= num_shards

    def elements_for(epoch=None):
        if dataset.images is not None:
            return _memory_elements(dataset, shuffle, seed, epoch, shard)
        if dataset.paths is not None:
            return _file_elements(dataset, shuffle, seed, on_error, epoch, shard)
        if epoch is not None:
            raise ValueError("epochs=(first, stop) streams need in-memory or file datasets, "
                             "not a TFDS source.")
        return _tfds_elements(dataset, shuffle, seed, on_error)

    crop = crop or MultiScaleCrop()
    num_classes = dataset.num_classes

    def finish(element, image):
        # Bilinear weights are non-negative, so only float rounding can step
        # outside [0, 255]; clip so consumers can rely on the range.
        image = tf.clip_by_value(image, 0.0, 255.0)
        image = tf.ensure_shape(image, (image_size, image_size, 3))
        labels = tf.ensure_shape(element["labels"], (num_classes,))
        if with_ignore_mask:
            return image, labels, tf.ensure_shape(element["ignore_mask"], (num_classes,))
        return image, labels

    def augmented(element, random):
        example_seed = tf.stack([random, tf.constant(seed, tf.int64)])
        crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(example_seed, 2)
        )
        image = crop(element["image"], image_size, crop_seed)
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return finish(element, image)

    def resized(element):
        return finish(element, resize_for_model(element["image"], image_size, image_size))

    def one_epoch(epoch=None):
        elements = elements_for(epoch)
        if augment:
            if epoch is None:
                randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            elif shard is not None:
                # Each row keeps the random number of its unsharded position.
                randoms = tf.data.Dataset.from_tensor_slices(shard_rows).map(
                    lambda i: epoch * 1_000_003 + i)
            else:
                randoms = tf.data.Dataset.range(2**62).map(lambda i: epoch * 1_000_003 + i)
            batches = tf.data.Dataset.zip((elements, randoms)).map(
                augmented, num_parallel_calls=AUTOTUNE
            )
        else:
            batches = elements.map(resized, num_parallel_calls=AUTOTUNE)
        return batches.batch(batch_size, drop_remainder=False, num_parallel_calls=AUTOTUNE)

    if epochs is None:
        batches = one_epoch()
    else:
        first, stop = (int(e) for e in epochs)
        batches = tf.data.Dataset.range(first, stop).flat_map(one_epoch)
    return batches.prefetch(AUTOTUNE)


def find_unreadable_images(dataset):
    """Every image of a file-backed dataset that cannot be read or decoded.

    A header scan (`scan_images`) misses truncated or corrupt pixel data, and
    the training pipeline can only drop such an image when it meets it, which
    shortens an epoch after its step count was fixed. So every image is
    decoded once here (in parallel, by the training pipeline's own decoder),
    before training.

    Args:
        dataset: a `MultiLabelDataset`.

    Returns:
        A list of `(row, reason)`, empty for in-memory and TFDS datasets.

    Example:
    >>> from mmdsr_keras.data import MultiLabelDataset
    >>> find_unreadable_images(MultiLabelDataset(["a"], np.ones((1, 1)), paths=["/no.jpg"]))
    [(0, 'missing image file /no.jpg')]
    """
    if dataset.paths is None:
        return []
    infos = dataset.scan_images()
    problems = {row: info.error for row, info in enumerate(infos) if info.error}
    previous = logger.level
    logger.setLevel(logging.ERROR)  # the reasons are returned, not logged one by one
    try:
        decoded = _file_elements(dataset, False, 0, "skip").map(lambda e: e["name"])
        ok = {bytes(name).decode("utf-8") for name in decoded.as_numpy_iterator()}
    finally:
        logger.setLevel(previous)
    for row, path in enumerate(dataset.paths):
        if row not in problems and path not in ok:
            problems[row] = f"cannot decode image file {path} (corrupt or truncated data)"
    return sorted(problems.items())
