#!/usr/bin/env bash
# Fuzz smoke run: builds every fuzz/fuzz_*.cc target with clang-14 + libFuzzer + ASan + UBSan,
# then runs each for CKZ_FUZZ_SECONDS (default 30) on a scratch copy of its seed corpus, with
# its dictionary fuzz/dict/<target without "fuzz_">.dict when there is one. Exits non-zero if a
# target fails to build, crashes, leaks, times out or runs out of memory; prints each run's
# execution count.
#
#   scripts/fuzz-smoke.sh                    # every target, 30 s each
#   CKZ_FUZZ_SECONDS=600 scripts/fuzz-smoke.sh fuzz_container   # one target, longer
#
# Environment:
#   CKZ_FUZZ_SECONDS    seconds per target (default 30)
#   CKZ_FUZZ_BUILD_DIR  build folder (default <repo>/build-fuzz)
#   CKZ_FUZZ_JOBS       parallel fuzzing processes per target (default 1)
#   CKZ_FUZZ_ARGS       extra libFuzzer flags, e.g. "-max_len=16384"
#   CKZ_FUZZ_CXXFLAGS   sanitizer flags (default: -fsanitize=address,undefined
#                       -fno-sanitize-recover=undefined)
#   CKZ_FUZZ_KEEP_CORPUS=1  keep each grown corpus in <build>/fuzz-corpus/<target>/ (otherwise
#                       the scratch copy is deleted)
# Reproducers of failures are kept in <build>/fuzz-artifacts/<target>/ (crash-*, leak-*,
# timeout-*, oom-*), the libFuzzer logs of the last run in <build>/fuzz-logs/<target>/; see
# fuzz/README.md for turning reproducers into corpus files.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CKZ_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECONDS_PER_TARGET="${CKZ_FUZZ_SECONDS:-30}"
JOBS="${CKZ_FUZZ_JOBS:-1}"
read -r -a EXTRA_ARGS <<< "${CKZ_FUZZ_ARGS:-}"
CXXFLAGS="${CKZ_FUZZ_CXXFLAGS:--fsanitize=address,undefined -fno-sanitize-recover=undefined}"

# Targets: the arguments, or every fuzz/fuzz_*.cc.
targets=()
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  for src in "$ROOT"/fuzz/fuzz_*.cc; do
    [[ -e "$src" ]] || continue
    name="$(basename "$src" .cc)"
    targets+=("$name")
  done
fi
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz-smoke: no fuzz/fuzz_*.cc targets found" >&2
  exit 1
fi

for tool in clang-14 clang++-14 cmake; do
  command -v "$tool" > /dev/null || { echo "fuzz-smoke: $tool not found" >&2; exit 1; }
done
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
# A build folder configured with another generator cannot be reused.
if [[ -f "$BUILD/CMakeCache.txt" ]] && ! grep -q "CKZ_BUILD_FUZZERS:BOOL=ON" "$BUILD/CMakeCache.txt"; then
  echo "fuzz-smoke: $BUILD exists but is not a fuzzer build; remove it or set CKZ_FUZZ_BUILD_DIR" >&2
  exit 1
fi

echo "== configure $BUILD"
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCKZ_BUILD_FUZZERS=ON -DCKZ_BUILD_TESTS=OFF -DCKZ_BUILD_TOOLS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$CXXFLAGS" > /dev/null
echo "== build ${targets[*]}"
cmake --build "$BUILD" --parallel "$(nproc 2> /dev/null || echo 2)" --target "${targets[@]}"

# Sanitizer settings: every report is fatal, leaks included; symbolized stacks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:symbolize=1}"
if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" ]] && command -v llvm-symbolizer-14 > /dev/null; then
  export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer-14)"
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/ckz-fuzz-smoke.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

failed=0
summary=()
for target in "${targets[@]}"; do
  binary="$BUILD/fuzz/$target"
  if [[ ! -x "$binary" ]]; then
    echo "fuzz-smoke: $binary was not built" >&2
    exit 1
  fi
  corpus="$scratch/$target/corpus"
  mkdir -p "$corpus"
  if [[ -d "$ROOT/fuzz/corpus/$target" ]]; then
    cp -R "$ROOT/fuzz/corpus/$target/." "$corpus/"
  fi
  artifacts="$BUILD/fuzz-artifacts/$target"
  mkdir -p "$artifacts"
  args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$artifacts/")
  dict="$ROOT/fuzz/dict/${target#fuzz_}.dict"
  if [[ -f "$dict" ]]; then args+=(-dict="$dict"); else dict=""; fi
  if [[ "$JOBS" -gt 1 ]]; then
    args+=(-jobs="$JOBS" -workers="$JOBS")
  fi
  log="$scratch/$target.log"
  echo "== $target: ${SECONDS_PER_TARGET}s, $(find "$corpus" -type f | wc -l) seeds${dict:+, $(basename "$dict")}"
  set +e
  (cd "$scratch/$target" && "$binary" "${args[@]}" "${EXTRA_ARGS[@]}" "$corpus") > "$log" 2>&1
  rc=$?
  set -e
  # With -jobs, each process writes its own fuzz-<n>.log (echoed into the main log when it
  # ends: count each job once, from its own log).
  logs=("$log")
  job_logs=()
  for l in "$scratch/$target"/fuzz-*.log; do [[ -e "$l" ]] && job_logs+=("$l"); done
  stat_logs=("$log")
  if [[ ${#job_logs[@]} -gt 0 ]]; then
    logs+=("${job_logs[@]}")
    stat_logs=("${job_logs[@]}")
  fi
  if [[ "${CKZ_FUZZ_KEEP_CORPUS:-0}" == 1 ]]; then
    rm -rf "$BUILD/fuzz-corpus/$target"
    mkdir -p "$BUILD/fuzz-corpus"
    cp -R "$corpus" "$BUILD/fuzz-corpus/$target"
  fi
  # Keep the logs next to the artifacts.
  mkdir -p "$BUILD/fuzz-logs/$target"
  rm -f "$BUILD/fuzz-logs/$target"/*.log
  cp "${logs[@]}" "$BUILD/fuzz-logs/$target/"
  execs=0
  for l in "${stat_logs[@]}"; do
    n="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$l" | tail -n 1)"
    execs=$((execs + ${n:-0}))
  done
  found="$(grep -h -o -E '(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+' "${logs[@]}" | sort -u | tr '\n' ' ' || true)"
  if [[ $rc -ne 0 ]] || grep -q -E '^==[0-9]+==ERROR|runtime error:|deadly signal|invariant failed' "${logs[@]}"; then
    failed=1
    status="FAILED (exit $rc) ${found}"
    echo "---- $target: first report"
    grep -h -m 1 -A 40 -E '^==[0-9]+==ERROR|runtime error:|invariant failed|deadly signal' \
      "${logs[@]}" || tail -n 40 "$log"
    echo "---- full logs in $BUILD/fuzz-logs/$target/, reproducers in $artifacts/"
  else
    status="ok"
  fi
  echo "$target: $execs executions in ${SECONDS_PER_TARGET}s: $status"
  summary+=("$(printf '%-24s %12s execs %6ss  %s' "$target" "$execs" "$SECONDS_PER_TARGET" "$status")")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
