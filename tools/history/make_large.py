#!/usr/bin/python3
"""Writes a large synthetic training history for memory and speed benchmarks (issue 15).

Two or more safetensors checkpoints of a GPT-like model (token embedding, L blocks of
attention and MLP weights with biases and layer norms) with Adam's moments, F32, named the
way ckz recognises them (NAME, NAME.exp_avg, NAME.exp_avg_sq). The values follow what a
model in mid-training looks like, not white noise:

- weights: N(0, 0.02) (output projections scaled by 1/sqrt(2L)); layer-norm gains near 1;
- Adam's v: per-tensor gradient scale (log-normal around 1e-3) times per-row and per-column
  factors (log-normal), times a log-normal element spread: v spans several decades;
- Adam's m: about 0.3 sqrt(v), signed;
- between checkpoints (`--interval` optimizer steps of lr 3e-4): each weight moves by an
  Adam-like update (a drift along m / sqrt(v) plus noise), v is the EMA of fresh squared
  gradients (beta2 = 0.999), m mostly forgets (beta1 = 0.9).

With --weights-only bf16|f16 the files hold the weights alone, rounded to BF16 or F16 (round
to nearest even), the way released histories publish them (the moments still drive the
updates); use --interval 1000 for their spacing.

Memory stays bounded: tensors are generated and written in blocks, every step's file at once
(the header's offsets are known in advance). Deterministic for a given --seed.

  /usr/bin/python3 tools/history/make_large.py OUT_DIR --gib 8 [--steps 2]
  /usr/bin/python3 tools/history/make_large.py OUT_DIR --gib 8 --weights-only bf16 --interval 1000

--gib is the size of one checkpoint; the model's width and depth are chosen to reach it.
Never commit the output.
"""
import argparse
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

BLOCK = 1 << 22  # elements generated at once per tensor and step


def model_shapes(d, layers, vocab):
    shapes = [("wte.weight", (vocab, d), 0.02), ("wpe.weight", (2048, d), 0.01)]
    for i in range(layers):
        p = f"h.{i}."
        shapes += [
            (p + "ln_1.weight", (d,), "ln"), (p + "ln_1.bias", (d,), "bias"),
            (p + "attn.c_attn.weight", (d, 3 * d), 0.02), (p + "attn.c_attn.bias", (3 * d,), "bias"),
            (p + "attn.c_proj.weight", (d, d), 0.02 / math.sqrt(2 * layers)),
            (p + "attn.c_proj.bias", (d,), "bias"),
            (p + "ln_2.weight", (d,), "ln"), (p + "ln_2.bias", (d,), "bias"),
            (p + "mlp.c_fc.weight", (d, 4 * d), 0.02), (p + "mlp.c_fc.bias", (4 * d,), "bias"),
            (p + "mlp.c_proj.weight", (4 * d, d), 0.02 / math.sqrt(2 * layers)),
            (p + "mlp.c_proj.bias", (d,), "bias"),
        ]
    shapes += [("ln_f.weight", (d,), "ln"), ("ln_f.bias", (d,), "bias")]
    return shapes


def choose_model(gib, bytes_per_parameter=12):
    """Width 1024 (GPT-2 medium's), depth to reach `gib` GiB (F32 weights and two moments: 12
    bytes per parameter; 16-bit weights alone: 2)."""
    d, vocab = 1024, 50304
    per_layer = 12 * d * d + 13 * d
    fixed = (vocab + 2048) * d + 2 * d
    want = gib * (1 << 30) / bytes_per_parameter  # parameters
    layers = max(1, round((want - fixed) / per_layer))
    return d, layers, vocab


def tensor_list(shapes, weights_only=None):
    out = []
    for name, shape, init in shapes:
        out.append((name, shape, init, "w"))
        if not weights_only:
            out.append((name + ".exp_avg", shape, init, "m"))
            out.append((name + ".exp_avg_sq", shape, init, "v"))
    if not weights_only:
        out.append(("optimizer.step", (), None, "step"))
    return out


def to_16(x, dtype):
    """float32 array -> the bytes of its BF16 or F16 rounding (nearest, ties to even)."""
    if dtype == "f16":
        return x.astype(np.float16).tobytes()
    u = x.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()  # no NaNs here


