#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest (unit, interop, packaging).
# Fuzzing runs separately: ctest -L fuzz (needs a clang build, see README).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "${BUILD_DIR:-$ROOT/build}"
ctest --output-on-failure -LE fuzz -j "${TEST_JOBS:-2}" "$@"
