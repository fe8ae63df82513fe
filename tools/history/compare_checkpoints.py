#!/usr/bin/python3
"""Compares restored torch.save checkpoints with their originals, as PyTorch sees them.

    compare_checkpoints.py ORIGINAL_DIR RESTORED_DIR [--names a.pt b.pt ...]

For each checkpoint: torch.load both, check that the structure (keys, types, shapes, dtypes) is
the same and that everything that is not a float tensor (step, config, lr, param_groups,
scheduler state, integer tensors) is equal; then report how far the float tensors moved:
"bit-exact", or the largest relative error of the model's weights (||w' - w|| / ||w||) and of
the optimizer moments. Exits 1 on any structural difference. Run with /usr/bin/python3.
"""
import argparse
import os
import sys

import torch


def walk(a, b, where, out):
    """Appends (path, original tensor, restored tensor) of float tensors; raises on mismatch."""
    if type(a) is not type(b):
        raise AssertionError("%s: %s vs %s" % (where, type(a).__name__, type(b).__name__))
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            raise AssertionError("%s: %s%s vs %s%s" % (where, a.dtype, tuple(a.shape), b.dtype, tuple(b.shape)))
        if a.is_floating_point():
            out.append((where, a, b))
        elif not torch.equal(a, b):
            raise AssertionError("%s: integer tensor differs" % where)
    elif isinstance(a, dict):
        if list(a) != list(b):
            raise AssertionError("%s: keys differ" % where)
        for k in a:
            walk(a[k], b[k], "%s/%s" % (where, k), out)
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise AssertionError("%s: lengths differ" % where)
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, "%s/%d" % (where, i), out)
    elif a != b and not (isinstance(a, float) and a != a and b != b):
        raise AssertionError("%s: %r vs %r" % (where, a, b))


def relative(a, b):
    n = a.double().norm().item()
    d = (a.double() - b.double()).norm().item()
    return d / n if n > 0 else (0.0 if d == 0 else float("inf"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("original")
    ap.add_argument("restored")
    ap.add_argument("--names", nargs="*")
    args = ap.parse_args()
    names = args.names or sorted(f for f in os.listdir(args.original) if f.endswith((".pt", ".pth")))
    ok = True
    print("%-20s %-10s %16s %16s" % ("checkpoint", "restored", "max weight err", "max moment err"))
    for name in names:
        a = torch.load(os.path.join(args.original, name))
        b = torch.load(os.path.join(args.restored, name))
        floats = []
        try:
            walk(a, b, "", floats)
        except AssertionError as e:
            print("%-20s STRUCTURE DIFFERS: %s" % (name, e))
            ok = False
            continue
        exact = all(torch.equal(x.view(torch.uint8) if x.dim() else x.reshape(1).view(torch.uint8),
                                y.view(torch.uint8) if y.dim() else y.reshape(1).view(torch.uint8))
                    for _, x, y in floats)
        weights = [relative(x, y) for p, x, y in floats if "/exp_avg" not in p and "/momentum" not in p]
        moments = [relative(x, y) for p, x, y in floats if "/exp_avg" in p or "/momentum" in p]
        print("%-20s %-10s %15.3f%% %15.1f%%" % (name, "bit-exact" if exact else "lossy",
                                                100 * max(weights, default=0), 100 * max(moments, default=0)))
    print("torch.load: %d checkpoints load with the same structure and the same non-float values"
          % len(names) if ok else "STRUCTURE DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
