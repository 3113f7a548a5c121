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

from dgc.passes.dsp_kernels import _ConvGeometry, _DepthwiseGeometry, _Fusion, _Text, _for

STEP = 16  # int8 lanes of a Q register
PIXELS, FILTERS = 2, 4


class MveConv(_ConvGeometry):
    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion):
        super().__init__(op, w, xst, fusion)
        self.kp = -(-self.k // STEP) * STEP
        wk = np.zeros((self.f, self.kp), np.int8)
        wk[:, :self.k] = w.reshape(self.k, self.f).T
        self.packed = np.ascontiguousarray(wk).view(np.int32).reshape(-1).copy()  # [f][kp] bytes
        self.globals = {"wg": self.packed}

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
        t.w_ptr = t.ptr(t(f"memref.extract_aligned_pointer_as_index %wg : {self.wtype} -> index"))
        st = f"memref<{PIXELS * self.kp}xi8>"
        t.raw(f"%s = memref.alloc() {{alignment = 16 : i64}} : {st}")
        sp = t.ptr(t(f"memref.extract_aligned_pointer_as_index %s : {st} -> index"))
        scratch = [t.gep(sp, i * self.kp) for i in range(PIXELS)]
        if self.k < self.kp:  # the padding bytes: zero once
            for i in range(PIXELS):
                for k in range(self.k, self.kp):
                    t.raw(f"llvm.store {t.c(0, 'i8')}, {t.gep(scratch[i], k)} : i8, !llvm.ptr")

        def filters(n, pix):
            full, rest = divmod(self.f, FILTERS)

            def fbody(fb, _):
                self.block(t, n, pix, t.mul(fb, FILTERS), FILTERS, name)
                return []
            if full:
                _for(t, 0, full, [], fbody)
            if rest:
                self.block(t, n, pix, t.c(full * FILTERS), rest, name)

        def windows(n, pix):  # both windows copied, then every filter block
            for i, (a, _, _) in enumerate(pix):
                self.im2col(t, a, scratch[i], STEP)
            filters(n, [(scratch[i], oh, ow) for i, (_, oh, ow) in enumerate(pix)])
        self.pixel_blocks(t, PIXELS, windows)


class MveDepthwise(_DepthwiseGeometry):
    """depthwise_conv_2d_nhwc_hwcm (multiplier 1), int8: per output pixel, 16 channels at a
    time as vector<16 x i32> accumulators, one widening multiply-add per window position
    (VLDRB.S32 + VMLA on 4-lane pieces); channels beyond a multiple of 16 finish scalar."""

    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion):
        super().__init__(op, w, xst, fusion)
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

        def pixel(n, oh, ow, base):
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

        self.pixels(t, pixel)
