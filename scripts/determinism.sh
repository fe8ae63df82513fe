#!/usr/bin/env bash
# Cross-build determinism: the decoder and the encoder must give the same bytes whatever the
# compiler, the optimization level and the thread count (spec: decoding is bit-exact; the
# writer's output never depends on -T). Builds the `ckz` CLI four ways — g++ and clang++-14,
# each at -O0 (Debug, asserts on) and -O3 (Release, -DNDEBUG); never -ffast-math — plus a fifth,
# g++ -O3 -march=native, where the CPU has FMA (the build where a compiler could fuse a*b+c;
# CMakeLists.txt passes -ffp-contract=off so that it does not), then:
#
#   (a) decodes every valid conformance vector with each build (-T 1, and -T 2 for the -O3
#       builds) and checks that all outputs are byte-identical and equal to the case's
#       expected/ files;
#   (b) compresses a fixed set of inputs with each build and the same options, and checks that
#       every build writes byte-identical .ckz files (and the same exit status): every
#       safetensors/.pt file of the conformance expected outputs, the real torch.save files of
#       tests/data/torch, and a small real training history (tools/history/make_history.py,
#       MLP, 3 checkpoints as .pt, safetensors and Trainer folders, and as released BF16
#       weights-only shard folders, whose links take KeySplit, spec 7.10) compressed as chains:
#       lossy by default (format 0.7: rate-distortion levels, spec 7.9 — LevelResidual weights,
#       LevelDirect first moments stepped by the parent's v, LevelLog second moments, cml
#       streams; the script checks that the links hold level tensors), levels at another
#       quality with RDOQ (-Q 2 --rdoq 0.5), ExCP (--excp), ExCP with 3-bit packed indices and
#       with cm-coded indices (where the CLI has --entropy cm), --lossless, and --lossless
#       --entropy cm (cmf-coded values, where the CLI has them), and --lstm (format 0.9, the
#       LSTM level model, spec 7.11, where libtorch is installed) and --excp --lstm (format
#       0.11, lstm-cm indices, spec 7.11.7); the -O3 builds also with
#       -T 2; every chain must be written (exit 0), and the last link of each chain is then
#       decoded by every build.
#
# Build folders are kept (ninja and ccache make a second run fast).
#
#   scripts/determinism.sh              # prints a table per check, exits 1 on any difference
#
# Environment:
#   CKZ_DET_BUILD_DIR  build folders (default <repo>/build-det/{gcc,clang}-{O0,O3})
#   CKZ_DET_HISTORY    use this history folder instead of training one (it must hold
#                      step_*.pt, step_*.safetensors and checkpoint-*/ of one run)
#   CKZ_DET_KEEP=1     keep the scratch folder with every output (path printed at the end)
#   CKZ_DET_NATIVE=0   leave out the -march=native build (default: built where the CPU has FMA)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CKZ_DET_BUILD_DIR:-$ROOT/build-det}"
JOBS="$(nproc 2> /dev/null || echo 2)"
PY=/usr/bin/python3
start=$(date +%s)

for tool in g++ clang++-14 cmake ninja "$PY"; do
  command -v "$tool" > /dev/null || { echo "determinism: $tool not found" >&2; exit 1; }
done

# name: C compiler, C++ compiler, build type, flags for that build type
configs=(gcc-O0 gcc-O3 clang-O0 clang-O3)
declare -A cc=([gcc-O0]=gcc [gcc-O3]=gcc [clang-O0]=clang-14 [clang-O3]=clang-14
               [gcc-native]=gcc)
declare -A cxx=([gcc-O0]=g++ [gcc-O3]=g++ [clang-O0]=clang++-14 [clang-O3]=clang++-14
                [gcc-native]=g++)
declare -A btype=([gcc-O0]=Debug [gcc-O3]=Release [clang-O0]=Debug [clang-O3]=Release
                  [gcc-native]=Release)
declare -A bflags=([gcc-O0]=-O0 [gcc-O3]="-O3 -DNDEBUG" [clang-O0]=-O0 [clang-O3]="-O3 -DNDEBUG"
                   [gcc-native]="-O3 -DNDEBUG -march=native")
# The runs compared in each check: every build at -T 1, the -O3 builds at -T 2 as well.
runs=(gcc-O0:1 gcc-O3:1 clang-O0:1 clang-O3:1 gcc-O3:2 clang-O3:2)
if [[ "${CKZ_DET_NATIVE:-1}" == 1 ]] && grep -q -w fma /proc/cpuinfo 2> /dev/null; then
  configs+=(gcc-native)
  runs+=(gcc-native:1)
