"""dgc's CMake package: `dgcConfig.cmake` (find_package(dgc CONFIG)), `dgc.cmake` (the
`dgc_add_model()` function, also usable with include()) and `toolchains/` (cross toolchain files
whose compiler flags agree with a dgc target). `dgc --cmake-dir` prints this directory."""

import os

CMAKE_DIR = os.path.dirname(os.path.abspath(__file__))
