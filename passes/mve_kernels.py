"""int8 convolutions on Cortex-M cores with Helium (MVE, e.g. Cortex-M55): VMLADAVA.S8.

VMLADAVA.S8 multiplies 16 int8 pairs of two vector registers and adds all 16 products to a
32-bit general register: a whole 16-long slice of a dot product per instruction. LLVM selects
it from `acc + vector.reduce.add(sext(x) * sext(w))` on <16 x i8>, which is what the loops
below are written as (no intrinsics). After bufferization every int8 x int8 -> int32
`linalg.conv_2d_nhwc_hwcf` with constant weights becomes:

- per pair of output pixels, both windows copied (im2col) into a small scratch buffer as
  int8, K = kh*kw*C zero-padded to a multiple of 16 (16-byte vector copies where the
  window's contiguous runs allow, byte copies otherwise);
- per block of 2 pixels x 4 filters (fewer at the edges), one pass over K in steps of 16:
  2 + 4 vector loads and 8 VMLADAVA for 128 MACs; the weights are packed per filter, K padded
  the same way, at compile time;
- bias init and the requantization consumer fused as in dgc.passes.dsp_kernels.
Depthwise convs keep the SMLAD kernels of dsp_kernels (M55 has the DSP extension too).
"""

from __future__ import annotations

import numpy as np

from dgc.passes.dsp_kernels import _Fusion, _Text, _base_address, _for

STEP = 16  # int8 lanes of a Q register
PIXELS, FILTERS = 2, 4


