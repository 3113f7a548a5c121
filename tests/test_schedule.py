"""The schedule stage: default schedules per target, fusion, vectorized code, and user schedules.

Numerics are always checked against onnxruntime (`check_on_target`); a schedule that changes
the answer must fail here, whatever it does to speed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dgc
from conftest import check_on_target
from dgc.errors import UsageError
from dgc.passes import schedule as S
from dgc.predict import x86_16_registers
from dgc.targets import get_target


def _conv_model(c=8, k=32, hw=12, ks=3, group=1, stride=1, relu=True, residual=False, second=False):
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((k, c // group, ks, ks)) * 0.2).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    oh = (hw + 2 * (ks // 2) - ks) // stride + 1
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[ks // 2] * 4,
                              group=group, strides=[stride, stride])]
    last = "y"
    if residual:
        nodes.append(helper.make_node("Add", ["y", "x"], ["s"], name="add"))
        last = "s"
    if relu:
        nodes.append(helper.make_node("Relu", [last], ["z"], name="relu"))
        last = "z"
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    if second:  # a 1x1 conv after: the ReLU sits between two NHWC convolutions
        w2 = (rng.standard_normal((k, k, 1, 1)) * 0.2).astype(np.float32)
        inits.append(numpy_helper.from_array(w2, "w2"))
        nodes.append(helper.make_node("Conv", [last, "w2"], ["y2"], name="conv2"))
        last = "y2"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                          [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, k, oh, oh])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _matmul_model(m=6, k=40, n=24, bias=False):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((k, n)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["y0" if bias else "y"], name="mm")]
    inits = [numpy_helper.from_array(w, "w")]
    if bias:  # a fused consumer of the matmul, with an operand of its own
        nodes.append(helper.make_node("Add", ["y0", "b"], ["y"], name="add"))
        inits.append(numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b"))
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, m, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, n])],
                          inits)
    mm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mm.ir_version = 8
    return mm


def _ops(res):
    return {e["key"]: e for e in json.loads(res.schedule)["ops"]}


# ---- defaults from target data -------------------------------------------------------

@pytest.mark.parametrize("target", ["x86-64", "x86-64-v3", "x86-64-v4", "aarch64", "armv7a", "cortex-m7",
                                    "cortex-m55"])
def test_register_block_fits_the_register_file(target):
    t = get_target(target)
    rows, cols = S._block(t, 56, 64)
    lanes = max(1, t.vector_bits // 32)
    assert cols % lanes == 0 and 56 % rows == 0 and 64 % cols == 0
    assert rows * (cols // lanes) <= t.vector_regs - 4 or rows == 1


def test_avx2_register_block_takes_ten_accumulators_for_rows_of_five():
    """x86 with 16 registers: rows of 5 (DS-CNN's 25x5 outputs, LeNet-5's 10x10) take a 5 x 2-vector
    block (10 accumulators, 2 weight vectors, a broadcast), not one row of 8 vectors, whose
    weight loads bound the step (Zen 3: DS-CNN 1.10x, LeNet-5 1.12x faster); 32-register
    targets keep half the file."""
    v3, v4 = get_target("x86-64-v3"), get_target("x86-64-v4")
    assert S._block(v3, 5, 64) == (5, 16)
    assert S._block(v3, 56, 64) == (4, 16)
    assert S._block(v4, 5, 64) == (5, 32)


@pytest.mark.parametrize("target", ["x86-64-v3", "x86-64-v4", "cortex-a72", "cortex-a53", "armv7a", "cortex-m55",
                                    "cortex-m7"])
@pytest.mark.parametrize("c, hw, stride", [(384, 14, 1), (96, 56, 2), (8, 48, 1), (256, 3, 1)])
def test_depthwise_blocks_keep_their_windows_in_registers(target, c, hw, stride, tmp_path):
    """Targets with vectors: a depthwise block's accumulators, the inputs its windows span in
    a kernel row and the row's weights fit the register file (a few spills at most: the cost
    model's pick, where a few spills of a long block beat short blocks); 14x14x384 took
    2 x 128 before (72 registers a row). On x86 with 16 registers (AVX2) a block may
    instead read its window from memory, each FMA's input a memory operand: then its
    accumulators take at most half the registers. Cores without vectors keep the conv
    heuristic's block. The compiled conv verifies against onnxruntime."""
    t = get_target(target)
    res = dgc.compile(_conv_model(c=c, k=c, hw=hw * stride, group=c, stride=stride), t, name="m",
                      stop_after="schedule")
    e = _ops(res)["conv"]
    r, w = e["tile"][2:4]
    lanes = max(1, t.vector_bits // 32)
    v = -(-w // lanes)
    if lanes == 1:
        assert (r, w) == S._block(t, hw, c)
    else:
        assert e.get("window", [1, 1, 1, 1])[:2] == [stride, stride]
        # with Helium's 8 registers spills are unavoidable: a 4-pixel stride-2 block still
        # beats 1 and 2 pixels there (exact counts, 28x28x96: 681K cycles against 1.0M, 750K)
        limit = t.vector_regs * 5 // 4 + 1 if t.vector_regs >= 16 else 2 * t.vector_regs
        folded = x86_16_registers(t) and r * v <= t.vector_regs // 2
        assert folded or r * v + ((r - 1) * stride + 3) * v + 3 * v <= limit
        assert hw % r == 0 and c % w == 0
    if target == "x86-64-v3" and c <= 96:
        check_on_target(_conv_model(c=c, k=c, hw=hw * stride, group=c, stride=stride), "host", tmp_path,
                        schedule=[{"key": "conv", "tile": e["tile"]}])


def test_weight_blocks_follow_the_cache_size():
    import dataclasses
    t = get_target("x86-64-v4")
    big, small = dataclasses.replace(t, cache_bytes=2 << 20), dataclasses.replace(t, cache_bytes=256 << 10)
    per_channel = 4 * 3 * 3 * 256  # 3x3 conv over 256 input channels: 9 KB per output channel
    assert S._weight_block(big, 256, 32, per_channel) == 32  # 2 x 32 channels would be 590 KB
    assert S._weight_block(dataclasses.replace(t, cache_bytes=8 << 20), 256, 32, per_channel) == 128
    assert S._weight_block(small, 512, 32, 4 * 9 * 512) == 32  # never below one register block
    assert S._weight_block(big, 32, 32, per_channel) == 0  # one block is the whole conv
    loops = {e["key"]: e for e in json.loads(dgc.compile(_conv_model(c=64, k=256, hw=4), "x86-64-v4", name="m",
                                                         stop_after="schedule").schedule)["ops"]}
    assert loops["conv"]["outer"][3] == 64  # 1 MB L2: 64 x 2.3 KB = 147 KB, 128 would be 295 KB


def test_fit_prefers_divisors_and_multiples():
    assert S._fit(28, 8) == 7
    assert S._fit(64, 32, 16) == 32
    assert S._fit(12, 16, 16) == 12  # no multiple of 16 divides 12: largest divisor
    assert S._fit(7, 4) == 1


def test_vector_lengths_are_one_register_or_whole_registers():
    assert S._cols(6, 2, 16) == 6  # under one register: as is
    assert S._cols(64, 2, 16) == 32
    assert S._cols(120, 8, 16) == 15  # 7.5 registers: a part register every step
    assert S._cols(120, 8, 8) == 40  # 5 registers: carried as 5 vectors
    assert S._registers(6, 8) == [6, 5, 4, 3, 2, 1] and S._registers(6, 1) == [4, 2, 1]  # no SIMD: as before


def test_rows_are_cut_where_llvm_would_scalarize_them():
    """(offset, size) pieces of a row: whole when it fits a register or is a power of two
    (LLVM splits those into registers itself), else register-wide chunks and the rest."""
    assert S._chunks(24, 8) == [(0, 8), (8, 8), (16, 8)]
    assert S._chunks(20, 8) == [(0, 8), (8, 8), (16, 4)]
    assert S._chunks(6, 4) == [(0, 4), (4, 2)]
    assert S._chunks(6, 8) == [(0, 6)] and S._chunks(16, 8) == [(0, 16)] and S._chunks(24, 0) == [(0, 24)]
    assert S._cols(128, 8, 16) == 128


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_gemv_schedule(target, tmp_path):
    """Batch-1 Gemm: the whole row of outputs (up to 8 registers) accumulates in registers,
    k one at a time; N not a multiple of the vector length still verifies."""
    for n in (128, 120):
        res, _, _ = check_on_target(_matmul_model(m=1, k=64, n=n), target, tmp_path)
        lanes = get_target(target).vector_bits // 32
        s = _ops(res)["mm"]
        assert s["reduce"] == [0, 0, 0, 1] and s["vectorize"]
        assert s["tile"][2] <= lanes or s["tile"][2] % lanes == 0


@pytest.mark.parametrize("target", ["host", "x86-64", "aarch64"])
@pytest.mark.parametrize("m,n,cols", [(1, 120, 24), (1, 120, 40), (1, 120, 120), (3, 40, 20), (2, 48, 12)])
def test_rows_wider_than_a_register_stay_in_registers(target, m, n, cols, tmp_path):
    """An accumulator row of 3, 5, 1.5 ... registers (not a power of two) is carried through
    the k loop as register-wide pieces, not as one vector: LLVM scalarizes such a vector
    across a loop's phi (a 24-float row on AVX2: 24 scalar accumulators, the gemv 2.9x
    slower than 3 registers). Numbers stay onnxruntime's."""
    model = _matmul_model(m=m, k=40, n=n)
    ir_dir = tmp_path / "ir"
    res, _, _ = check_on_target(model, target, tmp_path, schedule=[{"key": "mm", "tile": [1, m, cols, 0]}],
                                dump_ir=str(ir_dir))
    assert _ops(res)["mm"]["tile"][2] == cols and _ops(res)["mm"]["vectorize"]
    lanes = get_target(target).vector_bits // 32
    after = next(ir_dir.glob("*-vectors.mlir")).read_text()
    carried = re.findall(r"iter_args\(.*?\) -> \((.*?)\)", after)
    assert carried
    widths = {int(w) for types in carried for w in re.findall(r"vector<(\d+)xf32>", types)}
    assert widths and max(widths) <= lanes, (widths, lanes)


@pytest.mark.parametrize("target,tile", [("aarch64", [1, 8, 8, 0]), ("host", [1, 16, 16, 0]),
                                         ("aarch64", [1, 4, 4, 0])])
def test_square_register_blocks_verify(target, tile, tmp_path):
    """A square register block (8x8 on NEON, once the default for 16x16) once came out with
    the A column broadcast transposed - wrong numbers, no verifier error."""
    model = _matmul_model(m=16, k=12, n=16)
    res, _, _ = check_on_target(model, target, tmp_path, schedule=[{"key": "mm", "tile": tile}])
    s = _ops(res)["mm"]
    assert s["tile"][1] == s["tile"][2] and s["vectorize"]


@pytest.mark.parametrize("target", ["host", "cortex-a72", "aarch64", "cortex-m7"])
@pytest.mark.parametrize("entry", [None, {"key": "mm", "outer": [0, 0, 32, 0]}, {"key": "mm", "tile": [1, 2, 64, 0]}])
def test_constant_matmul_weights_are_packed_per_register_block(target, entry, tmp_path):
    """A matmul's constant B [K, N] is stored as [N / nb, K, nb] slabs, one per register
    block of nb columns (contiguous, not nb floats every N), on out-of-order cores with
    vectors; the numbers stay onnxruntime's. In-order cores (the generic AArch64, Cortex-M7)
    keep the weights as they are."""
    from dgc.predict import in_order

    model = _matmul_model(m=8, k=40, n=64)
    res, _, _ = check_on_target(model, target, tmp_path, schedule=[entry] if entry else None,
                                emit=("obj", "header", "llvm"))
    nb = _ops(res)["mm"]["tile"][2]
    packed = re.findall(r"@__constant_(\d+)x1x40x(\d+)xf32", res.llvm_ir)
    if in_order(get_target(target)) or nb == 64:
        assert not packed
    else:
        assert packed and {(int(a), int(b)) for a, b in packed} == {(64 // nb, nb)}
        assert not re.search(r"@__constant_40x64xf32 ", res.llvm_ir)  # the unpacked copy is gone


@pytest.mark.parametrize("outer,tile", [([0, 0, 0, 16, 0, 0, 0], None), ([0, 0, 6, 16, 0, 0, 0], [1, 1, 4, 32, 0, 0, 0]),
                                        ([0, 0, 0, 24, 0, 0, 0], None)])
def test_outer_cache_tiles(outer, tile, tmp_path):
    """A cache-level tile (a block of output channels, or of rows) around the register tile:
    same numbers; a register tile larger than its outer tile is bounded by it; an outer
    tile that does not divide its loop runs unvectorized, with a note."""
    model = _conv_model(c=32, k=32, hw=12, residual=True)
    entry = {"key": "conv", "outer": outer, **({"tile": tile} if tile else {})}
    res, _, _ = check_on_target(model, "host", tmp_path, schedule=[entry])
    s = _ops(res)["conv"]
    assert s["outer"] == outer
    assert all(t <= o for t, o in zip(s["tile"], outer) if o)
    assert s["vectorize"] == (32 % outer[3] == 0 and all(o % t == 0 for t, o in zip(s["tile"], outer) if o))
    assert s["vectorize"] or "divide" in s["note"]


@pytest.mark.parametrize("target", ["host", "aarch64", "armv7a"])
@pytest.mark.parametrize("shape,perm", [([1, 32, 12, 16], [0, 2, 3, 1]), ([2, 24, 20], [0, 2, 1]),
                                        ([1, 5, 7, 3], [0, 3, 1, 2]), ([6, 8, 4], [1, 0, 2])])
def test_layout_transposes_in_register_blocks(target, shape, perm, tmp_path):
    """Transposes that move the innermost dim are tiled lanes x lanes (vector.transpose);
    odd sizes take a divisor; a transpose keeping the innermost dim is left alone."""
    out = [shape[p] for p in perm]
    g = helper.make_graph([helper.make_node("Transpose", ["x"], ["y"], name="t", perm=perm)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    res, _, _ = check_on_target(m, target, tmp_path)
    ops = _ops(res)
    moved = perm[-1] != len(shape) - 1
    assert ("t" in ops) == moved
    if moved:
        assert ops["t"]["vectorize"] and ops["t"]["linalg"] == "linalg.transpose"


@pytest.mark.parametrize("target", ["host", "armv7a"])
@pytest.mark.parametrize("make,entry,nest", [
    (lambda: _conv_model(c=32, k=32, hw=12, residual=True),  # output channels outermost
     {"key": "conv", "tile": [1, 1, 4, 8, 0, 0, 0], "order": [0, 3, 1, 2]}, [4, 12, 3]),
    (lambda: _conv_model(c=32, k=32, hw=12, residual=True),  # inside a cache block of 16 channels
     {"key": "conv", "tile": [1, 1, 4, 8, 0, 0, 0], "outer": [0, 0, 0, 16, 0, 0, 0], "order": [3, 2, 1, 0]},
     [2, 2, 3, 12]),
    (lambda: _matmul_model(m=16, k=12, n=32), {"key": "mm", "tile": [1, 4, 8, 0], "order": [2, 1, 0]}, [4, 4]),
])
def test_loop_order(target, make, entry, nest, tmp_path):
    """`order` nests the register tiles' loops outermost first (loops of one trip need none);
    the numbers stay those of onnxruntime."""
    model = make()
    res, _, _ = check_on_target(model, target, tmp_path, schedule=[entry])
    assert _ops(res)[entry["key"]]["order"] == entry["order"]
    dgc.compile(model, target, name="m", schedule=[entry], stop_after="schedule", dump_ir=str(tmp_path / "ir"))
    ir_text = next((tmp_path / "ir").glob("*-schedule.mlir")).read_text()
    trips = [int(n) for n in re.findall(r"scf\.forall \([^)]*\) in \((\d+)\)", ir_text)]
    assert trips[-len(nest):] == nest


def test_conv_relu_fuse_into_one_loop_nest():
    res = dgc.compile(_conv_model(second=True), "host", name="m", stop_after="schedule")
    ops = _ops(res)
    assert ops["conv"]["fuse"] and ops["conv"]["vectorize"]
    assert "relu" not in ops  # the ReLU is the fused consumer, not a separate op


def test_default_schedule_vectorizes_conv_and_matmul_on_host(tmp_path):
    res, _, _ = check_on_target(_conv_model(c=32, residual=True), "host", tmp_path, emit=("obj", "asm"))
    assert re.search(r"vfmadd\d+ps\s+%[xyz]mm", res.asm), "no vector FMA in the host code"
    res, _, _ = check_on_target(_matmul_model(), "host", tmp_path, emit=("obj", "asm"))
    assert _ops(res)["mm"]["vectorize"]


def test_aarch64_uses_neon_fma(tmp_path):
    """Acceptance: the NEON schedule is visible in --emit asm, and the model still verifies."""
    res, _, _ = check_on_target(_conv_model(c=16, k=32), "aarch64", tmp_path, emit=("obj", "asm"))
    assert re.search(r"\bfmla\s+v\d+\.4s", res.asm), "no NEON fmla in the AArch64 code"


@pytest.mark.parametrize("group", [1, 16])
def test_bias_init_stays_in_registers(group, tmp_path):
    """The bias broadcast starts the accumulators in registers: each output tile is written
    once, by the final store (dgc.passes.forward_writes), not stored as bias and reloaded."""
    m = _conv_model(c=16, k=16, group=group, relu=False)
    ir_dir = tmp_path / "ir"
    check_on_target(m, "host", tmp_path, dump_ir=str(ir_dir))
    text = next(ir_dir.glob("*-schedule.mlir")).read_text()
    # the bias (or its slice of a block's channels: 8 of 16 with AVX2) read as a 1-D tensor
    loops = [t for t in text.split("scf.forall (")[1:] if re.search(r": tensor<\d+xf32>, vector<", t)]
    assert len(loops) == 1, "no vectorized bias broadcast in one conv loop nest"
    (bias,) = re.findall(r"(%\w+) = vector\.transfer_read %\w+\[%c0\], .*: tensor<\d+xf32>, vector<", loops[0])
    assert not re.search(rf"vector\.transfer_write {bias},", loops[0])  # it feeds the accumulators


@pytest.mark.parametrize("target", ["cortex-m7", "armv7a"])
def test_32bit_index_targets_verify(target, tmp_path):
    check_on_target(_conv_model(c=4, k=8, hw=8), target, tmp_path)
    check_on_target(_conv_model(c=8, k=8, hw=8, group=8, relu=False), target, tmp_path)


@pytest.mark.parametrize("model", ["pointwise", "strided", "depthwise", "residual", "odd"])
def test_conv_variants_numerics_on_host(model, tmp_path):
    m = {"pointwise": _conv_model(c=16, k=24, ks=1), "strided": _conv_model(stride=2),
         "depthwise": _conv_model(c=16, k=16, group=16), "residual": _conv_model(c=32, k=32, residual=True),
         "odd": _conv_model(c=3, k=12, hw=7)}[model]
    check_on_target(m, "host", tmp_path)


# ---- user schedules ------------------------------------------------------------------

def test_dump_schedule_round_trip_gives_identical_code(tmp_path):
    model = _conv_model(c=32, residual=True)
    first = dgc.compile(model, "host", name="m")
    path = tmp_path / "s.json"
    path.write_text(first.schedule)
    again = dgc.compile(model, "host", name="m", schedule=str(path))
    assert json.loads(again.schedule) == json.loads(first.schedule)
    assert again.object == first.object


def _override(model, **fields):
    key = json.loads(dgc.compile(model, "host", name="m", stop_after="schedule").schedule)["ops"][0]["key"]
    return [{"key": key, **fields}]


@pytest.mark.parametrize("tile", [[1, 1, 100, 500, 0, 0, 0],  # larger than the loops: clamped
                                  [1, 1, 5, 7, 0, 0, 0],  # non-divisors: partial tiles, scalar
                                  [1, 2, 4, 8, 0, 0, 0]])  # oh tile 2: no 1-D decomposition
def test_forced_odd_tiles_are_handled_correctly(tile, tmp_path):
    model = _conv_model()
    res, _, _ = check_on_target(model, "host", tmp_path, schedule=_override(model, tile=tile))
    entry = json.loads(res.schedule)["ops"][0]
    assert entry["tile"] == [min(t, d) for t, d in zip(tile, entry["loops"])]
    if any(t and d % t for t, d in zip(entry["tile"], entry["loops"])) or entry["tile"][1] != 1:
        assert not entry["vectorize"] and entry["note"]


@pytest.mark.parametrize("m,n,tile", [(1, 120, [1, 1, 16, 0]), (6, 40, [1, 4, 16, 0])])
def test_partial_matmul_tiles_with_a_fused_bias_verify(m, n, tile, tmp_path):
    """Tiles that do not divide a matmul with a bias Add after it: scalar loops and the Add
    apart (fused, its per-tile temporary had a dynamic size: 'cannot be planned statically')."""
    res, _, _ = check_on_target(_matmul_model(m=m, k=24, n=n, bias=True), "host", tmp_path,
                                schedule=[{"key": "mm", "tile": tile}])
    entry = _ops(res)["mm"]
    assert not entry["vectorize"] and not entry["fuse"] and "partial tiles" in entry["note"]


@pytest.mark.parametrize("target", ["host", "aarch64", "cortex-m7"])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_channel_multiplier(target, stride, tmp_path):
    """A depthwise conv with channel multiplier 3 (group = C, 3C outputs): with SIMD, the
    input's channels repeated and one vectorized multiplier-1 depthwise conv over 3C channels
    (TOSA's HWCM form ran as scalar loops); without SIMD (Cortex-M7), the HWCM form, which
    needs no copy of the input. Numbers stay onnxruntime's."""
    c, m = 8, 3
    model = _conv_model(c=c, k=c * m, hw=9, group=c, stride=stride)
    res, _, _ = check_on_target(model, target, tmp_path)
    ops = {e["linalg"]: e for e in json.loads(res.schedule)["ops"]}
    if get_target(target).vector_bits >= 64:
        dw = ops["linalg.depthwise_conv_2d_nhwc_hwc"]
        assert dw["loops"][3] == c * m and dw["vectorize"]
    else:
        assert "linalg.depthwise_conv_2d_nhwc_hwc" not in ops


def test_op_type_entry_and_node_entry(tmp_path):
    model = _conv_model(c=32, residual=True)
    res, _, _ = check_on_target(model, "host", tmp_path, schedule=[
        {"op_type": "Conv", "vectorize": False}, {"key": "conv", "fuse": False}])
    e = _ops(res)["conv"]
    assert not e["vectorize"] and not e["fuse"]


@pytest.mark.parametrize("entries, message", [
    ([{"key": "nope", "tile": [1]}], "node 'nope'"),
    ([{"op_type": "Softmax", "vectorize": False}], "op type 'Softmax'"),
    ([{"key": "conv", "tile": [1, 1]}], "list of 7"),
    ([{"key": "conv", "tile": [1, 1, 1, 1, 1, 0, 0]}], "reduction loop"),
    ([{"key": "conv", "reduce": [1, 0, 0, 0, 0, 0, 0]}], "parallel loop"),
    ([{"key": "conv", "vectorize": "yes"}], "true or false"),
    ([{"key": "conv", "order": [0, 1, 2]}], "'order' must list the parallel loops [0, 1, 2, 3]"),
    ([{"key": "conv", "order": [0, 1, 2, 4]}], "'order' must list"),
    ([{"key": "conv", "order": [0, 1, 2, True]}], "'order' must list"),
    ([{"key": "conv", "tiles": [1]}], "unknown field"),
    ([{"vectorize": False}], "neither"),
])
def test_bad_schedules_are_rejected_clearly(entries, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        dgc.compile(_conv_model(), "host", name="m", schedule=entries)


def test_cli_schedule_flags(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(), path)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "dgc", "compile", str(path), "-o", str(tmp_path / "b"), *args],
                              capture_output=True, text=True)

    r = run("--dump-schedule", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    entries = json.loads((tmp_path / "s.json").read_text())["ops"]
    assert entries[0]["key"] == "conv"
    (tmp_path / "bad.json").write_text("{not json")
    r = run("--schedule", tmp_path / "bad.json")
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run("--schedule", tmp_path / "missing.json")
    assert r.returncode == 2 and "cannot read schedule file" in r.stderr
