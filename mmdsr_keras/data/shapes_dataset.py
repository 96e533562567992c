"""`shapes`: a procedurally generated multi-label dataset, made in memory.

Each image has 1-4 coloured objects from 10 shape classes on a cluttered,
noisy background. What makes it a multi-label problem rather than a toy:

- scale: objects are small (radius 6-10 % of the side), medium (10-17 %) or
  large (17-26 %); at 64 px a small one is 8-12 px across;
- colour is a cue, not the answer: 80 % of the objects wear their class's
  colour (jittered), 20 % a random one;
- clutter: a random two-colour gradient, pixel noise, thin random lines and
  speckles that belong to no class;
- label co-occurrence: every image is drawn from a latent scene (below);
  75 % of its objects come from the scene's group (its classes drawn
  without replacement), the rest from any class, so e.g. "square" makes
  "frame" far likelier than its marginal.

Scenes (groups): sky (crescent, star, circle), blocks (square, frame,
diamond), signs (triangle, cross, bar), targets (ring, circle, cross),
garden (star, diamond, bar).

Everything comes from one `numpy.random.Generator` seeded with
`(seed, split)`: the same arguments give the same arrays, and the splits are
independent draws. 2,500 images of 64 px take about a second.
"""

import numpy as np

from mmdsr_keras.data.multi_label_dataset import MultiLabelDataset

SHAPE_CLASS_NAMES = (
    "circle", "square", "triangle", "cross", "ring",
    "star", "bar", "diamond", "crescent", "frame",
)
# Base RGB per class, spread over hue and brightness.
_CLASS_COLORS = np.array(
    [
        (230, 60, 50), (60, 110, 230), (240, 200, 40), (60, 200, 80), (200, 80, 220),
        (250, 140, 30), (40, 210, 210), (240, 240, 240), (150, 110, 60), (250, 120, 170),
    ],
    dtype=np.float32,
)
SCENES = {
    "sky": ("crescent", "star", "circle"),
    "blocks": ("square", "frame", "diamond"),
    "signs": ("triangle", "cross", "bar"),
    "targets": ("ring", "circle", "cross"),
    "garden": ("star", "diamond", "bar"),
}
_SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
DEFAULT_NUM_IMAGES = {"train": 2000, "val": 500, "test": 500}
_OBJECT_COUNTS = (1, 2, 3, 4)
_OBJECT_COUNT_P = (0.2, 0.3, 0.3, 0.2)
_IN_SCENE_P = 0.75
_CLASS_COLOR_P = 0.8
# (probability, min radius, max radius) as fractions of the image side.
_SCALES = ((0.35, 0.06, 0.10), (0.40, 0.10, 0.17), (0.25, 0.17, 0.26))
_OBJECT_COUNT_CDF = np.cumsum(_OBJECT_COUNT_P)[:-1]
_SCALE_CDF = np.cumsum([s[0] for s in _SCALES])[:-1]


def _shape_mask(name, dy, dx, radius, angle):
    """Boolean mask of one shape on a grid of offsets from its centre."""
    r2 = dy * dy + dx * dx
    ady, adx = np.abs(dy), np.abs(dx)
    if name == "circle":
        return r2 <= radius**2
    if name == "ring":
        return (r2 <= radius**2) & (r2 >= (0.55 * radius) ** 2)
    if name == "square":
        return np.maximum(ady, adx) <= 0.85 * radius
    if name == "frame":
        side = np.maximum(ady, adx)
        return (side <= 0.85 * radius) & (side >= 0.5 * radius)
    if name == "diamond":
        return ady + adx <= radius
    if name == "cross":
        arm = 0.3 * radius
        return ((adx <= arm) & (ady <= radius)) | ((ady <= arm) & (adx <= radius))
    if name == "triangle":  # apex up; y grows downwards
        return (dy <= 0.5 * radius) & (dy >= -radius + np.sqrt(3.0) * adx)
    if name == "star":
        theta = np.arctan2(dy, dx) + angle
        reach = radius * (0.4 + 0.6 * ((1.0 + np.cos(5.0 * theta)) / 2.0) ** 2)
        return np.sqrt(r2) <= reach
    if name == "bar":
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = -dx * np.sin(angle) + dy * np.cos(angle)
        return (np.abs(along) <= radius) & (np.abs(across) <= 0.25 * radius)
    if name == "crescent":
        return (r2 <= radius**2) & ((dx - 0.45 * radius) ** 2 + dy * dy > (0.8 * radius) ** 2)
    raise ValueError(f"unknown shape {name!r}")


