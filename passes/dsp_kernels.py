"""int8 convolutions on Cortex-M cores with the DSP extension: dual 16-bit MACs (SMLAD).

After bufferization, every int8 x int8 -> int32 convolution with constant weights
(`linalg.conv_2d_nhwc_hwcf`, `linalg.depthwise_conv_2d_nhwc_hwcm` with multiplier 1; the
importer has already folded the input zero point into the bias, so the inner loops see plain
int8 products) becomes a loop nest on 32-bit words, written here as MLIR text:

- conv (the CMSIS-NN scheme): per block of P output pixels, their input windows are first
  expanded to int16 in a small scratch buffer (im2col, K = kh*kw*C values each, padded to a
  multiple of 4): 4 int8 become two words of int16 pairs with SXTB16 and SXTB16 of the word
  rotated by 8 (bytes 0,2 and 1,3), once per pixel and reused by every filter. Then per block
  of F filters one word of 4 int8 weights per filter splits the same way, and 2*P*F SMLAD do
  the 4*P*F MACs of the block; the default 2 pixels x 2 filters: 4 + 2 loads, 4 SXTB16,
  8 SMLAD per 16 MACs. The last pixel block and the last filter block may be partial.
  Windows whose contiguous runs are not a multiple of 4 bytes are expanded byte by byte.
- depthwise: per block of P output pixels (default 1) a group of 4 channels; two window
  positions are paired, so one SMLAD adds both positions' products of one channel: the two
  input words' SXTB16 halves are interleaved with PKHBT/PKHTB (shift/or patterns the backend
  selects); the weights are stored as int16 pairs in that order at compile time (small:
  kh*kw*C) and loaded once for the P pixels. An odd window gets a zero weight for its last
  pair. Channel counts that are not a multiple of 4 finish scalar.

Register blocks: (P, F) per op from `ctx.dsp_blocks` ({ONNX node key: {"pixels": P,
"filters": F}}, absent = the defaults DEFAULT_CONV / DEFAULT_DW; allowed: CONV_BLOCKS,
DW_BLOCKS); a conv may also take "weights": 16 (CONV_CHOICES: (P, F, 16)): its weights are
stored already split as SXTB16 splits them, int16 pairs (w0, w2), (w1, w3) per word of 4,
twice the flash for no SXTB16 in the loop (~8% fewer cycles on DS-CNN/ResNet-8 int8, Cortex-M7);
and "unroll": U (UNROLLS) unrolls the kernel's innermost loop U times (0: LLVM decides).
`describe(module, target)` lists the ops and their choices for a tuner.

Fusion: the accumulators start from the conv's initial value when it is known (a constant
fill, or a bias vector broadcast by a linalg.generic; the schedule stage leaves that generic
unscheduled for us), and the elementwise op consuming the int32 result (the
requantization: multiplier, shift, zero point, clamp) is applied to each accumulator in
registers, its payload inlined, so the int32 accumulator buffer is never written and is
dropped. Without a known init the accumulators are loaded from that buffer; without a
fusible consumer they are stored to it.

The weights are re-laid out at compile time into new constant globals (int8 stays int8 for
the conv: 4 per word). Input words are read with unaligned 32-bit loads, which
ARMv7-M/ARMv8-M allow on normal memory. Intrinsics: llvm.arm.smlad, llvm.arm.sxtb16.
"""

from __future__ import annotations

import numpy as np

from dgc.passes import smlad_asm
from dgc.ir import PassManager, arith_d, attr_array, func_d, ir, ops_named

_CONV = "linalg.conv_2d_nhwc_hwcf"
_DW = "linalg.depthwise_conv_2d_nhwc_hwcm"
NAMES = (_CONV, _DW, "linalg.conv_2d_nhwc_fhwc")
# Register blocks (output pixels P, filters F) the SMLAD kernels accept, per op: a conv computes
# P x F outputs per pass over K; a depthwise conv P pixels x its group of 4 channels per pass
# (the 4 is fixed). The defaults are the first choice of a tuner (see `describe`).
CONV_BLOCKS = tuple((p, f) for p in (1, 2, 4) for f in (1, 2, 3, 4))
# ... each with the weights in flash as int8 (4 per word, split by SXTB16 in the loop) or, a third
# element 16, as the int16 pairs SXTB16 would make (twice the flash, no SXTB16 on weights)
CONV_CHOICES = CONV_BLOCKS + tuple((p, f, 16) for p, f in CONV_BLOCKS)
DW_BLOCKS = ((1, 4), (2, 4), (4, 4))
DEFAULT_CONV = (2, 2)
KERNEL = "i8smlad"  # the kernel family in tuning signatures (schedule.signature)
DEFAULT_DW = (1, 4)
# Unroll count of a kernel's innermost loop (a conv's K loop over words, a depthwise conv's loop
# over groups of 4 channels), as LLVM loop metadata: 0 leaves it to LLVM's unroller (opt -O3
# with dgc's threshold: 4x for DS-CNN's K loops), 1 keeps the loop rolled, U unrolls U times
# (a count at or above the trip count unrolls fully). The best depends on the block (register
# pressure against loop overhead and static addresses) and costs flash: on Cortex-M7, int8
# DS-CNN with the default blocks runs 11% fewer estimated cycles unrolled 16 times than with
# LLVM's choice, 1% more unrolled 8 times, and takes 2.1x the flash (bench/dsp_unroll.py). So
# the default stays LLVM's (small code) and the tuner chooses per op (dgc.tuning.candidates).
UNROLLS = (0, 1, 2, 4, 8, 16)
DEFAULT_UNROLL = 0
_HARMLESS = {"memref.alloc", "memref.expand_shape", "memref.collapse_shape", "memref.subview",
             "memref.get_global", "memref.cast", "arith.constant"}


def eligible(op) -> bool:
    """An int8 x int8 -> int32 convolution this pass rewrites (on tensors or buffers)."""
    if op.name not in NAMES:
        return False
    x, w, acc = (ir.ShapedType(v.type) for v in op.operands[:3])
    i8, i32 = ir.IntegerType.get_signless(8), ir.IntegerType.get_signless(32)
    if x.element_type != i8 or w.element_type != i8 or acc.element_type != i32:
        return False
    if not all(t.has_static_shape for t in (x, w, acc)):
        return False
    dil = [int(d) for d in np.array(ir.DenseElementsAttr(op.attributes["dilations"]))]
    return dil == [1, 1] and (op.name != _DW or w.shape[3] == 1)


def _op(x):
    """The ir.Operation behind an op view, value owner or operation (None for blocks)."""
    x = getattr(x, "operation", x)
    return x if isinstance(x, ir.Operation) else None


def _maps(op) -> list:
    return [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]


def _n_inputs(op) -> int:
    return list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))[0]


def _dim_pos(expr) -> int | None:
    try:
        return ir.AffineDimExpr(expr).position
    except (ValueError, TypeError):
        return None


def _is_epilogue(op, value) -> bool:
    """`op` is an elementwise linalg.generic over `value`'s shape reading `value` once (identity
    map) and writing one other output: the conv's requantization."""
    op = _op(op)
    if op is None or op.name != "linalg.generic" or len(op.operands) - _n_inputs(op) != 1:
        return False
    if any("parallel" not in str(a) for a in op.attributes["iterator_types"]):
        return False
    body = op.regions[0].blocks[0]
    if any(len(o.regions) for o in body.operations):
        return False
    uses = [k for k, v in enumerate(op.operands) if v == value]
    if len(uses) != 1 or uses[0] >= _n_inputs(op):
        return False
    m = _maps(op)[uses[0]]
    return m.n_dims == len(m.results) and [_dim_pos(e) for e in m.results] == list(range(m.n_dims))


