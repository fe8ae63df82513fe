"""ckz.save, ckz.load and ckz.safe_open: torch.save/torch.load and safetensors' safe_open for
.ckz files, over the C++ library (ckz._ckz).

Saving serialises with torch.save into memory (that copy is the snapshot) and hands the bytes
to the library, which reads them with its own safe reader (no pickle code runs; objects outside
its whitelist are refused). Loading decodes every storage straight into a torch tensor's memory
and unpickles the structure with an unpickler that accepts the same whitelist.
"""
import codecs
import collections
import io
import os
import pickle

import numpy as np
import torch

from . import _ckz
from ._ckz import CkzError

_TORCH_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_NUMPY_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
# The storage classes the library's reader accepts (reference/src/io/torch_pickle.cc).
_STORAGE_CLASSES = {
    "DoubleStorage", "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage",
    "IntStorage", "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
}


def error(code, message):
    """A CkzError like the library's: `code` is an ErrorCode name ("Unsupported", ...)."""
    e = CkzError("%s: %s" % (code, message))
    e.code, e.code_value, e.detail = code, None, message
    return e


def default_threads(threads):
    """None: every core (the output never depends on it); 0 too, as in `ckz -T 0`."""
    if threads is None or threads == 0:
        return os.cpu_count() or 1
    return int(threads)


def serialize(obj):
    """torch.save of `obj` into memory, as a writable buffer (no copy of torch.save's output).
    This is the snapshot: once it returns, training may change the tensors."""
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getbuffer()


def source_name(path):
    """The .pt name a .ckz file records for its source file: 'x.pt.ckz' -> 'x.pt'."""
    name = os.path.basename(os.fspath(path))
    if name.endswith(".ckz"):
        name = name[:-4]
    if not name.endswith((".pt", ".pth", ".bin")):
        name += ".pt"
    return name


def _explain(e):
    """The library's refusal of an object, with what ckz.save takes."""
    if getattr(e, "code", None) == "UnsupportedDtype":
        return error(e.code, "%s. ckz.save takes tensors of the dtypes F64 F32 F16 BF16 I64 I32 "
                     "I16 I8 U8 BOOL (and any other picklable object, carried as it is)"
                     % e.detail)
    return e


def save(obj, path, parent=None, lossless=False, *, step=None, keyframe_interval=10, search=(),
         metadata=None, overwrite=True, **options):
    """Writes `obj` (what torch.save takes for checkpoints: a state_dict, or a dict of model /
    optimizer / scheduler state dicts, step and plain values) to `path` atomically: a keyframe,
    or with `parent` (a .ckz file) a link predicted from it. Links are lossy (rate-distortion
    levels, spec 7.9) unless lossless=True; keyframes are always lossless. `options` are those of
    `ckz compress`: threads, chunk_size, level, entropy, quality (1..9), strength, rd_steps,
    rdoq, weights_step; excp=True for ExCP's codebooks with alpha, beta, bits, k_at_cap,
    v_direct, fallback_k. Returns what
    was written (content id, step, depth, sizes)."""
    options.setdefault("threads", 0)
    buffer = serialize(obj)
    try:
        return _ckz.encode(buffer, os.fspath(path), source_name(path), step=step,
                           parent=None if parent is None else os.fspath(parent),
                           search=[os.fspath(s) for s in search], lossless=lossless,
                           keyframe_interval=keyframe_interval, options=options,
                           overwrite=overwrite, metadata=metadata or {})
    except CkzError as e:
        raise _explain(e) from None


def open_reader(path, search=(), parent=None):
    return _ckz.Reader(os.fspath(path), [os.fspath(s) for s in search],
                       "" if parent is None else os.fspath(parent))


def _untyped(tensor):
    return tensor.untyped_storage() if hasattr(tensor, "untyped_storage") else \
        tensor.storage().untyped()


def _codecs_encode(text, encoding):
    # Protocol 2 pickles bytes as _codecs.encode(str, "latin1"); nothing else is accepted.
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode is allowed for latin1 text only")
    return codecs.encode(text, "latin1")


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "bytes"): bytes,
    ("__builtin__", "bytes"): bytes,
}


