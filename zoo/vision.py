"""Convolutional zoo models: LeNet-5, the MLPerf Tiny vision/audio nets, MobileNetV2, ResNet-18."""

from __future__ import annotations

import onnx

from ._graph import GraphBuilder

# TF/Keras "SAME" padding for a stride-2, 3x3 kernel on an even-sized input puts
# the single extra row/column at the end: [top, left, bottom, right].
_TF_SAME_S2_K3 = [0, 0, 1, 1]

# Classifier heads are calibrated from the builder's activation estimates
# (GraphBuilder._weights) with a per-model ``target_std``, tuned by hand so the
# logits on N(0, 1) inputs have std ~1-3: softmax outputs are then clearly
# non-uniform, input-dependent, and far from one-hot.


# --------------------------------------------------------------------------- LeNet-5
def build_lenet5(seed: int) -> onnx.ModelProto:
    g = GraphBuilder("lenet5", seed=seed, opset=17)
    x = g.add_input("input", [1, 1, 28, 28])
    x = g.conv(x, "conv1", 1, 6, 5, pads=[2, 2, 2, 2])
    x = g.relu(x, "relu1")
    x = g.maxpool(x, "pool1", 2, 2)  # 6x14x14
    x = g.conv(x, "conv2", 6, 16, 5, pads=[0, 0, 0, 0])
    x = g.relu(x, "relu2")
    x = g.maxpool(x, "pool2", 2, 2)  # 16x5x5
    x = g.flatten(x, "flatten", spatial=25)
    x = g.gemm(x, "fc1", 400, 120)
    x = g.relu(x, "relu3")
    x = g.gemm(x, "fc2", 120, 84)
    x = g.relu(x, "relu4")
    x = g.gemm(x, "fc3", 84, 10, target_std=1.0, output="logits")
    g.add_output(x, [1, 10])
    return g.make_model("LeNet-5 (pad-2 first conv, 28x28 input), logits output")


# --------------------------------------------------------------------------- DS-CNN-S
def build_ds_cnn(seed: int) -> onnx.ModelProto:
    """MLPerf Tiny keyword spotting DS-CNN (small): 49x10 MFCC -> 12 classes."""
    g = GraphBuilder("ds_cnn", seed=seed, opset=17)
    x = g.add_input("input", [1, 1, 49, 10])
    # Conv 10x4 stride 2, TF "same": out 25x5; H pad total 9 -> (4, 5), W pad total 2 -> (1, 1).
    x = g.conv(x, "conv0", 1, 64, (10, 4), stride=2, pads=[4, 1, 5, 1])
    x = g.batchnorm(x, "conv0.bn", 64)
    x = g.relu(x, "conv0.relu")
    for i in range(1, 5):
        p = f"block{i}"
        x = g.conv(x, f"{p}.dw", 64, 64, 3, group=64)
        x = g.batchnorm(x, f"{p}.dw.bn", 64)
        x = g.relu(x, f"{p}.dw.relu")
        x = g.conv(x, f"{p}.pw", 64, 64, 1)
        x = g.batchnorm(x, f"{p}.pw.bn", 64)
        x = g.relu(x, f"{p}.pw.relu")
    x = g.avgpool(x, "avgpool", (25, 5))  # global-size kernel -> 1x1
    x = g.flatten(x, "flatten")
    x = g.gemm(x, "fc", 64, 12, target_std=1.5)
    x = g.node("Softmax", [x], "softmax", outputs=["probs"], axis=-1)
    g.add_output(x, [1, 12])
    return g.make_model("MLPerf Tiny DS-CNN-S keyword spotting; BatchNormalization kept unfolded")


