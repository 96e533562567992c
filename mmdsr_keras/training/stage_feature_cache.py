"""Backbone stage features of a dataset, computed once, for training heads on a frozen backbone."""

import hashlib
import json
import math
import os
import pathlib

import keras
import numpy as np

from mmdsr_keras.models.head_model import build_stage_feature_model

CACHE_FORMAT = 1
# View 0 is the evaluation view (plain resize), view 1 its mirror image (for
# flip test-time augmentation and as a training view); views 2.. are the
# training augmentation (MultiScaleCrop + random flip), each a pure function
# of (seed, view).
PLAIN_VIEW, FLIPPED_VIEW = 0, 1


def _fingerprint(dataset, image_size, views, seed, backbone_id):
    digest = hashlib.sha256()
    for part in (str(image_size), str(views), str(seed), backbone_id, str(len(dataset))):
        digest.update(part.encode())
    names = dataset.paths if dataset.paths is not None else [str(i) for i in dataset.image_ids]
    for name in names:
        digest.update(str(name).encode())
    if dataset.images is not None:
        digest.update(np.ascontiguousarray(dataset.images).tobytes())
    return digest.hexdigest()[:16]


def backbone_identity(model):
    """A string that changes when the backbone's weights or input size change."""
    stage_model = build_stage_feature_model(model)
    digest = hashlib.sha256(str(stage_model.input_shape).encode())
    for variable in stage_model.weights:
        value = keras.ops.convert_to_numpy(variable)
        digest.update(variable.path.encode())
        digest.update(np.ascontiguousarray(value.ravel()[:: max(1, value.size // 64)]).tobytes())
    return digest.hexdigest()[:16]


class StageFeatureCache:
    """The backbone's stage feature maps of every image under a few views, on disk.

    Training a head on a frozen backbone recomputes the same backbone features
    every epoch; computing them once for `views` versions of each image
    (view 0: plain resize, the evaluation view; view 1: its mirror image;
    views 2..: MultiScaleCrop + flip, the training augmentation) makes the
    frozen phase many times faster. Features are stored as float16
    memory-mapped `.npy` files, one per stage, of shape
    `(views, N, H_s, W_s, C_s)`: at 224 px EfficientNet-Lite0 takes 232 kB an
    image and view. Views are written one at a time, so an interrupted
    computation resumes at the first missing view.

    Args:
        directory: the cache folder.

    Example:
    >>> import numpy as np, mmdsr_keras
    >>> from mmdsr_keras.data import MultiLabelDataset
    >>> data = MultiLabelDataset(["a", "b"], [[1.0, 0.0]] * 2,
    ...                          images=np.zeros((2, 40, 40, 3), np.uint8))
    >>> model = mmdsr_keras.build_baseline("gap", num_classes=2, backbone="mobilenet_0.25",
    ...                                    image_size=32, weights=None)
    >>> import tempfile
    >>> cache = StageFeatureCache.compute(model, data, 32, tempfile.mkdtemp(), views=3)
    >>> cache.stages[-1].shape
    (3, 2, 1, 1, 256)
    """

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        meta_file = self.directory / "cache.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file}: not a stage feature cache (no cache.json).")
        with open(meta_file) as f:
            self.metadata = json.load(f)
        if self.metadata.get("format") != CACHE_FORMAT:
            raise ValueError(f"{meta_file}: cache format {self.metadata.get('format')!r}, "
                             f"expected {CACHE_FORMAT}; delete the folder to recompute it.")
        self.stages = [np.load(self.directory / f"stage_{i}.npy", mmap_mode="r")
                       for i in range(self.metadata["num_stages"])]
        self.labels = np.load(self.directory / "labels.npy")
        self.ignore_mask = np.load(self.directory / "ignore_mask.npy")

    @property
    def num_views(self):
        return int(self.metadata["views"])

    def __len__(self):
        return int(self.labels.shape[0])

    def load_into_memory(self):
        """Reads the memory-mapped features into RAM (faster random batches)."""
        self.stages = [np.asarray(s) for s in self.stages]
        return self

    @classmethod
    def compute(cls, model, dataset, image_size, directory, views=4, seed=0, batch_size=32,
                verbose=0):
        """Computes (or completes, or reuses) the cache of `dataset` under `model`'s backbone.

        Args:
            model: a model built by this package (its preprocessing and
                backbone are used, as they are now).
            dataset: a `MultiLabelDataset` whose images are all readable
                (drop unreadable ones first: rows must line up with labels).
            image_size: the square input side.
            directory: the cache folder; an existing cache of the same data,
                views, seed and backbone is reused, a different one is an error.
            views: number of views (at least 1). Defaults to 4.
            seed: augmentation seed. Defaults to 0.
            batch_size: inference batch. Defaults to 32.
            verbose: 1 prints progress. Defaults to 0.

        Returns:
            The `StageFeatureCache`.
        """
        import tensorflow as tf

        if int(views) < 1:
            raise ValueError(f"views={views}: a feature cache needs at least 1 view.")
        directory = pathlib.Path(directory)
        stage_model = build_stage_feature_model(model)
        fingerprint = _fingerprint(dataset, image_size, views, seed, backbone_identity(model))
        meta_file = directory / "cache.json"
        if meta_file.is_file():
            with open(meta_file) as f:
                existing = json.load(f)
            if existing.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"{directory} holds a feature cache of other data, views, seed or backbone "
                    f"(fingerprint {existing.get('fingerprint')} != {fingerprint}): give another "
                    "folder, or delete this one."
                )
            if existing["views_done"] == existing["views"]:
                return cls(directory)
        directory.mkdir(parents=True, exist_ok=True)
        shapes = [tuple(int(d) for d in s[1:]) for s in stage_model.output_shape]
        count = len(dataset)
        metadata = {
            "format": CACHE_FORMAT, "fingerprint": fingerprint, "views": int(views),
            "views_done": 0, "num_stages": len(shapes), "shapes": shapes,
            "image_size": int(image_size), "num_images": count, "seed": int(seed),
        }
        if meta_file.is_file():
            metadata["views_done"] = existing["views_done"]
        else:
            np.save(directory / "labels.npy", np.asarray(dataset.labels, np.float32))
            np.save(directory / "ignore_mask.npy", np.asarray(dataset.ignore_mask, np.float32))
            for i, shape in enumerate(shapes):
                np.lib.format.open_memmap(directory / f"stage_{i}.npy", mode="w+",
                                          dtype=np.float16, shape=(int(views), count) + shape)
            cls._write_metadata(meta_file, metadata)
        arrays = [np.load(directory / f"stage_{i}.npy", mmap_mode="r+")
                  for i in range(len(shapes))]
        for view in range(metadata["views_done"], int(views)):
            if view in (PLAIN_VIEW, FLIPPED_VIEW):
                images = dataset.to_tf_dataset(image_size, batch_size, training=False,
                                               on_error="raise")
                images = images.map(lambda x, y: x)
                if view == FLIPPED_VIEW:
                    images = images.map(tf.image.flip_left_right)
            else:
                # Row order, not shuffled: row r of every view is image r.
                images = dataset.to_tf_dataset(image_size, batch_size, training=True, seed=seed,
                                               shuffle=False, on_error="raise",
                                               epochs=(view, view + 1))
                images = images.map(lambda x, y: x)
            row = 0
            for batch in images:
                outputs = stage_model.predict_on_batch(np.asarray(batch))
                n = int(outputs[0].shape[0])
                for array, out in zip(arrays, outputs):
                    array[view, row:row + n] = keras.ops.convert_to_numpy(out).astype(np.float16)
                row += n
            if row != count:
                raise ValueError(f"{directory}: view {view} yielded {row} images, expected "
                                 f"{count} (an image could not be decoded).")
            for array in arrays:
                array.flush()
            metadata["views_done"] = view + 1
            cls._write_metadata(meta_file, metadata)
            if verbose:
                print(f"feature cache {directory}: view {view + 1}/{views} done")
        del arrays
        return cls(directory)

    @staticmethod
    def _write_metadata(meta_file, metadata):
        partial = meta_file.with_suffix(".json.partial")
        with open(partial, "w") as f:
            json.dump(metadata, f, indent=1)
        os.replace(partial, meta_file)

    def features(self, rows, view=PLAIN_VIEW):
        """The float32 stage features of `rows` under one view (a list, one per stage)."""
        rows = np.asarray(rows)
        return [np.asarray(s[view, rows], np.float32) for s in self.stages]


class CachedFeatureBatches(keras.utils.PyDataset):
    """Training batches drawn from a `StageFeatureCache`: shuffled rows, a random view each.

    Epoch e's order and views are a pure function of (seed, e), so a run that
    restarts at epoch k with `first_epoch=k` sees the batches an uninterrupted
    run would.

    Args:
        cache: the `StageFeatureCache`.
        rows: the cache rows to train on. Defaults to all.
        batch_size: Defaults to 32.
        seed: Defaults to 0.
        views: which views to draw from. Defaults to all of the cache's.
        first_epoch: the index of the first epoch served. Defaults to 0.

    Example:
    >>> batches = CachedFeatureBatches(cache, batch_size=2)  # doctest: +SKIP
    """

    def __init__(self, cache, rows=None, batch_size=32, seed=0, views=None, first_epoch=0):
        super().__init__()
        self.cache = cache
        self.rows = np.arange(len(cache)) if rows is None else np.asarray(rows)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.views = np.arange(cache.num_views) if views is None else np.asarray(views)
        self.epoch = int(first_epoch)
        self._plan()

    def _plan(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self._order = rng.permutation(self.rows)
        self._view_of = rng.choice(self.views, size=len(self._order))

    def __len__(self):
        return max(1, math.ceil(len(self.rows) / self.batch_size))

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        rows, views = self._order[part], self._view_of[part]
        x = tuple(np.asarray(s[views, rows], np.float32) for s in self.cache.stages)
        return x, self.cache.labels[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._plan()
