# dgcConfig.cmake -- find_package(dgc CONFIG) with CMAKE_PREFIX_PATH (or dgc_DIR) = $(dgc --cmake-dir).
# Provides dgc_add_model() (see dgc.cmake) and DGC_EXECUTABLE; toolchain files are in
# ${dgc_TOOLCHAIN_DIR}.
include("${CMAKE_CURRENT_LIST_DIR}/dgc.cmake")
set(dgc_TOOLCHAIN_DIR "${CMAKE_CURRENT_LIST_DIR}/toolchains")
if(NOT DGC_EXECUTABLE)
  set(dgc_FOUND FALSE)
  set(dgc_NOT_FOUND_MESSAGE "the dgc program was not found: put it on PATH or set DGC_EXECUTABLE")
endif()
