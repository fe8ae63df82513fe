#!/usr/bin/python3
"""Ordinary Python objects inside .pt files, written and loaded by real PyTorch (Debian's
python3-torch, /usr/bin/python3): CKZ carries them without running them.

- A training history whose checkpoints hold OneCycleLR's and MultiStepLR's states (a bound
  method through __builtin__.getattr, a collections.Counter), an argparse.Namespace, numpy's
  RNG state, a set, a frozenset, a defaultdict, a dataclass and an int beyond 64 bits
  compresses as a chain: with --lossless every file restores byte-identical; with the default
  (lossy) links every pickle restores byte-identical and torch.load gives the same objects.
- Every fixture of tests/data/torch (real torch.save files: each object, pickle protocols 1, 4
  and 5, cycles) round-trips byte-identical; a legacy file is unsupported (exit 5), a damaged
  one corrupt (exit 2).
- Converting to safetensors names what it cannot carry, and keeps tied weights the way
  safetensors' save_model does (one stored, the other named in the metadata).

Usage: test_torch_objects.py CKZ_BIN_DIR
"""
import argparse
import collections
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "history"))
import test_torch_pt  # noqa: E402
from test_torch_pt import assert_same, ckz, info  # noqa: E402
from ckzhistory.safetensors_io import read_safetensors  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "data", "torch")
MAKE_HISTORY = os.path.join(ROOT, "tools", "history", "make_history.py")


@dataclasses.dataclass
class RunConfig:
    lr: float
    layers: list
    note: str = "carried, never run"


def objects_history(folder, checkpoints=3):
    """A small MLP trained with Adam, saved with every object of issue 16 beside it."""
    os.makedirs(folder)
    torch.manual_seed(0)
    np.random.seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    onecycle = torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=0.05, total_steps=100)
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    multistep = torch.optim.lr_scheduler.MultiStepLR(other, milestones=[2, 4, 4], gamma=0.5)
    args = argparse.Namespace(lr=1e-2, depth=2, tags=["a", "b"])
    stats = collections.defaultdict(list)
    seen = set()
    for c in range(1, checkpoints + 1):
        for _ in range(5):
            x = torch.from_numpy(np.random.randn(32, 6).astype(np.float32))
            loss = model(x).pow(2).mean()
            adam.zero_grad()
            loss.backward()
            adam.step()
            onecycle.step()
            other.step()
            multistep.step()
            stats["loss"].append(loss.item())
        seen.add(c)
        torch.save({"model": model.state_dict(), "optimizer": adam.state_dict(),
                    "scheduler": onecycle.state_dict(), "milestones": multistep.state_dict(),
                    "args": args, "rng": {"numpy": np.random.get_state(),
                                          "torch": torch.get_rng_state()},
                    "stats": stats, "seen": seen, "frozen": frozenset(seen),
                    "config": RunConfig(lr=1e-2, layers=[6, 16, 4]), "step": 5 * c,
                    "big": 2**80 + c},
                   os.path.join(folder, "step_%d.pt" % (5 * c)))
    return [os.path.join(folder, "step_%d.pt" % (5 * c)) for c in range(1, checkpoints + 1)]


