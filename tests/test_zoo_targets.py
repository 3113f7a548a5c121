"""Every zoo model on the targets the Foundation issue names, checked against onnxruntime.

host: all zoo models; aarch64/armv7a: LeNet-5, DS-CNN, ResNet-8, tiny BERT; cortex-m7:
LeNet-5, DS-CNN, ResNet-8, MobileNetV1-0.25, FC autoencoder; every other runnable Cortex-M:
LeNet-5 and DS-CNN.
"""

from __future__ import annotations

import pytest

from conftest import check_on_target, zoo_model

HOST = ["lenet5", "ds_cnn", "resnet8", "mobilenet_v1_025", "fc_autoencoder", "mobilenet_v2", "resnet18", "tiny_bert",
        "tiny_bert_ids", "torch_style_mlp", "old_opset_cnn"]
LINUX_ARM = [(t, m) for t in ("aarch64", "armv7a") for m in ("lenet5", "ds_cnn", "resnet8", "tiny_bert")]
LINUX_ARM_CPUS = [(t, "lenet5") for t in ("cortex-a53", "cortex-a72", "cortex-a76", "cortex-a7")]
M7 = [("cortex-m7", m) for m in ("lenet5", "ds_cnn", "resnet8", "mobilenet_v1_025", "fc_autoencoder")]
OTHER_M = [(t, m) for t in ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m33", "cortex-m55")
           for m in ("lenet5", "ds_cnn")]


@pytest.mark.parametrize("model", HOST)
def test_host(model, tmp_path):
    check_on_target(zoo_model(model), "host", tmp_path)


@pytest.mark.parametrize("target,model", LINUX_ARM + LINUX_ARM_CPUS)
def test_linux_arm(target, model, tmp_path):
    check_on_target(zoo_model(model), target, tmp_path)


@pytest.mark.parametrize("target,model", M7 + OTHER_M)
def test_cortex_m(target, model, tmp_path):
    check_on_target(zoo_model(model), target, tmp_path)


@pytest.mark.parametrize("target", ["x86-64", "x86-64-v3", "x86-64-v4"])
def test_x86_levels(target, tmp_path):
    from dgc.targets import get_target, host_can_run

    if not host_can_run(get_target(target)):
        pytest.skip(f"this CPU cannot run {target} code")
    check_on_target(zoo_model("ds_cnn"), target, tmp_path)


def test_cortex_m85_compiles():
    """QEMU 7.2 has no Cortex-M85: compile-only, still a valid bare-metal object."""
    import dgc

    res = dgc.compile(zoo_model("ds_cnn"), "cortex-m85", name="kws")
    assert res.object[:4] == b"\x7fELF"
    assert "kws_run" in res.header
