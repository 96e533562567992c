"""`MultiLabelDataset`: images (files, arrays or a TFDS split) and their labels."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mmdsr_keras.data.image_decoding import scan_image_file
from mmdsr_keras.data.input_pipeline import build_input_pipeline


class MultiLabelDataset:
    """A multi-label image dataset: one multi-hot label row per image.

    The images live in exactly one of three places: files (`paths`), memory
    (`images`, uint8 arrays, e.g. the procedurally generated "shapes"), or a
    prepared TFDS split (`tfds_source`). `to_tf_dataset` turns any of them
    into the `tf.data` pipeline that `model.fit` consumes on every Keras
    backend.

    Labels follow ML-GCN's training convention: a class whose only objects
    are "difficult" still counts as present (`labels` = 1); `ignore_mask`
    marks those entries (1 = leave out of evaluation). Sources without a
    notion of difficulty have an all-zero mask.

    Args:
        class_names: list of C class names; column c of `labels` is class c.
        labels: `(N, C)` multi-hot array (cast to float32).
        ignore_mask: `(N, C)` array, 1 where a label must be ignored in
            evaluation. Defaults to None (all zeros).
        image_ids: N identifiers for reporting (COCO ids, VOC ids, file
            names). Defaults to None (the row numbers).
        paths: N image file paths. Defaults to None.
        images: uint8 array `(N, H, W, 3)` held in memory. Defaults to None.
        tfds_source: a `TfdsImageSource`; `image_ids` must then be its record
            keys, in record order. Defaults to None.
        name: label used in reprs and messages. Defaults to `"dataset"`.

    Example:
    >>> import numpy as np
    >>> data = MultiLabelDataset(
    ...     ["cat", "dog"], [[1, 0], [1, 1], [0, 1], [0, 0]],
    ...     images=np.zeros((4, 8, 8, 3), np.uint8))
    >>> train, val = data.random_split(0.75, seed=0)
    >>> len(train), len(val), data.label_density()
    (3, 1, 0.5)
    """

    def __init__(
        self,
        class_names,
        labels,
        ignore_mask=None,
        image_ids=None,
        paths=None,
        images=None,
        tfds_source=None,
        name="dataset",
        _scan_cache=None,
    ):
        self.class_names = [str(c) for c in class_names]
        self.labels = np.asarray(labels, dtype=np.float32).reshape(-1, len(self.class_names))
        n = len(self.labels)
        if ignore_mask is None:
            ignore_mask = np.zeros_like(self.labels)
        self.ignore_mask = np.asarray(ignore_mask, dtype=np.float32)
        if self.ignore_mask.shape != self.labels.shape:
            raise ValueError(
                f"ignore_mask shape {self.ignore_mask.shape} != labels shape "
                f"{self.labels.shape}."
            )
        self.image_ids = list(range(n)) if image_ids is None else list(image_ids)
        if len(self.image_ids) != n:
            raise ValueError(f"{len(self.image_ids)} image_ids for {n} label rows.")

        sources = [s for s in (paths, images, tfds_source) if s is not None]
        if len(sources) != 1:
            raise ValueError("Give exactly one of paths, images, tfds_source.")
        self.paths = None if paths is None else [str(p) for p in paths]
        self.images = None
        if images is not None:
            self.images = np.asarray(images)
            if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
                raise ValueError(
                    "images must be a uint8 array (N, H, W, 3); got "
                    f"{self.images.dtype} {self.images.shape}."
                )
        self.tfds_source = tfds_source
        for what, values in (("paths", self.paths), ("images", self.images)):
            if values is not None and len(values) != n:
                raise ValueError(f"{len(values)} {what} for {n} label rows.")
        self.name = name
        # path -> ImageFileInfo, shared with subsets so a file is scanned once.
        self._scan_cache = {} if _scan_cache is None else _scan_cache

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        storage = "paths" if self.paths is not None else (
            "images" if self.images is not None else repr(self.tfds_source)
        )
        return (
            f"MultiLabelDataset({self.name!r}, {len(self)} images, "
            f"{self.num_classes} classes, from {storage})"
        )

    @property
    def num_classes(self):
        """Number of classes C."""
        return len(self.class_names)

    def subset(self, indices):
        """A new dataset with the rows `indices`, in that order.

        Args:
            indices: row numbers (or a boolean mask of length N).

        Returns:
            `MultiLabelDataset` sharing the image storage.

        Raises:
            ValueError: for a TFDS-backed dataset, indices not strictly
                increasing (its records stream in a fixed order, and the
                stream's order must match the label rows).
        """
        indices = np.arange(len(self))[np.asarray(indices)]
        if self.tfds_source is not None and np.any(np.diff(indices) <= 0):
            raise ValueError(
                "A TFDS-backed dataset streams its records in a fixed order: "
                "subset() needs strictly increasing indices."
            )
        return MultiLabelDataset(
            self.class_names,
            self.labels[indices],
            ignore_mask=self.ignore_mask[indices],
            image_ids=[self.image_ids[i] for i in indices],
            paths=None if self.paths is None else [self.paths[i] for i in indices],
            images=None if self.images is None else self.images[indices],
            tfds_source=self.tfds_source,
            name=self.name,
            _scan_cache=self._scan_cache,
        )

    def with_class_order(self, class_names):
        """The same images with label columns in the order of `class_names`.

        A class of `class_names` this dataset does not have becomes an
        all-negative column (no positive: left out of mAP by the meter); a
        class of this dataset outside `class_names` is an error.

        Returns:
            `(dataset, missing)`: the reordered dataset and the names it lacked.

        Example:
        >>> data = MultiLabelDataset(["dog", "cat"], [[1, 0]], images=np.zeros((1, 4, 4, 3), np.uint8))
        >>> ordered, missing = data.with_class_order(["cat", "dog", "cow"])
        >>> ordered.labels.tolist(), missing
        ([[0.0, 1.0, 0.0]], ['cow'])
        """
        class_names = [str(c) for c in class_names]
        unknown = [c for c in self.class_names if c not in class_names]
        if unknown:
            raise ValueError(f"{self.name}: classes {unknown[:10]} are not among the model's "
                             f"{len(class_names)} classes; expected a subset of them.")
        column = {c: i for i, c in enumerate(self.class_names)}
        labels = np.zeros((len(self), len(class_names)), np.float32)
        ignore = np.zeros_like(labels)
        for j, c in enumerate(class_names):
            if c in column:
                labels[:, j] = self.labels[:, column[c]]
                ignore[:, j] = self.ignore_mask[:, column[c]]
        ordered = MultiLabelDataset(
            class_names, labels, ignore_mask=ignore, image_ids=self.image_ids, paths=self.paths,
            images=self.images, tfds_source=self.tfds_source, name=self.name,
            _scan_cache=self._scan_cache,
        )
        return ordered, [c for c in class_names if c not in column]

    def random_split(self, fraction, seed=0):
        """Splits the rows at random into two disjoint datasets.

        Args:
            fraction: share of the rows in the first part, in [0, 1]; its
                size is `round(fraction * N)`.
            seed: the split's seed; the same seed gives the same split.
                Defaults to 0.

        Returns:
            `(first, second)`; each keeps the original row order.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
        order = np.random.default_rng(seed).permutation(len(self))
        cut = int(round(fraction * len(self)))
        return self.subset(np.sort(order[:cut])), self.subset(np.sort(order[cut:]))

    def label_density(self):
        """Mean of all labels: the prior pi used to initialise the class bias.

        Returns:
            float (0.0 for an empty dataset).
        """
        return float(self.labels.mean()) if self.labels.size else 0.0

    def class_frequencies(self, normalize=True):
        """Per-class share (or count) of the images that contain the class.

        Args:
            normalize: divide the counts by N. Defaults to True.

        Returns:
            float64 array `(C,)`.
        """
        counts = self.labels.sum(axis=0, dtype=np.float64)
        if not normalize:
            return counts
        return counts / max(len(self), 1)

    def scan_images(self, max_workers=8):
        """Header-scans the image files once (missing, unreadable, EXIF, format).

        Args:
            max_workers: threads reading headers (I/O bound). Defaults to 8.

        Returns:
            list of `ImageFileInfo`, one per row (empty without `paths`).
        """
        if self.paths is None:
            return []
        todo = [p for p in dict.fromkeys(self.paths) if p not in self._scan_cache]
        if todo:
            with ThreadPoolExecutor(max_workers=max_workers) as pool:
                for info in pool.map(scan_image_file, todo):
                    self._scan_cache[info.path] = info
        return [self._scan_cache[p] for p in self.paths]

    def to_tf_dataset(
        self,
        image_size,
        batch_size,
        training=False,
        seed=0,
        with_ignore_mask=False,
        on_error="skip",
        shuffle=None,
        augment=None,
        epochs=None,
        shard=None,
    ):
        """The input pipeline: batches of raw RGB images and their labels.

        Training (`training=True`) shuffles with `seed` (a new order each
        epoch, the same sequence of orders for the same seed) and applies the
        field's augmentation: `MultiScaleCrop` -> resize to S x S -> random
        horizontal flip. Evaluation is a plain resize (warp) to S x S in row
        order. Decoding and augmentation run in parallel (AUTOTUNE) with
        prefetching; the last batch may be smaller.

        Args:
            image_size: output side S.
            batch_size: batch size B.
            training: shuffle and augment. Defaults to False.
            seed: seed of the shuffle and of the augmentation. Defaults to 0.
            with_ignore_mask: also yield the ignore mask. Defaults to False.
            on_error: `"skip"` drops an image that is missing or cannot be
                decoded and logs a warning naming the file; `"raise"` raises
                naming it: `ImageReadError` from this call when the header
                scan finds the file missing or unreadable, or, for data that
                only fails to decode, a `tf.errors.OpError` carrying the
                `ImageReadError` message when the example is reached.
                Defaults to `"skip"`. With skipped images the stream holds
                fewer than N examples: evaluate against the labels it yields.
            shuffle: override the shuffling. Defaults to None (= training).
            augment: override the augmentation. Defaults to None (= training).
            epochs: `(first, stop)` for one stream of epochs first..stop-1,
                each a pure function of (seed, epoch), for exact resumption
                (see `build_input_pipeline`). Defaults to None.
            shard: `(num_shards, index)`: one worker's rows of every global
                batch, for data parallelism over processes (needs `epochs`;
                see `build_input_pipeline`). Defaults to None.

        Returns:
            `tf.data.Dataset` of `(images, labels)` or, with
            `with_ignore_mask`, `(images, labels, ignore_mask)`: images float32
            `(B, S, S, 3)` in [0, 255], the others float32 `(B, C)`. The
            mask is for evaluation: `model.fit` would read a third element
            as a sample weight (1 = ignored, the opposite of a weight).
        """
        return build_input_pipeline(
            self,
            image_size=image_size,
            batch_size=batch_size,
            seed=seed,
            with_ignore_mask=with_ignore_mask,
            on_error=on_error,
            shuffle=training if shuffle is None else shuffle,
            augment=training if augment is None else augment,
            epochs=epochs,
            shard=shard,
        )
