#!/usr/bin/python3
"""Writes the torch.save fixtures of tests/torch_read_test.cc, and the seed corpus of
fuzz/fuzz_torch.cc, with real PyTorch (Debian's python3-torch; run with /usr/bin/python3):

    /usr/bin/python3 tests/data/torch/make_fixtures.py

For each fixture NAME.pt (each under 16 KB) it writes NAME.json, the expectation read back
from the file by torch itself (never by our reader):

    {"file": "NAME.pt", "archive_name": "NAME",
     "storages": [{"key", "dtype" (CKZ spelling: "F32"...), "numel", "location"}, ...],
                  # in order of first appearance in data.pkl (the order torch.load meets them)
     "tensors": [{"path", "storage_key", "storage_offset", "shape", "stride",
                  "requires_grad", "parameter"}, ...]}
                  # every tensor reachable from the root, depth first, dict keys as str(key)

or, for a file our reader must refuse, {"file", "error": "<ErrorCode name>",
"message_contains": "..."}.

Seeds are fixed; the zip writer of torch.save writes no timestamps, so the output is the same
from run to run on one machine. Optimizer states come from real training steps, whose float
results depend on the BLAS library: regenerating on another machine may change the bytes of
adam.pt and sgd_momentum.pt (their sidecars change with them).

The fuzz corpus (fuzz/corpus/fuzz_torch/) gets every fixture and the data.pkl of each.
"""
import argparse
import collections
import copyreg
import dataclasses
import io
import json
import os
import pickle
import pickletools
import sys
import types
import zipfile

import numpy as np
import torch

# Values pickle writes without __reduce__ (or as globals): not containers.
ATOMS = (bool, int, float, complex, str, bytes, bytearray, type, types.FunctionType,
         types.BuiltinFunctionType, torch.dtype, torch.device, torch.Size)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CORPUS = os.path.join(ROOT, "fuzz", "corpus", "fuzz_torch")

CKZ_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def read_back(path):
    """Loads `path` through torch's own zip loader, recording each storage as torch.load meets
    it (the persistent ids of data.pkl), then walks the result for tensors."""
    records = []  # (key, dtype, numel, location, storage id), first appearance order

    class RecordingUnpickler(pickle._Unpickler):  # pure-Python: persistent_load is looked up
        @property
        def persistent_load(self):
            return self._recording_load

        @persistent_load.setter
        def persistent_load(self, load):
            def recording_load(saved_id):
                storage = load(saved_id)
                _, storage_type, key, location, numel = saved_id
                if all(r[0] != key for r in records):
                    records.append((key, storage_type.dtype, numel, location, storage._cdata))
                return storage
            self._recording_load = recording_load

    module = types.ModuleType("recording_pickle")
    module.Unpickler = RecordingUnpickler
    module.load = pickle.load
    # torch 1.13's torch.load ignores pickle_module unless weights_only; call its _load.
    with torch.serialization._open_zipfile_reader(path) as reader:
        obj = torch.serialization._load(reader, None, module, encoding="utf-8")
    key_of = {r[4]: r[0] for r in records}

    tensors = []
    seen = set()
    keep = []  # what reduce made: alive, so that no id() is reused

    def walk(value, path):
        # What TensorPaths (torch.h) promises: dicts by key, lists and tuples by index, each
        # container entered once; any other object (what CKZ carries opaquely) through what
        # pickle wrote for it, __reduce_ex__(2), adding no label of its own.
        if isinstance(value, torch.Tensor):
            tensors.append({
                "path": "/".join(path),
                "storage_key": key_of[value.storage()._cdata],
                "storage_offset": value.storage_offset(),
                "shape": list(value.shape),
                "stride": list(value.stride()),
                "requires_grad": bool(value.requires_grad),
                "parameter": isinstance(value, torch.nn.Parameter),
            })
            return
        if value is None or isinstance(value, ATOMS) or id(value) in seen:
            return
        seen.add(id(value))
        keep.append(value)
        if type(value) in (dict, collections.OrderedDict):
            for k, v in value.items():
                walk(v, path + [str(k)])
        elif type(value) in (list, tuple):
            for i, v in enumerate(value):
                walk(v, path + [str(i)])
        else:
            reduced = value.__reduce_ex__(2)
            keep.append(reduced)
            func, args = reduced[0], reduced[1]
            state, listitems, dictitems = (tuple(reduced[2:]) + (None, None, None))[:3]
            if func is copyreg.__newobj__:  # pickle writes NEWOBJ(cls, args[1:])
                func, args = args[0], args[1:]
            walk(func, path)
            walk(tuple(args), path)
            if listitems is not None:
                walk(list(listitems), path)
            if dictitems is not None:
                walk(dict(dictitems), path)
            if state is not None:
                walk(state, path)

    walk(obj, [])
    with zipfile.ZipFile(path) as z:
        archive = z.namelist()[0].split("/")[0]
        pkl = z.read(archive + "/data.pkl")
    return {
        "file": os.path.basename(path),
        "archive_name": archive,
        "opaque_globals": opaque_globals(pkl),
        "storages": [{"key": k, "dtype": CKZ_DTYPES[d], "numel": n, "location": loc}
                     for k, d, n, loc, _ in records],
        "tensors": tensors,
    }


