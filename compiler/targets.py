"""The target table: the one place a CPU is added.

A `Target` is data. Stages read its fields (index width, vector width, float ABI...);
no stage compares target names.
"""

from __future__ import annotations

import dataclasses
import functools
import platform

from .errors import UsageError


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    triple: str
    cpu: str
    features: str = ""  # llc -mattr string
    float_abi: str = "hard"  # "hard" | "soft" (llc -float-abi); Linux x86/AArch64 ignore it
    index_bits: int = 64
    vector_bits: int = 128
    vector_regs: int = 16  # architectural vector (or FP) registers the schedule may block into
    cache_bytes: int = 0  # per-core cache (L2) the schedule sizes weight blocks for; 0 = none
    l1_bytes: int = 32 << 10  # L1 data cache (the cost model of out-of-order cores)
    fpu: str = ""  # human-readable FPU name ("" = no FPU: soft float)
    dsp: bool = False
    mve: bool = False
    int8_dot: str = ""  # int8 dot products: "sdot" (AArch64 dotprod) | "vnni" (AVX-512 VNNI) | "pmaddwd" (x86)
    #                     | "smlal" (NEON without dot products: int16 multiply-accumulate by element)
    bare_metal: bool = False
    runner: str = "host"  # "host" | "qemu-user" | "qemu-system" | "none"
    board: str = ""  # QEMU machine for qemu-system, qemu-user binary otherwise
    gcc: str = ""  # cross compiler used by runners/linking
    gcc_flags: tuple[str, ...] = ()
    host_flags: tuple[str, ...] = ()  # /proc/cpuinfo flags needed to run natively
    description: str = ""
    # default --ram-limit / --flash-limit: a typical part with this core (0 = no limit)
    ram_bytes: int = 0
    flash_bytes: int = 0
    part: str = ""

    @property
    def simd(self) -> bool:
        """Whether the target has SIMD registers (NEON, Helium, SSE/AVX); 32 vector bits are
        the scalar registers of cores without them."""
        return self.vector_bits >= 64

    @property
    def relocation_model(self) -> str:
        return "static" if self.bare_metal else "pic"

    @property
    def cflags(self) -> tuple[str, ...]:
        """Flags for the C compiler of the code that links with this target's objects: the
        same CPU, FPU and float ABI (`dgc targets --cflags T`; the CMake toolchain files use it)."""
        if self.bare_metal:
            return self.gcc_flags
        if self.name == "host":
            return ("-march=native",) if self.triple.startswith("x86_64") else ("-mcpu=native",)
        if self.triple.startswith("x86_64"):
            return (f"-march={self.cpu}",)
        if self.cpu == "generic":
            cpu = "-march=armv8-a" if self.triple.startswith("aarch64") else "-march=armv7-a"
        else:
            cpu = f"-mcpu={self.cpu}"
        return (cpu, *(f for f in self.gcc_flags if f != "-static"))

    @property
    def family(self) -> str:
        return "mcu" if self.bare_metal else "cpu"


_A64 = dict(triple="aarch64-unknown-linux-gnu", runner="qemu-user", board="qemu-aarch64", vector_regs=32,
            cache_bytes=512 << 10,
            gcc="aarch64-linux-gnu-gcc", gcc_flags=("-static",), fpu="neon", features="+neon")