class MveConv:
    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion):
        from dgc.ir import ir

        self.op, self.fusion = op, fusion
        _, self.ih, self.iw, self.c = ir.MemRefType(op.operands[0].type).shape
        self.kh, self.kw, _, self.f = w.shape
        self.n, self.oh, self.ow, _ = ir.MemRefType(op.operands[2].type).shape
        self.sh, self.sw = (int(s) for s in np.array(ir.DenseElementsAttr(op.attributes["strides"])))
        self.xst = xst
        self.k = self.kh * self.kw * self.c
        self.kp = -(-self.k // STEP) * STEP
        if xst[3] == 1 and xst[2] == self.c:
            self.runs, self.run_len = self.kh, self.kw * self.c
        else:
            self.runs, self.run_len = self.kh * self.kw, self.c
        self.by_vectors = xst[3] == 1 and self.run_len % STEP == 0
        wk = np.zeros((self.f, self.kp), np.int8)
        wk[:, :self.k] = w.reshape(self.k, self.f).T
        self.packed = np.ascontiguousarray(wk).view(np.int32).reshape(-1).copy()  # [f][kp] bytes
        self.globals = {"wg": self.packed}

    def im2col(self, t: _Text, px: str, dst: str) -> None:
        """Window at byte address `px` -> kp bytes at pointer `dst`."""
        if self.by_vectors:
            per_run = self.run_len // STEP

            def run_body(r, _):
                if self.runs == self.kh:
                    roff = t.mul(r, self.xst[1])
                else:
                    kh = t(f"arith.divui {r}, {t.c(self.kw)} : index")
                    kw = t(f"arith.remui {r}, {t.c(self.kw)} : index")
                    roff = t(f"arith.addi {t.mul(kh, self.xst[1])}, {t.mul(kw, self.xst[2])} : index")
                src = t.ptr(t(f"arith.addi {px}, {roff} : index"))
                d = t.gep(dst, t.mul(r, self.run_len))

                def vbody(j, _):
                    v = t.load_vec(t.gep(src, t.mul(j, STEP)), f"vector<{STEP}xi8>")
                    t.raw(f"llvm.store {v}, {t.gep(d, t.mul(j, STEP))} {{alignment = 1 : i64}} : "
                          f"vector<{STEP}xi8>, !llvm.ptr")
                    return []
                _for(t, 0, per_run, [], vbody)
                return []
            _for(t, 0, self.runs, [], run_body)
            return
        p = t.ptr(px)

        def offset(k):
            kh, rest = divmod(k, self.kw * self.c)
            kw, c = divmod(rest, self.c)
            return kh * self.xst[1] + kw * self.xst[2] + c * self.xst[3]
        if self.k <= 256:
            for k in range(self.k):
                b = t(f"llvm.load {t.gep(p, offset(k))} : !llvm.ptr -> i8")
                t.raw(f"llvm.store {b}, {t.gep(dst, k)} : i8, !llvm.ptr")
            return

        def kbody(k, _):
            kh = t(f"arith.divui {k}, {t.c(self.kw * self.c)} : index")
            rest = t(f"arith.remui {k}, {t.c(self.kw * self.c)} : index")
            kw = t(f"arith.divui {rest}, {t.c(self.c)} : index")
            c = t(f"arith.remui {rest}, {t.c(self.c)} : index")
            off = t(f"arith.addi {t.mul(kh, self.xst[1])}, {t.mul(kw, self.xst[2])} : index")
            off = t(f"arith.addi {off}, {t.mul(c, self.xst[3])} : index")
            b = t(f"llvm.load {t.gep(p, off)} : !llvm.ptr -> i8")
            t.raw(f"llvm.store {b}, {t.gep(dst, k)} : i8, !llvm.ptr")
            return []
        _for(t, 0, self.k, [], kbody)

    def block(self, t: _Text, n: str, pix: list, f, fb: int, name: str) -> None:
        """len(pix) pixels x fb filters from filter f; pix: (scratch pointer, oh, ow)."""
        vt, wt = f"vector<{STEP}xi8>", f"vector<{STEP}xi32>"
        idxs = [[n, oh, ow, t.add(f, k)] for (_, oh, ow) in pix for k in range(fb)]
        accs = [self.fusion.start(t, idx) for idx in idxs]
        nacc = len(accs)
        wp0 = t.gep(t.w_ptr, t.mul(f, self.kp))

        def kbody(j, a):
            a, wp, xs = list(a[:nacc]), a[nacc], list(a[nacc + 1:])
            ws = [t(f"arith.extsi {t.load_vec(t.gep(wp, k * self.kp), vt)} : {vt} to {wt}") for k in range(fb)]
            for i, xp in enumerate(xs):
                xv = t(f"arith.extsi {t.load_vec(xp, vt)} : {vt} to {wt}")
                for k in range(fb):
                    m = t(f"arith.muli {xv}, {ws[k]} : {wt}")
                    a[i * fb + k] = t(f"vector.reduction <add>, {m}, {a[i * fb + k]} : {wt} into i32")
            return a + [t.gep(wp, STEP)] + [t.gep(x, STEP) for x in xs]
        xps = [p for (p, _, _) in pix]
        res = _for(t, 0, self.kp // STEP, accs + [wp0] + xps, kbody,
                   ["i32"] * nacc + ["!llvm.ptr"] * (1 + len(xps)))[:nacc]
        for idx, v in zip(idxs, res):
            self.fusion.finish(t, v, idx, name)

    def body(self, t: _Text, name: str) -> None:
        pixels = self.oh * self.ow
        t.w_ptr = t.ptr(t(f"memref.extract_aligned_pointer_as_index %wg : {self.wtype} -> index"))
        st = f"memref<{PIXELS * self.kp}xi8>"
        t.raw(f"%s = memref.alloc() {{alignment = 16 : i64}} : {st}")
        sp = t.ptr(t(f"memref.extract_aligned_pointer_as_index %s : {st} -> index"))
        scratch = [t.gep(sp, i * self.kp) for i in range(PIXELS)]
        if self.k < self.kp:  # the padding bytes: zero once
            for i in range(PIXELS):
                for k in range(self.k, self.kp):
                    t.raw(f"llvm.store {t.c(0, 'i8')}, {t.gep(scratch[i], k)} : i8, !llvm.ptr")

        def pixel(x0, n, p, i):
            oh = t(f"arith.divui {p}, {t.c(self.ow)} : index")
            ow = t(f"arith.remui {p}, {t.c(self.ow)} : index")
            a = t.add(x0, t.mul(n, self.xst[0]))
            a = t.add(a, t.mul(oh, self.sh * self.xst[1]))
            a = t.add(a, t.mul(ow, self.sw * self.xst[2]))
            self.im2col(t, a, scratch[i])
            return scratch[i], oh, ow

        def filters(n, pix):
            full, rest = divmod(self.f, FILTERS)

            def fbody(fb, _):
                self.block(t, n, pix, t.mul(fb, FILTERS), FILTERS, name)
                return []
            if full:
                _for(t, 0, full, [], fbody)
            if rest:
                self.block(t, n, pix, t.c(full * FILTERS), rest, name)

        def nbody(n, _):
            x0 = _base_address(t)

            def pblock(pb, _):
                p0 = t.mul(pb, PIXELS)
                filters(n, [pixel(x0, n, t.add(p0, i), i) for i in range(PIXELS)])
                return []
            if pixels // PIXELS:
                _for(t, 0, pixels // PIXELS, [], pblock)
            if pixels % PIXELS:
                p0 = (pixels // PIXELS) * PIXELS
                filters(n, [pixel(x0, n, t.c(p0 + i), i) for i in range(pixels % PIXELS)])
            return []
        _for(t, 0, self.n, [], nbody)


class MveDepthwise:
    """depthwise_conv_2d_nhwc_hwcm (multiplier 1), int8: per output pixel, 16 channels at a
    time as vector<16 x i32> accumulators, one widening multiply-add per window position
    (VLDRB.S32 + VMLA on 4-lane pieces); channels beyond a multiple of 16 finish scalar."""

    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion):
        from dgc.ir import ir

        self.op, self.fusion = op, fusion
        self.kh, self.kw, self.c, _ = w.shape
        self.n, self.oh, self.ow, _, _ = ir.MemRefType(op.operands[2].type).shape
        self.sh, self.sw = (int(s) for s in np.array(ir.DenseElementsAttr(op.attributes["strides"])))
        self.xst = xst
        self.k = self.kh * self.kw
        self.groups, self.rest = divmod(self.c, STEP)
        wk = w[..., 0].reshape(self.k, self.c)  # [tap, c]
        vec = wk[:, :self.groups * STEP].reshape(self.k, self.groups, STEP).transpose(1, 0, 2)  # [g, tap, 16]
        rest = wk[:, self.groups * STEP:].T  # [rest channel, tap]
        b = np.concatenate([vec.reshape(-1), rest.reshape(-1)]).astype(np.int8)
        b = np.concatenate([b, np.zeros(-len(b) % 4, np.int8)])
        self.packed = b.view(np.int32).copy()
        self.globals = {"wg": self.packed}

    def body(self, t: _Text, name: str) -> None:
        vt, wt = f"vector<{STEP}xi8>", f"vector<{STEP}xi32>"
        offs = [(k // self.kw) * self.xst[1] + (k % self.kw) * self.xst[2] for k in range(self.k)]
        zero = t.c(0)
        t.w_ptr = t.ptr(t(f"memref.extract_aligned_pointer_as_index %wg : {self.wtype} -> index"))

        def pixel(x0, n, oh, ow):
            base = t.add(x0, t.mul(n, self.xst[0]))
            base = t.add(base, t.mul(oh, self.sh * self.xst[1]))
            base = t.add(base, t.mul(ow, self.sw * self.xst[2]))

            def gbody(g, _):
                ch = t.mul(g, STEP)
                px = t.ptr(t(f"arith.addi {base}, {ch} : index"))
                wp = t.gep(t.w_ptr, t.mul(g, self.k * STEP))
                idxs = [[n, oh, ow, t.add(ch, c), zero] for c in range(STEP)]
                if self.fusion.init and self.fusion.init[0] == "const":
                    acc = t(f"arith.constant dense<{self.fusion.init[1]}> : {wt}")
                else:
                    acc = t(f"arith.constant dense<0> : {wt}")
                    for c, idx in enumerate(idxs):
                        acc = t(f"vector.insert {self.fusion.start(t, idx)}, {acc} [{c}] : i32 into {wt}")
                for k in range(self.k):
                    xv = t(f"arith.extsi {t.load_vec(t.gep(px, offs[k]), vt)} : {vt} to {wt}")
                    wv = t(f"arith.extsi {t.load_vec(t.gep(wp, k * STEP), vt)} : {vt} to {wt}")
                    acc = t(f"arith.addi {acc}, {t(f'arith.muli {xv}, {wv} : {wt}')} : {wt}")
                for c, idx in enumerate(idxs):
                    self.fusion.finish(t, t(f"vector.extract {acc}[{c}] : i32 from {wt}"), idx, name)
                return []
            if self.groups:
                _for(t, 0, self.groups, [], gbody)
            bp = t.ptr(base) if self.rest else None
            for r in range(self.rest):
                ch = self.groups * STEP + r
                idx = [n, oh, ow, t.c(ch), zero]
                a = self.fusion.start(t, idx)
                for k in range(self.k):
                    xv = t.load8(bp, ch + offs[k])
                    wb = t(f"llvm.load {t.gep(t.w_ptr, self.groups * self.k * STEP + r * self.k + k)} : "
                           "!llvm.ptr -> i8")
                    wv = t(f"arith.extsi {wb} : i8 to i32")
                    a = t(f"arith.addi {a}, {t(f'arith.muli {xv}, {wv} : i32')} : i32")
                self.fusion.finish(t, a, idx, name)

        def nbody(n, _):
            x0 = _base_address(t)

            def hbody(oh, _):
                def wbody(ow, _):
                    pixel(x0, n, oh, ow)
                    return []
                _for(t, 0, self.ow, [], wbody)
                return []
            _for(t, 0, self.oh, [], hbody)
            return []
        _for(t, 0, self.n, [], nbody)
