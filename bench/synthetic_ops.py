"""One-op ONNX models (a conv or depthwise conv with bias, then Relu) of shapes from
architectures outside the zoo, for cost-model development and held-out checks:

    python3 bench/synthetic_ops.py SET [--dir DIR]     # prints the files, comma separated
    python3 bench/predictor.py --target host --fresh $(python3 bench/synthetic_ops.py sweep) \\
        --candidates 40 --match depthwise

Sets (input height x width x channels, output channels for convs, kernel, stride):
  effnet  the depthwise convs of EfficientNet-B0 at 224 (3x3 and 5x5);
  mnv3    MobileNetV3-style depthwise convs plus three odd sizes (40x40x24, 20x20x40, 24x24x64);
  sweep   3x3 depthwise, 96 channels, inputs from 0.3 to 9.8 MB at strides 1 and 2, and
          112x112 with 32 and 48 channels (how the best block changes as the input leaves L2);
  bigconv convs whose input or output exceeds a 1 MB L2 (1x1 expansions and projections,
          3x3 stems).
Weights are seeded random; only shapes matter to the cost models.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (h, w, cin, cout, k, stride); cout 0: depthwise (cout = cin, group = cin)
SETS = {
    "effnet": [(112, 112, 32, 0, 3, 1), (112, 112, 96, 0, 3, 2), (56, 56, 144, 0, 3, 1), (56, 56, 144, 0, 5, 2),
               (28, 28, 240, 0, 5, 1), (28, 28, 240, 0, 3, 2), (14, 14, 480, 0, 3, 1), (14, 14, 480, 0, 5, 1),
               (14, 14, 672, 0, 5, 1), (14, 14, 672, 0, 5, 2), (7, 7, 1152, 0, 5, 1), (7, 7, 1152, 0, 3, 1)],
    "mnv3": [(112, 112, 16, 0, 3, 2), (56, 56, 72, 0, 3, 2), (28, 28, 88, 0, 3, 1), (28, 28, 96, 0, 5, 2),
             (14, 14, 240, 0, 5, 1), (14, 14, 120, 0, 5, 1), (14, 14, 144, 0, 5, 1), (14, 14, 288, 0, 5, 2),
             (7, 7, 576, 0, 5, 1), (40, 40, 24, 0, 3, 1), (20, 20, 40, 0, 5, 2), (24, 24, 64, 0, 3, 1)],
    "sweep": [(28, 28, 96, 0, 3, 1), (56, 56, 96, 0, 3, 1), (80, 80, 96, 0, 3, 1), (112, 112, 96, 0, 3, 1),
              (56, 56, 96, 0, 3, 2), (112, 112, 96, 0, 3, 2), (160, 160, 96, 0, 3, 2), (112, 112, 32, 0, 3, 1),
              (112, 112, 48, 0, 3, 1)],
    "bigconv": [(112, 112, 16, 64, 1, 1), (96, 96, 8, 48, 1, 1), (192, 192, 3, 16, 3, 2), (160, 160, 3, 24, 3, 2),
                (112, 112, 48, 24, 1, 1), (80, 80, 96, 16, 1, 1), (96, 96, 16, 16, 3, 1), (64, 64, 128, 32, 1, 1),
                (56, 56, 40, 240, 1, 1), (128, 128, 8, 32, 3, 1)],
}


def one_op(h: int, w: int, cin: int, cout: int, k: int, stride: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    group = cin if cout == 0 else 1
    cout = cout or cin
    weight = numpy_helper.from_array((rng.standard_normal((cout, cin // group, k, k)) * 0.1).astype(np.float32), "W")
    bias = numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(np.float32), "B")
    pad = (k - 1) // 2
    conv = helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv", group=group, kernel_shape=[k, k],
                            strides=[stride, stride], pads=[pad] * 4)
    relu = helper.make_node("Relu", ["y"], ["z"], name="relu")
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, cout, oh, ow])
    graph = helper.make_graph([conv, relu], "one_op", [x], [z], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "dgc-synthetic-ops"))
    args = ap.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    paths = []
    for h, w, cin, cout, k, s in SETS[args.set]:
        path = os.path.join(args.dir, f"{args.set}_{h}x{w}x{cin}{f'_{cout}' if cout else ''}_k{k}s{s}.onnx")
        onnx.save(one_op(h, w, cin, cout, k, s), path)
        paths.append(path)
    print(",".join(paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
