#!/usr/bin/env python3
"""Ideal (static, empirical) entropy of a lossless fp32 link under a few context models.

How much could a context-model coder of float bits (issue 5, "lossless float planes") gain
over the lossless delta CKZ stores today (XOR against the parent's bits, byte planes, zstd,
which sits at the order-0 entropy of the XOR planes)? This prints, per role, the order-0
entropy of the four XOR byte planes and of a field-wise model: sign+exponent given the
parent's sign+exponent, the top 8 mantissa bits given (same exponent?, parent's top 8
mantissa bits), the low 15 mantissa bits at 1 bit each. Empirical conditional entropies are a
floor an adaptive coder approaches from above (dilution over many contexts costs extra).

    /usr/bin/python3 tools/history/float_plane_entropy.py PARENT.pt CHILD.pt
"""
import argparse

import numpy as np
import torch


def float32_tensors(obj, prefix=""):
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(float32_tensors(v, prefix + str(k) + "/"))
    elif torch.is_tensor(obj) and obj.dtype == torch.float32 and obj.numel() > 1:
        out[prefix.rstrip("/")] = obj.numpy().ravel()
    return out


def entropy_bits(counts):
    c = counts[counts > 0].astype(np.float64)
    return float(-(c * np.log2(c / c.sum())).sum())


def conditional_bits(context, symbol, symbols):
    return entropy_bits(np.bincount(context * symbols + symbol)) - entropy_bits(np.bincount(context))


def role_of(name):
    if name.endswith("exp_avg"):
        return "m"
    if name.endswith("exp_avg_sq"):
        return "v"
    return "weight"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parent")
    ap.add_argument("child")
    args = ap.parse_args()
    parent = float32_tensors(torch.load(args.parent))
    child = float32_tensors(torch.load(args.child))
    totals = {}
    for name, x in child.items():
        if name not in parent or parent[name].shape != x.shape:
            continue
        xb = x.view(np.uint32).astype(np.int64)
        rb = parent[name].view(np.uint32).astype(np.int64)
        xor = xb ^ rb
        order0 = sum(entropy_bits(np.bincount((xor >> (8 * p)) & 255, minlength=256))
                     for p in range(4))
        se, pse = xb >> 23, rb >> 23
        same = (se == pse).astype(np.int64)
        top, ptop = (xb >> 15) & 255, (rb >> 15) & 255
        fields = (conditional_bits(pse, se, 512) + conditional_bits(same * 256 + ptop, top, 256)
                  + 15 * len(xb))
        t = totals.setdefault(role_of(name), [0, 0.0, 0.0])
        t[0] += 4 * len(xb)
        t[1] += order0 / 8
        t[2] += fields / 8
    print("| role | raw bytes | XOR planes, order 0 | field-wise contexts | gain |")
    print("|---|---:|---:|---:|---:|")
    sums = [0, 0.0, 0.0]
    for role, (raw, o0, fw) in sorted(totals.items()):
        print("| %s | %d | %d | %d | %.1f%% |" % (role, raw, o0, fw, 100 * (1 - fw / o0)))
        sums = [sums[0] + raw, sums[1] + o0, sums[2] + fw]
    print("| all | %d | %d | %d | %.1f%% |" % (sums[0], sums[1], sums[2],
                                               100 * (1 - sums[2] / sums[1])))


if __name__ == "__main__":
    main()
