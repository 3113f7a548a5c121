# aarch64-linux-gnu.cmake -- CMake toolchain file: AArch64 Linux with Debian's cross gcc.
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=$(dgc --cmake-dir)/toolchains/aarch64-linux-gnu.cmake \
#         -DDGC_TARGET=cortex-a53
# DGC_TARGET (default aarch64) sets -mcpu/-march to match (`dgc targets --cflags`); programs and
# tests run under qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR) on an x86 build machine.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(DGC_TARGET "aarch64" CACHE STRING "dgc target (see `dgc targets`)")
set(DGC_TARGET_PATTERN "^(aarch64|cortex-a53|cortex-a72|cortex-a76)$")
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
include("${CMAKE_CURRENT_LIST_DIR}/dgc-flags.cmake")