fi

for c in "${configs[@]}"; do
  dir="$BUILD/$c"
  t0=$(date +%s)
  echo "== build $c (${cxx[$c]} ${bflags[$c]}) in $dir"
  cmake -S "$ROOT" -B "$dir" -G Ninja \
    -DCMAKE_C_COMPILER="${cc[$c]}" -DCMAKE_CXX_COMPILER="${cxx[$c]}" \
    -DCMAKE_BUILD_TYPE="${btype[$c]}" \
    -DCMAKE_C_FLAGS_"${btype[$c]^^}"="${bflags[$c]}" \
    -DCMAKE_CXX_FLAGS_"${btype[$c]^^}"="${bflags[$c]}" \
    -DCKZ_BUILD_TESTS=OFF -DCKZ_BUILD_FUZZERS=OFF > /dev/null
  ninja -C "$dir" -j "$JOBS" ckz > "$dir/ninja.log" 2>&1 || { cat "$dir/ninja.log"; exit 1; }
  echo "   built in $(( $(date +%s) - t0 )) s"
done
ckz_of() { echo "$BUILD/$1/tools/ckz"; }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/ckz-determinism.XXXXXX")"
if [[ "${CKZ_DET_KEEP:-0}" == 1 ]]; then
  trap 'echo "determinism: outputs kept in $scratch"' EXIT
else
  trap 'rm -rf "$scratch"' EXIT
fi

failed=0
rows=()

