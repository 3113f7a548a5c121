# arm-none-eabi.cmake -- CMake toolchain file: bare-metal Cortex-M with the GNU Arm toolchain.
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=$(dgc --cmake-dir)/toolchains/arm-none-eabi.cmake \
#         -DDGC_TARGET=cortex-m7
# DGC_TARGET (default cortex-m7) picks -mcpu/-mfpu/-mfloat-abi to match dgc's objects for that
# target (`dgc targets --cflags cortex-m7`); dgc_add_model() uses it as its default TARGET.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(DGC_TARGET "cortex-m7" CACHE STRING "dgc target (see `dgc targets`)")
set(DGC_TARGET_PATTERN "^cortex-m")
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)  # no startup code or linker script here
include("${CMAKE_CURRENT_LIST_DIR}/dgc-flags.cmake")
