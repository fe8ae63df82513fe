#!/usr/bin/env bash
# The main job, from nothing: install dependencies, build, train a small real model
# (an MLP with Adam on Fashion-MNIST, torch.save every 20 steps: weights, Adam state, step),
# compress its history as a reference chain, verify it, restore every checkpoint, compare it
# with the original and load it back in PyTorch.
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

echo "== 2. compressing it as a chain (lossless, keyframe every 5)"
"$bin/ckz" compress "$out/history" -o "$out/ckz" --keyframe-interval 5

echo "== 3. verifying every file (chunk checksums and content ids)"
"$bin/ckz" verify -q "$out"/ckz/*.ckz && echo "all $(ls "$out"/ckz/*.ckz | wc -l) files verified"

echo "== 4. restoring every checkpoint and comparing it with the original"
mkdir -p "$out/restored"
printf "%-20s %12s %12s %8s %6s %s\n" checkpoint original ckz ratio depth restored
total_in=0; total_out=0
for f in "$out"/history/*.pt; do
  name=$(basename "$f")
  "$bin/ckz" decompress -q "$out/ckz/$name.ckz" -o "$out/restored/$name"
  same=identical; cmp -s "$f" "$out/restored/$name" || same=DIFFERENT
  a=$(stat -c %s "$f"); b=$(stat -c %s "$out/ckz/$name.ckz")
  depth=$("$bin/ckzinfo" --json "$out/ckz/$name.ckz" | sed -n 's/.*"depth": \([0-9]*\).*/\1/p')
  printf "%-20s %12s %12s %7.2fx %6s %s\n" "$name" "$a" "$b" "$(awk "BEGIN{print $a/$b}")" "${depth:-0}" "$same"
  total_in=$((total_in + a)); total_out=$((total_out + b))
  [ "$same" = identical ] || exit 2
done
printf "%-20s %12s %12s %7.2fx\n" total "$total_in" "$total_out" "$(awk "BEGIN{print $total_in/$total_out}")"

echo "== 5. PyTorch loads every restored checkpoint and finds the same tensors"
/usr/bin/python3 - "$out" <<'PY'
import os, sys, torch
out = sys.argv[1]
def same(a, b):
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
names = sorted(f for f in os.listdir(os.path.join(out, "history")) if f.endswith(".pt"))
for n in names:
    a = torch.load(os.path.join(out, "history", n))
    b = torch.load(os.path.join(out, "restored", n))
    assert same(a, b), n
print("torch.load: %d restored checkpoints equal the originals (model, optimizer, step)" % len(names))
PY

echo "== 6. inside the last file"
"$bin/ckzinfo" "$(ls "$out"/ckz/*.ckz | sort -V | tail -n 1)" | head -n 20
echo "Outputs are in $out. Format 0.1 is lossless: every checkpoint restored bit-exactly."