def _is_broadcast(op) -> bool:
    """A linalg.generic with one input copied into every element of its output (a bias)."""
    op = _op(op)
    if op is None or op.name != "linalg.generic" or len(op.operands) != 2 or _n_inputs(op) != 1:
        return False
    ops = list(op.regions[0].blocks[0].operations)
    return len(ops) == 1 and ops[0].operands[0] == op.regions[0].blocks[0].arguments[0]


def partners(op) -> list:
    """Tensor level: the ops the dsp stage will fuse into an eligible conv's kernel (its
    requantization consumer and a bias broadcast producing its init). The schedule stage
    leaves them alone so they reach the dsp stage as linalg.generic on buffers."""
    out = []
    users = list(op.results[0].uses)
    if len(users) == 1 and _is_epilogue(users[0].owner, op.results[0]):
        out.append(_op(users[0].owner))
    init = _op(op.operands[2].owner)
    if init is not None and _is_broadcast(init) and len(list(init.results[0].uses)) == 1:
        out.append(init)
    return out


def _strides(t) -> list[int] | None:
    """Static element strides of a memref type, or None when one is dynamic."""
    mt = ir.MemRefType(t)
    strides, _ = mt.get_strides_and_offset()
    return None if any(mt.is_dynamic_stride_or_offset(s) for s in strides) else list(strides)


def _root(value):
    """The buffer a memref value views: through view ops to an alloc, global or argument."""
    op = _op(value.owner)
    while op is not None and op.name in ("memref.subview", "memref.expand_shape", "memref.collapse_shape",
                                         "memref.cast"):
        value = op.operands[0]
        op = _op(value.owner)
    return value


def _constant_global(value):
    """The memref.global (constant) behind a memref.get_global value (through views), or None."""
    op = _op(_root(value).owner)
    if op is None or op.name != "memref.get_global":
        return None
    mod = op
    while mod.parent is not None:
        mod = mod.parent
    g = ir.SymbolTable(mod)[ir.FlatSymbolRefAttr(op.attributes["name"]).value].operation
    return g if "constant" in g.attributes else None


def _global_array(value, ctx):
    """The numpy contents of a constant memref.get_global operand, or None."""
    op = _op(value.owner)
    g = _constant_global(value) if op is not None and op.name == "memref.get_global" else None
    if g is None:
        return None
    a = attr_array(g.attributes["initial_value"], ctx.blobs)
    shape = list(ir.MemRefType(value.type).shape)
    return None if a is None or a.size != int(np.prod(shape)) else a.reshape(shape)


def _uses(op, value) -> bool:
    return any(v == value for v in op.operands)


def _fill_constant(op, buf):
    """The constant an op fills `buf` with (linalg.fill of an arith.constant), or None."""
    if op.name != "linalg.fill" or op.operands[1] != buf:
        return None
    c = _op(op.operands[0].owner)
    return None if c is None or c.name != "arith.constant" else ir.IntegerAttr(c.attributes["value"]).value


