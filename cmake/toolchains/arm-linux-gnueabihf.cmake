# arm-linux-gnueabihf.cmake -- CMake toolchain file: ARMv7-A Linux, hard float, with Debian's cross gcc.
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=$(dgc --cmake-dir)/toolchains/arm-linux-gnueabihf.cmake \
#         -DDGC_TARGET=cortex-a7
# DGC_TARGET (default armv7a) sets -mcpu/-march, -mfpu=neon-vfpv4 and -mfloat-abi=hard to match
# (`dgc targets --cflags`); programs and tests run under qemu-arm (CMAKE_CROSSCOMPILING_EMULATOR).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7-a)
set(DGC_TARGET "armv7a" CACHE STRING "dgc target (see `dgc targets`)")
set(DGC_TARGET_PATTERN "^(armv7a|cortex-a7)$")
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L /usr/arm-linux-gnueabihf)
include("${CMAKE_CURRENT_LIST_DIR}/dgc-flags.cmake")
