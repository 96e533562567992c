"""One figure per predicted image: top labels, class attention maps, label graph."""

import math

import numpy as np
from matplotlib.figure import Figure


def draw_prediction(path, image, probabilities, class_names, attention, adjacency, top_k=5):
    """Draws the image with its top-k labels, their attention maps and their graph.

    Panels: the image with the top-k classes and probabilities; for each of
    them its class attention map alpha_c (upsampled to the image, overlaid);
    and the per-image label graph A_b restricted to those classes (edge width
    proportional to the weight, self-loops omitted).

    Args:
        path: PNG file to write (must not exist).
        image: `(H, W, 3)` uint8 or float in [0, 255].
        probabilities: `(C,)` sigmoid scores.
        class_names: C names.
        attention: `(h, w, C)` class attention maps, or None (baselines).
        adjacency: `(C, C)` per-image adjacency, or None.
        top_k: number of classes shown. Defaults to 5.

    Example:
    >>> import numpy as np, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "p.png")
    >>> draw_prediction(out, np.zeros((8, 8, 3)), np.array([.9, .1]), ["a", "b"],
    ...                 np.ones((2, 2, 2)) / 4, np.eye(2), top_k=2)
    """
    top = np.argsort(-probabilities, kind="stable")[:top_k]
    panels = 1 + (len(top) if attention is not None else 0) + (adjacency is not None)
    columns = min(panels, 4)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(3.2 * columns, 3.4 * rows))
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(panels)]
    shown = np.clip(np.asarray(image, dtype="float32") / 255.0, 0, 1)
    axes[0].imshow(shown)
    axes[0].set_title("\n".join(f"{class_names[c]}: {probabilities[c]:.2f}" for c in top[:3]),
                      fontsize=8)
    panel = 1
    if attention is not None:
        height, width = shown.shape[:2]
        for c in top:
            ax = axes[panel]
            ax.imshow(shown)
            ax.imshow(attention[..., c], cmap="jet", alpha=0.5, interpolation="bilinear",
                      extent=(0, width, height, 0))
            ax.set_title(f"attention: {class_names[c]}", fontsize=8)
            panel += 1
    if adjacency is not None:
        ax = axes[panel]
        angles = np.linspace(0, 2 * np.pi, len(top), endpoint=False)
        xy = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        sub = adjacency[np.ix_(top, top)]
        strongest = max(float(sub[~np.eye(len(top), dtype=bool)].max(initial=0.0)), 1e-6)
        for i in range(len(top)):
            for j in range(len(top)):
                if i != j and sub[i, j] > 0:
                    ax.plot(*xy[[i, j]].T, color="tab:blue", alpha=0.6,
                            linewidth=4.0 * sub[i, j] / strongest)
        ax.scatter(xy[:, 0], xy[:, 1], s=300 * probabilities[top] + 30, color="tab:orange", zorder=3)
        for (x, y), c in zip(xy, top):
            ax.annotate(class_names[c], (x, y), fontsize=7, ha="center", va="bottom")
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.5, 1.5)
        ax.set_title("label graph A_b (top classes)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.tight_layout()
    with open(path, "xb") as f:
        figure.savefig(f, format="png", dpi=100)