def header(tensors, step, weights_only=None):
    h, off = {}, 0
    width = 2 if weights_only else 4
    for name, shape, _, kind in tensors:
        size = 8 if kind == "step" else math.prod(shape) * width
        dtype = "I64" if kind == "step" else (weights_only or "f32").upper()
        h[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + size]}
        off += size
    h["__metadata__"] = {"format": "pt", "step": str(step)}
    text = json.dumps(h, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode()


def generate(name, shape, init, steps, interval, seed, weights_only=None):
    """Writes weight, m and v of one parameter to every step's file, block by block."""
    n = math.prod(shape)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    rows = shape[0] if len(shape) == 2 else 1
    cols = n // rows
    # Gradient scale: per tensor, per row, per column (log-normal), fixed along the history.
    g_tensor = 1e-3 * math.exp(rng.normal(0, 1.0))
    row_f = np.exp(rng.normal(0, 0.5, rows)).astype(np.float32)
    col_f = np.exp(rng.normal(0, 0.5, cols)).astype(np.float32)
    lr, b1, b2 = 3e-4, 0.9, 0.999
    keep1, keep2 = b1 ** interval, b2 ** interval
    per_block_rows = max(1, BLOCK // cols)
    for r0 in range(0, rows, per_block_rows):
        r1 = min(rows, r0 + per_block_rows)
        k = (r1 - r0) * cols
        g = (g_tensor * row_f[r0:r1, None] * col_f[None, :]).reshape(-1)
        if init == "ln":
            w = (1.0 + rng.normal(0, 0.05, k)).astype(np.float32)
        elif init == "bias":
            w = rng.normal(0, 0.01, k).astype(np.float32)
        else:
            w = rng.normal(0, init, k).astype(np.float32)
        v = (g * g * np.exp(rng.normal(0, 0.7, k))).astype(np.float32)
        m = (0.3 * g * rng.normal(0, 1, k)).astype(np.float32)
        outs = [[], [], []]
        for s in range(steps):
            if s > 0:
                # `interval` Adam steps: a drift along the mean update plus accumulated noise.
                upd = m / (np.sqrt(v) + 1e-8)
                w = (w - lr * (0.1 * interval * upd
                               + math.sqrt(interval) * rng.normal(0, 0.5, k))).astype(np.float32)
                fresh = g * g * np.exp(rng.normal(0, 0.7, k))
                v = (keep2 * v + (1 - keep2) * fresh).astype(np.float32)
                m = (keep1 * m + (1 - keep1) * 0.3 * g * rng.normal(0, 1, k)).astype(np.float32)
            if weights_only:
                outs[0].append(to_16(w, weights_only))
                continue
            outs[0].append(w.tobytes())
            outs[1].append(m.tobytes())
            outs[2].append(v.tobytes())
        yield outs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--gib", type=float, default=8.0, help="size of one checkpoint (GiB)")
    ap.add_argument("--steps", type=int, default=2, help="checkpoints (default 2)")
    ap.add_argument("--interval", type=int, default=100, help="optimizer steps between them")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--weights-only", choices=("bf16", "f16"),
                    help="weights alone, rounded to this dtype (a released history)")
    a = ap.parse_args()
    d, layers, vocab = choose_model(a.gib, 2 if a.weights_only else 12)
    shapes = model_shapes(d, layers, vocab)
    tensors = tensor_list(shapes, a.weights_only)
    os.makedirs(a.out_dir, exist_ok=True)
    steps = [1000 + a.interval * s for s in range(a.steps)]
    paths = [os.path.join(a.out_dir, f"step_{s}.safetensors") for s in steps]
    files = [open(p, "wb") for p in paths]
    for f, s in zip(files, steps):
        f.write(header(tensors, s, a.weights_only))
    # The three arrays of a parameter are consecutive in the file: write them in order.
    for name, shape, init in shapes:
        if a.weights_only:
            for outs in generate(name, shape, init, a.steps, a.interval, a.seed, a.weights_only):
                for s in range(a.steps):
                    files[s].write(outs[0][s])
            continue
        spill = [[open(p + f".{j}.part", "wb") for p in paths] for j in (1, 2)]
        for outs in generate(name, shape, init, a.steps, a.interval, a.seed):
            for s in range(a.steps):
                files[s].write(outs[0][s])
                spill[0][s].write(outs[1][s])
                spill[1][s].write(outs[2][s])
        for j in range(2):
            for s, f in enumerate(spill[j]):
                f.close()
                with open(f.name, "rb") as src:
                    while True:
                        buf = src.read(1 << 26)
                        if not buf:
                            break
                        files[s].write(buf)
                os.remove(f.name)
    for f, s in zip(files, steps):
        if not a.weights_only:
            f.write(struct.pack("<q", s))
        f.close()
    total = sum(os.path.getsize(p) for p in paths)
    print(f"{len(paths)} checkpoints, d={d} layers={layers} vocab={vocab}, "
          f"{sum(math.prod(s) for _, s, _ in shapes) / 1e6:.0f}M parameters, "
          f"{total / (1 << 30):.2f} GiB in {a.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
