"""A small CNN trained on scikit-learn's bundled digits dataset (1797 real 8x8 images).

The committed model (`zoo/data/digits_cnn.onnx`) is what `python -m dgc.zoo.digits` writes:
NumPy training (Adam, fixed seed) of Conv(1->16, 3x3) ReLU MaxPool Conv(16->32, 3x3) ReLU
MaxPool Gemm(128->10) on 80% of the images; the other 20% (`split()`'s held-out part) are
never trained on. Input "image" [N, 1, 8, 8] float, pixel / 16; output "logits" [N, 10].

    >>> from dgc.zoo import digits
    >>> (x_train, y_train), (x_test, y_test) = digits.split()
    >>> model = digits.model()
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PATH = os.path.join(os.path.dirname(__file__), "data", "digits_cnn.onnx")
SEED = 0


def split(test_fraction: float = 0.2):
    """((x_train, y_train), (x_test, y_test)): float32 [N, 1, 8, 8] in [0, 1], int labels."""
    from sklearn.datasets import load_digits  # the dataset ships inside scikit-learn

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    order = np.random.default_rng(SEED).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], d.target[train]), (x[test], d.target[test])


def model() -> onnx.ModelProto:
    """The committed trained model."""
    return onnx.load(PATH)


# --- training (NumPy; only `python -m dgc.zoo.digits` runs it) ---

def _im2col(x):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=2)
    return cols.transpose(0, 3, 4, 1, 2).reshape(n * h * w, c * 9)


def _col2im(dcols, shape):
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, 9).transpose(0, 3, 4, 1, 2)
    dxp = np.zeros((n, c, h + 2, w + 2), dcols.dtype)
    for k in range(9):
        i, j = divmod(k, 3)
        dxp[:, :, i:i + h, j:j + w] += d[:, :, k]
    return dxp[:, :, 1:-1, 1:-1]


def _conv(x, w, b):
    n, _, h, wd = x.shape
    cols = _im2col(x)
    y = cols @ w.reshape(len(w), -1).T + b
    return y.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def _conv_back(dy, x, cols, w):
    dyr = dy.transpose(0, 2, 3, 1).reshape(-1, dy.shape[1])
    dw = (dyr.T @ cols).reshape(w.shape)
    return dw, dyr.sum(0), _col2im(dyr @ w.reshape(len(w), -1), x.shape)


def _pool(x):
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    mask = x == y.repeat(2, 2).repeat(2, 3)
    return y, mask


def _forward(p, x):
    a1, c1 = _conv(x, p["w1"], p["b1"])
    r1 = np.maximum(a1, 0)
    m1, k1 = _pool(r1)
    a2, c2 = _conv(m1, p["w2"], p["b2"])
    r2 = np.maximum(a2, 0)
    m2, k2 = _pool(r2)
    f = m2.reshape(len(x), -1)
    return f @ p["w3"].T + p["b3"], (x, a1, c1, k1, m1, a2, c2, k2, f)


def _backward(p, cache, dlogits):
    x, a1, c1, k1, m1, a2, c2, k2, f = cache
    g = {"w3": dlogits.T @ f, "b3": dlogits.sum(0)}
    dm2 = (dlogits @ p["w3"]).reshape(len(x), 32, 2, 2)
    da2 = dm2.repeat(2, 2).repeat(2, 3) * k2 * (a2 > 0)
    g["w2"], g["b2"], dm1 = _conv_back(da2, m1, c2, p["w2"])
    da1 = dm1.repeat(2, 2).repeat(2, 3) * k1 * (a1 > 0)
    g["w1"], g["b1"], _ = _conv_back(da1, x, c1, p["w1"])
    return g


def train(epochs: int = 40, batch: int = 32, lr: float = 2e-3):
    """Trained parameters (float32 dict) and the held-out accuracy of the NumPy forward pass."""
    (x, y), (xt, yt) = split()
    rng = np.random.default_rng(SEED)
    he = lambda *s: (rng.standard_normal(s) * np.sqrt(2.0 / np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    p = {"w1": he(16, 1, 3, 3), "b1": np.zeros(16, np.float32), "w2": he(32, 16, 3, 3),
         "b2": np.zeros(32, np.float32), "w3": he(10, 128), "b3": np.zeros(10, np.float32)}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(t) for k, t in p.items()}
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            logits, cache = _forward(p, x[idx])
            e = np.exp(logits - logits.max(1, keepdims=True))
            prob = e / e.sum(1, keepdims=True)
            prob[np.arange(len(idx)), y[idx]] -= 1
            grads = _backward(p, cache, prob / len(idx))
            step += 1
            for k in p:  # Adam
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                mh, vh = m[k] / (1 - 0.9 ** step), v[k] / (1 - 0.999 ** step)
                p[k] = (p[k] - lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    acc = float((_forward(p, xt)[0].argmax(1) == yt).mean())
    return p, acc


def to_onnx(p) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.ascontiguousarray(v, np.float32), k) for k, v in p.items()]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "digits_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dgc.zoo.digits")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


if __name__ == "__main__":
    params, accuracy = train()
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    onnx.save(to_onnx(params), PATH)
    print(f"wrote {PATH}: held-out accuracy {accuracy:.4f}")
