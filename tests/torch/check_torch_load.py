#!/usr/bin/python3
"""Checks a .pt file against expectations with real PyTorch, or writes the reference file.

  check_torch_load.py FILE EXPECTED.json [SAVE_OUT]
      torch.load(FILE) (with weights_only=True where this torch has it, and without) must give
      an OrderedDict whose names, in order, dtypes, shapes and raw bytes are EXPECTED's; every
      tensor contiguous, owning its storage from offset 0, requires_grad False. Python's
      zipfile must find the archive clean (testzip), every entry stored, under
      EXPECTED["archive_name"]/ when given, with its data at a multiple of 64 in the file.
      Then, with SAVE_OUT, does what --save does (one torch import for both).

  check_torch_load.py --save EXPECTED.json OUT
      torch.save(OrderedDict(...)) of EXPECTED's tensors to OUT (torch names the archive after
      OUT's file name without its extension).

EXPECTED.json: {"archive_name": "...", "tensors": [{"name", "dtype" (F64, F32, F16, BF16, I64,
I32, I16, I8, U8, BOOL), "shape": [...], "hex": raw little-endian bytes, or "zeros": true}, ...]}.
Exit status 0 on success; 1 with a message on stderr otherwise.
"""
import collections
import json
import struct
import sys
import zipfile

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def fail(message):
    sys.stderr.write("check_torch_load: " + message + "\n")
    sys.exit(1)


def raw_bytes(tensor):
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def build(entry):
    dtype = DTYPES[entry["dtype"]]
    shape = entry["shape"]
    if entry.get("zeros"):
        return torch.zeros(shape, dtype=dtype)
    data = bytes.fromhex(entry["hex"])
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape).clone()


def check_zip(path, archive_name):
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        fail(f"zipfile: {e}")
    with z:
        bad = z.testzip()
        if bad is not None:
            fail(f"zipfile: entry {bad} fails its CRC")
        names = [i.filename for i in z.infolist()]
        with open(path, "rb") as f:
            for info in z.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    fail(f"zipfile: {info.filename} is not stored")
                if archive_name is not None and not info.filename.startswith(archive_name + "/"):
                    fail(f"zipfile: {info.filename} is not under {archive_name}/")
                f.seek(info.header_offset)
                local = f.read(30)
                if local[:4] != b"PK\x03\x04":
                    fail(f"zipfile: no local header for {info.filename}")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                data_offset = info.header_offset + 30 + name_len + extra_len
                if data_offset % 64:
                    fail(f"zipfile: {info.filename} data at {data_offset}, not 64-aligned")
    return names


def check(path, expected):
    names = check_zip(path, expected.get("archive_name"))
    loads = []
    for label, kwargs in [("torch.load(weights_only=True)", {"weights_only": True}),
                          ("torch.load", {})]:
        try:
            obj = torch.load(path, **kwargs)
        except TypeError:  # a torch without weights_only
            continue
        loads.append(label)
        if not isinstance(obj, collections.OrderedDict):
            fail(f"{label}: got {type(obj).__name__}, not OrderedDict")
        want = expected["tensors"]
        got_names = list(obj.keys())
        want_names = [e["name"] for e in want]
        if got_names != want_names:
            fail(f"{label}: names {got_names[:10]}... != {want_names[:10]}...")
        for e in want:
            t = obj[e["name"]]
            where = f"{label}: '{e['name']}'"
            if not isinstance(t, torch.Tensor):
                fail(f"{where}: not a tensor")
            if t.dtype != DTYPES[e["dtype"]]:
                fail(f"{where}: dtype {t.dtype} != {e['dtype']}")
            if list(t.shape) != e["shape"]:
                fail(f"{where}: shape {list(t.shape)} != {e['shape']}")
            if not t.is_contiguous() or t.storage_offset() != 0 or t.requires_grad:
                fail(f"{where}: not contiguous at offset 0 without grad")
            if t.storage().size() != t.numel():
                fail(f"{where}: storage of {t.storage().size()} elements for {t.numel()}")
            if e.get("zeros"):
                if t.count_nonzero().item() != 0:
                    fail(f"{where}: not all zeros")
            elif raw_bytes(t) != bytes.fromhex(e["hex"]):
                fail(f"{where}: values differ")
        del obj
    print(f"ok: {len(expected['tensors'])} tensors, {len(names)} zip entries, "
          f"{', '.join(loads)}")


def save(expected, out):
    state = collections.OrderedDict((e["name"], build(e)) for e in expected["tensors"])
    torch.save(state, out)


def main(argv):
    if len(argv) == 4 and argv[1] == "--save":
        with open(argv[2]) as f:
            save(json.load(f), argv[3])
        return 0
    if len(argv) in (3, 4):
        with open(argv[2]) as f:
            expected = json.load(f)
        check(argv[1], expected)
        if len(argv) == 4:
            save(expected, argv[3])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
