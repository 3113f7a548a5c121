"""int8 convolutions on CPUs with int8 dot products: AArch64 SDOT (ARMv8.2-A dotprod, e.g.
Cortex-A76), x86 VPDPBUSD (AVX-512 VNNI), and on other x86 VPMADDWD (SSE2/AVX2/AVX-512BW:
pairs of int16 products per 32-bit lane, the input expanded to int16 by the im2col copy and
the weights stored as int16); on NEON without dot products (ARMv7-A, ARMv8.0-A) the same
int16 copies feed SMLAL / VMLAL.S16 by element (`smlal`: 4 weights of 4 filters, widened to
int16, times one int16 input lane, accumulated in 32 bits).

Both instructions add, into each 32-bit lane of an accumulator, the dot product of 4 bytes of
one operand with 4 bytes of the other. After bufferization every int8 x int8 -> int32
`linalg.conv_2d_nhwc_hwcf` with constant weights becomes a register-blocked loop nest
(written as MLIR text, like dgc.passes.dsp_kernels whose fusion it shares):

- the reduction K = kh*kw*C is walked 4 values at a time: one 32-bit word of a pixel's
  window, read straight from the input when its contiguous runs are whole words, else from a
  small im2col copy (zero padded to a multiple of 4);
- a block is P pixels x V vectors of `lanes` filters (default 4 x 4, 4 x 2 with 16 vector
  registers; `blocks` lists the others a tuning database may choose): per step each pixel's word is
  broadcast to every lane, each weight vector holds that step's 4 weights of `lanes` filters
  (packed at compile time), and P x V dot instructions do 16 * lanes * ... MACs;
- `smlal` walks K four int16 values (one d register of the copy) per step; each is a
  multiply-accumulate by element with its own weight vectors (int8, packed per step as
  [k][vector][lane], widened in the loop): 4 MACs per instruction. Left
  to LLVM, the vectorized linalg conv gathered a block's input bytes lane by lane into one
  register (a loop-carried chain of lane inserts: 1.3 estimated cycles per MAC on ARMv7-A);
- VPDPBUSD multiplies unsigned by signed bytes: the input bytes are flipped to x + 128 (XOR
  0x80) and the accumulators start at bias - 128 * sum_k w[k, f] (a constant per filter);
- the known initial value (bias) and the requantization consumer are fused as in
  dsp_kernels: the int32 accumulator buffer is never written.
"""

from __future__ import annotations

import numpy as np

from dgc.passes.dsp_kernels import _ConvGeometry, _Fusion, _Text, _for

PIXELS = 4  # pixels per register block (the default)
VECTORS = 4  # filter vectors per register block (the default with 32 vector registers; 2 with 16)
PIXEL_CHOICES = (1, 2, 3, 4, 6, 8)  # the register blocks a tuning database may choose: pixels
VECTOR_CHOICES = (1, 2, 4)  # x filter vectors, within the register file (see `blocks`)


SHORT_DEPTH = 16  # reduction lengths (kh x kw x cin) up to this keep the default block (4 steps of 4)


