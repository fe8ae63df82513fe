"""Sharded checkpoints under torch.distributed: every rank writes its own shard, in parallel, as
a link of its own chain (no gather of tensors to rank 0); rank 0 writes a small manifest once
every rank has reported success. A checkpoint is complete only when its manifest exists and
names all shards, so a failed or killed save leaves the previous checkpoint the latest.

    ckz.distributed.save(model.state_dict(), "ckpt", step)        # on every rank
    state = ckz.distributed.load("ckpt")                          # same world size
    ckz.distributed.merge("ckpt", "merged.pt.ckz")                # one file (or python3 -m ckz merge)

Layout: DIR/rank_00000/step_00000100.pt.ckz ... (one Chain per rank) and
DIR/step_00000100.manifest.json.
"""
import json
import os
import re

import torch
import torch.distributed as dist

from . import _api
from .chain import Chain

MANIFEST_FORMAT = "ckz-sharded-checkpoint"
_MANIFEST = re.compile(r"^step_(\d+)\.manifest\.json$")


class ShardedSaveError(RuntimeError):
    """A sharded save that did not complete: `failures` maps each failed rank to its error."""

    def __init__(self, step, failures):
        super().__init__("checkpoint of step %d is incomplete (no manifest written): %s" % (
            step, "; ".join("rank %d: %s" % (r, m) for r, m in sorted(failures.items()))))
        self.step = step
        self.failures = failures


def manifest_path(directory, step):
    return os.path.join(os.fspath(directory), "step_%08d.manifest.json" % step)


def shard_dir(directory, rank):
    return os.path.join(os.fspath(directory), "rank_%05d" % rank)


def _write_atomically(path, text):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself reaches the disk
    finally:
        os.close(fd)


class ShardedChain:
    """One rank's side of a sharded chain: its shards in DIR/rank_NNNNN as a ckz.Chain, and
    the manifests rank 0 writes. Every rank must call save() for the same steps (it is a
    collective). With async_save=True a shard encodes in the background and the save is
    committed (results gathered, manifest written) by the next save(), wait() or close(), on
    the calling thread, so collectives never run on a background thread."""

    def __init__(self, directory, keyframe_interval=10, lossless=False, async_save=False, *,
                 group=None, **options):
        if not dist.is_initialized():
            raise RuntimeError("ckz.distributed needs torch.distributed initialised "
                               "(init_process_group)")
        self.directory = os.fspath(directory)
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self._chain = Chain(shard_dir(self.directory, self.rank), keyframe_interval, lossless,
                            async_save, **options)
        self._async = async_save
        self._pending = None  # (step, local exception or None)

    def save(self, state_dict, step):
        self._commit()
        error = None
        try:
            self._chain.save(state_dict, step)
        except Exception as e:  # still take part in the commit, so no rank waits forever
            error = e
        self._pending = (step, error)
        if not self._async:
            self._commit()

    def wait(self):
        self._commit()

    def close(self):
        try:
            self._commit()
        finally:
            self._chain.close()

    def _commit(self):
        if self._pending is None:
            return
        step, error = self._pending
        self._pending = None
        report = None
        if error is None:
            try:
                info = self._chain.wait()
                if info is None or info["step"] != step:
                    raise RuntimeError("the shard of step %d was not written" % step)
                report = {"rank": self.rank, "content_id": info["content_id"],
                          "file_bytes": info["file_bytes"], "depth": info["depth"],
                          "path": os.path.relpath(info["path"], self.directory)}
            except Exception as e:
                error = e
        if error is not None:
            report = {"rank": self.rank, "error": "%s: %s" % (type(error).__name__, error)}
        reports = [None] * self.world_size
        dist.all_gather_object(reports, report, group=self.group)
        failures = {r["rank"]: r["error"] for r in reports if "error" in r}
        if not failures and self.rank == 0:
            manifest = {"format": MANIFEST_FORMAT, "version": 1, "step": step,
                        "world_size": self.world_size,
                        "shards": sorted(reports, key=lambda r: r["rank"])}
            _write_atomically(manifest_path(self.directory, step),
                              json.dumps(manifest, indent=1) + "\n")
        dist.barrier(group=self.group)  # when save returns, the manifest is there
        if failures:
            raise ShardedSaveError(step, failures) from error


_chains = {}


