#!/usr/bin/env bash
# Peak RSS and speed of one ckz build on a large two-step history (make_large.py's output):
# keyframe and link (default lossy levels, against the keyframe file), compress and
# decompress, at each thread count given, then the same run's baselines on the keyframe's
# checkpoint: zstd -3 (the zstd tool, -T threads), byte-shuffle + zstd -3 (ckz_shuffle_zstd,
# beside CKZ in the build) and, with SLOW=1, zstd -19 (hours at 8 GB). Prints one line per run:
#   what threads seconds MB/s(of the checkpoint) peak-RSS-MB user-CPU-s system-CPU-s
# (user CPU is the program's own work; system CPU is the kernel's: page faults, and copying the
# output into the page cache, which on a VM can cost as much as decoding it).
# and leaves the outputs in WORK_DIR (delete them after). With GIB=N and no checkpoints in
# DATA_DIR it first writes a history of two N GiB checkpoints there (make_large.py).
#
#   tools/history/bench_large.sh CKZ DATA_DIR WORK_DIR [THREADS...]   (default threads: 1 2)
#   GIB=8 tools/history/bench_large.sh build/tools/ckz /tmp/big8 /tmp/work8 1 2
#   DECODE_DIR=/dev/shm tools/history/bench_large.sh build/tools/ckz /tmp/big8 /tmp/work8 1 2
set -euo pipefail
ckz=$1 data=$2 work=$3
shift 3
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
here=$(cd "$(dirname "$0")" && pwd)
shuffle=$(dirname "$ckz")/bench/ckz_shuffle_zstd
if [ -n "${GIB:-}" ] && ! compgen -G "$data/step_*.safetensors" >/dev/null; then
  /usr/bin/python3 "$here/make_large.py" "$data" --gib "$GIB"
fi
steps=("$data"/step_*.safetensors)
[ ${#steps[@]} -ge 2 ] || { echo "bench_large: need two step_*.safetensors in $data" >&2; exit 1; }
key=${steps[0]} next=${steps[1]}
mkdir -p "$work"
# Where decompressed checkpoints go: WORK_DIR, or DECODE_DIR (for example /dev/shm, so that a
# decode is timed without the disk: writing gigabytes is throttled to the disk's speed once the
# kernel's dirty-page limit is reached).
out=${DECODE_DIR:-$work}/out.safetensors
mb() { echo $(( $(stat -c %s "$1") / 1000000 )); }

run() {  # label threads input-size-MB command...
  local label=$1 t=$2 size=$3
  shift 3
  /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/log" || {
    cat "$work/log" >&2
    exit 1
  }
  read -r secs kb user sys <"$work/time"
  awk -v l="$label" -v t="$t" -v s="$secs" -v kb="$kb" -v mb="$size" -v u="$user" -v k="$sys" \
    'BEGIN { printf "%-18s T%s %8.1f s %8.1f MB/s %8.0f MB peak RSS %7.1f s user %6.1f s sys\n", l, t, s, mb / s, kb / 1024, u, k }'
}

for t in "${threads[@]}"; do
  rm -f "$work"/kf.ckz "$work"/link.ckz "$out"
  run "keyframe compress" "$t" "$(mb "$key")" "$ckz" compress "$key" -o "$work/kf.ckz" -T "$t" -q
  run "link compress" "$t" "$(mb "$next")" \
    "$ckz" compress "$next" --ref "$work/kf.ckz" -o "$work/link.ckz" -T "$t" -q
  run "keyframe decompress" "$t" "$(mb "$key")" \
    "$ckz" decompress "$work/kf.ckz" -o "$out" -T "$t"
  cmp -s "$out" "$key" || { echo "bench_large: keyframe not restored" >&2; exit 1; }
  rm -f "$out"
  run "link decompress" "$t" "$(mb "$next")" \
    "$ckz" decompress "$work/link.ckz" -o "$out" -T "$t"
  echo "sizes: keyframe $(mb "$work/kf.ckz") MB, link $(mb "$work/link.ckz") MB;" \
    "link output sha1 $(sha1sum <"$out" | cut -c1-12)"
  rm -f "$out"
  # Baselines on the keyframe's checkpoint, each checked to restore it.
  run "zstd -3 compress" "$t" "$(mb "$key")" zstd -3 -T"$t" -q -f "$key" -o "$work/kf.zst"
  run "zstd -3 decompress" "$t" "$(mb "$key")" zstd -d -q -f "$work/kf.zst" -o "$out"
  cmp -s "$out" "$key" || { echo "bench_large: zstd not restored" >&2; exit 1; }
  if [ "${SLOW:-0}" = 1 ]; then
    run "zstd -19 compress" "$t" "$(mb "$key")" zstd -19 -T"$t" -q -f "$key" -o "$work/kf19.zst"
    run "zstd -19 decompress" "$t" "$(mb "$key")" zstd -d -q -f "$work/kf19.zst" -o "$out"
  fi
  if [ -x "$shuffle" ]; then
    run "shuffle+zstd-3 compress" "$t" "$(mb "$key")" "$shuffle" compress 3 "$t" "$key" "$work/kf.bsz"
    run "shuffle+zstd-3 decompress" "$t" "$(mb "$key")" "$shuffle" decompress "$work/kf.bsz" "$out"
    cmp -s "$out" "$key" || { echo "bench_large: shuffle not restored" >&2; exit 1; }
  fi
  echo "baseline sizes: zstd -3 $(mb "$work/kf.zst") MB$([ "${SLOW:-0}" = 1 ] && echo ", zstd -19 $(mb "$work/kf19.zst") MB")$([ -x "$shuffle" ] && echo ", shuffle+zstd-3 $(mb "$work/kf.bsz") MB")"
  rm -f "$out" "$work"/kf*.zst "$work/kf.bsz"
done