_A32 = dict(triple="armv7a-unknown-linux-gnueabihf", index_bits=32, runner="qemu-user", cache_bytes=256 << 10,
            board="qemu-arm", gcc="arm-linux-gnueabihf-gcc", fpu="vfpv4+neon",
            gcc_flags=("-static", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"),
            features="+neon,+vfp4")
_M = dict(index_bits=32, bare_metal=True, runner="qemu-system", gcc="arm-none-eabi-gcc")


def _m(name, triple, board, fpu, gcc_flags, features="", **kw):
    soft = fpu == ""
    return Target(name=name, triple=triple, cpu=name, board=board, fpu=fpu,
                  float_abi="soft" if soft else "hard", features=features,
                  vector_bits=128 if kw.get("mve") else 32,
                  vector_regs=8 if kw.get("mve") else (32 if not soft else 8),
                  gcc_flags=("-mthumb", f"-mcpu={name}",
                             "-mfloat-abi=" + ("soft" if soft else "hard"), *gcc_flags),
                  **_M, **kw)


_TABLE = [
    Target("x86-64", "x86_64-unknown-linux-gnu", "x86-64", vector_bits=128, cache_bytes=256 << 10,
           fpu="sse2", int8_dot="pmaddwd", description="baseline x86-64 (SSE2)"),
    Target("x86-64-v3", "x86_64-unknown-linux-gnu", "x86-64-v3", vector_bits=256, cache_bytes=256 << 10,
           fpu="avx2+fma", int8_dot="pmaddwd", host_flags=("avx2", "fma"), description="Haswell+ (AVX2, FMA)"),
    Target("x86-64-v4", "x86_64-unknown-linux-gnu", "x86-64-v4", vector_bits=512, vector_regs=32,
           cache_bytes=1 << 20, int8_dot="pmaddwd",
           fpu="avx512", host_flags=("avx512f", "avx512bw", "avx512vl", "avx512dq"),
           description="Skylake-X+ (AVX-512)"),
    Target("icelake", "x86_64-unknown-linux-gnu", "icelake-server", vector_bits=512, vector_regs=32,
           cache_bytes=1 << 20, fpu="avx512", int8_dot="vnni",
           host_flags=("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"),
           description="Ice Lake+ (AVX-512 with VNNI int8 dot products)"),
    Target("aarch64", cpu="generic", description="ARMv8-A generic, NEON", int8_dot="smlal", **_A64),
    Target("cortex-a53", cpu="cortex-a53", description="ARMv8-A in-order", int8_dot="smlal", **_A64),
    Target("cortex-a72", cpu="cortex-a72", description="ARMv8-A out-of-order", int8_dot="smlal", **_A64),
    Target("cortex-a76", cpu="cortex-a76", description="ARMv8.2-A (dotprod)", int8_dot="sdot",
           **{**_A64, "features": "+neon,+dotprod"}),
    Target("armv7a", cpu="generic", description="ARMv7-A Linux, hard float, NEON", int8_dot="smlal", **_A32),
    Target("cortex-a7", cpu="cortex-a7", description="ARMv7-A Cortex-A7, hard float, NEON",
           int8_dot="smlal", **_A32),
    _m("cortex-m0plus", "thumbv6m-none-eabi", "mps2-an385", "", (),
       description="ARMv6-M, soft float (runs on the Cortex-M3 board)",
       ram_bytes=264 << 10, flash_bytes=2 << 20, part="RP2040-class: 264 KiB RAM, 2 MiB flash"),
    _m("cortex-m3", "thumbv7m-none-eabi", "mps2-an385", "", (),
       description="ARMv7-M, soft float",
       ram_bytes=128 << 10, flash_bytes=1 << 20, part="STM32F2-class: 128 KiB RAM, 1 MiB flash"),
    _m("cortex-m4", "thumbv7em-none-eabihf", "mps2-an386", "fpv4-sp-d16",
       ("-mfpu=fpv4-sp-d16",), features="+vfp4d16sp", dsp=True,
       description="ARMv7E-M, single-precision FPU, DSP",
       ram_bytes=256 << 10, flash_bytes=2 << 20, part="STM32F4-class: 256 KiB RAM, 2 MiB flash"),
    _m("cortex-m7", "thumbv7em-none-eabihf", "mps2-an500", "fpv5-d16",
       ("-mfpu=fpv5-d16",), features="+fp-armv8d16", dsp=True,
       description="ARMv7E-M, double-precision FPU, DSP",
       ram_bytes=1 << 20, flash_bytes=2 << 20, part="STM32H7-class: 1 MiB RAM, 2 MiB flash"),
    _m("cortex-m33", "thumbv8m.main-none-eabihf", "mps2-an505", "fpv5-sp-d16",
       ("-mfpu=fpv5-sp-d16",), features="+fp-armv8d16sp", dsp=True,
       description="ARMv8-M mainline, single-precision FPU, DSP",
       ram_bytes=768 << 10, flash_bytes=2 << 20, part="STM32U5-class: 768 KiB RAM, 2 MiB flash"),
    _m("cortex-m55", "thumbv8.1m.main-none-eabihf", "mps3-an547", "fpv5-d16+mve.fp",
       ("-mfpu=auto",), features="+mve.fp", dsp=True, mve=True,
       description="ARMv8.1-M, Helium (MVE) with float",
       ram_bytes=2 << 20, flash_bytes=4 << 20, part="Corstone-300-class: 2 MiB RAM, 4 MiB flash"),
    dataclasses.replace(
        _m("cortex-m85", "thumbv8.1m.main-none-eabihf", "", "fpv5-d16+mve.fp",
           ("-mfpu=auto",), features="+mve.fp", dsp=True, mve=True,
           description="ARMv8.1-M, Helium; compile-only (QEMU 7.2 has no M85)",
           ram_bytes=2 << 20, flash_bytes=4 << 20, part="Corstone-310-class: 2 MiB RAM, 4 MiB flash"),
        runner="none"),
]


@functools.cache
def host_target() -> Target:
    """The machine dgc runs on, as a target (x86-64 or AArch64 Linux)."""
    from .backend import host_cpu

    arch = platform.machine()
    if arch in ("x86_64", "AMD64"):
        base = next(t for t in _TABLE if t.name == "x86-64")
    elif arch in ("aarch64", "arm64"):
        base = dataclasses.replace(next(t for t in _TABLE if t.name == "aarch64"),
                                   runner="host", board="", gcc="cc", gcc_flags=())
    else:
        raise UsageError(f"unsupported host architecture '{arch}'",
                         hint="use an explicit --target")
    bits, regs = _host_vectors(base)
    flags = _cpu_flags()
    if base.name == "x86-64":
        dot = "vnni" if bits == 512 and "avx512_vnni" in flags else "pmaddwd"
    else:
        dot = "sdot" if "asimddp" in flags else "smlal"
    return dataclasses.replace(base, name="host", cpu=host_cpu(), host_flags=(), int8_dot=dot,
                               vector_bits=bits, vector_regs=regs,
                               cache_bytes=_host_cache_bytes(2) or base.cache_bytes,
                               l1_bytes=_host_cache_bytes(1) or base.l1_bytes,
                               description=f"this machine ({host_cpu()})")


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read().split("flags", 1)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []


def _host_cache_bytes(level: int) -> int:
    """This CPU's per-core data (or unified) cache size at `level` from sysfs (0 when it is
    not there)."""
    import glob

    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            with open(f"{d}/level") as f:
                lv = f.read().strip()
            with open(f"{d}/type") as f:
                kind = f.read().strip()
            with open(f"{d}/size") as f:
                size = f.read().strip()
        except OSError:
            continue
        if lv == str(level) and kind != "Instruction" and size[:-1].isdigit():
            return int(size[:-1]) << {"K": 10, "M": 20}.get(size[-1], 0)
    return 0


def _host_vectors(base: Target) -> tuple[int, int]:
    """Vector width and register count of this machine's CPU."""
    flags = _cpu_flags()
    if "avx512f" in flags:
        return 512, 32
    if "avx2" in flags:
        return 256, 16
    return base.vector_bits, base.vector_regs


def all_targets() -> list[Target]:
    return [host_target(), *_TABLE]


def get_target(name: str) -> Target:
    for t in all_targets():
        if t.name == name:
            return t
    valid = ", ".join(t.name for t in all_targets())
    raise UsageError(f"unknown target '{name}'", hint=f"choose one of: {valid}")


def host_can_run(t: Target) -> bool:
    """True when code for `t` runs natively here (same ISA, CPU has the features)."""
    if t.name == "host":
        return True
    if t.runner != "host" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    flags = _cpu_flags()
    return all(flag in flags for flag in t.host_flags) if flags else not t.host_flags