# --------------------------------------------------------------------------- ResNet-8
def build_resnet8(seed: int) -> onnx.ModelProto:
    """MLPerf Tiny image classification ResNet-8 (CIFAR-10, Keras-origin padding)."""
    g = GraphBuilder("resnet8", seed=seed, opset=17)
    x = g.add_input("input", [1, 3, 32, 32])
    x = g.conv(x, "conv0", 3, 16, 3)
    x = g.batchnorm(x, "conv0.bn", 16)
    x = g.relu(x, "conv0.relu")
    cin = 16
    for i, (cout, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        p = f"stack{i}"
        pads = _TF_SAME_S2_K3 if stride == 2 else None
        y = g.conv(x, f"{p}.conv1", cin, cout, 3, stride=stride, pads=pads)
        y = g.batchnorm(y, f"{p}.bn1", cout)
        y = g.relu(y, f"{p}.relu1")
        y = g.conv(y, f"{p}.conv2", cout, cout, 3)
        y = g.batchnorm(y, f"{p}.bn2", cout)
        if stride != 1 or cin != cout:
            x = g.conv(x, f"{p}.shortcut", cin, cout, 1, stride=stride, pads=[0, 0, 0, 0], gain=1.0)
        x = g.add(x, y, f"{p}.add")
        x = g.relu(x, f"{p}.relu2")
        cin = cout
    x = g.avgpool(x, "avgpool", 8)
    x = g.flatten(x, "flatten")
    x = g.gemm(x, "fc", 64, 10, target_std=3.0)
    x = g.node("Softmax", [x], "softmax", outputs=["probs"], axis=-1)
    g.add_output(x, [1, 10])
    return g.make_model("MLPerf Tiny ResNet-8 for CIFAR-10")


# --------------------------------------------------------------------------- MobileNetV1 0.25
def build_mobilenet_v1_025(seed: int) -> onnx.ModelProto:
    """MLPerf Tiny visual wake words: MobileNetV1 alpha=0.25 on 96x96 RGB, 2 classes."""
    g = GraphBuilder("mobilenet_v1_025", seed=seed, opset=17)
    x = g.add_input("input", [1, 3, 96, 96])
    x = g.conv(x, "conv0", 3, 8, 3, stride=2, pads=_TF_SAME_S2_K3, bias=False)
    x = g.batchnorm(x, "conv0.bn", 8)
    x = g.relu(x, "conv0.relu")
    # (output channels, depthwise stride) for the 13 depthwise-separable blocks at alpha 0.25.
    cfg = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2),
           (128, 1), (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]
    cin = 8
    for i, (cout, stride) in enumerate(cfg, start=1):
        p = f"block{i}"
        x = g.conv(x, f"{p}.dw", cin, cin, 3, stride=stride, group=cin, bias=False,
                   pads=_TF_SAME_S2_K3 if stride == 2 else None)
        x = g.batchnorm(x, f"{p}.dw.bn", cin)
        x = g.relu(x, f"{p}.dw.relu")
        x = g.conv(x, f"{p}.pw", cin, cout, 1, bias=False)
        x = g.batchnorm(x, f"{p}.pw.bn", cout)
        x = g.relu(x, f"{p}.pw.relu")
        cin = cout
    x = g.avgpool(x, "avgpool", 3)  # 3x3 -> 1x1
    x = g.conv(x, "classifier", 256, 2, 1, target_std=2.0)  # Conv1x1 logits, [1, 2, 1, 1]
    x = g.flatten(x, "flatten")
    x = g.node("Softmax", [x], "softmax", outputs=["probs"], axis=-1)
    g.add_output(x, [1, 2])
    return g.make_model("MobileNetV1 alpha=0.25, 96x96 visual wake words (person / no person)")