class _Unpickler(pickle.Unpickler):
    """torch.load(weights_only=True)'s whitelist of globals (what the library interprets,
    reference/src/io/torch_pickle.cc), or with weights_only=False any global, imported and
    called as torch.load(weights_only=False) would (the library carries such objects, opaque)."""

    def __init__(self, data, storages, weights_only=True):
        super().__init__(io.BytesIO(data))
        self._storages = storages
        self._weights_only = weights_only

    def find_class(self, module, name):
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is not None:
            return found
        if module == "torch":
            if name in _STORAGE_CLASSES:
                return torch.serialization.StorageType(name)
            if isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
        if not self._weights_only:
            return super().find_class(module, name)
        raise error("PickleGlobalNotAllowed",
                    "global %s.%s is not allowed with weights_only=True (the default): "
                    "ckz.load(..., weights_only=False) runs the checkpoint's pickled code, as "
                    "torch.load(weights_only=False) does; only for files you trust" % (module, name))

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise pickle.UnpicklingError("unexpected persistent id %r" % (pid,))
        return self._storages(*pid[1:])


def _load_torch(reader, file, map_location, threads, weights_only=True):
    pickle_bytes, storage_tensors = reader.torch_structure(file)
    info = reader.tensors()
    buffers, wanted = {}, []
    for key, index in storage_tensors.items():
        buffers[key] = torch.empty(info[index][4], dtype=torch.uint8)
        if info[index][4]:
            wanted.append((index, buffers[key].numpy()))
    reader.read_tensors(wanted, default_threads(threads))  # all storages, chunks in parallel

    restore_location = torch.serialization._get_restore_location(map_location)
    loaded = {}

    def storage(storage_type, key, location, numel):
        if key not in loaded:
            dtype = torch.uint8 if storage_type is torch.UntypedStorage else storage_type.dtype
            untyped = restore_location(_untyped(buffers[key]), location)
            loaded[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype)
        return loaded[key]

    return _Unpickler(pickle_bytes, storage, weights_only).load()


def read_tensor(reader, info, index, framework, threads):
    """Tensor `index` of `reader` (info = reader.tensors()), decoded alone."""
    name, dtype, shape, _, nbytes, _ = info[index]
    if framework in ("pt", "torch"):
        raw = torch.empty(nbytes, dtype=torch.uint8)
        if nbytes:
            reader.read_tensors([(index, raw.numpy())], threads)
        return raw.view(_TORCH_DTYPES[dtype]).reshape(shape)
    if framework in ("np", "numpy"):
        if dtype not in _NUMPY_DTYPES:
            raise error("UnsupportedDtype", "tensor '%s' is %s, which numpy lacks: use "
                        "framework='pt'" % (name, dtype))
        raw = np.empty(nbytes, dtype=np.uint8)
        if nbytes:
            reader.read_tensors([(index, raw)], threads)
        return raw.view(_NUMPY_DTYPES[dtype]).reshape(shape)
    raise ValueError("framework is 'pt' or 'np', not %r" % (framework,))


def _load_tensors(reader, threads):
    """A safetensors source (or a bare tensor set): {name: tensor}, all decoded together."""
    info = reader.tensors()
    raw = [torch.empty(t[4], dtype=torch.uint8) for t in info]
    reader.read_tensors([(i, r.numpy()) for i, r in enumerate(raw) if info[i][4]],
                        default_threads(threads))
    return {t[0]: r.view(_TORCH_DTYPES[t[1]]).reshape(t[2]) for t, r in zip(info, raw)}


def _apply_map_location(tensors, map_location):
    if map_location is None:
        return tensors
    restore = torch.serialization._get_restore_location(map_location)
    out = {}
    for name, t in tensors.items():
        storage = restore(_untyped(t), "cpu")
        moved = torch.empty(0, dtype=t.dtype, device=storage.device)
        moved.set_(torch.storage.TypedStorage(wrap_storage=storage, dtype=t.dtype), 0, t.shape)
        out[name] = moved
    return out


