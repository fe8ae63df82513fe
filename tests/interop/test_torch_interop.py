#!/usr/bin/python3
"""Real PyTorch on both sides of CKZ (run by ctest with Debian's /usr/bin/python3).

1. PyTorch trains a small model and saves a history (torch.save .pt files and safetensors with
   the same tensors); ckz compresses the safetensors history as a chain, restores every
   checkpoint, and every restored tensor must equal, bit for bit, what torch.load returns from
   the .pt file (model weights and both Adam moments).
2. A Hugging Face-style sharded checkpoint (model.safetensors.index.json + 2 shards, written
   here from torch tensors) round-trips byte-identically through a folder.
3. A released weights-only history (make_history.py's released-bf16 and released-bin formats:
   stepN/ folders of shards with an index) compresses as a chain and restores byte-identically;
   the .bin shards' tensors keep their own names; an index that misplaces a tensor is refused.

Usage: test_torch_interop.py CKZ_BIN_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "history"))
from ckzhistory.safetensors_io import DTYPE_NAMES, read_safetensors, tensor_bytes, write_safetensors  # noqa: E402

BIN = None


def ckz(*args):
    return subprocess.run([os.path.join(BIN, "ckz"), *args], check=True, capture_output=True,
                          text=True).stdout


class TorchInterop(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckz-interop-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_trained_history_restores_what_torch_saved(self):
        hist = os.path.join(self.tmp, "hist")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "history", "make_history.py"),
                        "--model", "cnn", "--steps", "6", "--every", "2", "--format", "pt,safetensors",
                        "--out", hist, "--quiet"], check=True)
        st_dir = os.path.join(self.tmp, "st")
        os.makedirs(st_dir)
        for name in sorted(os.listdir(hist)):
            if name.endswith(".safetensors"):
                shutil.copy(os.path.join(hist, name), st_dir)
        out = os.path.join(self.tmp, "ckz")
        ckz("compress", "-q", "--lossless", st_dir, "-o", out, "--keyframe-interval", "2")
        ckz("verify", "-q", *sorted(os.path.join(out, f) for f in os.listdir(out)))
        steps = sorted(f[:-len(".safetensors")] for f in os.listdir(st_dir))
        self.assertEqual(len(steps), 3)
        for step in steps:
            restored = os.path.join(self.tmp, step + ".restored.safetensors")
            ckz("decompress", "-q", os.path.join(out, step + ".safetensors.ckz"), "-o", restored)
            tensors, meta = read_safetensors(restored)
            saved = torch.load(os.path.join(hist, step + ".pt"))
            self.assertEqual(meta["step"], str(saved["step"]))
            model = saved["model"]
            for name, t in model.items():
                dtype, shape, raw = tensors[name]
                self.assertEqual(dtype, DTYPE_NAMES[t.dtype], name)
                self.assertEqual(shape, list(t.shape), name)
                self.assertEqual(raw, tensor_bytes(t), "weight %s differs after CKZ" % name)
            # Adam state is keyed by parameter index, in param_groups order; the trainable
            # parameters are the state_dict entries that have moments, in state_dict order.
            params = [n for n in model if n + ".exp_avg" in tensors]
            opt_state = saved["optimizer"]["state"]
            order = [i for g in saved["optimizer"]["param_groups"] for i in g["params"]]
            self.assertEqual(len(order), len(params))
            for index, name in zip(order, params):
                for moment in ("exp_avg", "exp_avg_sq"):
                    raw = tensors[name + "." + moment][2]
                    self.assertEqual(raw, tensor_bytes(opt_state[index][moment]),
                                     "%s.%s differs after CKZ" % (name, moment))

    def test_sharded_checkpoint_round_trips_byte_identically(self):
        torch.manual_seed(0)
        src = os.path.join(self.tmp, "model")
        os.makedirs(src)
        shards = {
            "model-00001-of-00002.safetensors": {
                "embed.weight": torch.randn(50, 16), "layer.0.weight": torch.randn(16, 16).half()},
            "model-00002-of-00002.safetensors": {
                "layer.1.weight": torch.randn(16, 16).to(torch.bfloat16), "head.bias": torch.zeros(5),
                "steps": torch.tensor(7, dtype=torch.int64), "mask": torch.rand(9) > 0.5},
        }
        weight_map = {}
        for shard, tensors in shards.items():
            write_safetensors(os.path.join(src, shard), list(tensors.items()), {"format": "pt"})
            weight_map.update({k: shard for k in tensors})
        with open(os.path.join(src, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 1234}, "weight_map": weight_map}, f, indent=2)
        ckz("compress", "-q", src, "-o", os.path.join(self.tmp, "model.ckz"))
        dst = os.path.join(self.tmp, "restored")
        ckz("decompress", "-q", os.path.join(self.tmp, "model.ckz"), "-o", dst)
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name), "rb") as a, open(os.path.join(dst, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        self.assertEqual(sorted(os.listdir(src)), sorted(os.listdir(dst)))

    def test_released_history_of_shards(self):
        hist = os.path.join(self.tmp, "hist")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "history", "make_history.py"),
                        "--model", "mlp", "--steps", "4", "--every", "2", "--quiet",
                        "--format", "released-bf16,released-bin", "--out", hist], check=True)
        for fmt in ("released-bf16", "released-bin"):
            src = os.path.join(hist, fmt)
            self.assertEqual(sorted(os.listdir(src)), ["step2", "step4"])
            out = os.path.join(self.tmp, fmt + ".ckz")
            ckz("compress", "-q", src, "-o", out)
            self.assertEqual(sorted(os.listdir(out)), ["step2.ckz", "step4.ckz"])
            info = json.loads(ckz("info", "--json", os.path.join(out, "step4.ckz")))
            self.assertEqual(info["link"]["depth"], 1)
            names = [t["name"] for t in info["tensors"]]
            self.assertIn("fc1.weight", names)  # no shard-file prefix
            self.assertTrue(all(t["dtype"] == "BF16" for t in info["tensors"]))
            dst = os.path.join(self.tmp, fmt + ".restored")
            ckz("decompress", "-q", os.path.join(out, "step4.ckz"), "-o", dst)
            for name in os.listdir(os.path.join(src, "step4")):
                with open(os.path.join(src, "step4", name), "rb") as a, \
                        open(os.path.join(dst, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), name)
        # A .bin index that puts a tensor in the other shard.
        bad = os.path.join(self.tmp, "bad")
        shutil.copytree(os.path.join(hist, "released-bin", "step2"), bad)
        index_path = os.path.join(bad, "pytorch_model.bin.index.json")
        with open(index_path) as f:
            index = json.load(f)
        shards = sorted(set(index["weight_map"].values()))
        name = next(n for n, s in index["weight_map"].items() if s == shards[0])
        index["weight_map"][name] = shards[1]
        with open(index_path, "w") as f:
            json.dump(index, f)
        r = subprocess.run([os.path.join(BIN, "ckz"), "compress", bad, "-o",
                            os.path.join(self.tmp, "bad.ckz")], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("'%s'" % name, r.stderr)
        self.assertIn("weight_map", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad.ckz")))


if __name__ == "__main__":
    BIN = sys.argv.pop(1)
    unittest.main()
