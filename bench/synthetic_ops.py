"""One-op ONNX models (a conv or depthwise conv with bias, then Relu:
`dgc.predict_mca.one_op_model`) of shapes from architectures outside the zoo, for cost-model
development and held-out checks:

    python3 bench/synthetic_ops.py SET [--dir DIR]     # prints the files, comma separated
    python3 bench/predictor.py --target host --fresh $(python3 bench/synthetic_ops.py sweep) \\
        --candidates 40 --match depthwise

Sets (input height x width x channels, output channels for convs, kernel, stride):
  effnet  the depthwise convs of EfficientNet-B0 at 224 (3x3 and 5x5);
  mnv3    MobileNetV3-style depthwise convs plus three odd sizes (40x40x24, 20x20x40, 24x24x64);
  sweep   3x3 depthwise, 96 channels, inputs from 0.3 to 9.8 MB at strides 1 and 2, and
          112x112 with 32 and 48 channels (how the best block changes as the input leaves L2);
  bigconv convs whose input or output exceeds a 1 MB L2 (1x1 expansions and projections,
          3x3 stems);
  convs   convs of ResNet-50 (1x1 bottlenecks, 1x1 stride-2 projections), EfficientNet-B0
          (1x1 expansions and projections) and 3x3 layers of other widths: development data for
          the conv model (none of them is in the zoo).
Weights are seeded random; only shapes matter to the cost models. As in one_op_model the conv
has no padding: its input is what the output's windows read.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import onnx

from dgc.predict_mca import one_op_model

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
    "convs": [(56, 56, 64, 256, 1, 1), (56, 56, 256, 64, 1, 1), (56, 56, 256, 512, 1, 2), (28, 28, 512, 128, 1, 1),
              (28, 28, 128, 128, 3, 1), (28, 28, 512, 1024, 1, 2), (14, 14, 1024, 256, 1, 1), (14, 14, 256, 1024, 1, 1),
              (14, 14, 160, 160, 3, 1), (14, 14, 96, 192, 3, 2), (7, 7, 512, 2048, 1, 1), (7, 7, 2048, 512, 1, 1),
              (7, 7, 384, 384, 3, 1), (28, 28, 40, 240, 1, 1), (14, 14, 80, 480, 1, 1), (14, 14, 672, 112, 1, 1),
              (7, 7, 1152, 192, 1, 1), (56, 56, 48, 96, 1, 2), (28, 28, 96, 192, 1, 2), (32, 32, 64, 64, 3, 1)],
}


def entry(h: int, w: int, cin: int, cout: int, k: int, stride: int) -> dict:
    """The op entry (`--dump-schedule` form) of a SETS row: output pixels as with "same" padding,
    a bias and a ReLU fused."""
    pad = (k - 1) // 2
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    window = {"window": [stride, stride, 1, 1]} if stride > 1 else {}
    if cout == 0:
        return {"linalg": "linalg.depthwise_conv_2d_nhwc_hwc", "loops": [1, oh, ow, cin, k, k], "kinds": "pppprr",
                "fuse": True, **window}
    return {"linalg": "linalg.conv_2d_nhwc_hwcf", "loops": [1, oh, ow, cout, k, k, cin], "kinds": "pppprrr",
            "fuse": True, **window}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "dgc-synthetic-ops"))
    args = ap.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    paths = []
    for h, w, cin, cout, k, s in SETS[args.set]:
        path = os.path.join(args.dir, f"{args.set}_{h}x{w}x{cin}{f'_{cout}' if cout else ''}_k{k}s{s}.onnx")
        onnx.save(one_op_model(entry(h, w, cin, cout, k, s)), path)
        paths.append(path)
    print(",".join(paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
