"""Independent numpy implementations of the building blocks, for the layer tests."""

import numpy as np

BN_EPSILON = 1e-3  # keras.layers.BatchNormalization default


def batch_norm(x, gamma, beta, mean, var):
    return gamma * (x - mean) / np.sqrt(var + BN_EPSILON) + beta


def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def leaky_relu(x, slope=0.2):
    return np.where(x > 0, x, slope * x)


def average_pool_same(x, k):
    """k_h x k_w average pooling with stride k_h x k_w and "same" padding.

    ceil(n / k) windows per axis; the padding (ceil(n / k) k - n) is split with
    the smaller half before; every window averages its valid entries only.
    """
    kh, kw = (k, k) if np.isscalar(k) else k
    b, h, w, c = x.shape

    def windows(n, k):
        m = -(-n // k)
        before = (m * k - n) // 2
        return [(max(0, i * k - before), min(n, (i + 1) * k - before)) for i in range(m)]

    rows, cols = windows(h, kh), windows(w, kw)
    out = np.zeros((b, len(rows), len(cols), c))
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


def bilinear_resize(x, size):
    """Half-pixel-centre bilinear resize without antialiasing (TF2 semantics)."""
    b, h, w, c = x.shape
    oh, ow = size

    def coords(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = coords(h, oh)
    x0, x1, fx = coords(w, ow)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]