class _Fusion:
    """What an eligible conv (on buffers) starts from and what it feeds: found by scanning its
    block. `init`: ("const", int) | ("load", memref, map) | None (read the acc buffer);
    `epi`: the requantization generic applied in registers, or None (write the acc buffer)."""

    def __init__(self, op):
        self.op, self.acc = op, op.operands[2]
        ops = [o.operation for o in op.operation.block.operations]
        i = next(k for k, o in enumerate(ops) if o == op)
        alloc = _op(self.acc.owner)
        fresh = alloc is not None and alloc.name == "memref.alloc"
        self.init = self._init(ops, i) if fresh else None
        self.epi = self._epilogue(ops, i) if fresh else None
        self.acc_k = next(k for k, v in enumerate(self.epi.operands) if v == self.acc) if self.epi else None

    def _init(self, ops, i):
        prev = next((o for o in reversed(ops[:i]) if _uses(o, self.acc)), None)
        if prev is None:
            return None
        c = _fill_constant(prev, self.acc)
        if c is not None:
            return ("const", c)
        if _is_broadcast(prev) and prev.operands[1] == self.acc and _constant_global(prev.operands[0]):
            return ("load", prev.operands[0], _maps(prev)[0])
        if prev.name == "memref.copy" and prev.operands[1] == self.acc:
            src = prev.operands[0]
            j = next(k for k, o in enumerate(ops) if o == prev)
            for o in reversed(ops[:j]):  # copies out of src only read it
                if not _uses(o, src) or (o.name == "memref.copy" and o.operands[0] == src and o.operands[1] != src):
                    continue
                c = _fill_constant(o, src)
                return None if c is None else ("const", c)
        return None

    def _epilogue(self, ops, i):
        x_root = _root(self.op.operands[0])
        for o in ops[i + 1:]:
            if _uses(o, self.acc):
                if not _is_epilogue(o, self.acc):
                    return None
                out = _root(o.operands[len(o.operands) - 1])
                return o if out != x_root and out != self.acc else None
            self_copy = o.name == "memref.copy" and o.operands[0] == o.operands[1]
            if o.name not in _HARMLESS and not self_copy:
                return None  # the kernel moves down to the consumer: nothing may happen between
        return None

    # -- kernel text -------------------------------------------------------------------------
    def args(self) -> list[tuple[str, object]]:
        """Extra kernel arguments: (name, value)."""
        out = [("%bias", self.init[1])] if self.init and self.init[0] == "load" else []
        if self.epi is not None:
            out += [(f"%e{k}", v) for k, v in enumerate(self.epi.operands) if k != self.acc_k]
        return out

    def start(self, t, idx: list[str]) -> str:
        """The initial accumulator of the output at `idx`."""
        if self.init is None:
            return t(f"memref.load %acc[{', '.join(idx)}] : {self.acc.type}")
        if self.init[0] == "const":
            return t.c(self.init[1], "i32")
        return t(f"memref.load %bias[{', '.join(_apply(t, self.init[2], idx))}] : {self.init[1].type}")

    def finish(self, t, value: str, idx: list[str], name: str) -> None:
        """Store the output at `idx`: requantized in registers, or the int32 accumulator."""
        if self.epi is None:
            t.raw(f"memref.store {value}, %acc[{', '.join(idx)}] : {self.acc.type}")
            return
        body = self.epi.regions[0].blocks[0]
        maps, ops = _maps(self.epi), list(self.epi.operands)
        vals, types = [], []
        for k, arg in enumerate(body.arguments):
            types.append(str(arg.type))
            if k == self.acc_k:
                vals.append(value)
            elif not list(arg.uses):
                vals.append(t(f"arith.constant {'0.0' if 'f' in str(arg.type) else '0'} : {arg.type}"))
            else:
                vals.append(t(f"memref.load %e{k}[{', '.join(_apply(t, maps[k], idx))}] : {ops[k].type}"))
        rtype = str(list(body.operations)[-1].operands[0].type)
        sig = ", ".join(types + ["index"] * len(idx))
        r = t(f"func.call @{name}_epi({', '.join(vals + idx)}) : ({sig}) -> {rtype}")
        k = len(ops) - 1
        t.raw(f"memref.store {r}, %e{k}[{', '.join(_apply(t, maps[k], idx))}] : {ops[k].type}")

    def declaration(self, name: str, rank: int, lanes: int = 0) -> str:
        """The payload function's declaration: @<name>_epi(payload args..., indices) on
        scalars, or @<name>_epiv(payload args...) on vector<lanes x T> when `lanes`."""
        if self.epi is None:
            return ""
        body = self.epi.regions[0].blocks[0]
        wrap = (lambda ty: f"vector<{lanes}x{ty}>") if lanes else str  # noqa: E731
        types = [wrap(a.type) for a in body.arguments] + ([] if lanes else ["index"] * rank)
        rtype = wrap(list(body.operations)[-1].operands[0].type)
        return f"  func.func private @{name}_epi{'v' if lanes else ''}({', '.join(types)}) -> {rtype}\n"

    def define(self, fn, lanes: int = 0) -> None:
        """Give the declared payload function (see `declaration`) the epilogue's payload as its
        body: its ops re-created on the function's arguments, on vectors when `lanes`."""
        body = self.epi.regions[0].blocks[0]
        entry = fn.add_entry_block()
        n = len(body.arguments)
        mapping = dict(zip(body.arguments, list(entry.arguments)[:n]))

        def ty(t):
            return ir.VectorType.get([lanes], t) if lanes else t

        def const(c):  # a payload constant; a splat on vectors
            if not lanes:
                return c.clone().results[0]
            rt = ty(c.results[0].type)
            return arith_d.ConstantOp(rt, ir.DenseElementsAttr.get_splat(rt, c.attributes["value"])).result

        def look(v):
            if v in mapping:
                return mapping[v]
            c = _op(v.owner)
            if c is None or c.name != "arith.constant":
                raise _NotFused(f"epilogue reads {v}")
            with ir.InsertionPoint.at_block_begin(entry):
                mapping[v] = const(c)
            return mapping[v]
        with ir.InsertionPoint(entry):
            for o in body.operations:
                o = o.operation
                if o.name == "linalg.yield":
                    func_d.ReturnOp([look(o.operands[0])])
                elif o.name == "linalg.index" and not lanes:
                    mapping[o.results[0]] = entry.arguments[n + ir.IntegerAttr(o.attributes["dim"]).value]
                elif o.name == "arith.constant":
                    mapping[o.results[0]] = const(o)
                elif lanes and (o.name.split(".")[0] != "arith" or len(o.regions)):
                    raise _NotFused(f"epilogue op {o.name}")
                else:
                    attrs = (o.attributes[k] for k in range(len(o.attributes)))
                    new = ir.Operation.create(o.name, results=[ty(r.type) for r in o.results],
                                              operands=[look(v) for v in o.operands],
                                              attributes={a.name: a.attr for a in attrs})
                    mapping.update(zip(o.results, new.results))

    # -- whole vectors of output channels (dot_kernels) -----------------------------------------
    def vector_ok(self) -> bool:
        """Init and epilogue can run on vectors along the channel dim (d3): every operand is
        read either along d3 alone or not at all, and the payload has no linalg.index."""
        def along(m):
            pos = [_dim_pos(e) for e in m.results]
            uses3 = [j for j, e in enumerate(m.results) if "d3" in str(e)]
            return len(uses3) == 0 or (len(uses3) == 1 and pos[uses3[0]] == 3)
        if self.init is None:
            return False
        if self.init[0] == "load" and not along(self.init[2]):
            return False
        if self.epi is None:
            return True
        body = self.epi.regions[0].blocks[0]
        if any(o.name.split(".")[0] not in ("arith", "linalg") or o.name == "linalg.index"
               for o in body.operations):
            return False
        return all(along(m) for k, m in enumerate(_maps(self.epi)) if k != self.acc_k)

    def _read_vec(self, t, mem: str, mtype, m, idx: list[str], lanes: int, etype: str) -> str:
        ind = _apply(t, m, idx)
        pos = [j for j, e in enumerate(m.results) if _dim_pos(e) == 3]
        if not pos:
            s = t(f"memref.load {mem}[{', '.join(ind)}] : {mtype}")
            return t(f"vector.broadcast {s} : {etype} to vector<{lanes}x{etype}>")
        rank = len(ir.MemRefType(mtype).shape)
        dims = ", ".join(f"d{i}" for i in range(rank))
        pad = t(f"arith.constant {'0.0' if 'f' in etype else '0'} : {etype}")
        return t(f"vector.transfer_read {mem}[{', '.join(ind)}], {pad} {{in_bounds = [true], permutation_map = "
                 f"affine_map<({dims}) -> (d{pos[0]})>}} : {mtype}, vector<{lanes}x{etype}>")

    def start_vec(self, t, idx: list[str], lanes: int) -> str:
        if self.init[0] == "const":
            return t(f"arith.constant dense<{self.init[1]}> : vector<{lanes}xi32>")
        return self._read_vec(t, "%bias", self.init[1].type, self.init[2], idx, lanes, "i32")

    def finish_vec(self, t, vec: str, idx: list[str], name: str, lanes: int) -> None:
        if self.epi is None:
            t.raw(f"vector.transfer_write {vec}, %acc[{', '.join(idx)}] {{in_bounds = [true], permutation_map = "
                  f"affine_map<(d0, d1, d2, d3) -> (d3)>}} : vector<{lanes}xi32>, {self.acc.type}")
            return
        body = self.epi.regions[0].blocks[0]
        maps, ops = _maps(self.epi), list(self.epi.operands)
        vals, types = [], []
        for k, arg in enumerate(body.arguments):
            et = str(arg.type)
            types.append(f"vector<{lanes}x{et}>")
            if k == self.acc_k:
                vals.append(vec)
            elif not list(arg.uses):
                vals.append(t(f"arith.constant dense<{'0.0' if 'f' in et else '0'}> : vector<{lanes}x{et}>"))
            else:
                vals.append(self._read_vec(t, f"%e{k}", ops[k].type, maps[k], idx, lanes, et))
        rtype = f"vector<{lanes}x{list(body.operations)[-1].operands[0].type}>"
        r = t(f"func.call @{name}_epiv({', '.join(vals)}) : ({', '.join(types)}) -> {rtype}")
        k = len(ops) - 1
        m = maps[k]
        pos = [j for j, e in enumerate(m.results) if _dim_pos(e) == 3][0]
        dims = ", ".join(f"d{i}" for i in range(len(ir.MemRefType(ops[k].type).shape)))
        t.raw(f"vector.transfer_write {r}, %e{k}[{', '.join(_apply(t, m, idx))}] {{in_bounds = [true], "
              f"permutation_map = affine_map<({dims}) -> (d{pos})>}} : {rtype}, {ops[k].type}")


class _NotFused(Exception):
    pass


def _apply(t, m, idx: list[str]) -> list[str]:
    """Index values of an affine map's results at `idx`."""
    out = []
    dims = ", ".join(f"d{i}" for i in range(m.n_dims))
    for e in m.results:
        pos = _dim_pos(e)
        if pos is not None:
            out.append(idx[pos])
            continue
        try:
            out.append(t.c(ir.AffineConstantExpr(e).value))
        except (ValueError, TypeError):
            out.append(t(f"affine.apply affine_map<({dims}) -> ({e})>({', '.join(idx)})"))
    return out
