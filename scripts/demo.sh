#!/usr/bin/env bash
# The main job, from nothing: install dependencies, build, train a small real model (an MLP
# with Adam on Fashion-MNIST, torch.save every 20 steps: weights, Adam state, step), compress
# its history as a reference chain — lossless keyframes, ExCP-shrunk links — verify it,
# restore every checkpoint and load it back in PyTorch; then the same history losslessly.
#
#   scripts/demo.sh [make_history.py options...]     e.g. --model chargpt
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
CKZ_BUILD_TYPE=Release "$root/scripts/build.sh"
bin=$root/build/tools
out=$root/out/demo
rm -rf "$out"
mkdir -p "$out"

echo "== 1. training a history (real PyTorch)"
/usr/bin/python3 "$root/tools/history/make_history.py" --model mlp --steps 200 --every 20 \
  --format pt --out "$out/history" "$@" | tail -n 3

echo "== 2. compressing it as a chain (keyframe every 10, links shrunk the ExCP way)"
"$bin/ckz" compress -q "$out/history" -o "$out/ckz" --keyframe-interval 10

echo "== 3. verifying every file (chunk checksums and content ids, through the chain)"
"$bin/ckz" verify -q "$out"/ckz/*.ckz && echo "all $(ls "$out"/ckz/*.ckz | wc -l) files verified"

echo "== 4. restoring every checkpoint"
mkdir -p "$out/restored"
printf "%-20s %12s %12s %8s %6s\n" checkpoint original ckz ratio depth
total_in=0; total_out=0
for f in "$out"/history/*.pt; do
  name=$(basename "$f")
  "$bin/ckz" decompress -q "$out/ckz/$name.ckz" -o "$out/restored/$name"
  a=$(stat -c %s "$f"); b=$(stat -c %s "$out/ckz/$name.ckz")
  depth=$("$bin/ckzinfo" --json "$out/ckz/$name.ckz" | sed -n 's/.*"depth": \([0-9]*\).*/\1/p')
  printf "%-20s %12s %12s %7.2fx %6s\n" "$name" "$a" "$b" "$(awk "BEGIN{print $a/$b}")" "${depth:-0}"
  total_in=$((total_in + a)); total_out=$((total_out + b))
done
printf "%-20s %12s %12s %7.2fx\n" total "$total_in" "$total_out" "$(awk "BEGIN{print $total_in/$total_out}")"

echo "== 5. PyTorch loads every restored checkpoint (structure, step, lr, config exact)"
/usr/bin/python3 "$root/tools/history/compare_checkpoints.py" "$out/history" "$out/restored"

echo "== 6. the same history losslessly (every checkpoint restores byte-identical)"
"$bin/ckz" compress -q --lossless "$out/history" -o "$out/ckz-lossless"
same=0
for f in "$out"/history/*.pt; do
  name=$(basename "$f")
  "$bin/ckz" decompress -q "$out/ckz-lossless/$name.ckz" -o "$out/restored-lossless.pt" -f
  cmp -s "$f" "$out/restored-lossless.pt" && same=$((same + 1))
done
lossless=$(du -cb "$out"/ckz-lossless/*.ckz | tail -n 1 | cut -f1)
echo "lossless: $total_in -> $lossless bytes ($(awk "BEGIN{printf \"%.2f\", $total_in/$lossless}")x), $same of $(ls "$out"/history/*.pt | wc -l) restored byte-identical"

echo "== 7. inside the last file"
# Not "| head": ckzinfo would die of SIGPIPE once its output outgrows a pipe buffer, and
# pipefail would make that the demo's exit status.
info="$("$bin/ckzinfo" "$(ls "$out"/ckz/*.ckz | sort -V | tail -n 1)")"
sed -n '1,24p' <<< "$info"
echo "Outputs are in $out."