def save(state_dict, directory, step, *, group=None, **chain_options):
    """Saves this rank's `state_dict` as its shard of the checkpoint of `step` (a collective:
    every rank calls it). The first call for a directory opens a ShardedChain with
    `chain_options` (keyframe_interval, lossless, async_save, compress options); later calls
    continue it. With async_save=True, call close() before exiting."""
    key = (os.path.abspath(os.fspath(directory)), id(group))
    chain = _chains.get(key)
    if chain is None:
        chain = _chains[key] = ShardedChain(directory, group=group, **chain_options)
    chain.save(state_dict, step)


def close():
    """Commits and closes the sharded chains save() opened (a collective: every rank calls
    it). Needed before exiting when they save with async_save=True: the last save is
    committed, its manifest written, only then."""
    try:
        for chain in _chains.values():
            chain.close()
    finally:
        _chains.clear()


def read_manifest(directory, step=None):
    """The manifest of `step`, or of the latest complete checkpoint (None if there is none).
    Complete: the manifest parses and names one shard per rank of its world size."""
    directory = os.fspath(directory)
    if step is not None:
        candidates = [step]
    else:
        candidates = sorted((int(m.group(1)) for m in map(_MANIFEST.match, os.listdir(directory))
                             if m), reverse=True)
    for s in candidates:
        try:
            with open(manifest_path(directory, s)) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            if step is not None:
                raise _api.error("IoError", "%s: no complete checkpoint of step %d" %
                                 (directory, step)) from None
            continue
        shards = manifest.get("shards", [])
        if (manifest.get("format") == MANIFEST_FORMAT and manifest.get("step") == s and
                [r.get("rank") for r in shards] == list(range(manifest.get("world_size", -1)))):
            return manifest
        if step is not None:
            raise _api.error("IoError", "%s: the manifest of step %d is not complete" %
                             (directory, step))
    return None


def _shard_path(directory, manifest, rank):
    shard = manifest["shards"][rank]
    path = os.path.join(os.fspath(directory), shard["path"])
    found = _api.info(path)["content_id"]
    if found != shard["content_id"]:
        raise _api.error("WrongParent", "%s has content id %s, the manifest of step %d names %s"
                         % (path, found, manifest["step"], shard["content_id"]))
    return path


def load(directory, step=None, map_location=None, *, group=None, rank=None, **load_options):
    """This rank's shard of the checkpoint of `step` (default: the latest complete one), as
    ckz.load returns it. The world size must be the one the checkpoint was saved with. Outside
    torch.distributed, give `rank`."""
    manifest = read_manifest(directory, step)
    if manifest is None:
        raise _api.error("IoError", "%s holds no complete sharded checkpoint" %
                         os.fspath(directory))
    if rank is None:
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: give rank=")
        rank = dist.get_rank(group)
        if dist.get_world_size(group) != manifest["world_size"]:
            raise _api.error("Unsupported", "step %d was saved by %d ranks; loading with %d "
                             "needs the same world size (merge it with ckz.distributed.merge)" %
                             (manifest["step"], manifest["world_size"], dist.get_world_size(group)))
    if not 0 <= rank < manifest["world_size"]:
        raise ValueError("rank %d outside the checkpoint's world size %d" %
                         (rank, manifest["world_size"]))
    return _api.load(_shard_path(directory, manifest, rank), map_location, **load_options)


def _same(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and
                a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def merge_states(states):
    """One object from the ranks' shards: dicts merge key by key, recursively (a rank's own
    keys are taken as they are: sharded state), and a key that several ranks hold must hold
    the same value on each (replicated state); anything else is refused."""
    def merge(values, where):
        if all(isinstance(v, dict) for _, v in values):
            out = type(values[0][1])()
            for rank, v in values:
                for k in v:
                    if k not in out:
                        holders = [(r, d[k]) for r, d in values if k in d]
                        out[k] = merge(holders, where + [k])
            return out
        first_rank, first = values[0]
        for rank, v in values[1:]:
            if not _same(first, v):
                raise _api.error("Unsupported", "cannot merge the shards: %s differs between "
                                 "rank %d and rank %d" % ("/".join(map(str, where)) or "the root",
                                                          first_rank, rank))
        return first
    return merge(list(enumerate(states)), [])


def merge(directory, output, step=None, **save_options):
    """Merges every shard of the checkpoint of `step` (default: the latest complete one) into
    the one file `output`, with merge_states: a keyframe, so the shards' decoded values are
    kept exactly. Returns what ckz.save wrote."""
    manifest = read_manifest(directory, step)
    if manifest is None:
        raise _api.error("IoError", "%s holds no complete sharded checkpoint" %
                         os.fspath(directory))
    states = [_api.load(_shard_path(directory, manifest, r))
              for r in range(manifest["world_size"])]
    return _api.save(merge_states(states), output, **save_options)
