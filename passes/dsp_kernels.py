"""int8 convolutions on Cortex-M cores with the DSP extension: dual 16-bit MACs (SMLAD).

After bufferization, every int8 x int8 -> int32 convolution with constant weights
(`linalg.conv_2d_nhwc_hwcf`, `linalg.depthwise_conv_2d_nhwc_hwcm` with multiplier 1; the
importer has already folded the input zero point into the bias, so the inner loops see plain
int8 products) becomes a loop nest on 32-bit words, written here as MLIR text:

- conv: the reduction is walked as runs of contiguous bytes (a window row kw*C when the
  input's W stride is C, else one window position's C channels). Per step a block of 2 output
  pixels x 2 filters loads one 32-bit word (4 int8) of each pixel's input and of each filter,
  splits every word into two int16 pairs (SXTB16 and SXTB16 of the word rotated by 8: bytes
  0,2 and 1,3) and accumulates with SMLAD: 16 MACs in 4 loads + 8 SXTB16 + 8 SMLAD. Run
  lengths that are not a multiple of 4 finish with scalar byte MACs.
- depthwise: per output pixel a group of 4 channels; two window positions are paired, so one
  SMLAD adds both positions' products of one channel: the two input words' SXTB16 halves are
  interleaved with PKHBT/PKHTB (shift/or patterns the backend selects); the weights are
  stored as int16 pairs in that order at compile time (small: kh*kw*C). An odd window gets a
  zero weight for its last pair. Channel counts that are not a multiple of 4 finish scalar.

The weights are re-laid out at compile time into new constant globals (int8 stays int8 for
the conv: 4 per word). The accumulator buffer (bias already in it) is read once and written
once per block. Input words are read with unaligned 32-bit loads, which ARMv7-M/ARMv8-M
allow on normal memory. Intrinsics: llvm.arm.smlad, llvm.arm.sxtb16.
"""

from __future__ import annotations

import numpy as np

from dgc.ir import PassManager, attr_array, ir, ops_named

_CONV = "linalg.conv_2d_nhwc_hwcf"
_DW = "linalg.depthwise_conv_2d_nhwc_hwcm"


def eligible(op) -> bool:
    """An int8 x int8 -> int32 convolution this pass rewrites (on tensors or buffers)."""
    if op.name not in (_CONV, _DW, "linalg.conv_2d_nhwc_fhwc"):
        return False
    x, w, acc = (ir.ShapedType(v.type) for v in op.operands[:3])
    i8, i32 = ir.IntegerType.get_signless(8), ir.IntegerType.get_signless(32)
    if x.element_type != i8 or w.element_type != i8 or acc.element_type != i32:
        return False
    if not all(t.has_static_shape for t in (x, w, acc)):
        return False
    dil = [int(d) for d in np.array(ir.DenseElementsAttr(op.attributes["dilations"]))]
    return dil == [1, 1] and (op.name != _DW or w.shape[3] == 1)


def _strides(t) -> list[int] | None:
    """Static element strides of a memref type, or None when one is dynamic."""
    mt = ir.MemRefType(t)
    strides, _ = mt.get_strides_and_offset()
    return None if any(mt.is_dynamic_stride_or_offset(s) for s in strides) else list(strides)


def _global_array(value, ctx):
    """The numpy contents of a constant memref.get_global operand, or None."""
    op = value.owner
    op = getattr(op, "operation", op)
    if not isinstance(op, ir.Operation) or op.name != "memref.get_global":
        return None
    mod = op
    while mod.parent is not None:
        mod = mod.parent
    g = ir.SymbolTable(mod)[ir.FlatSymbolRefAttr(op.attributes["name"]).value].operation
    if "constant" not in g.attributes:
        return None
    a = attr_array(g.attributes["initial_value"], ctx.blobs)
    shape = list(ir.MemRefType(value.type).shape)
    return None if a is None or a.size != int(np.prod(shape)) else a.reshape(shape)