def default_block(target, filters: int | None = None, pixels: int | None = None,
                  depth: int | None = None) -> tuple[int, int]:
    """(pixels, filters) of the register block `DotConv` takes unless told otherwise: PIXELS x
    VECTORS vectors of filters (half the vectors with 16 registers). The kernels whose
    instruction accumulates in place (VPDPBUSD, SDOT, SMLAL: each accumulator a dependency
    chain of the instruction's latency) give a conv whose `filters` and output `pixels` (per
    image) fill fewer of that block's accumulators (a block wider than the filters or the
    pixels computes what a narrower one does) the block of `blocks` that fills the most of
    them, up to the default's count, the narrowest such: the accumulators the filters leave
    free go to pixels (6 or 16 filters on AVX-512: 8 pixels x 1 vector, not 4 x 1 of the 4 x
    4 block), those one pixel leaves to filters (a fully connected layer on ARMv7-A: 1 x 4
    vectors, not 1 x 2). Int8 zoo models, the fixed block against this (2026-12-07): host
    (Zen 4, VNNI; three timing runs) LeNet-5 1.075-1.083x, ResNet-8 1.047-1.056x,
    MobileNet v1 0.25 1.02x faster (flash +20 KB, +5 KB, +3 KB), DS-CNN unchanged (its convs
    fill the default block); estimated cycles, LeNet-5: ARMv7-A 1.05x,
    Cortex-A7 1.049x, Cortex-A53 1.055x, AArch64 1.012x, Cortex-A76 1.014x, Cortex-A72 0.996x;
    MobileNet v1 0.25 1.0-1.017x; DS-CNN and ResNet-8 1.0-1.003x or unchanged. VPMADDWD (x86
    without VNNI) keeps the default: its products are added by a separate one-cycle add, so
    the accumulators wait on nothing (AVX2 LeNet-5 with 8 x 1 blocks: 0.97-0.99x). So do convs
    over at most SHORT_DEPTH (`depth`, the reduction length): their chains are a few steps
    long, and the out-of-order core overlaps one block's with the next (host, MobileNet v1
    0.25 int8, each conv alone with 8 pixels against 4: 1x1 over 8 and 16 channels 0.98x and
    0.99x, over 32 channels 1.01x, the 3x3x3 stem 1.02x)."""
    lanes = target.vector_bits // 32
    base = (PIXELS, (VECTORS if target.vector_regs >= 32 else VECTORS // 2) * lanes)
    if not filters and not pixels or target.int8_dot == "pmaddwd" or depth is not None and depth <= SHORT_DEPTH:
        return base
    need, pix = -(-(filters or base[1]) // lanes), pixels or base[0]

    def used(b):  # accumulators that compute something
        return min(b[0], pix) * min(b[1] // lanes, need)

    budget = base[0] * base[1] // lanes
    fits = [b for b in _fitting(target) if used(b) <= budget]
    best = max(used(b) for b in fits)
    return base if used(base) == best else min((b for b in fits if used(b) == best), key=lambda b: (b[0] * b[1], b))


def _fitting(target) -> list[tuple[int, int]]:
    """The register blocks (pixels, filters) whose accumulators, weight vectors and the
    broadcast input word fit the target's vector registers."""
    lanes = target.vector_bits // 32
    return [(p, v * lanes) for v in VECTOR_CHOICES for p in PIXEL_CHOICES if p * v + v + 1 <= target.vector_regs]


def blocks(target, filters: int | None = None, pixels: int | None = None,
           depth: int | None = None) -> tuple[tuple[int, int], ...]:
    """Every register block (pixels P, filters F = V vectors of lanes) whose P x V accumulators,
    V weight vectors and the broadcast input word fit the target's vector registers; the
    default first. With the conv's `filters` and output `pixels` (per image), a block wider
    than its filters (rounded up to whole vectors) or its pixels computes what a narrower one
    does, and is left out; the default first is `default_block`'s for the conv (with its
    reduction length `depth`)."""
    lanes = target.vector_bits // 32
    cap_f = -(-filters // lanes) * lanes if filters else 1 << 30
    out, seen = [], set()
    for b in [default_block(target, filters, pixels, depth)] + _fitting(target):
        same = (min(b[0], pixels or b[0]), min(b[1], cap_f))
        if same not in seen:
            seen.add(same)
            out.append(b)
    return tuple(out)


class DotConv(_ConvGeometry):
    """conv_2d_nhwc_hwcf, int8, on a target with `int8_dot` in ("sdot", "vnni", "pmaddwd", "smlal");
    `block`: (pixels, filters) of the register block, one of `blocks(target)` (default:
    `default_block`)."""

    def __init__(self, op, w: np.ndarray, xst: list[int], fusion: _Fusion, target, block=None):
        super().__init__(op, w, xst, fusion)
        self.kind, self.triple = target.int8_dot, target.triple
        self.lanes = target.vector_bits // 32
        self.step = 2 if self.kind == "pmaddwd" else 4  # k values per step (per lane of VPMADDWD etc.)
        self.xbytes = 2 if self.kind in ("pmaddwd", "smlal") else 1  # int16 im2col copy
        self.wbytes = 2 if self.kind == "pmaddwd" else 1  # int16 weights (VPMADDWD's pairs)
        self.kp = -(-self.k // self.step) * self.step
        self.direct = self.xbytes == 1 and xst[3] == 1 and self.run_len % 4 == 0
        self.pixels, filters = block or default_block(target)
        self.vectors = filters // self.lanes
        self.block_f = self.vectors * self.lanes
        self.fpad = -(-self.f // self.lanes) * self.lanes
        wk = np.zeros((self.fpad, self.kp), np.int8 if self.wbytes == 1 else np.int16)
        wk[:self.f, :self.k] = w.reshape(self.k, self.f).T
        self.packed = self._pack(wk)
        comp = np.zeros(self.fpad, np.int64)
        if self.kind == "vnni":
            comp[:self.f] = -128 * w.reshape(self.k, self.f).astype(np.int64).sum(axis=0)
        self.comp = comp.astype(np.int32)
        self.globals = {"wg": self.packed, "comp": self.comp}
        self.vector = fusion.vector_ok()  # whole vectors of channels: init and epilogue on vectors

    def _pack(self, wk: np.ndarray) -> np.ndarray:
        """Per block of filters (vectors * lanes, fewer for the last), per step g: the block's
        vectors in turn, lane l = filter, 4 bytes = w[4g .. 4g+3] -> one int32 per lane
        (`smlal`: per k, its weights of the block's filters in turn: units of one byte)."""
        units = np.ascontiguousarray(wk).view(np.int8 if self.kind == "smlal" else np.int32)  # [fpad, ...]
        out = [units[f0:f0 + self.block_f].T.reshape(-1) for f0 in range(0, self.fpad, self.block_f)]
        return np.concatenate(out).view(np.int32)

    # -- text helpers ---------------------------------------------------------------------
    def _vt(self) -> str:
        return f"vector<{self.lanes}xi32>"

    def _dot(self, t: _Text, acc: str, w: str, x: str) -> str:
        vt = self._vt()
        if self.kind == "sdot":
            bt = f"vector<{4 * self.lanes}xi8>"
            wb = t(f"vector.bitcast {w} : {vt} to {bt}")
            xb = t(f"vector.bitcast {x} : {vt} to {bt}")
            return t(f'llvm.call_intrinsic "llvm.aarch64.neon.sdot.v{self.lanes}i32.v{4 * self.lanes}i8"'
                     f"({acc}, {wb}, {xb}) : ({vt}, {bt}, {bt}) -> {vt}")
        if self.kind == "pmaddwd":  # pairs of int16: x0*w0 + x1*w1 per lane
            ht = f"vector<{2 * self.lanes}xi16>"
            intr = {4: "llvm.x86.sse2.pmadd.wd", 8: "llvm.x86.avx2.pmadd.wd",
                    16: "llvm.x86.avx512.pmaddw.d.512"}[self.lanes]
            xh = t(f"vector.bitcast {x} : {vt} to {ht}")
            wh = t(f"vector.bitcast {w} : {vt} to {ht}")
            m = t(f'llvm.call_intrinsic "{intr}"({xh}, {wh}) : ({ht}, {ht}) -> {vt}')
            return t(f"arith.addi {acc}, {m} : {vt}")
        bt = f"vector<{4 * self.lanes}xi8>"  # LLVM 22: byte vectors
        xb = t(f"vector.bitcast {x} : {vt} to {bt}")
        wb = t(f"vector.bitcast {w} : {vt} to {bt}")
        return t(f'llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.{32 * self.lanes}"({acc}, {xb}, {wb}) : '
                 f"({vt}, {bt}, {bt}) -> {vt}")

    def _smlal_step(self, t: _Text, a: list, wp: str, xps: list, xoffs: list, nv: int) -> list:
        """One step of 4 k values: per k, nv vectors of `lanes` int8 weights (`_pack`), widened
        to int16 (a pair of vectors per load and SSHLL / VMOVL.S8, its halves the two), each
        multiplied by the pixel's int16 input of that k and added to the pixel's accumulators
        (SMLAL / VMLAL.S16 by element). int16 weights (twice the flash) ran as fast on ARMv7-A
        and 6% slower on AArch64 (the zoo's int8 models, estimated cycles)."""
        lanes, vt = self.lanes, self._vt()
        ht = f"vector<{lanes}xi16>"
        intr = (f"llvm.aarch64.neon.smull.v{lanes}i32" if self.triple.startswith("aarch64")
                else f"llvm.arm.neon.vmulls.v{lanes}i32")
        ws = []
        for j in range(4):
            row = []
            for v0 in range(0, nv, 2):
                g = min(nv - v0, 2) * lanes
                b = t.load_vec(t.gep(wp, (j * nv + v0) * lanes), f"vector<{g}xi8>")
                h = t(f"arith.extsi {b} : vector<{g}xi8> to vector<{g}xi16>")
                row += [h] if g == lanes else [
                    t(f"vector.extract_strided_slice {h} {{offsets = [{o}], sizes = [{lanes}], "
                      f"strides = [1]}} : vector<{g}xi16> to {ht}") for o in (0, lanes)]
            ws.append(row)
        for i, xp in enumerate(xps):
            # four k at once, a whole d register: a <2 x i16> load is widened and taken
            # apart lane by lane through core registers, and so is a <4 x i16> of which
            # only two lanes are used
            x = t.load_vec(t.gep(xp, xoffs[i]), "vector<4xi16>")
            for j in range(4):
                xs = t(f"vector.shuffle {x}, {x} [{', '.join([str(j)] * lanes)}] : vector<4xi16>, vector<4xi16>")
                for v in range(nv):
                    m = t(f'llvm.call_intrinsic "{intr}"({ws[j][v]}, {xs}) : ({ht}, {ht}) -> {vt}')
                    a[i * nv + v] = t(f"arith.addi {a[i * nv + v]}, {m} : {vt}")
        return a

    def _xword(self, t: _Text, p: str, off) -> str:
        v = t.load32(p, off)
        if self.kind == "vnni":  # unsigned operand: x + 128 per byte
            v = t(f"arith.xori {v}, {t.c(-0x7F7F7F80, 'i32')} : i32")
        return t(f"vector.broadcast {v} : i32 to {self._vt()}")

    def block(self, t: _Text, n: str, pix: list, f0, nv: int, valid: int, wbase: str, name: str) -> None:
        """len(pix) pixels x nv filter vectors from filter f0 (`valid` real filters when f0 is
        static, else all); pix: (x pointer or address, oh, ow)."""
        vt, lanes = self._vt(), self.lanes
        def full(v):  # every lane a real filter: init and epilogue on the whole vector
            return self.vector and (not isinstance(f0, int) or (v + 1) * lanes <= valid)

        def fv(v):
            return t.add(t.c(f0) if isinstance(f0, int) else f0, v * lanes)
        accs = []
        for (_, oh, ow) in pix:
            for v in range(nv):
                acc = t.load_vec(t.gep(t.comp_ptr, t.mul(fv(v), 4)), vt) if self.kind == "vnni" else \
                    t(f"arith.constant dense<0> : {vt}")
                if full(v):
                    accs.append(t(f"arith.addi {acc}, {self.fusion.start_vec(t, [n, oh, ow, fv(v)], lanes)} : {vt}"))
                    continue
                for ln in range(lanes):
                    fi = v * lanes + ln
                    if isinstance(f0, int) and fi >= valid:
                        continue
                    s = self.fusion.start(t, [n, oh, ow, t.add(fv(v), ln)])
                    e = t(f"vector.extract {acc}[{ln}] : i32 from {vt}")
                    acc = t(f"vector.insert {t(f'arith.addi {e}, {s} : i32')}, {acc} [{ln}] : i32 into {vt}")
                accs.append(acc)
        nacc = len(accs)
        wstep = nv * lanes * self.step * self.wbytes  # bytes of weights per step
        xstep = self.step * self.xbytes
        wp0 = t.gep(t.w_ptr, t.mul(wbase, 4))

        def step(a, wp, xps, xoffs):
            a = list(a)
            if self.kind == "smlal":
                return self._smlal_step(t, a, wp, xps, xoffs, nv)
            ws = [t.load_vec(t.gep(wp, v * lanes * 4), vt) for v in range(nv)]
            for i, xp in enumerate(xps):
                xv = self._xword(t, xp, xoffs[i])
                for v in range(nv):
                    a[i * nv + v] = self._dot(t, a[i * nv + v], ws[v], xv)
            return a
        types = [vt] * nacc + ["!llvm.ptr"]
        if self.direct:
            per_run = self.run_len // 4

            def run_body(r, args):
                a, wp = list(args[:nacc]), args[nacc]
                roff = self.run_offset(t, r)
                xps = [t.ptr(t(f"arith.addi {px}, {roff} : index")) for (px, _, _) in pix]

                def word_body(j, args2):
                    a2, wp2, xs2 = list(args2[:nacc]), args2[nacc], list(args2[nacc + 1:])
                    a2 = step(a2, wp2, xs2, [0] * len(xs2))
                    return a2 + [t.gep(wp2, wstep)] + [t.gep(x, xstep) for x in xs2]
                out = _for(t, 0, per_run, a + [wp] + xps, word_body, types + ["!llvm.ptr"] * len(xps))
                return out[:nacc + 1]
            res = _for(t, 0, self.runs, accs + [wp0], run_body, types)[:nacc]
        else:
            def g_body(g, args):
                a, wp, xs = list(args[:nacc]), args[nacc], list(args[nacc + 1:])
                a = step(a, wp, xs, [0] * len(xs))
                return a + [t.gep(wp, wstep)] + [t.gep(x, xstep) for x in xs]
            xps = [px for (px, _, _) in pix]
            res = _for(t, 0, self.kp // self.step, accs + [wp0] + xps, g_body, types + ["!llvm.ptr"] * len(xps))[:nacc]
        for i, (_, oh, ow) in enumerate(pix):
            for v in range(nv):
                if full(v):
                    self.fusion.finish_vec(t, res[i * nv + v], [n, oh, ow, fv(v)], name, lanes)
                    continue
                for ln in range(lanes):
                    fi = v * lanes + ln
                    if isinstance(f0, int) and fi >= valid:
                        continue
                    e = t(f"vector.extract {res[i * nv + v]}[{ln}] : i32 from {vt}")
                    self.fusion.finish(t, e, [n, oh, ow, t.add(fv(v), ln)], name)

    def body(self, t: _Text, name: str) -> None:
        full_blocks, rest_f = divmod(self.f, self.block_f)
        words_per_block = self.block_f * self.kp * self.wbytes // 4
        t.w_ptr = t.ptr(t(f"memref.extract_aligned_pointer_as_index %wg : {self.wtype} -> index"))
        t.comp_ptr = t.ptr(t(f"memref.extract_aligned_pointer_as_index %comp : {self.ctype} -> index"))
        scratch = None
        if not self.direct:
            row = self.kp * self.xbytes  # bytes per pixel
            size = self.pixels * row
            t.raw(f"%s = memref.alloc() {{alignment = 16 : i64}} : memref<{size}xi8>")
            sp = t.ptr(t("memref.extract_aligned_pointer_as_index %s : " f"memref<{size}xi8> -> index"))
            scratch = [t.gep(sp, i * row) for i in range(self.pixels)]

        def filters(n, pix):
            def fbody(fb, _):
                self.block(t, n, pix, t.mul(fb, self.block_f), self.vectors, self.block_f,
                           t.mul(fb, words_per_block), name)
                return []
            if full_blocks:
                _for(t, 0, full_blocks, [], fbody)
            if rest_f:
                nv = -(-rest_f // self.lanes)
                self.block(t, n, pix, full_blocks * self.block_f, nv, rest_f,
                           t.c(full_blocks * words_per_block), name)

        def windows(n, pix):  # read in place, or copied (int16 for pmaddwd and smlal) first
            if not self.direct:
                et = "i8" if self.xbytes == 1 else "i16"
                for i, (a, _, _) in enumerate(pix):
                    self.im2col(t, a, scratch[i], 8, et, self.kp)
                pix = [(scratch[i], oh, ow) for i, (_, oh, ow) in enumerate(pix)]
            filters(n, pix)
        self.pixel_blocks(t, self.pixels, windows)
