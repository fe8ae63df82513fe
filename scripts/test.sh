#!/usr/bin/env bash
# Everything CI checks, from nothing: install dependencies, build with warnings as errors, run
# the whole test suite (unit, interop, fuzz-corpus replay), the cross-build determinism check
# (g++/clang++ at -O0/-O3 decode and encode the same bytes), then a short libFuzzer run of every
# fuzz target under ASan+UBSan.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
CKZ_BUILD_TYPE=RelWithDebInfo "$root/scripts/build.sh" -DCKZ_WERROR=ON
ctest --test-dir "$root/build" --output-on-failure -j "$(nproc)"
"$root/scripts/determinism.sh"
CKZ_FUZZ_SECONDS=${CKZ_FUZZ_SECONDS:-20} "$root/scripts/fuzz-smoke.sh"
echo "test.sh: all checks passed"