def pickle_of(path):
    with zipfile.ZipFile(path) as z:
        return z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0])


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Objects(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckz-objects-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def restored(self, out, pt, lossy):
        """Decompresses OUT/<pt>.ckz, checks it against `pt` and returns it."""
        name = os.path.basename(pt)
        path = os.path.join(self.tmp, ("lossy-" if lossy else "") + name)
        ckz("decompress", "-q", os.path.join(out, name + ".ckz"), "-o", path)
        if lossy:
            self.assertEqual(pickle_of(pt), pickle_of(path), name)
        else:
            self.assertEqual(read(pt), read(path), name)
        assert_same(self, torch.load(pt), torch.load(path), name, floats=not lossy)
        return path

    def test_objects_round_trip_lossless_and_lossy(self):
        pts = objects_history(os.path.join(self.tmp, "hist"))
        meta = info_metadata(pts[0], self.tmp)
        for g in ("__builtin__.getattr", "collections.Counter", "argparse.Namespace",
                  "numpy.core.multiarray._reconstruct", "__builtin__.set",
                  "collections.defaultdict", "__main__.RunConfig"):
            self.assertIn(g, meta, "the objects are recorded in torch.pickle")
        for lossy in (False, True):
            with self.subTest(lossy=lossy):
                out = os.path.join(self.tmp, "lossy" if lossy else "lossless")
                ckz("compress", "-q", *([] if lossy else ["--lossless"]),
                    os.path.join(self.tmp, "hist"), "-o", out)
                ckz("verify", "-q", *[os.path.join(out, os.path.basename(p) + ".ckz") for p in pts])
                link = info(os.path.join(out, os.path.basename(pts[-1]) + ".ckz"))
                quantized = [t["name"] for t in link["tensors"] if t["quantization"]]
                if lossy:  # the weights and Adam's moments of the links are shrunk
                    self.assertIn("model/0.weight", quantized)
                    self.assertIn("optimizer/state/0/exp_avg_sq", quantized)
                else:
                    self.assertEqual(quantized, [])
                for pt in pts:
                    restored = self.restored(out, pt, lossy)
                    loaded = torch.load(restored)
                    self.assertEqual(loaded["milestones"]["milestones"], collections.Counter({2: 1, 4: 2}))
                    self.assertEqual(loaded["big"] - 2**80, pts.index(pt) + 1)
                    self.assertEqual(loaded["scheduler"]["anneal_func"].__name__, "_annealing_cos")

    def test_every_fixture_round_trips(self):
        names = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".pt") and f != "legacy.pt")
        self.assertGreaterEqual(len(names), 23)
        for name in names:
            with self.subTest(name=name):
                src = os.path.join(FIXTURES, name)
                out = os.path.join(self.tmp, name + ".ckz")
                ckz("compress", "-q", src, "-o", out)
                ckz("decompress", "-q", out, "-o", os.path.join(self.tmp, name))
                self.assertEqual(read(src), read(os.path.join(self.tmp, name)))
        # Unsupported is not corrupt: a legacy file exits 5, a damaged archive 2.
        r = ckz("compress", os.path.join(FIXTURES, "legacy.pt"), "-o",
                os.path.join(self.tmp, "legacy.ckz"), check=False)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertIn("TorchLegacyFormat", r.stderr)
        damaged = os.path.join(self.tmp, "damaged.pt")
        data = bytearray(read(os.path.join(FIXTURES, "namespace.pt")))
        data[len(data) // 3] ^= 0x10
        with open(damaged, "wb") as f:
            f.write(data)
        r = ckz("compress", damaged, "-o", os.path.join(self.tmp, "damaged.ckz"), check=False)
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_conversion_says_what_it_cannot_carry(self):
        pt = objects_history(os.path.join(self.tmp, "hist"), checkpoints=1)[0]
        ckz("compress", "-q", pt, "-o", os.path.join(self.tmp, "o.ckz"))
        st = os.path.join(self.tmp, "o.safetensors")
        r = ckz("decompress", os.path.join(self.tmp, "o.ckz"), "-o", st)
        self.assertIn("not carried: the rest of step_5.pt's pickle", r.stderr)
        self.assertIn("argparse.Namespace", r.stderr)
        tensors, _ = read_safetensors(st)
        self.assertIn("model/0.weight", tensors)
        self.assertIn("rng/torch", tensors)  # a ByteTensor is a tensor too

    def test_tied_weights_survive_conversion(self):
        # A real tied model: make_history's char transformer with --tie-weights (the output
        # head is the embedding).
        hist = os.path.join(self.tmp, "tied")
        subprocess.run(["/usr/bin/python3", MAKE_HISTORY, "--model", "chargpt", "--steps", "2",
                        "--every", "2", "--format", "pt", "--out", hist, "--quiet",
                        "--tie-weights"], check=True)
        pt = os.path.join(hist, sorted(f for f in os.listdir(hist) if f.endswith(".pt"))[0])
        saved = torch.load(pt)["model"]
        tied = [(a, b) for a in saved for b in saved
                if a < b and saved[a].data_ptr() == saved[b].data_ptr()]
        self.assertTrue(tied, "the model has tied weights")
        ckz("compress", "-q", pt, "-o", os.path.join(self.tmp, "t.ckz"))
        st = os.path.join(self.tmp, "t.safetensors")
        r = ckz("decompress", os.path.join(self.tmp, "t.ckz"), "-o", st)
        self.assertIn("tied tensor name(s) stored once", r.stderr)
        tensors, metadata = read_safetensors(st)
        for a, b in tied:
            # One of the two is stored; the other is named in the metadata, pointing at it.
            stored, other = ("model/" + a, "model/" + b)
            if stored not in tensors:
                stored, other = other, stored
            self.assertIn(stored, tensors)
            self.assertNotIn(other, tensors)
            self.assertEqual(metadata[other], stored)
            self.assertEqual(tensors[stored][2], test_torch_pt.tensor_bytes(saved[a]))


def info_metadata(pt, tmp):
    """The torch.pickle metadata CKZ records for `pt`."""
    out = os.path.join(tmp, "meta.ckz")
    ckz("compress", "-q", "-f", pt, "-o", out)
    return info(out)["metadata"].get("torch.pickle", "")


if __name__ == "__main__":
    test_torch_pt.BIN = os.path.abspath(sys.argv.pop(1))
    unittest.main()