class _Text:
    """A tiny emitter of MLIR text with fresh SSA names."""

    def __init__(self):
        self.lines, self.n, self.consts = [], 0, {}

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
        a = self(f"arith.index_cast {addr} : index to i32")
        return self(f"llvm.inttoptr {a} : i32 to !llvm.ptr")

    def gep(self, p: str, off) -> str:
        if isinstance(off, int):
            return p if off == 0 else self(f"llvm.getelementptr inbounds {p}[{off}] : (!llvm.ptr) -> !llvm.ptr, i8")
        o = self(f"arith.index_cast {off} : index to i32")
        return self(f"llvm.getelementptr inbounds {p}[{o}] : (!llvm.ptr, i32) -> !llvm.ptr, i8")

    def load32(self, p: str, off=0) -> str:
        return self(f"llvm.load {self.gep(p, off)} {{alignment = 1 : i64}} : !llvm.ptr -> i32")

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

    def smlad(self, a: str, b: str, acc: str) -> str:
        return self(f'llvm.call_intrinsic "llvm.arm.smlad"({a}, {b}, {acc}) : (i32, i32, i32) -> i32')


def _for(t: _Text, lo, hi, iters: list[str], body) -> list[str]:
    """scf.for %i = lo to hi step 1 with i32 iter_args; body(i, args) -> new args."""
    iv = t.fresh("i")
    args = [t.fresh("a") for _ in iters]
    res = t.fresh("r")
    lo = t.c(lo) if isinstance(lo, int) else lo
    hi = t.c(hi) if isinstance(hi, int) else hi
    if iters:
        inits = ", ".join(f"{a} = {v}" for a, v in zip(args, iters))
        t.raw(f"{res}:{len(iters)} = scf.for {iv} = {lo} to {hi} step {t.c(1)} iter_args({inits}) -> "
              f"({', '.join(['i32'] * len(iters))}) {{")
    else:
        t.raw(f"scf.for {iv} = {lo} to {hi} step {t.c(1)} {{")
    out = body(iv, args)
    t.raw(f"scf.yield {', '.join(out)} : {', '.join(['i32'] * len(out))}" if out else "scf.yield")
    t.raw("}")
    return [f"{res}#{k}" for k in range(len(iters))]


