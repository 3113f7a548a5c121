#!/usr/bin/env bash
# The main job: install everything, build the bundled example model (DS-CNN keyword spotting,
# MLPerf Tiny), compile it for an embedded target (cortex-m7 by default, or $1), run it in QEMU
# and compare with onnxruntime.
set -euo pipefail
cd "$(dirname "$0")"
TARGET="${1:-cortex-m7}"
bash .ci/install
mkdir -p build/demo
python3 -c "import dgc.zoo as z; z.save('ds_cnn', 'build/demo/kws.onnx')"
echo "== dgc compile build/demo/kws.onnx --target $TARGET -o build/demo --name kws"
dgc compile build/demo/kws.onnx --target "$TARGET" -o build/demo --name kws
grep -E "#define KWS_(ARENA_SIZE|INPUT0_SHAPE|OUTPUT0_SHAPE)|int kws_run" build/demo/kws.h
echo "== dgc verify build/demo/kws.onnx --target $TARGET"
dgc verify build/demo/kws.onnx --target "$TARGET"
