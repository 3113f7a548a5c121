# dgc-flags.cmake -- shared by dgc's toolchain files: C/C++/ASM flags that agree with the dgc
# target DGC_TARGET, from `dgc targets --cflags ${DGC_TARGET}` (CPU, FPU, float ABI).
# In:  DGC_TARGET (cache), DGC_TARGET_PATTERN (regex of the targets this toolchain builds for)
# Out: CMAKE_<LANG>_FLAGS_INIT, DGC_CFLAGS, find-root-path modes (the build machine's programs,
#      the target's libraries and headers); try_compile() projects inherit DGC_* variables.

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
if(NOT DGC_EXECUTABLE)
  find_program(DGC_EXECUTABLE NAMES dgc HINTS "$ENV{VIRTUAL_ENV}/bin")
endif()
if(NOT DGC_TARGET MATCHES "${DGC_TARGET_PATTERN}")
  message(FATAL_ERROR "DGC_TARGET '${DGC_TARGET}' is not built by ${CMAKE_CURRENT_LIST_FILE} "
                      "(it takes targets matching ${DGC_TARGET_PATTERN}; see `dgc targets`)")
endif()
if(NOT DEFINED DGC_CFLAGS OR NOT DGC_CFLAGS_TARGET STREQUAL DGC_TARGET)
  if(NOT DGC_EXECUTABLE)
    message(FATAL_ERROR "dgc not found: put it on PATH or pass -DDGC_EXECUTABLE=/path/to/dgc")
  endif()
  execute_process(COMMAND "${DGC_EXECUTABLE}" targets --cflags "${DGC_TARGET}"
                  OUTPUT_VARIABLE DGC_CFLAGS ERROR_VARIABLE err RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "`dgc targets --cflags ${DGC_TARGET}` failed: ${err}")
  endif()
  set(DGC_CFLAGS_TARGET "${DGC_TARGET}")
endif()
foreach(lang C CXX ASM)
  set(CMAKE_${lang}_FLAGS_INIT "${DGC_CFLAGS}")
endforeach()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES DGC_TARGET DGC_EXECUTABLE DGC_CFLAGS DGC_CFLAGS_TARGET)
