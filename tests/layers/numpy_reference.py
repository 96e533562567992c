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
    """k x k / stride k average pooling, 'same' padding (windows cut at the border)."""
    b, h, w, c = x.shape
    oh, ow = -(-h // k), -(-w // k)
    out = np.zeros((b, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, i * k:(i + 1) * k, j * k:(j + 1) * k].mean(axis=(1, 2))
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