def _background(rng, size, grid):
    """Gradient between two random colours, plus lines and speckles."""
    ys, xs = grid
    low, high = rng.uniform(0, 160, 3), rng.uniform(0, 160, 3)
    direction = rng.uniform(0, 2 * np.pi)
    t = (np.cos(direction) * xs + np.sin(direction) * ys + 1.0) / 2.0
    image = (low + (high - low) * t[..., None]).astype(np.float32)
    # Thin lines in random colours, `size` samples along each (enough to
    # leave no gaps in a line across the whole image).
    ends = rng.uniform(0, size - 1, (rng.integers(3, 9), 4))
    steps = np.linspace(0.0, 1.0, size)[None, :]
    rows = np.rint(ends[:, :1] + (ends[:, 2:3] - ends[:, :1]) * steps).astype(int)
    cols = np.rint(ends[:, 1:2] + (ends[:, 3:4] - ends[:, 1:2]) * steps).astype(int)
    colors = np.repeat(rng.uniform(0, 255, (len(ends), 3)), size, axis=0)
    image[rows.ravel(), cols.ravel()] = colors
    speckles = rng.integers(0, size, (rng.integers(10, 40), 2))
    image[speckles[:, 0], speckles[:, 1]] = rng.uniform(0, 255, (len(speckles), 3))
    return image


def _place(rng, size, radius, placed):
    """A centre inside the image, overlapping earlier objects only slightly."""
    for _ in range(30):
        cy, cx = rng.uniform(radius, size - radius, 2)
        if all((cy - y) ** 2 + (cx - x) ** 2 >= (0.9 * (radius + r)) ** 2 for y, x, r in placed):
            return cy, cx
    return None


def _render(rng, size, grid, class_names, scene):
    image = _background(rng, size, grid)
    # searchsorted on cumulative probabilities: rng.choice(p=...) costs more
    # than drawing the rest of a 64 px image.
    count = _OBJECT_COUNTS[np.searchsorted(_OBJECT_COUNT_CDF, rng.random(), side="right")]
    placed, present = [], set()
    # The scene's classes are drawn without replacement, so that a scene's
    # classes tend to appear together rather than as repeats of one class.
    scene_order = list(rng.permutation(scene))
    for _ in range(count):
        if rng.random() < _IN_SCENE_P:
            name = scene_order.pop(0) if scene_order else scene[rng.integers(len(scene))]
        else:
            name = class_names[rng.integers(len(class_names))]
        _, low, high = _SCALES[np.searchsorted(_SCALE_CDF, rng.random(), side="right")]
        radius = rng.uniform(low, high) * size
        centre = None
        while centre is None and radius >= 0.05 * size:
            centre = _place(rng, size, radius, placed)
            radius = radius if centre is not None else 0.8 * radius
        if centre is None:
            continue  # no room left: the label is not claimed either
        cy, cx = centre
        placed.append((cy, cx, radius))
        top, left = int(max(cy - radius - 1, 0)), int(max(cx - radius - 1, 0))
        bottom, right = int(min(cy + radius + 2, size)), int(min(cx + radius + 2, size))
        dy, dx = np.mgrid[top:bottom, left:right].astype(np.float32)
        mask = _shape_mask(name, dy - cy, dx - cx, radius, rng.uniform(0, np.pi))
        if rng.random() < _CLASS_COLOR_P:
            color = _CLASS_COLORS[class_names.index(name)] + rng.uniform(-30, 30, 3)
        else:
            color = rng.uniform(0, 255, 3)
        image[top:bottom, left:right][mask] = color
        present.add(name)
    image += 10.0 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), present


def load_shapes(split="train", num_images=None, image_size=64, seed=0):
    """Generates the `shapes` dataset in memory.

    Args:
        split: `"train"`, `"val"` or `"test"`; each is an independent draw.
            Defaults to `"train"`.
        num_images: number of images. Defaults to None (2000 for train, 500
            for val and test).
        image_size: side of the square images in pixels. Defaults to 64.
        seed: generation seed. Defaults to 0.

    Returns:
        `MultiLabelDataset` with `images` (uint8, `(N, S, S, 3)`) and the 10
        classes of `SHAPE_CLASS_NAMES`.

    Example:
    >>> data = load_shapes("val", num_images=8, image_size=32)
    >>> data.images.shape, data.num_classes
    ((8, 32, 32, 3), 10)
    """
    if split not in _SPLIT_STREAMS:
        raise ValueError(f"split must be one of {sorted(_SPLIT_STREAMS)}, got {split!r}.")
    if num_images is None:
        num_images = DEFAULT_NUM_IMAGES[split]
    image_size = int(image_size)
    rng = np.random.default_rng([int(seed), _SPLIT_STREAMS[split]])
    class_names = list(SHAPE_CLASS_NAMES)
    scenes = list(SCENES.values())
    grid = np.mgrid[0:image_size, 0:image_size] / max(image_size - 1, 1)
    images = np.empty((num_images, image_size, image_size, 3), np.uint8)
    labels = np.zeros((num_images, len(class_names)), np.float32)
    for i in range(num_images):
        scene = scenes[rng.integers(len(scenes))]
        images[i], present = _render(rng, image_size, grid, class_names, scene)
        labels[i, [class_names.index(n) for n in present]] = 1.0
    return MultiLabelDataset(
        class_names,
        labels,
        image_ids=[f"shapes-{split}-{i:05d}" for i in range(num_images)],
        images=images,
        name=f"shapes-{split}",
    )