# Compares the output folders $scratch/<check>/<item>/<run>/ of every run with the first one
# (and with $expected when given). Also compares the exit statuses in .../<run>.rc.
compare() {
  local check="$1" item="$2" expected="${3:-}" first="" status="same" rcs="" r
  for r in "${runs[@]}"; do
    local d="$scratch/$check/$item/${r/:/-T}"
    rcs+="$(cat "$d.rc") "
    if [[ -z "$first" ]]; then
      first="$d"
    elif ! diff -r -q "$first" "$d" > /dev/null 2>&1 || ! cmp -s "$first.rc" "$d.rc"; then
      status="DIFFERENT: $(basename "$first") vs $(basename "$d")"
      diff -r -q "$first" "$d" 2>&1 | head -n 5 | sed 's/^/      /' >&2 || true
    fi
  done
  if [[ "$status" == same && -n "$expected" ]] && ! diff -r -q "$expected" "$first" > /dev/null 2>&1; then
    status="DIFFERENT from expected/"
    diff -r -q "$expected" "$first" 2>&1 | head -n 5 | sed 's/^/      /' >&2 || true
  fi
  [[ "$status" == same ]] || failed=1
  local files bytes
  files=$(find "$first" -type f | wc -l)
  bytes=$(find "$first" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  rows+=("$(printf '%-12s %-56s %3s files %10s bytes  exit %-14s %s' "$check" "$item" "$files" "$bytes" "$(tr ' ' '\n' <<< "${rcs% }" | sort -u | tr '\n' ' ')" "$status")")
}

# run <check> <item> <run> <subcommand> <args...>: runs `ckz <subcommand> -q -T N <args...>`
# with <run>'s build and thread count; its output folder is $scratch/<check>/<item>/<run>/,
# its exit status and messages go beside it (.rc, .log).
run() {
  local check="$1" item="$2" r="$3" sub="$4"; shift 4
  local cfg="${r%%:*}" threads="${r##*:}"
  local d="$scratch/$check/$item/$cfg-T$threads"
  mkdir -p "$d"
  set +e
  "$(ckz_of "$cfg")" "$sub" -q -T "$threads" "$@" > "$d.log" 2>&1
  echo $? > "$d.rc"
  set -e
}

# ---- (a) decode every valid conformance vector ----
echo "== decode: every valid conformance vector, ${#runs[@]} runs each"
cases=$("$PY" -c '
import json, sys
m = json.load(open(sys.argv[1]))
print("\n".join(c["name"] for c in m["cases"] if c["kind"] == "valid"))' "$ROOT/conformance/manifest.json")
ndecode=0
for name in $cases; do
  for r in "${runs[@]}"; do
    out="$scratch/decode/$name/${r/:/-T}"
    run decode "$name" "$r" decompress -f "$ROOT/conformance/cases/$name/input.ckz" --output-dir "$out"
  done
  expected="$ROOT/conformance/cases/$name/expected"
  [[ -d "$expected" ]] || expected=""  # a reader-defined output (spec 8): no expected/
  compare decode "$name" "$expected"
  ndecode=$((ndecode + 1))
done

# ---- (b) encode ----
inputs="$scratch/inputs"
mkdir -p "$inputs"
# Every distinct safetensors/.pt file among the expected outputs, and the torch.save fixtures.
"$PY" - "$ROOT/conformance" "$ROOT/tests/data/torch" "$inputs" << 'EOF'
import hashlib, json, os, shutil, sys
conf, torch_dir, out = sys.argv[1:4]
seen = set()
m = json.load(open(os.path.join(conf, "manifest.json")))
for c in m["cases"]:
    for e in c.get("expected", []):
        if not e["path"].endswith((".safetensors", ".pt")) or "/" in e["path"] or e["size"] == 0:
            continue
        if e["sha256"] in seen:
            continue
        seen.add(e["sha256"])
        shutil.copy(os.path.join(conf, "cases", c["name"], "expected", e["path"]),
                    os.path.join(out, c["name"] + "--" + e["path"]))
for name in sorted(os.listdir(torch_dir)):
    if name.endswith(".pt"):
        shutil.copy(os.path.join(torch_dir, name), os.path.join(out, "torch--" + name))
EOF
nfiles=0
echo "== encode: $(ls "$inputs" | wc -l) single files, ${#runs[@]} runs each"
for f in "$inputs"/*; do
  item="$(basename "$f")"
  for r in "${runs[@]}"; do
    out="$scratch/encode/$item/${r/:/-T}"
    mkdir -p "$out"
    run encode "$item" "$r" compress -f "$f" -o "$out/out.ckz"
  done
  compare encode "$item"
  nfiles=$((nfiles + 1))
done

# A small real history: 3 checkpoints, 2 steps apart, in the three layouts.
history="${CKZ_DET_HISTORY:-}"
if [[ -z "$history" ]]; then
  history="$scratch/history"
  echo "== training a small history (MLP, 6 steps, checkpoint every 2) into $history"
  "$PY" "$ROOT/tools/history/make_history.py" --model mlp --steps 6 --every 2 \
    --format all,released-bf16 --quiet --out "$history"
fi
shopt -s nullglob
pt=("$history"/step_*.pt)
st=("$history"/step_*.safetensors)
trainer=("$history"/checkpoint-*)
released=("$history"/released-bf16/step*)  # (format 0.8) weights only, BF16: KeySplit links
shopt -u nullglob
if [[ ${#pt[@]} -lt 2 || ${#st[@]} -lt 2 || ${#trainer[@]} -lt 2 ]]; then
  echo "determinism: $history does not hold a history in every layout" >&2
  exit 1
fi
modes=(levels levels-q2-rdoq excp excp-packed-3bit lossless)
# The context-model coder of the indices, where this version has it.
"$(ckz_of gcc-O0)" --help 2>&1 | grep -- '--entropy.*cm' > /dev/null && modes+=(excp-cm)
# The cmf context model of lossless F32 values (format 0.6), where this version has it.
"$(ckz_of gcc-O0)" --help 2>&1 | grep 'cmf' > /dev/null && modes+=(lossless-cm)
# (0.9) The LSTM level model, where this version has it and libtorch is installed: every build
# runs the same trainer program (the gcc -O3 build's ckz-lstm-train, whose model is the same
# for the same link: its budget is in steps), and must write the same links with the model.
if "$(ckz_of gcc-O0)" --help 2>&1 | grep -- '--lstm ' > /dev/null &&
   ninja -C "$BUILD/gcc-O3" -j "$JOBS" ckz-lstm-train > "$BUILD/gcc-O3/ninja-lstm.log" 2>&1; then
  export CKZ_LSTM_TRAIN="$BUILD/gcc-O3/tools/ckz-lstm-train"
  modes+=(lstm)
  # (0.11) The model on the ExCP path's indices (lstm-cm, spec 7.11.7).
  "$(ckz_of gcc-O0)" --help 2>&1 | grep -- 'with --excp, indices mixed' > /dev/null &&
    modes+=(excp-lstm)
fi
echo "== encode: chains of ${#pt[@]} checkpoints (.pt, safetensors, Trainer) x ${#modes[@]} modes (${modes[*]}), ${#runs[@]} runs each"
nchains=0
for layout in pt safetensors trainer; do
  case $layout in
    pt) members=("${pt[@]}") ;;
    safetensors) members=("${st[@]}") ;;
    trainer) members=("${trainer[@]}") ;;
  esac
  for mode in "${modes[@]}"; do
    case $mode in
      levels) opts=() ;;  # the default of links since format 0.7
      levels-q2-rdoq) opts=(-Q 2 --rdoq 0.5) ;;
      excp) opts=(--excp) ;;
      excp-packed-3bit) opts=(--excp --entropy packed --bits 3) ;;
      excp-cm) opts=(--excp --entropy cm) ;;
      lossless) opts=(--lossless) ;;
      lossless-cm) opts=(--lossless --entropy cm) ;;
      lstm) opts=(--lstm) ;;
      excp-lstm) opts=(--excp --lstm) ;;
    esac
    item="history-$layout-$mode"
    for r in "${runs[@]}"; do
      out="$scratch/chain/$item/${r/:/-T}"
      run chain "$item" "$r" compress -f "${opts[@]}" "${members[@]}" -o "$out"
    done
    compare chain "$item"
    # Identical refusals would compare equal: every chain must have been written.
    if [[ "$(cat "$scratch/chain/$item/gcc-O0-T1.rc")" != 0 ]]; then
      echo "determinism: $item: ckz compress failed:" >&2
      head -n 5 "$scratch/chain/$item/gcc-O0-T1.log" >&2
      failed=1
      continue
    fi
    last="$(ls "$scratch/chain/$item/gcc-O0-T1" | sort -V | tail -n 1)"
    # The level modes must have written level tensors (cml streams) into the links. (grep
    # reads all of it: with -q it may exit first, and pipefail would take ckz's SIGPIPE.)
    if [[ "$mode" == levels* ]] &&
       ! "$(ckz_of gcc-O3)" info "$scratch/chain/$item/gcc-O0-T1/$last" |
         grep ' levels ' > /dev/null; then
      echo "determinism: $item: the last link holds no level tensor" >&2
      failed=1
    fi
    # A short history may not pay for a model (the writer then keeps the links without it);
    # the lstm conformance vectors of (a) exercise the model's decoding in any case.
    if [[ "$mode" == *lstm ]] &&
       ! "$(ckz_of gcc-O3)" info "$scratch/chain/$item/gcc-O0-T1/$last" |
         grep '^lstm model' > /dev/null; then
      echo "   note: $item: the model did not pay on this short history (links without it)"
    fi
    # The chain also decodes identically with every build (the last link, through its parents).
    for r in "${runs[@]}"; do
      out="$scratch/chain-decode/$item/${r/:/-T}"
      run chain-decode "$item" "$r" decompress -f "$scratch/chain/$item/gcc-O0-T1/$last" --output-dir "$out"
    done
    compare chain-decode "$item"
    nchains=$((nchains + 1))
  done
done

# (0.8) A released weights-only BF16 history: its lossless links take the KeySplit predictor
# (spec 7.10). Only with a history that has it and a build that knows it.
if [[ ${#released[@]} -ge 2 ]] && "$(ckz_of gcc-O3)" info "$ROOT/conformance/cases/full-keysplit-link/input.ckz" > /dev/null 2>&1; then
  echo "== encode: a released BF16 history of ${#released[@]} checkpoints (KeySplit links)"
  item="history-released-bf16"
  for r in "${runs[@]}"; do
    run chain "$item" "$r" compress -f "${released[@]}" -o "$scratch/chain/$item/${r/:/-T}"
  done
  compare chain "$item"
  last="$(ls "$scratch/chain/$item/gcc-O0-T1" 2> /dev/null | sort -V | tail -n 1)"
  if [[ -z "$last" ]] ||
     ! "$(ckz_of gcc-O3)" info "$scratch/chain/$item/gcc-O0-T1/$last" | grep ' keysplit ' > /dev/null; then
    echo "determinism: $item: the last link has no KeySplit tensor" >&2
    failed=1
  else
    for r in "${runs[@]}"; do
      run chain-decode "$item" "$r" decompress -f "$scratch/chain/$item/gcc-O0-T1/$last" \
        --output-dir "$scratch/chain-decode/$item/${r/:/-T}"
    done
    compare chain-decode "$item"
    nchains=$((nchains + 1))
  fi
fi

echo "== results (runs: ${runs[*]})"
printf '%s\n' "${rows[@]}"
elapsed=$(( $(date +%s) - start ))
if [[ $failed -ne 0 ]]; then
  echo "determinism: FAILED: outputs differ between builds (see the rows above)" >&2
  exit 1
fi
echo "determinism: all ${#rows[@]} checks identical across ${#runs[@]} runs ($ndecode vectors decoded, $nfiles files and $nchains chains encoded), ${elapsed} s"
