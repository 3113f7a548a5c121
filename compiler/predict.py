"""An analytic cost model of a schedule: ranks `dgc tune` candidates without running them.

`predict(entry, schedule, target)` estimates the cycles of one op (`entry`: an item of
`--dump-schedule`; `schedule`: its tile/reduce/outer/vectorize fields) from the target's data
only: vector lanes and registers, the cache size. Out-of-order cores (`in_order` false: x86,
Cortex-A72/A76) have their own model, `_predict_ooo` (FMA latency, L1 weight traffic,
depthwise register pressure); vectorized depthwise convs take it on every core (their window
inputs and weights, not the accumulators alone, fill the registers). On in-order cores the
model is otherwise a register-block roofline:

  - the inner step of a register block of r rows x v vectors loads v weight vectors and r
    broadcast inputs and issues r*v FMAs; a core issues two of either per cycle, so a step
    costs max(r*v, r + v) / 2 cycles; lanes a vector leaves unused (a width below the lanes)
    are paid for anyway;
  - accumulators, weight vectors and one broadcast that exceed the register file spill:
    every spilled register costs a load and a store per step;
  - per block: storing r*v accumulators and the loop overhead (~8 cycles);
  - weights that do not fit a quarter of the cache are read again for every block row unless
    an outer (cache) block keeps a slice of them resident: 4 extra cycles per weight vector;
  - reduction steps of s > 1 channels save loop overhead (1 cycle per step / s);
  - an unvectorized op costs one cycle per scalar MAC.

Other ops (elementwise generics, transposes) cost their loop volume / lanes. It is a ranking
model: `rank` orders candidates (on bare-metal targets its best few re-ranked by the llvm-mca
model, dgc.predict_mca); `dgc compile --predict` takes the first of every op, `dgc tune`
measures them most promising first. Its rank correlation with measured costs is checked in
tests/test_tune.py on the trials of a tuning database.

Int8 SMLAD convs (Cortex-M DSP cores) have their own model, `smlad_cycles`: llvm-mca of the K
loop's hand-scheduled assembly (passes/smlad_asm, the code the compiler emits) per register
block, times the blocks of the op.
"""

from __future__ import annotations

import math


DEPTHWISE = "linalg.depthwise_conv_2d_nhwc_hwc"