# --------------------------------------------------------------------------- MobileNetV2
def build_mobilenet_v2(seed: int) -> onnx.ModelProto:
    """torchvision-layout MobileNetV2 (width 1.0), 224x224, 1000 classes, ReLU6 as Clip."""
    g = GraphBuilder("mobilenet_v2", seed=seed, opset=17)
    x = g.add_input("input", [1, 3, 224, 224])
    x = g.conv(x, "features.0.0", 3, 32, 3, stride=2, bias=False)
    x = g.batchnorm(x, "features.0.1", 32)
    x = g.relu6(x, "features.0.2")
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    cin, idx = 32, 1
    for t, c, n, s in settings:
        for j in range(n):
            stride = s if j == 0 else 1
            p = f"features.{idx}.conv"
            hidden = cin * t
            y = x
            k = 0
            if t != 1:
                y = g.conv(y, f"{p}.0.0", cin, hidden, 1, bias=False)
                y = g.batchnorm(y, f"{p}.0.1", hidden)
                y = g.relu6(y, f"{p}.0.2")
                k = 1
            y = g.conv(y, f"{p}.{k}.0", hidden, hidden, 3, stride=stride, group=hidden, bias=False)
            y = g.batchnorm(y, f"{p}.{k}.1", hidden)
            y = g.relu6(y, f"{p}.{k}.2")
            y = g.conv(y, f"{p}.{k + 1}", hidden, c, 1, bias=False, gain=1.0)
            residual = stride == 1 and cin == c
            y = g.batchnorm(y, f"{p}.{k + 2}", c)
            if residual:
                y = g.add(x, y, f"features.{idx}.add")
            x = y
            cin = c
            idx += 1
    x = g.conv(x, f"features.{idx}.0", 320, 1280, 1, bias=False, gain=1.0)
    x = g.batchnorm(x, f"features.{idx}.1", 1280)
    x = g.relu6(x, f"features.{idx}.2")
    x = g.global_avgpool(x, "avgpool", spatial=7 * 7)
    x = g.flatten(x, "flatten")
    x = g.gemm(x, "classifier.1", 1280, 1000, target_std=3.0, output="logits")
    g.add_output(x, [1, 1000])
    return g.make_model("MobileNetV2 1.0 (torchvision layout), ImageNet 224x224, logits output")


# --------------------------------------------------------------------------- ResNet-18
def build_resnet18(seed: int) -> onnx.ModelProto:
    """torchvision-layout ResNet-18, 224x224, 1000 classes (~11.7M parameters)."""
    g = GraphBuilder("resnet18", seed=seed, opset=17)
    x = g.add_input("input", [1, 3, 224, 224])
    x = g.conv(x, "conv1", 3, 64, 7, stride=2, pads=[3, 3, 3, 3], bias=False)
    x = g.batchnorm(x, "bn1", 64)
    x = g.relu(x, "relu")
    x = g.maxpool(x, "maxpool", 3, 2, pads=[1, 1, 1, 1])
    cin = 64
    for li, cout in enumerate([64, 128, 256, 512], start=1):
        for b in range(2):
            p = f"layer{li}.{b}"
            stride = 2 if (b == 0 and li > 1) else 1
            y = g.conv(x, f"{p}.conv1", cin, cout, 3, stride=stride, bias=False)
            y = g.batchnorm(y, f"{p}.bn1", cout)
            y = g.relu(y, f"{p}.relu1")
            y = g.conv(y, f"{p}.conv2", cout, cout, 3, bias=False)
            y = g.batchnorm(y, f"{p}.bn2", cout)
            if stride != 1 or cin != cout:
                x = g.conv(x, f"{p}.downsample.0", cin, cout, 1, stride=stride, pads=[0, 0, 0, 0], bias=False)
                x = g.batchnorm(x, f"{p}.downsample.1", cout)
            x = g.add(x, y, f"{p}.add")
            x = g.relu(x, f"{p}.relu2")
            cin = cout
    x = g.global_avgpool(x, "avgpool", spatial=7 * 7)
    x = g.flatten(x, "flatten")
    x = g.gemm(x, "fc", 512, 1000, target_std=0.8, output="logits")
    g.add_output(x, [1, 1000])
    return g.make_model("ResNet-18 (torchvision layout), ImageNet 224x224, logits output")