class _Conv:
    """conv_2d_nhwc_hwcf, int8: 2x2 (pixels x filters) SMLAD blocks over contiguous runs."""

    def __init__(self, op, w: np.ndarray, xst: list[int]):
        self.op = op
        _, self.ih, self.iw, self.c = ir.MemRefType(op.operands[0].type).shape
        self.kh, self.kw, _, self.f = w.shape
        self.n, self.oh, self.ow, _ = ir.MemRefType(op.operands[2].type).shape
        self.sh, self.sw = (int(s) for s in np.array(ir.DenseElementsAttr(op.attributes["strides"])))
        self.xst = xst
        contiguous = xst[3] == 1 and xst[2] == self.c
        self.runs = self.kh if contiguous else self.kh * self.kw  # reduction runs
        self.run_len = self.kw * self.c if contiguous else self.c
        self.words, self.tail = divmod(self.run_len, 4)
        self.per_run = self.words + self.tail  # i32 entries per filter per run
        self.packed = self._pack(w.transpose(3, 0, 1, 2).reshape(self.f, self.runs, self.run_len))

    def _pack(self, w: np.ndarray) -> np.ndarray:
        """[filter block][run][word j, filter][tail t, filter] as int32 (words: 4 int8 LE)."""
        out = []
        for f0 in range(0, self.f, 2):
            blk = w[f0:f0 + 2]  # [fb, runs, len]
            words = blk[:, :, :self.words * 4].reshape(len(blk), self.runs, self.words, 4)
            words = np.ascontiguousarray(words.astype(np.int8)).view(np.int32)[..., 0]  # [fb, runs, words]
            tail = blk[:, :, self.words * 4:].astype(np.int32)  # [fb, runs, tail]
            both = np.concatenate([words.transpose(1, 2, 0).reshape(self.runs, -1),
                                   tail.transpose(1, 2, 0).reshape(self.runs, -1)], axis=1)
            out.append(both.reshape(-1))
        return np.concatenate(out).astype(np.int32)

    def body(self, t: _Text, x: str, acc: str, wg: str) -> None:
        pixels = self.oh * self.ow
        nfull_f = self.f // 2

        def pixel_addr(n, p):
            oh = t(f"arith.divui {p}, {t.c(self.ow)} : index")
            ow = t(f"arith.remui {p}, {t.c(self.ow)} : index")
            a = t.add(x, t.mul(n, self.xst[0]))
            a = t.add(a, t.mul(oh, self.sh * self.xst[1]))
            return t.add(a, t.mul(ow, self.sw * self.xst[2])), oh, ow

        def block(n, pix, f, fb, wbase):
            accs = [t(f"memref.load {acc}[{n}, {oh}, {ow}, {t.add(f, k)}] : {self.acc_type}")
                    for (_, oh, ow) in pix for k in range(fb)]

            def run_body(r, args):
                if self.runs == self.kh:
                    roff = t.mul(r, self.xst[1])
                else:
                    kh = t(f"arith.divui {r}, {t.c(self.kw)} : index")
                    kw = t(f"arith.remui {r}, {t.c(self.kw)} : index")
                    roff = t(f"arith.addi {t.mul(kh, self.xst[1])}, {t.mul(kw, self.xst[2])} : index")
                rows = [t(f"arith.addi {a}, {roff} : index") for a, _, _ in pix]
                wrow = t.add(wbase, t.mul(r, self.per_run * fb))

                def word_body(j, a):
                    a = list(a)
                    j4 = t.mul(j, 4)
                    xs = [t.halves(t.load32(t.ptr(t(f"arith.addi {row}, {j4} : index")))) for row in rows]
                    wj = t.add(wrow, t.mul(j, fb))
                    ws = [t.halves(t(f"memref.load {wg}[{t.add(wj, k)}] : {self.wtype}")) for k in range(fb)]
                    for i, (xe, xo) in enumerate(xs):
                        for k, (we, wo) in enumerate(ws):
                            a[i * fb + k] = t.smlad(xo, wo, t.smlad(xe, we, a[i * fb + k]))
                    return a
                a = _for(t, 0, self.words, args, word_body) if self.words else list(args)
                for s in range(self.tail):
                    xv = [t.load8(t.ptr(t.add(row, self.words * 4 + s))) for row in rows]
                    wv = [t(f"memref.load {wg}[{t.add(wrow, self.words * fb + s * fb + k)}] : {self.wtype}")
                          for k in range(fb)]
                    for i in range(len(rows)):
                        for k in range(fb):
                            prod = t(f"arith.muli {xv[i]}, {wv[k]} : i32")
                            a[i * fb + k] = t(f"arith.addi {a[i * fb + k]}, {prod} : i32")
                return a
            res = _for(t, 0, self.runs, accs, run_body)
            for (i, (_, oh, ow)) in enumerate(pix):
                for k in range(fb):
                    t.raw(f"memref.store {res[i * fb + k]}, {acc}[{n}, {oh}, {ow}, {t.add(f, k)}] : "
                          f"{self.acc_type}")

        def filters(n, pix):
            stride_blk = 2 * self.runs * self.per_run  # int32 entries per full filter pair

            def fbody(fp, _):
                block(n, pix, t.mul(fp, 2), 2, t.mul(fp, stride_blk))
                return []
            if nfull_f:
                _for(t, 0, nfull_f, [], fbody)
            if self.f % 2:
                block(n, pix, t.c(self.f - 1), 1, t.c(nfull_f * stride_blk))

        def nbody(n, _):
            def pair(pp, _):
                p0 = t.mul(pp, 2)
                filters(n, [pixel_addr(n, p0), pixel_addr(n, t.add(p0, 1))])
                return []
            if pixels // 2:
                _for(t, 0, pixels // 2, [], pair)
            if pixels % 2:
                filters(n, [pixel_addr(n, t.c(pixels - 1))])
            return []
        _for(t, 0, self.n, [], nbody)


class _Depthwise:
    """depthwise_conv_2d_nhwc_hwcm (multiplier 1), int8: 4 channels x 2 window positions per
    step, paired with PKHBT/PKHTB, 4 SMLAD."""

    def __init__(self, op, w: np.ndarray, xst: list[int]):
        self.op = op
        self.kh, self.kw, self.c, _ = w.shape
        self.n, self.oh, self.ow, _, _ = ir.MemRefType(op.operands[2].type).shape
        self.sh, self.sw = (int(s) for s in np.array(ir.DenseElementsAttr(op.attributes["strides"])))
        self.xst = xst
        self.k = self.kh * self.kw
        self.pairs = (self.k + 1) // 2
        self.groups, self.rest = divmod(self.c, 4)
        self.packed = self._pack(w[..., 0].reshape(self.k, self.c))

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

    def body(self, t: _Text, x: str, acc: str, wg: str) -> None:
        kpos = [(k // self.kw, k % self.kw) for k in range(self.k)]
        kpos += [kpos[-1]] * (self.pairs * 2 - self.k)  # the zero-weight partner reads a valid word
        offs = [kh * self.xst[1] + kw * self.xst[2] for kh, kw in kpos]
        lo16, hi16 = t.c(0xFFFF, "i32"), t.c(-65536, "i32")
        sixteen = t.c(16, "i32")

        def pixel(n, oh, ow):
            base = t.add(x, t.mul(n, self.xst[0]))
            base = t.add(base, t.mul(oh, self.sh * self.xst[1]))
            base = t.add(base, t.mul(ow, self.sw * self.xst[2]))

            def gbody(g, _):
                ch = t.mul(g, 4)
                px = t.ptr(t(f"arith.addi {base}, {ch} : index"))
                accs = [t(f"memref.load {acc}[{n}, {oh}, {ow}, {t.add(ch, c)}, {t.c(0)}] : {self.acc_type}")
                        for c in (0, 2, 1, 3)]
                wbase = t.mul(g, self.pairs * 4)
                for q in range(self.pairs):
                    (ae, ao), (be, bo) = (t.halves(t.load32(px, offs[2 * q + s])) for s in (0, 1))
                    pairs = []
                    for a, b in ((ae, be), (ao, bo)):
                        lo = t(f"arith.andi {a}, {lo16} : i32")  # PKHBT: a.lo | b.lo << 16
                        sh = t(f"arith.shli {b}, {sixteen} : i32")
                        hi = t(f"arith.andi {b}, {hi16} : i32")  # PKHTB: b.hi << 16 | a.hi
                        sr = t(f"arith.shrui {a}, {sixteen} : i32")
                        pairs += [t(f"arith.ori {lo}, {sh} : i32"), t(f"arith.ori {hi}, {sr} : i32")]
                    # pairs: c0, c2, c1, c3
                    for i in range(4):
                        wv = t(f"memref.load {wg}[{t.add(wbase, q * 4 + i)}] : {self.wtype}")
                        accs[i] = t.smlad(pairs[i], wv, accs[i])
                for i, c in enumerate((0, 2, 1, 3)):
                    t.raw(f"memref.store {accs[i]}, {acc}[{n}, {oh}, {ow}, {t.add(ch, c)}, {t.c(0)}] : "
                          f"{self.acc_type}")
                return []
            if self.groups:
                _for(t, 0, self.groups, [], gbody)
            bp = t.ptr(base) if self.rest else None
            for r in range(self.rest):
                ch = self.groups * 4 + r
                a = t(f"memref.load {acc}[{n}, {oh}, {ow}, {t.c(ch)}, {t.c(0)}] : {self.acc_type}")
                for k in range(self.k):
                    xv = t.load8(bp, ch + offs[k])
                    wv = t(f"memref.load {wg}[{t.c(self.groups * self.pairs * 4 + r * self.k + k)}] : "
                           f"{self.wtype}")
                    a = t(f"arith.addi {a}, {t(f'arith.muli {xv}, {wv} : i32')} : i32")
                t.raw(f"memref.store {a}, {acc}[{n}, {oh}, {ow}, {t.c(ch)}, {t.c(0)}] : {self.acc_type}")

        def nbody(n, _):
            def hbody(oh, _):
                def wbody(ow, _):
                    pixel(n, oh, ow)
                    return []
                _for(t, 0, self.ow, [], wbody)
                return []
            _for(t, 0, self.oh, [], hbody)
            return []
        _for(t, 0, self.n, [], nbody)


def _kernel_text(k, name: str) -> str:
    t = _Text()
    xt, at = (str(v.type) for v in k.op.operands[0:3:2])
    k.acc_type = at
    k.wtype = f"memref<{len(k.packed)}xi32>"
    t.raw(f"%wg = memref.get_global @{name}_w : {k.wtype}")
    t.raw(f"%xb, %xoff, %xsz:4, %xst:4 = memref.extract_strided_metadata %x : {xt} -> memref<i8>, index, "
          "index, index, index, index, index, index, index, index")
    t.raw("%xp = memref.extract_aligned_pointer_as_index %xb : memref<i8> -> index")
    t.raw("%x0 = arith.addi %xp, %xoff : index")
    k.body(t, "%x0", "%acc", "%wg")
    body = "\n    ".join(t.const_lines() + t.lines)
    return (f'module {{\n  memref.global "private" constant @{name}_w : {k.wtype} = '
            "dense<0> {alignment = 16 : i64}\n"  # contents: set in run()
            f"  func.func private @{name}(%x: {xt}, %acc: {at}) {{\n    {body}\n    return\n  }}\n}}")


def run(module, ctx) -> None:
    if not ctx.target.dsp:
        return
    made = 0
    for op in ops_named(module.operation, (_CONV, _DW)):
        if not eligible(op):
            continue
        w = _global_array(op.operands[1], ctx)
        xst = _strides(op.operands[0].type)
        if w is None or xst is None or xst[3] != 1:
            continue
        kern = (_Conv if op.name == _CONV else _Depthwise)(op, w, xst)
        name = f"dgc_dsp_{op.name.split('.')[-1]}_{made}"
        while name + "_w" in ctx.blobs:
            name += "_"
        ctx.blobs[name + "_w"] = kern.packed
        text = _kernel_text(kern, name)
        try:
            kmod = ir.Module.parse(text, module.context)
        except ir.MLIRError as err:  # a bug here: report the generated text's first error
            raise RuntimeError(f"dsp kernel {name} does not parse: {str(err).splitlines()[0]}") from None
        for g in list(kmod.body.operations):
            g = g.operation
            if g.name == "memref.global":  # the weights, as a blob the finalize stage finds by key
                t = ir.RankedTensorType.get([len(kern.packed)], ir.IntegerType.get_signless(32))
                g.attributes["initial_value"] = ir.DenseResourceElementsAttr.get_from_buffer(
                    memoryview(kern.packed), f"{name}_w", t, alignment=16)
                g.move_before(module.body.operations[0])
            else:  # the kernel function: its body replaces the linalg op (inlined by hand)
                block = g.regions[0].blocks[0]
                for arg, val in zip(block.arguments, (op.operands[0], op.operands[2])):
                    arg.replace_all_uses_with(val)
                for inner in list(block.operations)[:-1]:  # all but func.return
                    inner.operation.move_before(op)
        op.erase()
        made += 1
    if made:
        PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)

