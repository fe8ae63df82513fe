"""Minimal safetensors writer and strict reader (no dependency on the `safetensors` package).

File layout (https://github.com/huggingface/safetensors):
  8 bytes   u64 little-endian N = length of the JSON header
  N bytes   UTF-8 JSON object {name: {"dtype", "shape", "data_offsets": [b, e]},
            "__metadata__": {str: str}}, padded with trailing spaces so that
            8 + N is a multiple of 8
  rest      raw little-endian tensor bytes; offsets are relative to the start
            of this byte buffer, contiguous, no holes, in the order written.
"""
import json
import math
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


# ---- Reading (independent of the writer above: used to check it and CKZ's output) ----

ST_DTYPES = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
             "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("<i1", 1),
             "U8": ("<u1", 1), "BOOL": ("<u1", 1)}


def read_safetensors(path):
    """Independent, strict safetensors reader: returns (tensors, metadata) where
    tensors maps name -> (dtype string, shape list, raw bytes), in offset order."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("header length beyond end of file")
    raw_header = blob[8:8 + n]
    if (8 + n) % 8 != 0:
        raise ValueError("data buffer not 8-byte aligned")
    if not raw_header.startswith(b"{"):
        raise ValueError("header is not a JSON object")
    header = json.loads(raw_header.decode("utf-8"))  # trailing spaces are legal JSON whitespace
    if raw_header.rstrip(b" ") != raw_header[:len(raw_header.rstrip(b" "))]:
        raise ValueError("bad padding")
    meta = header.pop("__metadata__", {})
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError("metadata must be str -> str")
    data = blob[8 + n:]
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    pos = 0
    out = {}
    for name, e in entries:
        b, end = e["data_offsets"]
        if b != pos:
            raise ValueError("hole or overlap before %s" % name)
        itemsize = ST_DTYPES[e["dtype"]][1]
        if (end - b) != itemsize * math.prod(e["shape"]):
            raise ValueError("size mismatch for %s" % name)
        out[name] = (e["dtype"], list(e["shape"]), data[b:end])
        pos = end
    if pos != len(data):
        raise ValueError("trailing bytes after last tensor")
    return out, meta
