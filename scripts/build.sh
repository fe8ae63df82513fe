#!/usr/bin/env bash
# Configures and builds CKZ into build/ (or $CKZ_BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CKZ_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${CKZ_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
ninja -C "$build"