# The globals CKZ interprets (ckz/torch.h); every other one is carried opaquely.
KNOWN_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                 "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
                 "torch._tensor._rebuild_from_type_v2", "_codecs.encode", "builtins.bytes",
                 "__builtin__.bytes", "torch.Size", "torch.device"}


def opaque_globals(pkl):
    """The globals of a pickle CKZ does not interpret, in order of first appearance, found by
    Python's own pickletools (GLOBAL and INST name theirs; STACK_GLOBAL takes two strings)."""
    found, strings = [], []
    for op, arg, _ in pickletools.genops(pkl):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        name = None
        if op.name in ("GLOBAL", "INST"):
            name = arg.replace(" ", ".", 1)
        elif op.name == "STACK_GLOBAL":
            name = strings[-2] + "." + strings[-1]
        if (name and name not in KNOWN_GLOBALS and name not in found and
                not (name.startswith("torch.") and name.count(".") == 1 and
                     (name.endswith("Storage") or isinstance(getattr(torch, name[6:], None), torch.dtype)))):
            found.append(name)
    return found


def write_json(name, data):
    """One storage or tensor per line."""
    lines = []
    for key, value in sorted(data.items()):
        if isinstance(value, list):
            items = [" " * 4 + json.dumps(v, sort_keys=True) for v in value]
            lines.append(' "%s": [%s]' % (key, "\n" + ",\n".join(items) + "\n " if items else ""))
        else:
            lines.append(' "%s": %s' % (key, json.dumps(value)))
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def save(name, obj, **kwargs):
    path = os.path.join(HERE, name + ".pt")
    torch.save(obj, path, **kwargs)
    assert os.path.getsize(path) < 16384, (name, os.path.getsize(path))
    write_json(name, read_back(path))


def make_legacy_deterministic(path):
    """The legacy format names storages by memory address: rename them "0", "00"... (same
    lengths, so every length prefix stays right) and check that torch still loads the file."""
    with open(path, "rb") as f:
        data = f.read()
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(stream)

    class Keys(pickle.Unpickler):
        def persistent_load(self, saved_id):
            return None

        def find_class(self, module, name):
            return lambda *args: None
    Keys(stream).load()  # the object
    keys = pickle.load(stream)  # the storage keys, in order
    for i, key in enumerate(keys):
        new = str(i).rjust(len(key), "0")
        assert data.count(key.encode()) == 2, key  # in the object pickle and the key list
        data = data.replace(key.encode(), new.encode())
    with open(path, "wb") as f:
        f.write(data)
    assert torch.equal(torch.load(path)["w"], torch.ones(2))