class _Text:
    """A tiny emitter of MLIR text with fresh SSA names."""

    def __init__(self, iw: str = "i32"):
        self.lines, self.n, self.consts = [], 0, {}
        self.iw = iw  # integer type of a pointer (index width)

    def fresh(self, stem="v") -> str:
        self.n += 1
        return f"%{stem}{self.n}"

    def __call__(self, rhs: str, stem="v") -> str:
        name = self.fresh(stem)
        self.lines.append(f"{name} = {rhs}")
        return name

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def c(self, value: int, ty: str = "index") -> str:
        key = (value, ty)
        if key not in self.consts:
            self.consts[key] = f"%c{'m' if value < 0 else ''}{abs(value)}_{ty}"
        return self.consts[key]

    def const_lines(self) -> list[str]:
        return [f"{n} = arith.constant {v} : {t}" for (v, t), n in self.consts.items()]

    # index arithmetic with constant folding of 0/1
    def add(self, a: str, b: str | int) -> str:
        if isinstance(b, int):
            if b == 0:
                return a
            b = self.c(b)
        return self(f"arith.addi {a}, {b} : index")

    def mul(self, a: str, k: int) -> str:
        if k == 0:
            return self.c(0)
        return a if k == 1 else self(f"arith.muli {a}, {self.c(k)} : index")

    # 32-bit DSP helpers: byte addresses are index values; pointers are made once per base
    def ptr(self, addr: str) -> str:
        a = self(f"arith.index_cast {addr} : index to {self.iw}")
        return self(f"llvm.inttoptr {a} : {self.iw} to !llvm.ptr")

    def gep(self, p: str, off) -> str:
        if isinstance(off, int):
            return p if off == 0 else self(f"llvm.getelementptr inbounds {p}[{off}] : (!llvm.ptr) -> !llvm.ptr, i8")
        o = self(f"arith.index_cast {off} : index to {self.iw}")
        return self(f"llvm.getelementptr inbounds {p}[{o}] : (!llvm.ptr, {self.iw}) -> !llvm.ptr, i8")

    def load32(self, p: str, off=0) -> str:
        return self(f"llvm.load {self.gep(p, off)} {{alignment = 1 : i64}} : !llvm.ptr -> i32")

    def load_vec(self, p: str, vt: str) -> str:
        return self(f"llvm.load {p} {{alignment = 1 : i64}} : !llvm.ptr -> {vt}")

    def load32a(self, p: str, off=0) -> str:
        return self(f"llvm.load {self.gep(p, off)} {{alignment = 4 : i64}} : !llvm.ptr -> i32")

    def load8(self, p: str, off=0) -> str:
        b = self(f"llvm.load {self.gep(p, off)} : !llvm.ptr -> i8")
        return self(f"arith.extsi {b} : i8 to i32")

    def sxtb16(self, w: str) -> str:
        return self(f'llvm.call_intrinsic "llvm.arm.sxtb16"({w}) : (i32) -> i32')

    def ror8(self, w: str) -> str:
        lo = self(f"arith.shrui {w}, {self.c(8, 'i32')} : i32")
        hi = self(f"arith.shli {w}, {self.c(24, 'i32')} : i32")
        return self(f"arith.ori {lo}, {hi} : i32")

    def halves(self, w: str) -> tuple[str, str]:
        """(bytes 0 and 2, bytes 1 and 3) of a word, each sign-extended to int16 pairs."""
        return self.sxtb16(w), self.sxtb16(self.ror8(w))

    def inline_asm(self, text: str, constraints: str, args: list[str], types: list[str], results: list[str]) -> list[str]:
        """An `asm` statement (side effects kept) returning `results` (types): their values."""
        st = f"!llvm.struct<({', '.join(results)})>"
        body = text.replace("\n", "\\0A").replace("\t", "\\09")
        r = self(f'llvm.inline_asm has_side_effects "{body}", "{constraints}" {", ".join(args)} : '
                 f'({", ".join(types)}) -> {st}')
        return [self(f"llvm.extractvalue {r}[{i}] : {st}") for i in range(len(results))]

    def smlad(self, a: str, b: str, acc: str) -> str:
        return self(f'llvm.call_intrinsic "llvm.arm.smlad"({a}, {b}, {acc}) : (i32, i32, i32) -> i32')


def _for(t: _Text, lo, hi, iters: list[str], body, types: list[str] | None = None, unroll: int = 0) -> list[str]:
    """scf.for %i = lo to hi step 1 with iter_args (i32 unless `types`); body(i, args) -> new args.
    `unroll` (see UNROLLS): 0 no loop metadata, 1 unrolling disabled, else that unroll count
    (an `llvm.loop` annotation, which scf-to-cf carries to the loop's back edge)."""
    iv = t.fresh("i")
    args = [t.fresh("a") for _ in iters]
    res = t.fresh("r")
    types = types or ["i32"] * len(iters)
    lo = t.c(lo) if isinstance(lo, int) else lo
    hi = t.c(hi) if isinstance(hi, int) else hi
    if iters:
        inits = ", ".join(f"{a} = {v}" for a, v in zip(args, iters))
        t.raw(f"{res}:{len(iters)} = scf.for {iv} = {lo} to {hi} step {t.c(1)} iter_args({inits}) -> "
              f"({', '.join(types)}) {{")
    else:
        t.raw(f"scf.for {iv} = {lo} to {hi} step {t.c(1)} {{")
    out = body(iv, args)
    t.raw(f"scf.yield {', '.join(out)} : {', '.join(types)}" if out else "scf.yield")
    if unroll:
        how = "disable = true" if unroll == 1 else f"count = {unroll} : i32"
        t.raw(f"}} {{loop_annotation = #llvm.loop_annotation<unroll = #llvm.loop_unroll<{how}>>}}")
    else:
        t.raw("}")
    return [f"{res}#{k}" for k in range(len(iters))]




def _base_address(t: _Text) -> str:
    """The byte address of %x's first element (inside the kernel's loop nest, so the memory
    planner sees the input live for the whole nest)."""
    b, off = t.fresh("xb"), t.fresh("xoff")
    t.raw(f"{b}, {off}, %xsz{t.n}:4, %xst{t.n}:4 = memref.extract_strided_metadata %x : {t.xt} -> "
          "memref<i8>, index, index, index, index, index, index, index, index, index")
    p = t(f"memref.extract_aligned_pointer_as_index {b} : memref<i8> -> index")
    return t(f"arith.addi {p}, {off} : index")


def _window_strides(op) -> tuple[int, int]:
    return tuple(int(v) for v in np.array(ir.DenseElementsAttr(op.attributes["strides"])))


