#!/usr/bin/env bash
# Peak RSS and speed of one ckz build on a large two-step history (make_large.py's output):
# keyframe and link (default lossy levels, against the keyframe file), compress and
# decompress, at each thread count given. Prints one line per run:
#   what threads seconds MB/s(of the checkpoint) peak-RSS-MB
# and leaves the outputs in WORK_DIR (delete them after).
#
#   tools/history/bench_large.sh CKZ DATA_DIR WORK_DIR [THREADS...]   (default threads: 1 2)
set -euo pipefail
ckz=$1 data=$2 work=$3
shift 3
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
steps=("$data"/step_*.safetensors)
[ ${#steps[@]} -ge 2 ] || { echo "bench_large: need two step_*.safetensors in $data" >&2; exit 1; }
key=${steps[0]} next=${steps[1]}
mkdir -p "$work"
mb() { echo $(( $(stat -c %s "$1") / 1000000 )); }

run() {  # label threads input-size-MB command...
  local label=$1 t=$2 size=$3
  shift 3
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/log" || {
    cat "$work/log" >&2
    exit 1
  }
  read -r secs kb <"$work/time"
  awk -v l="$label" -v t="$t" -v s="$secs" -v kb="$kb" -v mb="$size" \
    'BEGIN { printf "%-18s T%s %8.1f s %8.1f MB/s %8.0f MB peak RSS\n", l, t, s, mb / s, kb / 1024 }'
}

for t in "${threads[@]}"; do
  rm -f "$work"/kf.ckz "$work"/link.ckz "$work"/out.safetensors
  run "keyframe compress" "$t" "$(mb "$key")" "$ckz" compress "$key" -o "$work/kf.ckz" -T "$t" -q
  run "link compress" "$t" "$(mb "$next")" \
    "$ckz" compress "$next" --ref "$work/kf.ckz" -o "$work/link.ckz" -T "$t" -q
  run "keyframe decompress" "$t" "$(mb "$key")" \
    "$ckz" decompress "$work/kf.ckz" -o "$work/out.safetensors" -T "$t"
  cmp -s "$work/out.safetensors" "$key" || { echo "bench_large: keyframe not restored" >&2; exit 1; }
  rm -f "$work/out.safetensors"
  run "link decompress" "$t" "$(mb "$next")" \
    "$ckz" decompress "$work/link.ckz" -o "$work/out.safetensors" -T "$t"
  echo "sizes: keyframe $(mb "$work/kf.ckz") MB, link $(mb "$work/link.ckz") MB;" \
    "link output sha1 $(sha1sum <"$work/out.safetensors" | cut -c1-12)"
  rm -f "$work/out.safetensors"
done