def load(path, map_location=None, *, weights_only=True, search=(), parent=None, threads=None):
    """What torch.load returned for the checkpoint saved into `path` (same types, nesting and
    values; tensors restored, storages shared as they were). Like torch.load(weights_only=True),
    only tensors and plain containers are rebuilt; a checkpoint holding other Python objects
    (numpy arrays, a MultiStepLR's Counter, dataclasses) needs weights_only=False, which imports
    and calls what the pickle names: only for files you trust. A link's parents are found as the
    CLI finds them: beside the file (under the recorded name, or any .ckz with the parent's
    content id), then in `search` folders; `parent` names the first one. `map_location` is
    torch.load's. A .ckz made from safetensors gives {name: tensor}."""
    reader = open_reader(path, search, parent)
    files = reader.files()
    if len(files) == 1 and files[0][1] == "torch-zip":
        return _load_torch(reader, 0, map_location, threads, weights_only)
    if not files or (len(files) == 1 and files[0][1] == "safetensors"):
        return _apply_map_location(_load_tensors(reader, threads), map_location)
    raise error("Unsupported", "%s holds %d files (%s): restore it with `ckz decompress`, or "
                "read its tensors with ckz.safe_open" %
                (os.fspath(path), len(files), ", ".join(f[0] for f in files)))


class safe_open:
    """Like safetensors.safe_open: keys(), metadata() and get_tensor(name), each tensor
    decoded alone (only its chunks, and its parents' co-located chunks for a link).

        with ckz.safe_open("step_100.pt.ckz", framework="pt") as f:
            w = f.get_tensor("model/fc1.weight")

    Keys are the checkpoint's tensor names: a state_dict's keys, or paths into a nested
    checkpoint ("model/fc1.weight", "optimizer/state/0/exp_avg"). A tensor that was a view of
    part of a storage comes back as its whole storage, flat."""

    def __init__(self, path, framework="pt", device="cpu", *, search=(), parent=None,
                 threads=None):
        if framework not in ("pt", "torch", "np", "numpy"):
            raise ValueError("framework is 'pt' or 'np', not %r" % (framework,))
        self._reader = open_reader(path, search, parent)
        self._framework = framework
        self._device = device
        self._threads = default_threads(threads)
        self._info = self._reader.tensors()
        self._index = {t[0]: i for i, t in enumerate(self._info)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._reader = None

    def keys(self):
        """Tensor names, in file order."""
        return [t[0] for t in self._info]

    def metadata(self):
        """The file's typed metadata (str, int, float, bool or bytes values)."""
        return self._reader.metadata()

    def tensor_info(self, name):
        """{'dtype', 'shape', 'role', 'nbytes', 'lossy'} of one tensor, without decoding it."""
        _, dtype, shape, role, nbytes, lossy = self._info[self._lookup(name)]
        return {"dtype": dtype, "shape": list(shape), "role": role, "nbytes": nbytes,
                "lossy": lossy}

    def get_tensor(self, name):
        t = read_tensor(self._reader, self._info, self._lookup(name), self._framework,
                        self._threads)
        if self._framework in ("pt", "torch") and str(self._device) != "cpu":
            t = t.to(self._device)
        return t

    def _lookup(self, name):
        try:
            return self._index[name]
        except KeyError:
            raise KeyError("no tensor %r in %s" % (name, self._reader.path)) from None

    @property
    def step(self):
        return self._reader.step

    @property
    def depth(self):
        """0 for a keyframe, else the number of parents decoding goes through."""
        return self._reader.depth

    @property
    def content_id(self):
        return self._reader.content_id


def verify(path, *, search=(), parent=None, threads=None):
    """`ckz verify`: decodes every tensor through the chain, checks every chunk checksum and
    the content id; raises CkzError when one fails."""
    return open_reader(path, search, parent).verify(default_threads(threads))


def info(path):
    """The header of a .ckz file: content id, step, depth, link, sizes (no decoding)."""
    return _ckz.peek(os.fspath(path))