def _lanes(target) -> int:
    return max(1, target.vector_bits // 32)


def in_order(target) -> bool:
    """Cores that issue in order (Cortex-M, Cortex-A7/A53/A55, the generic ARM Linux targets
    modelled on them): a loop's increment and branch cost issue slots there; out-of-order cores
    (x86, Cortex-A72/A76) run them beside the FMAs."""
    return target.bare_metal or not target.triple.startswith("x86_64") and \
        target.cpu not in ("cortex-a72", "cortex-a76")


def predict(entry: dict, schedule: dict, target) -> float:
    from dgc.passes.schedule import row_reduction

    if row_reduction(entry):
        return _predict_row_reduction(entry, schedule, target)
    if not in_order(target) or entry["linalg"] == DEPTHWISE and _lanes(target) > 1:
        # depthwise convs with vectors, in-order cores too: the window's registers decide
        # (every depthwise conv of mobilenet_v2 and v1_025, exact QEMU counts: the window
        # model's cheapest block is 1.02x the best on Cortex-A53 and 1.08x on ARMv7-A,
        # geomean over 19; the register block model below, which has no window, 1.36x and 1.28x)
        return _predict_ooo(entry, schedule, target)
    loops, kinds, linalg = entry["loops"], entry["kinds"], entry["linalg"]
    volume = math.prod(loops)
    if not schedule.get("vectorize", True):
        return float(volume)
    lanes = _lanes(target)
    tile, reduce, outer = schedule["tile"], schedule["reduce"], schedule["outer"]
    block = _block_dims(entry, tile, lanes)
    if block is None:
        return volume / lanes
    r, w, v, useful, cols_i = block
    depthwise = _depthwise(entry)
    # registers: accumulators, weight vectors (depthwise/pool: input vectors), one broadcast
    live = r * v + v + 1
    spill = max(0, live - target.vector_regs)
    red = math.prod(d for d, k in zip(loops, kinds) if k == "r")
    steps = (volume / red) / (r * w) * red  # block count x reduction length
    step = max(r * v, r + v) / 2 + 2 * spill
    step_s = 1  # loop control per reduction step, saved by steps of several channels
    if reduce and len(reduce) == len(loops) and kinds[-1] == "r":
        step_s = max(1, reduce[-1])
    cycles = steps * (step + 1.0 / step_s) / useful
    blocks = (volume / red) / (r * w)
    cycles += blocks * (r * v + 8)
    if not depthwise and target.cache_bytes:
        weight_bytes, _ = _working_sets(entry, schedule, cols_i)
        if weight_bytes > target.cache_bytes // 4 and not any(outer):
            cycles += steps * v * 4
    return cycles


def _predict_row_reduction(entry: dict, schedule: dict, target) -> float:
    """A row reduction (`schedule.row_reduction`), one row per tile: per row, its vectors
    (load and combine, two per cycle), a step of loop control per chunk, the
    chunk's fold into one register and its log2(lanes) shuffle steps; vectors of a chunk
    beyond half the register file spill (a load and a store each)."""
    loops = entry["loops"]
    lanes = _lanes(target)
    n = loops[-1]
    rows = math.prod(loops[:-1])
    chunk = (schedule.get("reduce") or [0])[-1] or n
    vecs = -(-chunk // lanes)
    chunks = -(-n // chunk)
    spill = max(0, vecs - target.vector_regs // 2)
    per_chunk = vecs / 2 + 2 * spill + BLOCK_OVERHEAD / 2 + 2 * math.log2(max(2, lanes))
    return rows * chunks * per_chunk


def _working_sets(entry: dict, schedule: dict, cols_i: int) -> tuple[int, bool]:
    """(bytes of weights the op touches between two uses of the same weight tile, whether
    the output channels loop runs outside other loops), from the loop order. Output channels
    innermost (the natural order): all the weights (of the cache block, with an `outer` tile)
    between two uses. Further out: one register tile's weights, reused across the pixels
    (rows) inside."""
    loops, kinds, tile = entry["loops"], entry["kinds"], schedule["tile"]
    outer = schedule.get("outer") or [0] * len(loops)
    within = [o or d for o, d in zip(outer, loops)]
    order = schedule.get("order") or [i for i, k in enumerate(kinds) if k == "p"]
    multi = [i for i in order if tile[i] and within[i] > tile[i]]
    red = math.prod(d for d, k in zip(loops, kinds) if k == "r")
    if cols_i not in multi or multi[-1] == cols_i:
        return 4 * within[cols_i] * red, False
    return 4 * max(1, tile[cols_i]) * red, True


def _block_dims(entry: dict, tile: list[int], lanes: int):
    """(rows, width, vectors, useful lane fraction, column loop) of an op's register block, or
    None for ops without one (elementwise generics, transposes)."""
    loops, kinds, linalg = entry["loops"], entry["kinds"], entry["linalg"]
    p = [i for i, k in enumerate(kinds) if k == "p"]
    if linalg.startswith(("linalg.conv_2d", "linalg.depthwise", "linalg.pooling")):
        rows_i, cols_i = 2, 3
    elif len(p) >= 2 and "r" in kinds:
        rows_i, cols_i = p[-2], p[-1]
    else:
        return None
    r, w = max(1, tile[rows_i]), max(1, tile[cols_i])
    v = -(-w // lanes)
    return r, w, v, w / (v * lanes), cols_i


def _depthwise(entry: dict) -> bool:
    """Depthwise convs and poolings: (n, oh, ow, c, kh, kw), no reduction over channels."""
    return not entry["linalg"].startswith(("linalg.conv_2d", "linalg.matmul", "linalg.batch_matmul")) and \
        "r" in entry["kinds"] and len(entry["loops"]) == 6


FMA_LATENCY = 4  # cycles: Zen 4, Golden Cove, Cortex-A76
HIDDEN_CHAIN = 64  # reduction steps per block that an out-of-order window overlaps with the next
BLOCK_OVERHEAD = 8  # cycles of loop control and set-up per register block


# cores whose 512-bit FMAs and loads take both 256-bit halves of the datapath (one per cycle);
# the others with AVX-512 (Zen 5, Intel server cores) and every AVX2/NEON core issue two per cycle
HALF_RATE_512 = ("znver4", "icelake-client", "tigerlake", "rocketlake", "cannonlake")


def _vector_rate(target) -> float:
    """Vector FMAs (or loads) of the target's width per cycle, by the core's published data."""
    return 1.0 if target.vector_bits >= 512 and target.cpu in HALF_RATE_512 else 2.0


def _predict_ooo(entry: dict, schedule: dict, target) -> float:
    """The model for out-of-order cores (x86, Cortex-A72/A76). A reduction step of a register
    block of r rows x v vectors costs the most of:

      - its FMAs, r*v, at two per cycle (`_vector_rate`: one for 512-bit vectors on cores
        that split them in two, Zen 4);
      - its loads: v weight vectors and r broadcasts at the same rate, a broadcast counting
        half (it is folded into the FMA as a memory operand);
      - the FMA latency, when the block's accumulation chain is long enough (HIDDEN_CHAIN
        steps) that the out-of-order window cannot overlap it with the next block: a block of
        fewer than latency x pipes accumulators waits on its own results (a 1x16 matmul
        block: 2.8x the time of 4x16, measured);
      - the weights' traffic from L2, two cycles per weight vector, when the weights used
        between two uses of the same weight tile exceed L1 (`_working_sets`: all of them in
        the natural loop order; a 1-row block reads each of them once per row: 2x on 128x128
        and 256x256 weights, measured);
    plus one cycle per register the block needs beyond the register file (spills; a 1-row
    block takes its weights as the FMAs' memory operands, so they need none). Depthwise
    convs and poolings read (r + kw - 1) input vectors (with strides and dilations, the (r-1)*sw
    + (kw-1)*dw + 1 pixels the row's windows span) and kw weight vectors per kernel row,
    poolings none (the 1-D window decomposition keeps the overlapping inputs in registers), so
    wide blocks run out of registers (24 pixels: 2.6x the time of 4, measured). A step of two
    input channels costs r shuffles more: LLVM loads each pixel's pair as one 64-bit value and
    splats the halves on the FP ports the FMAs use, where steps of 1 or 4 fold the broadcast
    into the FMA (seen in the assembly; 1.3-1.5x on small 1x1 convs, measured). Blocks also pay
    their stores and loop control, r*v + 8, and, in loop orders with the output channels outside
    the pixels, four cycles per output line when the output exceeds L1: a block's lines are
    written out of sequence, so the prefetcher does not bring them (1x1 convs over 16 to 576
    input channels: 1.22x to 1.007x slower with the output channels outermost, measured, i.e.
    ~4/reduction length; four cycles fit). Depthwise inputs beyond L2 pay for the pixels a block
    spans (`_lines_beyond_l2`). Parameters are the cores' published data, except the broadcast's
    half load and HIDDEN_CHAIN, which were read off the x86 samples of bench/predictor.py
    --fresh (lenet5, ds_cnn, resnet8, mobilenet_v1_025, tiny_bert); its held-out rank
    correlation is in README.md."""
    loops, kinds = entry["loops"], entry["kinds"]
    volume = math.prod(loops)
    if not schedule.get("vectorize", True):
        return float(volume)
    lanes = _lanes(target)
    tile, reduce = schedule["tile"], schedule["reduce"]
    block = _block_dims(entry, tile, lanes)
    if block is None:
        return volume / lanes
    r, w, v, useful, cols_i = block
    rate = _vector_rate(target)
    red = math.prod(d for d, k in zip(loops, kinds) if k == "r")
    blocks = (volume / red) / (r * w)
    refill = streamed = 0.0
    chain_row, pressure = 1, 0  # FMAs of a step in sequence on one accumulator; extra cycles a step
    spill_cost = 1  # cycles a step per register the block needs beyond the register file
    sixteen = x86_16_registers(target)
    if _depthwise(entry):
        kh, kw = loops[4], loops[5]
        _, sw, _, dw = entry.get("window") or (1, 1, 1, 1)
        steps, chain = kh, kh * kw  # a step: one kernel row
        fmas = r * v * kw
        span = (r - 1) * sw + (kw - 1) * dw + 1  # input pixels of a block's kernel row
        wv = 0 if entry["linalg"].startswith("linalg.pooling") else kw * v  # a kernel row's weight vectors
        loads = span * v + wv
        live = r * v + span * v + wv
        weights_l2 = 0
        streamed = 0 if in_order(target) else _lines_beyond_l2(entry, target) * span
        if sixteen and wv:
            # AVX2/SSE (16 registers), depthwise convs: a kernel row is kw dependent FMAs on
            # each accumulator; a window that does not fit the registers is not spilled but
            # read again, each FMA taking its input from memory (seen in the assembly); and
            # accumulators beyond half the registers cost ACC_PRESSURE cycles a kernel row
            # (LLVM hoists the loads of the unrolled window columns and spills; 14x8 and 7x16
            # blocks over 3x3 windows 1.6-2.7x the time of 7x8)
            chain_row = kw
            if live > target.vector_regs:
                loads, live = r * v * kw + wv, r * v + v + 1
            pressure = ACC_PRESSURE * max(0, r * v - target.vector_regs // 2)
    else:
        steps = chain = red
        unroll = math.prod(max(1, x) for x, k in zip(reduce, kinds) if k == "r") \
            if reduce and len(reduce) == len(loops) else 1
        fmas, loads, live = r * v, 0.5 * r + v, r * v + v + 1
        if sixteen:  # a store and a load per spilled register, measured (Zen 3)
            spill_cost = 2
        if r == 1:  # each weight vector feeds one FMA per step: its memory operand, no register
            # (x86-64-v3, 16 registers: held-out conv rho 0.72 -> 0.77, large-image convs
            # 0.82 -> 0.85; no change with 32 registers, where such blocks fit anyway)
            live = r * v + 1
        elif live + v > target.vector_regs or unroll > 1 and 4 * r * v >= 3 * target.vector_regs:
            # no room for the next step's weights beside this one's: LLVM hoists the weight
            # loads of every unrolled step and spills (14x32 blocks over 2 or 12 unrolled
            # steps: 10 and 27 stack accesses per step on AVX-512, seen in the assembly); so
            # it does once the accumulators fill 3/4 of the registers (AVX-512, a window row
            # unrolled against one step: 28x6 accumulators over 5x5x1 1.9x the time, 24x16 over
            # 3x3x16 1.2-1.5x; 16 or fewer accumulators 0.73-1.36x, either way). With 16
            # registers it hoists one step ahead only (a 2x32 AVX2 block over 12 unrolled steps:
            # 10 stack accesses in all, seen in the assembly)
            live = r * v + v * (min(unroll, 2) if sixteen else unroll) + 1
        weight_set, strided = _working_sets(entry, schedule, cols_i)
        # L2 feeds L1 32 bytes a cycle on the x86 cores modelled (Zen 3, Zen 4): a 256-bit
        # vector a cycle, a 512-bit one two
        weights_l2 = v * (target.vector_bits / 512 if sixteen else 1) if weight_set > target.l1_bytes else 0
        if strided and 4 * volume / red > target.l1_bytes:
            refill = 4 * r * v  # its r x v output lines fetched for writing, out of sequence
        if reduce and len(reduce) == len(loops) and kinds[-1] == "r" and reduce[-1] == 2:
            fmas += r  # the splats of a channel pair
    step = max(fmas / rate, loads / rate, 2 * weights_l2,
               chain_row * FMA_LATENCY * min(1.0, chain / HIDDEN_CHAIN))
    step += spill_cost * max(0, live - target.vector_regs) + pressure
    return blocks * (steps * step / useful + r * v + BLOCK_OVERHEAD + refill) + streamed


ACC_PRESSURE = 4  # cycles a kernel row per depthwise accumulator beyond half of 16 registers (x86)


def x86_16_registers(target) -> bool:
    """x86 with 16 vector registers (AVX2, SSE): where the depthwise rules of `_predict_ooo`
    and the 10-accumulator register blocks (`passes.schedule._block`) were measured (Zen 3,
    natively). AVX-512 (32 registers) keeps the window model and half-file blocks."""
    return target.triple.startswith("x86_64") and target.vector_regs == 16


def _lines_beyond_l2(entry: dict, target) -> float:
    """64-byte lines of a depthwise conv's or pooling's input beyond L2 (0 when it fits). On an
    out-of-order core each costs one cycle per input pixel a block row spans, (r - 1) x
    stride + (kw - 1) x dilation + 1 (`_predict_ooo`). Such an input comes from L3 or
    memory, and a block walks each channel slice of all the pixels it spans, not one
    ascending stream per input row; with one output pixel per block the hardware prefetcher
    sees ascending addresses in each input row. Measured on Zen 4 (1 MB L2; 3x3, 96
    channels, each block size alone; bench/predictor.py --fresh): the best block has 4
    pixels for inputs of 0.3, 1.2 and 2.4 MB, 2 pixels for 4.8 MB (stride 1 or 2) and 1
    pixel for 9.8 MB (stride 2); there, 10-pixel blocks take 1.37-1.48x the time of 1-pixel
    blocks, where the compute model alone puts them 2.4x faster. Inputs within L2 keep the
    compute estimate."""
    n, oh, ow, c, kh, kw = entry["loops"]
    sh, sw, dh, dw = entry.get("window") or (1, 1, 1, 1)
    in_bytes = 4 * n * c * ((oh - 1) * sh + (kh - 1) * dh + 1) * ((ow - 1) * sw + (kw - 1) * dw + 1)
    if not target.cache_bytes or in_bytes <= target.cache_bytes:
        return 0.0
    return (in_bytes - target.cache_bytes) / 64


REFINE = 12  # candidates the llvm-mca model re-ranks where the tuner's cost is llvm-mca's (~0.3-1 s each)


def predict_mca_refines(target) -> bool:
    """Targets whose ranking the llvm-mca model (dgc.predict_mca) refines: those `dgc tune`
    costs by llvm-mca's cycle estimate of the instructions QEMU counts - bare-metal cores
    (Cortex-M) and the ARM Linux targets run in qemu-user. There it predicts what the tuner
    measures (bench/predictor.py, held-out mobilenet_v2 + resnet18 + old_opset_cnn, 43
    conv/matmul signatures: Cortex-A72 0.990 against 0.524 for this model; Cortex-M7 0.988
    against 0.636 on lenet5, ds_cnn, resnet8, mobilenet_v1_025; int8 convs of the ds_cnn,
    resnet8 and mobilenet_v1_025 QDQ models, 30 signatures: ARMv7-A 0.977 against 0.409,
    AArch64 0.961 against 0.526). On x86, where the tuner
    times the code, it ranks worse than this model (held-out, 43 signatures on Zen 5: 0.57
    against 0.79): llvm-mca assumes every load hits the cache."""
    return bool(target.bare_metal) or target.runner == "qemu-user"


def rank(entry: dict, space: list[dict], target, refine: int = REFINE) -> list[int]:
    """Indices of `space` (schedules of the op `entry`), cheapest predicted first; ties keep
    their order. On `predict_mca_refines` targets the `refine` first by this model are ranked again by
    the llvm-mca model (one compile each), and go first in that order; an op the llvm-mca
    model cannot take keeps this model's order. Deterministic."""
    costs = [predict(entry, c, target) for c in space]
    order = sorted(range(len(space)), key=lambda i: (costs[i], i))
    if refine <= 1 or not predict_mca_refines(target) or "tile" not in space[0]:
        return order
    from dgc.errors import DgcError

    from .predict_mca import predict_mca

    head, mca = order[:refine], {}
    for i in head:
        try:
            mca[i] = predict_mca(entry, space[i], target)
        except ValueError:  # no one-op model of this op (transposes, generics)
            return order
        except DgcError:  # the candidate does not compile alone: last
            mca[i] = math.inf
    return sorted(head, key=lambda i: (mca[i], head.index(i))) + order[refine:]


TRUST_GAIN = 1.10  # analytic-only targets: predicted gain needed to leave the default


def best_predicted(entry: dict, target) -> dict:
    """The candidate schedule (`dgc.tuning.candidates`, default included) of the op `entry`
    ranked cheapest (`rank`); the default wins ties. Where only this analytic model ranks
    (not `predict_mca_refines`: x86), the default heuristics stand unless the model predicts
    at least TRUST_GAIN: smaller predicted gains are within its error (held-out rank
    correlation with measured times 0.78-0.82, `bench/predictor.py`; bench/tuned.py --target
    host measured such choices as losses of up to 15%). Poolings keep the default there
    outright: the model ranks their blocks barely better than chance (rho 0.19 over the zoo's
    poolings; LeNet's 2x2 max pooling with half the default's rows ran 1.2% slower, though
    predicted > TRUST_GAIN faster). Deterministic."""
    import random

    from .tuning import candidates

    space = candidates(entry, target, random.Random(0), limit=1 << 30)
    if not predict_mca_refines(target) and entry["linalg"].startswith("linalg.pooling"):
        return space[0]
    best = rank(entry, space, target)[0]
    if not predict_mca_refines(target) and \
            predict(entry, space[0], target) < TRUST_GAIN * predict(entry, space[best], target):
        return space[0]
    return space[best]


def best_predicted_dsp(d: dict) -> dict:
    """`dgc compile --predict` for an int8 SMLAD op (`d`: an item of `dsp_kernels.describe`): for
    a conv, the choice of least `smlad_cycles`, except that among the choices within FLASH_SLACK
    of it the one with the least code is taken (the fewest SMLADs per unrolled step: a 4x2 block
    unrolled 16 times is ~1.8 KB of Thumb-2 per block variant); a depthwise conv takes
    `dw_unroll_choice`. The dot-product kernels (SDOT, VPDPBUSD, VPMADDWD), which have no
    cycle model, keep their default block."""
    from dgc.passes.dsp_kernels import KERNEL

    if d.get("kernel") != KERNEL:
        return {"dsp_block": list(d["block"]), "dsp_unroll": d["unroll"]}
    if "depthwise" in d["linalg"]:
        return dw_unroll_choice(d)
    cands = [{"dsp_block": list(b), "dsp_unroll": u} for b in d["space"] for u in d["unrolls"]]
    cost = smlad_cycles_many(d["loops"], cands)
    best = min(cost)
    near = [i for i, c in enumerate(cost) if c <= best * (1 + FLASH_SLACK)]
    return cands[min(near, key=lambda i: (_code(cands[i]), cost[i], i))]


FLASH_SLACK = 0.03
DW_FULL_UNROLL = 8  # channel groups (of 4) up to which `dw_unroll_choice` unrolls a depthwise conv's group loop


def dw_unroll_choice(d: dict) -> dict:
    """`dgc compile --predict` for an int8 SMLAD depthwise conv (`d`: an item of
    `dsp_kernels.describe`): one pixel per block (the hand-scheduled window step), and the loop
    over its channel groups of 4 fully unrolled (the smallest unroll count >= the groups) when
    it has 2 to DW_FULL_UNROLL groups; otherwise the default. A rule read off exact counts, not
    a cycle model: on Cortex-M7, every choice (3 blocks x 6 unroll counts) of the 10
    depthwise signatures of DS-CNN and MobileNet v1 0.25 int8. With 2-8 groups (4
    signatures), this choice had the fewest cycles of the 18 every time (0.4-1.4% of the
    model), for at most 2.9 KB more code per signature. With 16 groups, full unrolling was the
    best or ranked 2nd or 4th (0.06-4.5% of the model) for ~10 KB per signature, so the flash
    it takes is left to `dgc tune`. With 32 or more groups, no choice was consistently best.
    A partial unroll by 2 cost more than the default on all 9 signatures with more than 2
    groups. The same 18 choices on Cortex-M4 and Cortex-M33 (their llvm-mca models): the rule's
    choice had the fewest cycles on all 4 signatures with 2-8 groups there too. `dgc tune`
    measures this choice first after the default."""
    groups = d["loops"][3] // 4
    full = [u for u in d["unrolls"] if u >= max(2, groups)]
    if 2 <= groups <= DW_FULL_UNROLL and full and [1, 4] in [list(b) for b in d["space"]]:
        return {"dsp_block": [1, 4], "dsp_unroll": min(full)}
    return {"dsp_block": list(d.get("block") or d["space"][0]), "dsp_unroll": d.get("unroll", 0)}


def _code(c: dict) -> int:
    from dgc.passes import smlad_asm

    block, unroll = c["dsp_block"], c["dsp_unroll"]
    return block[0] * block[1] * smlad_asm.CHUNKS.get(unroll, 8)


LLVM_CPI = 0.75  # cycles per `smlad_order_cost` instruction of LLVM's own K loops (see smlad_cycles)
BLOCK_CYCLES = 12  # a register block's cost besides its K loop and its outputs' epilogue
_mca_cache: dict[tuple, float] = {}


def smlad_cycles(loops: list[int], choice: dict) -> float:
    return smlad_cycles_many(loops, [choice])[0]


def smlad_cycles_many(loops: list[int], choices: list[dict]) -> list[float]:
    """Estimated Cortex-M7 cycles of an int8 SMLAD conv's K loops (`loops`: [N, OH, OW, F, KH,
    KW, C]) under each choice {"dsp_block": [P, F(, 16)], "dsp_unroll": U}: for each register
    block of the op (full blocks and the pixel/filter remainders), the cycles llvm-mca gives the
    hand-scheduled K loop (`smlad_asm.kernel`'s chunks, the loop's compare and branch included)
    plus BLOCK_CYCLES. A block smlad_asm cannot write (more than 8 accumulators, int8 weights
    with 8) runs LLVM's own loop: `smlad_order_cost` instructions per MAC x LLVM_CPI (0.73 and
    0.79 measured on ResNet-8 int8's 2x2 and 4x2-int16 loops). Work outside the K loops (im2col,
    the requantizing epilogue) is the same for every choice and left out: this ranks choices of
    one op. llvm-mca runs once per call, every block shape a code region."""
    from dgc.passes import smlad_asm

    n, oh, ow, nf, kh, kw, c = loops
    words = -(-kh * kw * c // 4)
    pixels = n * oh * ow
    plans = []  # per choice: [(count, kind, v)]: kind "mca" (v: a key of _mca_cache) or "fixed" (v: cycles)
    for ch in choices:
        block, unroll = ch["dsp_block"], ch.get("dsp_unroll", 0)
        bp, bf, w16 = block[0], block[1], len(block) > 2
        plan = []
        for np_, p in ((pixels // bp, bp), (int(pixels % bp > 0), pixels % bp)):
            for nb, f in ((nf // bf, bf), (int(nf % bf > 0), nf % bf)):
                if not (np_ and nb):
                    continue
                count = np_ * nb
                plan.append((count, "fixed", BLOCK_CYCLES))
                if smlad_asm.kernel(p, f, words, 4 * words, w16, unroll) is None:
                    macs = 4 * p * f * words
                    plan.append((count, "fixed", smlad_order_cost([p, f] + [16] * w16, unroll) * macs * LLVM_CPI))
                    continue
                chunk, reps, rest = smlad_asm.chunking(words, unroll)
                if reps:
                    plan.append((count * reps, "mca", (p, f, chunk, w16, True)))
                if rest:
                    plan.append((count, "mca", (p, f, rest, w16, False)))
        plans.append(plan)
    _fill_mca({key for plan in plans for _, kind, key in plan if kind == "mca"} - set(_mca_cache))
    return [sum(k * (_mca_cache[v] if kind == "mca" else v) for k, kind, v in plan) for plan in plans]


def _fill_mca(keys: set) -> None:
    """llvm-mca (Cortex-M7) cycles per run of each K-loop chunk (p, f, words, int16 weights,
    looped), one code region each, into _mca_cache."""
    import re

    from dgc.passes import smlad_asm
    from dgc.tools import run_tool, tool_path

    if not keys:
        return
    regs = [f"r{i}" for i in range(13)] + ["lr"]
    keys = sorted(keys)
    text = []
    for i, (p, f, words, w16, looped) in enumerate(keys):
        n = p * f
        ops = smlad_asm.schedule(p, f, words, 4 * words, w16, smlad_asm.temporaries(p, f))
        body = smlad_asm.render(ops, lambda a: regs[a], lambda q: regs[n + (q == "x")], lambda t: regs[n + 2 + t])
        text += [f"# LLVM-MCA-BEGIN r{i}", body.replace("\n\t", "\n")]
        if looped:
            text += [f"ldr.w {regs[n + 2]}, [sp]", f"cmp {regs[n + 1]}, {regs[n + 2]}", "bne.w #-64"]
        text.append("# LLVM-MCA-END")
    iterations = 20
    out = run_tool([tool_path("llvm-mca"), "-mtriple=thumbv7em-none-eabi", "-mcpu=cortex-m7",
                    f"-iterations={iterations}", "-"], input="\n".join(text).encode() + b"\n",
                   what="llvm-mca on the SMLAD kernels").stdout.decode()
    cycles = [int(m) for m in re.findall(r"^Total Cycles:\s+(\d+)", out, re.M)]
    if len(cycles) != len(keys):
        raise RuntimeError(f"llvm-mca reported {len(cycles)} regions for {len(keys)}")
    for key, c in zip(keys, cycles):
        _mca_cache[key] = c / iterations


def smlad_order_cost(block: list, unroll: int) -> float:
    """Instructions per multiply-accumulate of an int8 SMLAD conv's K loop with register block
    `block` ([P, F] or [P, F, 16]) unrolled `unroll` times, counted per word of 4 reduction
    int8: P activation loads and P SXTB16 pairs (2P), the F filters' weights (F loads and 2F
    SXTB16 as int8, 2F loads as int16 pairs), 2PF SMLAD, 2 more per accumulator past the 8 the
    Cortex-M register file holds beside the pointers (spills), and the loop's compare and
    branch spread over the unrolled copies (LLVM's default unrolls 4x). `smlad_cycles` uses it
    for the blocks LLVM compiles."""
    p, f = block[0], block[1]
    weights = 2 * f if len(block) > 2 else 3 * f
    copies = {0: 4}.get(unroll, max(1, unroll))
    return (2 * p + weights + 2 * p * f + 2 * max(0, p * f - 8) + 2 / copies) / (4 * p * f)


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(x):
        order = sorted(range(len(x)), key=lambda i: x[i])
        rk = [0.0] * len(x)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                rk[order[k]] = (i + j) / 2
            i = j + 1
        return rk
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else 0.0
