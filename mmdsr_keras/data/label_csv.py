"""A CSV of image paths and label names.

Format (a header row naming the columns `path` and `labels` is required;
other columns are ignored):

    path,labels
    images/0001.jpg,cat;dog
    images/0002.jpg,person|bicycle
    images/0003.jpg,

- `labels` holds class names separated by ";" or "|" (both may be mixed);
  spaces around names are dropped; an empty cell means no class present;
- a relative `path` is relative to the folder holding the CSV file;
- classes: the `class_names` given (their order is the column order), or
  else every name found, sorted alphabetically.
"""

import collections
import csv
import logging
import os
import re

import numpy as np

from mmdsr_keras.data.multi_label_dataset import MultiLabelDataset

_SEPARATORS = re.compile(r"[;|]")
logger = logging.getLogger("mmdsr_keras.data")


def _normalised(name):
    return " ".join(name.lower().split())


def warn_about_label_rows(rows, source):
    """Warns (listing them) about near-duplicate class names and repeated rows.

    Returns:
        The rows with exact repeats of an image path removed (the first kept):
        a repeated image could otherwise land in both train and val.
    """
    names = sorted({n for _, _, found in rows for n in found})
    groups = collections.defaultdict(list)
    for name in names:
        groups[_normalised(name)].append(name)
    clashes = [g for g in groups.values() if len(g) > 1]
    if clashes:
        logger.warning("%s: class names that differ only in case or spacing: %s (they are "
                       "different classes; rename them if they are meant as one)", source,
                       clashes[:10])
    counts = collections.Counter(resolved for _, resolved, _ in rows)
    repeated = [p for p, n in counts.items() if n > 1]
    if not repeated:
        return rows
    logger.warning("%s: %d image(s) listed more than once, kept once (first row): %s", source,
                   len(repeated), repeated[:10])
    seen, kept = set(), []
    for row in rows:
        if row[1] not in seen:
            seen.add(row[1])
            kept.append(row)
    return kept


def read_label_csv(csv_file, base_dir=None):
    """Reads the `(path, [label names])` rows of a label CSV.

    Args:
        csv_file: the CSV file.
        base_dir: folder relative paths are joined to. Defaults to None (the
            CSV file's folder).

    Returns:
        list of `(path as written, resolved path, [names])`.

    Example:
    >>> read_label_csv("data/labels.csv")  # doctest: +SKIP
    [('images/0001.jpg', 'data/images/0001.jpg', ['cat', 'dog']), ...]
    """
    csv_file = os.fspath(csv_file)
    base_dir = os.path.dirname(os.path.abspath(csv_file)) if base_dir is None else base_dir
    with open(csv_file, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if "path" not in header or "labels" not in header:
            raise ValueError(
                f"{csv_file}: the first row must be a header with the columns "
                f"'path' and 'labels'; got {header}."
            )
        path_col, labels_col = header.index("path"), header.index("labels")
        rows = []
        for line, fields in enumerate(reader, start=2):
            if not any(field.strip() for field in fields):
                continue  # blank line
            fields = fields + [""] * (len(header) - len(fields))
            written = fields[path_col].strip()
            if not written:
                raise ValueError(f"{csv_file}:{line}: empty path.")
            names = [n.strip() for n in _SEPARATORS.split(fields[labels_col]) if n.strip()]
            rows.append((written, os.path.join(base_dir, written), names))
    return rows


def dataset_from_label_rows(rows, class_names=None, name="csv", source="CSV"):
    """Builds a `MultiLabelDataset` from `read_label_csv` rows.

    Args:
        rows: `(path as written, resolved path, [names])` tuples.
        class_names: column order. Defaults to None (sorted names found).
        name: the dataset's name. Defaults to `"csv"`.
        source: what to call the input in error messages. Defaults to "CSV".

    Returns:
        `MultiLabelDataset` with `paths` and the written paths as `image_ids`.
    """
    if class_names is None:
        class_names = sorted({n for _, _, names in rows for n in names})
    if rows and not class_names:
        raise ValueError(f"{source}: every 'labels' cell is empty; expected class names "
                         "separated by ';' or '|' in at least one row.")
    column = {n: i for i, n in enumerate(class_names)}
    labels = np.zeros((len(rows), len(class_names)), np.float32)
    for row, (written, _, names) in enumerate(rows):
        for n in names:
            if n not in column:
                raise ValueError(f"{source} row for {written}: unknown class {n!r}.")
            labels[row, column[n]] = 1.0
    return MultiLabelDataset(
        class_names,
        labels,
        image_ids=[written for written, _, _ in rows],
        paths=[resolved for _, resolved, _ in rows],
        name=name,
    )


def load_csv(csv_file, class_names=None):
    """Loads a label CSV (format in the module docstring).

    Args:
        csv_file: the CSV file.
        class_names: the classes in column order; a label outside them is an
            error. Defaults to None (every name found, sorted).

    Returns:
        `MultiLabelDataset` with `paths`.

    Example:
    >>> data = load_csv("data/labels.csv")  # doctest: +SKIP
    >>> data.class_names  # doctest: +SKIP
    ['bicycle', 'cat', 'dog', 'person']
    """
    return dataset_from_label_rows(
        warn_about_label_rows(read_label_csv(csv_file), os.fspath(csv_file)),
        class_names,
        name=os.path.basename(os.fspath(csv_file)),
        source=os.fspath(csv_file),
    )