class _ConvGeometry:
    """An int8 NHWC conv with HWCF weights on buffers: shapes, strides and the walk over its
    windows, shared by every conv kernel (here, dot_kernels, mve_kernels). K = kh*kw*C runs
    as `runs` contiguous runs of `run_len` bytes: window rows when the input's W stride is
    C, else one window position's C channels."""

    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion):
        self.op, self.fusion, self.xst = op, fusion, xst
        _, self.ih, self.iw, self.c = ir.MemRefType(op.operands[0].type).shape
        self.kh, self.kw, _, self.f = w.shape
        self.n, self.oh, self.ow, _ = ir.MemRefType(op.operands[2].type).shape
        self.sh, self.sw = _window_strides(op)
        self.k = self.kh * self.kw * self.c
        if xst[3] == 1 and xst[2] == self.c:
            self.runs, self.run_len = self.kh, self.kw * self.c  # contiguous window rows
        else:
            self.runs, self.run_len = self.kh * self.kw, self.c  # one window position each

    def offset(self, k: int) -> int:
        """Byte offset of window element k (static) from the window's first byte."""
        kh, rest = divmod(k, self.kw * self.c)
        kw, c = divmod(rest, self.c)
        return kh * self.xst[1] + kw * self.xst[2] + c * self.xst[3]

    def offset_at(self, t: _Text, k: str) -> str:
        """The same for an index value k (decoded at run time)."""
        kh = t(f"arith.divui {k}, {t.c(self.kw * self.c)} : index")
        rest = t(f"arith.remui {k}, {t.c(self.kw * self.c)} : index")
        kw = t(f"arith.divui {rest}, {t.c(self.c)} : index")
        c = t(f"arith.remui {rest}, {t.c(self.c)} : index")
        off = t(f"arith.addi {t.mul(kh, self.xst[1])}, {t.mul(kw, self.xst[2])} : index")
        return t(f"arith.addi {off}, {t.mul(c, self.xst[3])} : index")

    def run_offset(self, t: _Text, r: str) -> str:
        """Byte offset of run r (an index value) from the window's first byte."""
        if self.runs == self.kh:
            return t.mul(r, self.xst[1])
        kh = t(f"arith.divui {r}, {t.c(self.kw)} : index")
        kw = t(f"arith.remui {r}, {t.c(self.kw)} : index")
        return t(f"arith.addi {t.mul(kh, self.xst[1])}, {t.mul(kw, self.xst[2])} : index")

    def im2col(self, t: _Text, px: str, dst: str, chunk: int, et: str = "i8", pad_to: int = 0) -> None:
        """Window at byte address `px` -> its K values in order at pointer `dst`, int8 or
        sign-extended to `et`, then zeros up to `pad_to` values: `chunk` bytes per vector copy
        when the runs are contiguous multiples of it, else byte by byte (unrolled up to 256)."""
        size = 1 if et == "i8" else 2
        if self.xst[3] == 1 and self.run_len % chunk == 0:
            def run_body(r, _):
                src = t.ptr(t(f"arith.addi {px}, {self.run_offset(t, r)} : index"))
                d = t.gep(dst, t.mul(r, self.run_len * size))

                def cbody(j, _):
                    v = t.load_vec(t.gep(src, t.mul(j, chunk)), f"vector<{chunk}xi8>")
                    if size == 2:
                        v = t(f"arith.extsi {v} : vector<{chunk}xi8> to vector<{chunk}xi16>")
                    t.raw(f"llvm.store {v}, {t.gep(d, t.mul(j, chunk * size))} {{alignment = 1 : i64}} : "
                          f"vector<{chunk}x{et}>, !llvm.ptr")
                    return []
                _for(t, 0, self.run_len // chunk, [], cbody)
                return []
            _for(t, 0, self.runs, [], run_body)
        else:
            p = t.ptr(px)

            def copy(off, k):  # one value: window byte at `off` to position k
                b = t(f"llvm.load {t.gep(p, off)} : !llvm.ptr -> i8")
                if size == 2:
                    b = t(f"arith.extsi {b} : i8 to i16")
                t.raw(f"llvm.store {b}, {t.gep(dst, k if isinstance(k, int) else t.mul(k, size))} : "
                      f"{et}, !llvm.ptr")
            if self.k <= 256:
                for k in range(self.k):
                    copy(self.offset(k), size * k)
            else:
                def kbody(k, _):
                    copy(self.offset_at(t, k), k)
                    return []
                _for(t, 0, self.k, [], kbody)
        for k in range(self.k, pad_to):
            t.raw(f"llvm.store {t.c(0, et)}, {t.gep(dst, size * k)} : {et}, !llvm.ptr")

    def pixel_blocks(self, t: _Text, size: int, block) -> None:
        """The loop nest over output pixels: per image n, blocks of `size` pixels (then one
        shorter block for the rest): block(n, [(window byte address, oh, ow), ...])."""
        pixels = self.oh * self.ow

        def pixel(x0, n, p):
            oh = t(f"arith.divui {p}, {t.c(self.ow)} : index")
            ow = t(f"arith.remui {p}, {t.c(self.ow)} : index")
            a = t.add(x0, t.mul(n, self.xst[0]))
            a = t.add(a, t.mul(oh, self.sh * self.xst[1]))
            return t.add(a, t.mul(ow, self.sw * self.xst[2])), oh, ow

        def nbody(n, _):
            x0 = _base_address(t)

            def pblock(pb, _):
                p0 = t.mul(pb, size)
                block(n, [pixel(x0, n, t.add(p0, i)) for i in range(size)])
                return []
            if pixels // size:
                _for(t, 0, pixels // size, [], pblock)
            if pixels % size:
                p0 = pixels // size * size
                block(n, [pixel(x0, n, t.c(p0 + i)) for i in range(pixels % size)])
            return []
        _for(t, 0, self.n, [], nbody)


class _DepthwiseGeometry:
    """An int8 depthwise_conv_2d_nhwc_hwcm (multiplier 1) on buffers: shapes, strides and the
    loop nest over its output pixels, shared by the depthwise kernels."""

    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion):
        self.op, self.fusion, self.xst = op, fusion, xst
        self.kh, self.kw, self.c, _ = w.shape
        self.n, self.oh, self.ow, _, _ = ir.MemRefType(op.operands[2].type).shape
        self.sh, self.sw = _window_strides(op)
        self.k = self.kh * self.kw

    def pixels(self, t: _Text, pixel) -> None:
        """pixel(n, oh, ow, byte address of the window) for every output pixel."""
        def nbody(n, _):
            x0 = _base_address(t)

            def hbody(oh, _):
                def wbody(ow, _):
                    base = t.add(x0, t.mul(n, self.xst[0]))
                    base = t.add(base, t.mul(oh, self.sh * self.xst[1]))
                    pixel(n, oh, ow, t.add(base, t.mul(ow, self.sw * self.xst[2])))
                    return []
                _for(t, 0, self.ow, [], wbody)
                return []
            _for(t, 0, self.oh, [], hbody)
            return []
        _for(t, 0, self.n, [], nbody)

    pixel_blocks = _ConvGeometry.pixel_blocks  # blocks of pixels along oh*ow (the same fields)


class _Conv(_ConvGeometry):
    """conv_2d_nhwc_hwcf, int8: im2col of P pixels to int16, then P x F (pixels x filters)
    SMLAD blocks over K; `block` = (P, F), default (2, 2) (see CONV_BLOCKS)."""

    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion, block=DEFAULT_CONV,
                 unroll: int = DEFAULT_UNROLL):
        super().__init__(op, w, xst, fusion)
        self.unroll = unroll
        self.bp, self.bf = block[:2]
        self.w16 = len(block) > 2 and block[2] == 16  # weights stored as int16 pairs (no SXTB16)
        self.kp = -(-self.k // 4) * 4  # K padded: whole words
        self.scratch = self.bp * self.kp // 2  # words: kp/2 per pixel
        self.by_words = xst[3] == 1 and self.run_len % 4 == 0
        wk = np.zeros((self.f, self.kp), np.int8)
        wk[:, :self.k] = w.reshape(self.k, self.f).T
        self.packed = self._pack(wk)
        self.globals = {"wg": self.packed}

    def _pack(self, wk: np.ndarray) -> np.ndarray:
        """Per block of F filters (f % F for a partial last): word j of each filter in turn, 4 int8."""
        words = np.ascontiguousarray(wk).view(np.int32)  # [f, kp/4]
        if self.w16:  # each word as its two SXTB16 halves: (w0, w2), (w1, w3) int16 pairs
            v = wk.astype(np.int32).reshape(self.f, -1, 4)
            even = (v[..., 0] & 0xFFFF) | (v[..., 2] << 16)
            odd = (v[..., 1] & 0xFFFF) | (v[..., 3] << 16)
            words = np.stack([even, odd], axis=-1).reshape(self.f, -1).astype(np.int32)
            out = [words[f0:f0 + self.bf].reshape(min(self.bf, self.f - f0), -1, 2).transpose(1, 0, 2).reshape(-1)
                   for f0 in range(0, self.f, self.bf)]
            return np.concatenate(out).astype(np.int32)
        out = [words[f0:f0 + self.bf].T.reshape(-1) for f0 in range(0, self.f, self.bf)]
        return np.concatenate(out).astype(np.int32)

    def expand(self, t: _Text, px: str, s0: int) -> None:
        """Pixel window at byte address `px` -> int16 pairs in scratch words s0 .. s0 + kp/2."""
        st = f"memref<{self.scratch}xi32>"

        def put(word_index, v):
            t.raw(f"memref.store {v}, %s[{word_index}] : {st}")
        if self.by_words:
            per_run = self.run_len // 4

            def run_body(r, _):
                p = t.ptr(t(f"arith.addi {px}, {self.run_offset(t, r)} : index"))
                dst = t.add(t.mul(r, 2 * per_run), s0)

                def word_body(j, _):
                    e, o = t.halves(t.load32(p, t.mul(j, 4)))
                    d = t.add(dst, t.mul(j, 2)) if per_run > 1 else dst
                    put(d, e)
                    put(t.add(d, 1), o)
                    return []
                if per_run > 1:
                    _for(t, 0, per_run, [], word_body)
                else:
                    word_body(t.c(0), [])
                return []
            if self.runs > 1:
                _for(t, 0, self.runs, [], run_body)
            else:
                run_body(t.c(0), [])
            return
        p = t.ptr(px)
        lo16 = t.c(0xFFFF, "i32")
        sixteen = t.c(16, "i32")

        def pack(a, b):  # PKHBT: a.lo | b << 16
            return t(f"arith.ori {t(f'arith.andi {a}, {lo16} : i32')}, {t(f'arith.shli {b}, {sixteen} : i32')} : i32")

        def group(vals, word):  # 4 sign-extended values -> words (v0, v2), (v1, v3)
            put(word, pack(vals[0], vals[2]))
            put(t.add(word, 1), pack(vals[1], vals[3]))
        if self.k <= 256:  # fully unrolled: every offset static
            for g in range(self.kp // 4):
                vals = [t.load8(p, self.offset(k)) if k < self.k else t.c(0, "i32")
                        for k in range(4 * g, 4 * g + 4)]
                group(vals, t.c(s0 + 2 * g))
            return

        def gbody(g, _):
            vals = []
            for i in range(4):
                vals.append(t.load8(p, self.offset_at(t, t.add(t.mul(g, 4), i))))
            group(vals, t.add(t.mul(g, 2), s0))
            return []
        _for(t, 0, self.k // 4, [], gbody)
        if self.k % 4:
            g = self.k // 4
            group([t.load8(p, self.offset(k)) if k < self.k else t.c(0, "i32") for k in range(4 * g, 4 * g + 4)],
                  t.c(s0 + 2 * g))

    def block(self, t: _Text, n: str, pix: list, f: str, fb: int, wbase: str, name: str) -> None:
        """Outputs of len(pix) pixels x fb filters from filter f: K loop, then the epilogue."""
        words = self.kp // 4
        idxs = [[n, oh, ow, t.add(f, k)] for (oh, ow) in pix for k in range(fb)]
        accs = [self.fusion.start(t, idx) for idx in idxs]
        st = f"memref<{self.scratch}xi32>"

        nacc = len(accs)
        pw = t.gep(t.ptr(t(f"memref.extract_aligned_pointer_as_index %wg : {self.wtype} -> index")),
                   t(f"arith.muli {wbase}, {t.c(8 if self.w16 else 4)} : index"))
        ps = t.ptr(t(f"memref.extract_aligned_pointer_as_index %s : {st} -> index"))

        def kbody(j, a):  # pointers carried: one add each per step, no index arithmetic
            a, wp, sp = list(a[:nacc]), a[nacc], a[nacc + 1]
            ws = [(t.load32a(wp, 8 * k), t.load32a(wp, 8 * k + 4)) if self.w16 else t.halves(t.load32a(wp, 4 * k))
                  for k in range(fb)]
            for i in range(len(pix)):
                xe = t.load32a(sp, i * 2 * self.kp)
                xo = t.load32a(sp, i * 2 * self.kp + 4)
                for k, (we, wo) in enumerate(ws):
                    a[i * fb + k] = t.smlad(xo, wo, t.smlad(xe, we, a[i * fb + k]))
            return a + [t.gep(wp, (8 if self.w16 else 4) * fb), t.gep(sp, 8)]
        asm = smlad_asm.kernel(len(pix), fb, words, self.kp, self.w16, self.unroll)  # None: LLVM's loop
        if asm is not None:
            res = self._asm(t, asm, accs, pw, ps)
        else:
            res = _for(t, 0, words, accs + [pw, ps], kbody, ["i32"] * nacc + ["!llvm.ptr"] * 2, self.unroll)[:nacc]
        for idx, v in zip(idxs, res):
            self.fusion.finish(t, v, idx, name)

    @staticmethod
    def _asm(t: _Text, asm, accs: list[str], pw: str, ps: str) -> list[str]:
        """The K loop as smlad_asm's hand-scheduled asm statement: the accumulators out."""
        text, cons, temps, span = asm
        args, types = accs + [pw, ps], ["i32"] * len(accs) + ["!llvm.ptr"] * 2
        if span:
            args.append(t.gep(ps, span))
            types.append("!llvm.ptr")
        return t.inline_asm(text, cons, args, types, ["i32"] * len(accs) + ["!llvm.ptr"] * 2 + ["i32"] * temps)[:len(accs)]

    def body(self, t: _Text, name: str) -> None:
        nfull_f = self.f // self.bf
        wstride = self.bf * (self.kp // 4)  # words per full filter block

        def filters(n, pix):
            def fbody(fp, _):
                self.block(t, n, pix, t.mul(fp, self.bf), self.bf, t.mul(fp, wstride), name)
                return []
            if nfull_f:
                _for(t, 0, nfull_f, [], fbody)
            if self.f % self.bf:
                f0 = nfull_f * self.bf
                self.block(t, n, pix, t.c(f0), self.f % self.bf, t.c(nfull_f * wstride), name)

        def pixels(n, pix):  # every window expanded, then every filter block
            for i, (a, _, _) in enumerate(pix):
                self.expand(t, a, i * self.kp // 2)
            filters(n, [(oh, ow) for _, oh, ow in pix])
        t.raw(f"%s = memref.alloc() {{alignment = 16 : i64}} : memref<{self.scratch}xi32>")
        self.pixel_blocks(t, self.bp, pixels)


class _Depthwise(_DepthwiseGeometry):
    """depthwise_conv_2d_nhwc_hwcm (multiplier 1), int8: 4 channels x 2 window positions per
    step, paired with PKHBT/PKHTB, 4 SMLAD per pixel; `block` = (P, 4): P output pixels share
    each weight load (default 1, see DW_BLOCKS)."""

    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion, block=DEFAULT_DW,
                 unroll: int = DEFAULT_UNROLL):
        super().__init__(op, w, xst, fusion)
        self.unroll = unroll
        self.bp = block[0]
        self.pairs = (self.k + 1) // 2
        self.groups, self.rest = divmod(self.c, 4)
        self.packed = self._pack(w[..., 0].reshape(self.k, self.c))
        self.globals = {"wg": self.packed}

    def _pack(self, w: np.ndarray) -> np.ndarray:
        """Per channel group g, per position pair q: 4 words of int16 pairs (w[k1], w[k2]) for
        channels c0, c2, c1, c3 (SXTB16 order); then the rest channels' weights per position."""
        wk = np.concatenate([w, np.zeros((self.pairs * 2 - self.k, self.c), w.dtype)]).astype(np.int32)
        out = []
        for g in range(self.groups):
            for q in range(self.pairs):
                for c in (0, 2, 1, 3):
                    ch = 4 * g + c
                    out.append((wk[2 * q, ch] & 0xFFFF) | ((wk[2 * q + 1, ch] & 0xFFFF) << 16))
        packed = np.array(out, np.uint32).view(np.int32) if out else np.zeros(0, np.int32)
        rest = w[:, self.groups * 4:].T.astype(np.int32).reshape(-1)  # [rest channel][k]
        return np.concatenate([packed, rest]).astype(np.int32)

    def body(self, t: _Text, name: str) -> None:
        kpos = [(k // self.kw, k % self.kw) for k in range(self.k)]
        kpos += [kpos[-1]] * (self.pairs * 2 - self.k)  # the zero-weight partner reads a valid word
        offs = [kh * self.xst[1] + kw * self.xst[2] for kh, kw in kpos]
        lo16, hi16 = t.c(0xFFFF, "i32"), t.c(-65536, "i32")
        sixteen = t.c(16, "i32")
        zero = t.c(0)

        def block(n, pix):  # pix: [(oh, ow, window byte address)]; one weight load for them all
            def gbody(g, _):
                ch = t.mul(g, 4)
                pxs = [t.ptr(t(f"arith.addi {base}, {ch} : index")) for _, _, base in pix]
                idxs = [[[n, oh, ow, t.add(ch, c), zero] for c in (0, 2, 1, 3)] for oh, ow, _ in pix]
                accs = [[self.fusion.start(t, idx) for idx in pidx] for pidx in idxs]
                wbase = t.mul(g, self.pairs * 4)
                asm = smlad_asm.dw_kernel(offs) if len(pix) == 1 else None  # None: LLVM's steps
                if asm is not None:
                    pw = t.gep(t.ptr(t(f"memref.extract_aligned_pointer_as_index %wg : {self.wtype} -> index")),
                               t.mul(wbase, 4))
                    text, cons, temps = asm
                    accs = [t.inline_asm(text, cons, accs[0] + [pxs[0], pw], ["i32"] * 4 + ["!llvm.ptr"] * 2,
                                         ["i32"] * (4 + temps))[:4]]
                for q in range(self.pairs if asm is None else 0):
                    pairs = []  # per pixel: c0, c2, c1, c3
                    for px in pxs:
                        (ae, ao), (be, bo) = (t.halves(t.load32(px, offs[2 * q + s])) for s in (0, 1))
                        pp = []
                        for a, b in ((ae, be), (ao, bo)):
                            lo = t(f"arith.andi {a}, {lo16} : i32")  # PKHBT: a.lo | b.lo << 16
                            sh = t(f"arith.shli {b}, {sixteen} : i32")
                            hi = t(f"arith.andi {b}, {hi16} : i32")  # PKHTB: b.hi << 16 | a.hi
                            sr = t(f"arith.shrui {a}, {sixteen} : i32")
                            pp += [t(f"arith.ori {lo}, {sh} : i32"), t(f"arith.ori {hi}, {sr} : i32")]
                        pairs.append(pp)
                    for i in range(4):
                        wv = t(f"memref.load %wg[{t.add(wbase, q * 4 + i)}] : {self.wtype}")
                        for j in range(len(pix)):
                            accs[j][i] = t.smlad(pairs[j][i], wv, accs[j][i])
                for pidx, pacc in zip(idxs, accs):
                    for idx, v in zip(pidx, pacc):
                        self.fusion.finish(t, v, idx, name)
                return []
            if self.groups:
                _for(t, 0, self.groups, [], gbody, unroll=self.unroll)
            for oh, ow, base in pix:
                bp = t.ptr(base) if self.rest else None
                for r in range(self.rest):
                    ch = self.groups * 4 + r
                    idx = [n, oh, ow, t.c(ch), zero]
                    a = self.fusion.start(t, idx)
                    for k in range(self.k):
                        xv = t.load8(bp, ch + offs[k])
                        wv = t(f"memref.load %wg[{t.c(self.groups * self.pairs * 4 + r * self.k + k)}] : "
                               f"{self.wtype}")
                        a = t(f"arith.addi {a}, {t(f'arith.muli {xv}, {wv} : i32')} : i32")
                    self.fusion.finish(t, a, idx, name)

        if self.bp == 1:
            self.pixels(t, lambda n, oh, ow, base: block(n, [(oh, ow, base)]))
        else:
            self.pixel_blocks(t, self.bp, lambda n, pix: block(n, [(oh, ow, a) for a, oh, ow in pix]))


def _kernel_text(k, name: str, iw: str) -> str:
    t = _Text(iw)
    t.xt = str(k.op.operands[0].type)
    types = {g: f"memref<{len(a)}xi32>" for g, a in k.globals.items()}
    k.wtype, k.ctype = types["wg"], types.get("comp")
    for g, ty in types.items():
        t.raw(f"%{g} = memref.get_global @{name}_{g} : {ty}")
    k.body(t, name)
    body = "\n    ".join(t.const_lines() + t.lines)
    args = [("%x", k.op.operands[0]), ("%acc", k.op.operands[2])] + k.fusion.args()
    sig = ", ".join(f"{a}: {v.type}" for a, v in args)
    rank = len(ir.MemRefType(k.op.operands[2].type).shape)
    decls = k.fusion.declaration(name, rank)
    if getattr(k, "vector", False):
        decls += k.fusion.declaration(name, rank, k.lanes)
    globs = "".join(f'  memref.global "private" constant @{name}_{g} : {ty} = dense<0> {{alignment = 16 : i64}}\n'
                    for g, ty in types.items())  # contents: set in _rewrite
    return (f"module {{\n{globs}{decls}"
            f"  func.func @{name}({sig}) {{\n    {body}\n    return\n  }}\n}}")


def handles(op, target) -> bool:
    """This stage rewrites `op` on `target` (the schedule stage leaves it alone)."""
    if target.dsp:
        return eligible(op)
    return bool(target.int8_dot) and op.name != _DW and eligible(op)


def _rewrite(op, ctx, module, made: int, block=None, unroll: int = DEFAULT_UNROLL) -> bool:
    w = _global_array(op.operands[1], ctx)
    xst = _strides(op.operands[0].type)
    if w is None or xst is None:
        return False
    fusion = _Fusion(op)
    if ctx.target.mve:
        from dgc.passes.mve_kernels import MveConv, MveDepthwise

        kern = (MveConv if op.name == _CONV else MveDepthwise)(op, w, xst, fusion)
    elif ctx.target.dsp:
        kern = (_Conv if op.name == _CONV else _Depthwise)(op, w, xst, fusion,
                                                           block or (DEFAULT_CONV if op.name == _CONV else DEFAULT_DW),
                                                           unroll)
    else:
        from dgc.passes.dot_kernels import DotConv

        kern = DotConv(op, w, xst, fusion, ctx.target, block)
    name = f"dgc_dsp_{op.name.split('.')[-1]}_{made}"
    while any(f"{name}_{g}" in ctx.blobs for g in kern.globals):
        name += "_"
    text = _kernel_text(kern, name, "i64" if ctx.target.index_bits == 64 else "i32")
    try:
        kmod = ir.Module.parse(text, module.context)
    except ir.MLIRError as err:  # a bug here: report the generated text's first error
        raise RuntimeError(f"dsp kernel {name} does not parse: {err}") from None
    table = ir.SymbolTable(kmod.operation)
    if fusion.epi is not None:
        try:
            fusion.define(table[name + "_epi"])
            if getattr(kern, "vector", False):
                fusion.define(table[name + "_epiv"], kern.lanes)
        except _NotFused:
            return False
        PassManager.parse("builtin.module(inline)").run(kmod.operation)  # drops the _epi funcs
        table = ir.SymbolTable(kmod.operation)
    i32 = ir.IntegerType.get_signless(32)
    for g, arr in kern.globals.items():
        ctx.blobs[f"{name}_{g}"] = arr
        gop = table[f"{name}_{g}"].operation
        gop.attributes["initial_value"] = ir.DenseResourceElementsAttr.get_from_buffer(
            memoryview(arr), f"{name}_{g}", ir.RankedTensorType.get([len(arr)], i32), alignment=16)
        gop.move_before(module.body.operations[0])
    at = fusion.epi if fusion.epi is not None else op  # below the consumer's operands
    block = table[name].regions[0].blocks[0]  # the kernel's body replaces the ops (inlined by hand)
    vals = [op.operands[0], op.operands[2]] + [v for _, v in fusion.args()]
    for arg, val in zip(block.arguments, vals):
        arg.replace_all_uses_with(val)
    for inner in list(block.operations)[:-1]:  # all but func.return
        inner.operation.move_before(at)
    op.erase()
    if fusion.epi is not None:
        fusion.epi.erase()
    return True


def _only_writes(op, buf) -> bool:
    """`op` only stores into `buf` (or frees it): nothing reads what it holds."""
    if op.name == "memref.dealloc":
        return True
    if op.name == "linalg.fill":
        return op.operands[1] == buf
    if op.name == "memref.copy":
        return op.operands[1] == buf and op.operands[0] != buf
    if op.name == "linalg.generic":
        n = _n_inputs(op)
        outs = list(op.operands)[n:]
        body = op.regions[0].blocks[0]
        return outs == [buf] and not any(v == buf for v in list(op.operands)[:n]) and \
            not list(body.arguments[n].uses)
    return False


def _drop_dead_buffers(module) -> None:
    """Allocations nobody reads any more (the fused convs' int32 accumulators, the buffers
    their initial values were copied from): their writers and themselves go."""
    changed = True
    while changed:
        changed = False
        for alloc in ops_named(module.operation, ("memref.alloc",)):
            buf = alloc.results[0]
            users = [_op(u.owner) for u in buf.uses]
            if all(_only_writes(u, buf) for u in users):
                for u in users:
                    u.erase()
                alloc.erase()
                changed = True


# ---- per-op register blocks: keys, the tuner's view, overrides ------------------------------

def blocks_tunable(target) -> bool:
    """The target's int8 convs run kernels here whose register block `ctx.dsp_blocks` sets: the
    SMLAD kernels (DSP cores without Helium) and the dot-product kernels (`dot_kernels`: SDOT,
    VPDPBUSD, VPMADDWD; convs only, no unroll choice). The MVE kernels have no such choice."""
    return bool(target.dsp) and not target.mve or bool(target.int8_dot) and not target.dsp


def _choices(op, target, distinct: bool = True) -> tuple[tuple, tuple, str, tuple]:
    """(default block, allowed blocks, kernel family, allowed unroll counts) of `op`; with
    `distinct`, of the dot-product kernels' blocks only those that compute differently."""
    if not target.dsp:
        from dgc.passes import dot_kernels

        loops = _loops(op)[0]
        shape = (loops[3], loops[1] * loops[2], loops[4] * loops[5] * loops[6])  # filters, pixels, depth
        space = dot_kernels.blocks(target, *shape) if distinct else dot_kernels.blocks(target)
        return dot_kernels.default_block(target, *shape), space, f"i8{target.int8_dot}", (DEFAULT_UNROLL,)
    if op.name == _DW:
        return DEFAULT_DW, DW_BLOCKS, KERNEL, UNROLLS
    return DEFAULT_CONV, CONV_CHOICES, KERNEL, UNROLLS


def _rewritten(module, target) -> list[tuple[object, str]]:
    """(op, key) of every op this stage rewrites, in IR order. The key is the op's ONNX node
    name (its location, dgc.passes.schedule's `_node_of`), + '#k' for the k-th further op of
    one node; the same on tensors (before the schedule stage too) and on buffers."""
    from dgc.passes.schedule import _node_of

    out, seen = [], {}
    for op in ops_named(module.operation, NAMES):
        if not handles(op, target):
            continue
        node = _node_of(op)
        k = seen.get(node, 0)
        seen[node] = k + 1
        out.append((op, node if k == 0 else f"{node}#{k}"))
    return out


def _loops(op) -> tuple[list[int], str]:
    """Static loop ranges and kinds, as dgc.passes.schedule.loop_ranges gives them: a conv
    (n, oh, ow, f, kh, kw, c) 'pppprrr', a depthwise conv (n, oh, ow, c, kh, kw) 'pppprr'."""
    w = list(ir.ShapedType(op.operands[1].type).shape)
    n, oh, ow = list(ir.ShapedType(op.operands[2].type).shape)[:3]
    if op.name == _DW:
        kh, kw, c, _ = w
        return [n, oh, ow, c, kh, kw], "pppprr"
    kh, kw, c, f = w if op.name == _CONV else (w[1], w[2], w[3], w[0])  # hwcf | fhwc
    return [n, oh, ow, f, kh, kw, c], "pppprrr"


def describe(module, target) -> list[dict]:
    """The ops whose register block a tuner may choose (see `blocks_tunable`; [] elsewhere),
    on linalg ops on tensors or buffers: per op {"key": ONNX node (the key of
    ctx.dsp_blocks), "linalg": op name (conv_2d_nhwc_hwcf for both conv layouts), "loops",
    "kinds" (as schedule.loop_ranges), "fuse" (requantization or bias fused), "signature" (schedule.signature: what makes two ops
    one tuning problem), "block": the default [P, F], "space": every allowed [P, F] (default
    first), "unroll": the default unroll count, "unrolls": every allowed one (UNROLLS, default
    first)}. An op whose weights turn out not constant keeps its linalg loops whatever its block."""
    from dgc.passes.schedule import entry_signature, window_of

    if not blocks_tunable(target):
        return []
    out = []
    for op, key in _rewritten(module, target):
        linalg = _DW if op.name == _DW else _CONV
        loops, kinds = _loops(op)
        default, space, kernel, unrolls = _choices(op, target)
        fused = bool(partners(op)) if op.results else _fused_on_buffers(op)
        entry = {"key": key, "linalg": linalg, "loops": loops, "kinds": kinds, "fuse": fused, "kernel": kernel}
        if window := window_of(op):
            entry["window"] = window
        out.append({**entry, "signature": entry_signature(entry), "block": list(default),
                    "space": [list(default)] + [list(b) for b in space if b != default],
                    "unroll": DEFAULT_UNROLL, "unrolls": [DEFAULT_UNROLL] + [u for u in unrolls if u != DEFAULT_UNROLL]})
    return out


def _fused_on_buffers(op) -> bool:
    f = _Fusion(op)
    return f.epi is not None or f.init is not None


def _block_for(op, key: str, blocks: dict, target) -> tuple[tuple, int]:
    """The (P, F) or (P, F, 16) block of `op` and its unroll count from ctx.dsp_blocks
    (UsageError when not allowed)."""
    from dgc.errors import UsageError

    dw = op.name == _DW
    default, space, _, unrolls = _choices(op, target, distinct=False)
    entry = blocks.get(key)
    if entry is None:
        return default, DEFAULT_UNROLL
    if not isinstance(entry, dict) or set(entry) - {"pixels", "filters", "weights", "unroll"}:
        raise UsageError(f"dsp block for node '{key}' must be {{\"pixels\": P, \"filters\": F[, \"weights\": 8|16]"
                         f"[, \"unroll\": U]}}, got {entry!r}")
    unroll = entry.get("unroll", DEFAULT_UNROLL)
    if unroll not in unrolls or isinstance(unroll, bool):
        raise UsageError(f"dsp unroll {unroll!r} is not allowed for node '{key}'",
                         hint="allowed: " + ", ".join(map(str, unrolls)) + " (0: LLVM decides, 1: not unrolled)")
    block = (entry.get("pixels", default[0]), entry.get("filters", default[1]))
    if entry.get("weights", 8) != 8:
        block = (*block, entry["weights"])
    if block not in space:
        raise UsageError(f"dsp block {list(block)} (pixels, filters[, weight bits]) is not allowed for node '{key}' "
                         f"({'depthwise conv' if dw else 'conv'})", hint="allowed: " +
                         ", ".join(str(list(b)) for b in space))
    return block, unroll


def run(module, ctx) -> None:
    """Rewrite every eligible int8 conv. `ctx.dsp_blocks` (optional): {ONNX node key (see
    `describe`): {"pixels": P, "filters": F[, "weights": 16][, "unroll": U]}} overrides the
    default register block (and for convs the int8 weights in flash: "weights": 16 stores int16
    pairs; the innermost loop's unroll count) per op on the targets where it applies
    (`blocks_tunable`); a missing field keeps its default."""
    if not (ctx.target.dsp or ctx.target.int8_dot):
        return
    blocks = (getattr(ctx, "dsp_blocks", None) or {}) if blocks_tunable(ctx.target) else {}
    made = 0
    with ir.Location.unknown(module.context):
        todo = _rewritten(module, ctx.target)
        if blocks:
            from dgc.errors import UsageError

            unknown = sorted(set(blocks) - {key for _, key in todo})
            if unknown:
                raise UsageError(f"dsp blocks name node '{unknown[0]}', which has no int8 conv rewritten "
                                 "for this target", hint="nodes: " + ", ".join(k for _, k in todo[:12]) +
                                 (" ..." if len(todo) > 12 else ""))
        for op, key in todo:
            if op.name not in (_CONV, _DW):
                continue
            if _rewrite(op, ctx, module, made, *_block_for(op, key, blocks, ctx.target)):
                made += 1
    if made:
        _drop_dead_buffers(module)
        PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)
