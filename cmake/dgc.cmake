# dgc.cmake -- compile ONNX models with dgc as part of a CMake build.
#
#   find_package(dgc CONFIG REQUIRED)      # with CMAKE_PREFIX_PATH=$(dgc --cmake-dir)
#   # or: include(<dgc --cmake-dir>/dgc.cmake)
#   dgc_add_model(kws MODEL kws.onnx TARGET cortex-m7 [NAME kws] [OPTIONS --input-shape x=1x49x10 ...])
#   target_link_libraries(firmware PRIVATE kws)   # links kws.o, adds the directory of kws.h
#
# dgc_add_model(<lib> MODEL <file.onnx> [TARGET <dgc-target>] [NAME <c-name>]
#               [OUTPUT_DIR <dir>] [OPTIONS <dgc compile options>...])
#   Adds a rule that runs `dgc compile` at build time and a static library <lib> holding the
#   object, whose include directories carry the generated <name>.h.
#   TARGET      dgc target; default: DGC_TARGET (set by dgc's toolchain files), else host
#   NAME        C prefix of the model's symbols and files; default: <lib> as a C identifier
#   OUTPUT_DIR  where <name>.o/.h/.d go; default: ${CMAKE_CURRENT_BINARY_DIR}/dgc/<lib>
#   OPTIONS     more `dgc compile` options, e.g. --input-shape, --schedule, --ram-limit
# The rule re-runs only when the model, its external data, a file named in --schedule or
# --calibration, dgc itself (all listed in the depfile `dgc compile --depfile` writes) or the
# command line changes. Works with the Ninja and Makefile generators (CMake >= 3.20).
#
# DGC_EXECUTABLE (cache): the dgc program; default: `dgc` found on PATH.

cmake_minimum_required(VERSION 3.20)
include_guard(GLOBAL)

if(NOT DGC_EXECUTABLE)
  find_program(DGC_EXECUTABLE NAMES dgc HINTS "$ENV{VIRTUAL_ENV}/bin"
               DOC "dgc, the DeepGreen compiler (pip install dgc)")
endif()

function(dgc_add_model lib)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "MODEL;TARGET;NAME;OUTPUT_DIR" "OPTIONS")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "dgc_add_model(${lib}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_MODEL)
    message(FATAL_ERROR "dgc_add_model(${lib}): MODEL <file.onnx> is required")
  endif()
  if(NOT DGC_EXECUTABLE)
    message(FATAL_ERROR "dgc_add_model(${lib}): dgc not found; put it on PATH or set DGC_EXECUTABLE")
  endif()
  if(NOT ARG_TARGET)
    if(DGC_TARGET)
      set(ARG_TARGET "${DGC_TARGET}")
    else()
      set(ARG_TARGET host)
    endif()
  endif()
  if(NOT ARG_NAME)
    string(MAKE_C_IDENTIFIER "${lib}" ARG_NAME)
  endif()
  if(NOT ARG_OUTPUT_DIR)
    set(ARG_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/dgc/${lib}")
  endif()
  get_filename_component(model "${ARG_MODEL}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  get_filename_component(outdir "${ARG_OUTPUT_DIR}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  set(obj "${outdir}/${ARG_NAME}.o")
  set(hdr "${outdir}/${ARG_NAME}.h")
  set(dep "${outdir}/${ARG_NAME}.d")
  set(cmd "${DGC_EXECUTABLE}" compile "${model}" --target "${ARG_TARGET}" --name "${ARG_NAME}"
      -o "${outdir}" --depfile "${dep}" ${ARG_OPTIONS})
  # The Makefile generators do not re-run a rule whose command changed: the command goes into
  # a file that is rewritten (new timestamp) only when its content changes.
  set(stamp "${outdir}/${ARG_NAME}.command")
  string(REPLACE ";" "\n" cmd_text "${cmd}")
  file(MAKE_DIRECTORY "${outdir}")
  file(CONFIGURE OUTPUT "${stamp}" CONTENT "${cmd_text}\n" @ONLY)
  add_custom_command(
    OUTPUT "${obj}" "${hdr}"
    COMMAND ${cmd}
    DEPENDS "${model}" "${stamp}"
    DEPFILE "${dep}"
    COMMENT "dgc: compiling ${ARG_MODEL} for ${ARG_TARGET} (${ARG_NAME}.o, ${ARG_NAME}.h)"
    VERBATIM)
  add_library(${lib} STATIC "${obj}" "${hdr}")
  set_target_properties(${lib} PROPERTIES LINKER_LANGUAGE C)
  target_include_directories(${lib} PUBLIC "${outdir}")
  set_property(TARGET ${lib} PROPERTY DGC_MODEL_NAME "${ARG_NAME}")
  set_property(TARGET ${lib} PROPERTY DGC_TARGET "${ARG_TARGET}")
endfunction()
