#!/usr/bin/env python3
"""Writes a synthetic safetensors checkpoint for CLI tests (stdlib only).

make_safetensors.py OUT --seed S [--step N] [--elements N] [--drift-from PREV_SEED --steps K]
Tensors: w (F32, elements), w.exp_avg, w.exp_avg_sq, bias (F32, 64), count (I64 scalar).
Values are a deterministic function of (seed, step): later steps drift a little, like training.
"""
import argparse, json, math, random, struct

def floats(seed, n, step):
    rng = random.Random(seed)
    base = [rng.gauss(0, 0.05) for _ in range(n)]
    drift = random.Random(seed * 7919 + step)
    return [b + step * 1e-3 * drift.gauss(0, abs(b)) for b in base]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--step", type=int, default=0)
    ap.add_argument("--elements", type=int, default=4096)
    a = ap.parse_args()
    n = a.elements
    tensors = [
        ("w", "F32", [n], struct.pack("<%df" % n, *floats(a.seed, n, a.step))),
        ("w.exp_avg", "F32", [n], struct.pack("<%df" % n, *floats(a.seed + 1, n, a.step * 10))),
        ("w.exp_avg_sq", "F32", [n], struct.pack("<%df" % n, *[x * x for x in floats(a.seed + 2, n, a.step)])),
        ("bias", "F32", [64], struct.pack("<64f", *floats(a.seed + 3, 64, a.step))),
        ("count", "I64", [], struct.pack("<q", a.step)),
    ]
    header, offset, data = {}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    header["__metadata__"] = {"step": str(a.step), "format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)

if __name__ == "__main__":
    main()
