"""Minimal safetensors writer (no dependency on the `safetensors` package).

File layout (https://github.com/huggingface/safetensors):
  8 bytes   u64 little-endian N = length of the JSON header
  N bytes   UTF-8 JSON object {name: {"dtype", "shape", "data_offsets": [b, e]},
            "__metadata__": {str: str}}, padded with trailing spaces so that
            8 + N is a multiple of 8
  rest      raw little-endian tensor bytes; offsets are relative to the start
            of this byte buffer, contiguous, no holes, in the order written.
"""
import json
import struct
import sys

import torch

DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def tensor_bytes(t):
    """Raw little-endian bytes of a tensor in C order."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors writer assumes a little-endian host")
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Write `tensors` (an iterable of (name, torch.Tensor) pairs, order kept)
    and `metadata` (dict of str -> str) to `path`."""
    header = {}
    blobs = []
    offset = 0
    names = set()
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata must map str to str: %r=%r" % (k, v))
        header["__metadata__"] = dict(metadata)
    for name, t in tensors:
        if name in names or name == "__metadata__":
            raise ValueError("duplicate or reserved tensor name %r" % name)
        names.add(name)
        if t.dtype not in DTYPE_NAMES:
            raise TypeError("unsupported dtype %s for %s" % (t.dtype, name))
        data = tensor_bytes(t)
        header[name] = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(8 + len(hjson))) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return 8 + len(hjson) + offset