class _Unseekable(io.RawIOBase):
    """A write-only stream without seek/tell, so zipfile streams entries with descriptors."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.data += b
        return len(b)


def rewrite_zip(source, name, streamed):
    with zipfile.ZipFile(os.path.join(HERE, source)) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    archive = name[:-3]
    entries = [(archive + n[n.index("/"):], d) for n, d in entries]
    if not streamed:
        entries.insert(len(entries) - 1, (archive + "/byteorder", b"little"))
    out = _Unseekable() if streamed else io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        for entry_name, data in entries:
            info = zipfile.ZipInfo(entry_name, date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=streamed) as f:
                f.write(data)
        if not streamed:
            z.comment = b"rewritten by make_fixtures.py"
    data = bytes(out.data) if streamed else out.getvalue()
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(data)
    assert os.path.getsize(path) < 16384
    write_json(archive, read_back(path))


@dataclasses.dataclass
class Config:
    lr: float
    mean: torch.Tensor


Pair = collections.namedtuple("Pair", "tensor count")


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def train(model, optimizer, steps, scheduler=None):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler:
            scheduler.step()


def main():
    torch.manual_seed(0)
    os.makedirs(CORPUS, exist_ok=True)

    # Every CKZ dtype, a 0-d tensor and empty tensors, as a state_dict (OrderedDict).
    sd = collections.OrderedDict()
    sd["f64"] = torch.randn(2, 3, dtype=torch.float64)
    sd["f32"] = torch.randn(4)
    sd["f16"] = torch.randn(3, 2).half()
    sd["bf16"] = torch.randn(5).bfloat16()
    sd["i64"] = torch.tensor([-(2**62), 0, 2**62])
    sd["i32"] = torch.tensor([[1, -2], [3, -4]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 7, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    sd["u8"] = torch.arange(250, 256, dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True, True, False])
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0)
    sd["empty2d"] = torch.zeros(3, 0, dtype=torch.int64)
    save("dtypes", sd)

    # A training checkpoint: model, Adam after real steps, step, LR scheduler.
    model = mlp()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(adam, step_size=2, gamma=0.5)
    train(model, adam, 3, sched)
    save("adam", {"model": model.state_dict(), "optimizer": adam.state_dict(), "step": 3,
                  "scheduler": sched.state_dict()})

    # SGD with momentum (momentum_buffer states).
    model = mlp()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, sgd, 2)
    save("sgd_momentum", {"model": model.state_dict(), "optimizer": sgd.state_dict()})

    # Views and shared storages: slices of one tensor, the same tensor twice (memo), tied
    # weights (two parameters of one storage).
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    emb = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    tied = torch.nn.ModuleDict({"emb": emb, "head": head})
    save("views", {"base": base, "row": base[1], "col": base[:, 2],
                   "flat_slice": base.view(-1)[2:7], "same": base, "tied": tied.state_dict()})

    # One-element list and dict (APPEND, SETITEM), empty containers.
    save("single", {"l": [torch.ones(2)], "d": {"k": torch.zeros(3, dtype=torch.int16)},
                    "empty_list": [], "empty_dict": {}})

    # Nested plain values: lists, tuples, None, bools, floats, ints of every width, strings,
    # bytes, dtypes, devices, sizes, int keys.
    t = torch.randn(2, 2)
    save("nested", {
        "list": [1, [2, (3, None)], True, False, 1.5, -0.0, float("inf")],
        "ints": [0, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**31, 2**62, 2**63 - 1,
                 -(2**63), -1],
        "str": "\u00e9\u2713 unicode",
        "bytes": b"\x00\xffab",
        "empty_bytes": b"",
        "tuple": (t,),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "cuda_device": torch.device("cuda", 1),
        "size": torch.Size([2, 3]),
        "none": None,
        "nested": {"a": {"b": [{"c": t[0]}]}},
        7: torch.arange(3, dtype=torch.int32),
    })

    # Non-contiguous tensors: transposed, expanded (stride 0), strided slice.
    x = torch.randn(3, 4)
    save("transposed", {"t": x.t(), "expanded": torch.ones(3, 1).expand(3, 4),
                        "strided": x[:, ::2]})

    # Parameters (torch._utils._rebuild_parameter) and a tensor as the root.
    save("parameters", {"params": list(mlp().parameters())})
    save("tensor_root", torch.arange(5, dtype=torch.float64))

    # The adam checkpoint rewritten by Python's zipfile, a zip writer other than torch's:
    # without data descriptors, with a "byteorder" entry (as torch >= 2.1 writes) and an
    # archive comment; and streamed (data descriptors) with zip64 extra fields and 8-byte
    # descriptor sizes. torch itself reads both back for the sidecars.
    rewrite_zip("adam.pt", "adam_pyzip.pt", streamed=False)
    rewrite_zip("adam.pt", "adam_pyzip64.pt", streamed=True)

    # Ordinary Python objects of training checkpoints, carried without being interpreted:
    # OneCycleLR's state (a bound method: __builtin__.getattr of the scheduler object, which
    # holds the optimizer object and its parameters), MultiStepLR's (collections.Counter), an
    # argparse.Namespace, numpy's RNG state (numpy.core.multiarray._reconstruct), a numpy
    # array, sets, a defaultdict, a dataclass, a namedtuple, an int beyond 64 bits, a list
    # that holds itself; tensors inside them are found and named.
    model = mlp()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    onecycle = torch.optim.lr_scheduler.OneCycleLR(sgd, max_lr=0.1, total_steps=10)
    train(model, sgd, 2, onecycle)
    save("onecycle", {"model": model.state_dict(), "optimizer": sgd.state_dict(),
                      "scheduler": onecycle.state_dict()})
    model = mlp()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    multistep = torch.optim.lr_scheduler.MultiStepLR(adam, milestones=[2, 4], gamma=0.5)
    train(model, adam, 2, multistep)
    save("multistep", {"model": model.state_dict(), "optimizer": adam.state_dict(),
                       "scheduler": multistep.state_dict()})
    save("namespace", {"args": argparse.Namespace(lr=0.1, layers=[4, 8], init=torch.ones(3)),
                       "w": torch.zeros(2)})
    np.random.seed(0)
    save("numpy_rng", {"w": torch.ones(2), "rng": np.random.get_state()})
    save("numpy", {"w": torch.ones(2), "np": np.arange(3)})
    save("sets", {"w": torch.ones(2), "tags": {"a", "b"}, "frozen": frozenset([1, 2])})
    save("defaultdict", {"stats": collections.defaultdict(list, {"loss": [1.0, 0.5],
                                                                 "w": torch.ones(2)})})
    save("dataclass", {"config": Config(lr=0.1, mean=torch.zeros(3)), "step": 7})
    loop = [torch.ones(2)]
    loop.append(loop)
    save("cycle", {"loop": loop, "pair": Pair(torch.arange(2), 3), "big": 2**70,
                   "surrogate": "\ud800"})
    # Other pickle protocols torch.save can write and torch.load reads.
    for protocol in (1, 4, 5):
        save("protocol%d" % protocol, {"w": torch.ones(2), "tags": {"a"}, "big": -(2**70),
                                       "nested": [(torch.zeros(1), {"k": 1.5})]},
             pickle_protocol=protocol)

    # Refused: the legacy (pre-1.6) format.
    path = os.path.join(HERE, "legacy.pt")
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    make_legacy_deterministic(path)
    write_json("legacy", {"file": "legacy.pt", "error": "TorchLegacyFormat",
                          "message_contains": "torch >= 1.6"})

    # Fuzz seeds: every fixture, and the data.pkl of each zip.
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".pt"):
            continue
        with open(os.path.join(HERE, name), "rb") as f:
            data = f.read()
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
                with open(os.path.join(CORPUS, name[:-3] + ".data.pkl"), "wb") as f:
                    f.write(z.read(pkl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
