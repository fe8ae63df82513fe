#!/usr/bin/python3
"""PyTorch .pt files and Trainer folders through CKZ, checked with real PyTorch (Debian's
python3-torch, /usr/bin/python3).

- Histories of each model (torch.save .pt, Adam/AdamW, schedulers) compress as a chain; every
  restored file is byte-identical to the original and torch.load gives an equal object.
- Optimizer moments are linked to the right parameters (checked against the model's own
  parameter order), and an ambiguous layout is reported, not guessed.
- A Hugging Face Trainer-style folder round-trips file by file.
- -o converts .pt <-> safetensors, and torch.load / the strict safetensors reader accept it.

Usage: test_torch_pt.py CKZ_BIN_DIR
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
import unittest

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "history"))
from ckzhistory.safetensors_io import read_safetensors, tensor_bytes, write_safetensors  # noqa: E402

BIN = None
MAKE_HISTORY = os.path.join(ROOT, "tools", "history", "make_history.py")


def ckz(*args, check=True):
    return subprocess.run([os.path.join(BIN, "ckz"), *args], check=check, capture_output=True,
                          text=True)


def info(path):
    out = subprocess.run([os.path.join(BIN, "ckzinfo"), "--json", path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def assert_same(test, a, b, where="root", floats=True, seen=None):
    """Deep equality of torch.load results: same types, keys in order, tensors bit-equal (float
    tensors only in dtype, shape and stride when `floats` is False: a lossy restore), and other
    objects (numpy arrays, sets, bound methods, anything with a __dict__) part by part, each
    pair once (the objects of a checkpoint may refer to each other in cycles)."""
    test.assertEqual(type(a), type(b), where)
    if isinstance(a, torch.Tensor):
        test.assertEqual(a.dtype, b.dtype, where)
        test.assertEqual(a.shape, b.shape, where)
        test.assertEqual(a.stride(), b.stride(), where)
        if floats or not a.is_floating_point():
            test.assertEqual(tensor_bytes(a), tensor_bytes(b), where)
        return
    seen = set() if seen is None else seen
    if isinstance(a, (dict, list, tuple, types.MethodType, np.ndarray)) or hasattr(a, "__dict__"):
        if (id(a), id(b)) in seen:
            return
        seen.add((id(a), id(b)))

    def same(x, y, w):
        assert_same(test, x, y, w, floats, seen)

    if isinstance(a, np.ndarray):
        test.assertEqual((a.dtype, a.shape, a.tobytes()), (b.dtype, b.shape, b.tobytes()), where)
    elif isinstance(a, dict):
        same(list(a.keys()), list(b.keys()), where + "/keys")
        for (ka, va), vb in zip(a.items(), b.values()):
            same(va, vb, "%s/%s" % (where, ka))
        if isinstance(a, collections.defaultdict):
            test.assertEqual(a.default_factory, b.default_factory, where)
    elif isinstance(a, (list, tuple)):
        test.assertEqual(len(a), len(b), where)
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, "%s/%d" % (where, i))
    elif isinstance(a, types.MethodType):
        test.assertIs(a.__func__, b.__func__, where)
        same(a.__self__, b.__self__, where + "/__self__")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        same(vars(a), vars(b), where)
    else:
        test.assertEqual(a, b, where)


class TorchFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckz-pt-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def history(self, model, fmt, steps=6, every=2, extra=()):
        out = os.path.join(self.tmp, "%s-%s" % (model, fmt))
        subprocess.run(["/usr/bin/python3", MAKE_HISTORY, "--model", model, "--steps", str(steps),
                        "--every", str(every), "--format", fmt, "--out", out, "--quiet", *extra],
                       check=True)
        return out

    def test_histories_restore_byte_identical_and_load_equal(self):
        # Default lossless links (zstd byte planes), and with the cmf float model (format 0.6).
        for model, entropy in (("mlp", ()), ("cnn", ()), ("chargpt", ()),
                               ("cnn", ("--entropy", "cm")), ("chargpt", ("--entropy", "cm"))):
            with self.subTest(model=model, entropy=entropy):
                hist = self.history(model, "pt")
                pts = sorted(f for f in os.listdir(hist) if f.endswith(".pt"))
                tag = model + ("-cm" if entropy else "")
                out = os.path.join(self.tmp, tag + "-ckz")
                r = ckz("compress", "--lossless", *entropy, hist, "-o", out,
                        "--keyframe-interval", "2")
                self.assertNotIn("not linked", r.stderr)  # roles were linked
                # The generator's history.json is not a checkpoint: named, not dropped silently.
                self.assertIn("not compressed: history.json (not checkpoints)", r.stderr)
                ckz("verify", "-q", *[os.path.join(out, p + ".ckz") for p in pts])
                if entropy:  # some F32 tensor of the link is cmf-coded
                    codecs = [t["streams"] for t in info(os.path.join(out, pts[1] + ".ckz"))["tensors"]]
                    self.assertTrue(any("cmf" in c for c in codecs), codecs)
                for p in pts:
                    restored = os.path.join(self.tmp, "r-%s-%s" % (tag, p))
                    ckz("decompress", "-q", os.path.join(out, p + ".ckz"), "-o", restored)
                    with open(os.path.join(hist, p), "rb") as a, open(restored, "rb") as b:
                        self.assertEqual(a.read(), b.read(), "%s not byte-identical" % p)
                    assert_same(self, torch.load(os.path.join(hist, p)), torch.load(restored))

    def test_lossy_chain_loads_and_keeps_every_non_moment_field(self):
        hist = self.history("chargpt", "pt", steps=6, every=2)
        pts = sorted(f for f in os.listdir(hist) if f.endswith(".pt"))
        # The default (rate-distortion levels) and ExCP's codebooks.
        for options, summary in (((), "lossy: rate-distortion"), (("--excp",), "lossy: ExCP")):
            out = os.path.join(self.tmp, "lossy" + "".join(options))
            r = ckz("compress", hist, "-o", out, *options)
            self.assertIn(summary, r.stdout)
            ckz("verify", "-q", *[os.path.join(out, p + ".ckz") for p in pts])
            parent = torch.load(os.path.join(hist, pts[0]))  # the keyframe: lossless
            for p in pts[1:]:  # the links
                restored = os.path.join(self.tmp, "lossy-" + p)
                ckz("decompress", "-q", "-f", os.path.join(out, p + ".ckz"), "-o", restored)
                a, b = torch.load(os.path.join(hist, p)), torch.load(restored)
                self.assertEqual(list(a), list(b))
                # Everything outside the moments and weights is exact, from this checkpoint.
                self.assertEqual(a["step"], b["step"])
                self.assertEqual(a["config"], b["config"])
                self.assertEqual(a["optimizer"]["param_groups"], b["optimizer"]["param_groups"])
                if "scheduler" in a:
                    self.assertEqual(a["scheduler"], b["scheduler"])
                for pid, st in a["optimizer"]["state"].items():
                    self.assertTrue(torch.equal(st["step"], b["optimizer"]["state"][pid]["step"]))
                    self.assertTrue(bool((b["optimizer"]["state"][pid]["exp_avg_sq"] >= 0).all()))
                # A closed loop does not drift: a link's error is at most its step from the
                # decoded parent (ExCP: pruning drops part of the step, quantization stays
                # within it; levels: rounding to half of a step of twice the RMS update).
                for k, v in a["model"].items():
                    w = b["model"][k]
                    self.assertEqual(w.shape, v.shape)
                    if v.is_floating_point():
                        step = (v - parent["model"][k]).norm().item()
                        self.assertLessEqual((v - w).norm().item(), step * 1.0001 + 1e-12, k)
                parent = b

    def test_moments_are_linked_to_their_parameters(self):
        hist = self.history("cnn", "pt", steps=2, every=2)
        pt = os.path.join(hist, "step_000002.pt")
        ckz("compress", "-q", pt, "-o", os.path.join(self.tmp, "c.ckz"))
        tensors = info(os.path.join(self.tmp, "c.ckz"))["tensors"]
        saved = torch.load(pt)
        # The optimizer's ids are positions in model.parameters(): the state_dict without buffers.
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        params = [k for k in saved["model"] if not k.endswith(buffers)]
        order = [i for g in saved["optimizer"]["param_groups"] for i in g["params"]]
        by_name = {t["name"]: i for i, t in enumerate(tensors)}
        linked = 0
        for position, pid in enumerate(order):
            weight = by_name["model/" + params[position]]
            self.assertEqual(tensors[weight]["role"], "weight")
            for key, role in (("exp_avg", "moment1"), ("exp_avg_sq", "moment2")):
                t = tensors[by_name["optimizer/state/%d/%s" % (pid, key)]]
                self.assertEqual(t["role"], role)
                self.assertEqual(t["owner"], weight)
                linked += 1
        self.assertEqual(linked, 2 * len(order))
        for t in tensors:
            if t["name"].endswith(("running_mean", "running_var")):
                self.assertEqual(t["role"], "other")
            if t["name"].endswith("/step"):
                self.assertEqual(t["role"], "other")

    def test_other_optimizers_get_roles_and_stay_lossless_by_default(self):
        # ExCP's pruning needs Adam's v: SGD, RMSprop and Adagrad checkpoints get their roles
        # but their links stay bit-exact unless --fallback-k asks for fixed-k pruning.
        roles = {"sgd": {"momentum_buffer": "moment1"},
                 "rmsprop": {"square_avg": "moment2", "momentum_buffer": "moment1"},
                 "adagrad": {"sum": "moment2"}}
        for opt, keys in roles.items():
            hist = self.history("mlp", "pt", steps=4, every=2,
                                extra=("--optimizer", opt, "--lr", "0.05"))
            pts = sorted(f for f in os.listdir(hist) if f.endswith(".pt"))
            out = os.path.join(self.tmp, "ckz-" + opt)
            r = ckz("compress", hist, "-o", out)
            self.assertIn("6 weights without Adam's v kept lossless", r.stdout, opt)
            link = os.path.join(out, pts[1] + ".ckz")
            tensors = info(link)["tensors"]
            by_name = {t["name"]: t for t in tensors}
            for t in tensors:
                self.assertIsNone(t["quantization"], t["name"])
                key = t["name"].rsplit("/", 1)[-1]
                if t["name"].startswith("optimizer/state/") and key in keys:
                    self.assertEqual(t["role"], keys[key], t["name"])
                    self.assertEqual(by_name[tensors[t["owner"]]["name"]]["role"], "weight")
            restored = os.path.join(self.tmp, "restored-%s.pt" % opt)
            ckz("decompress", "-q", link, "-o", restored)
            with open(restored, "rb") as a, open(os.path.join(hist, pts[1]), "rb") as b:
                self.assertEqual(a.read(), b.read(), opt)
            # Asked for, the fixed k prunes them (and says so).
            r = ckz("compress", "-f", hist, "-o", out, "--excp", "--fallback-k", "1")
            self.assertIn("fallback-k=1", r.stdout, opt)
            self.assertTrue(any(t["quantization"] for t in info(link)["tensors"]), opt)

    def test_ambiguous_layout_is_reported_not_guessed(self):
        class Tricky(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = torch.nn.Parameter(torch.randn(4))
                self.register_buffer("b", torch.randn(4))  # same shape as both parameters
                self.c = torch.nn.Parameter(torch.randn(4))
        torch.manual_seed(0)
        m = Tricky()
        opt = torch.optim.Adam(m.parameters())
        (m.a.sum() + m.c.sum()).backward()
        opt.step()
        pt = os.path.join(self.tmp, "tricky.pt")
        torch.save({"model": m.state_dict(), "optimizer": opt.state_dict()}, pt)
        r = ckz("compress", pt, "-o", os.path.join(self.tmp, "t.ckz"))
        self.assertIn("more than one way", r.stderr)
        for t in info(os.path.join(self.tmp, "t.ckz"))["tensors"]:
            if t["name"].startswith("optimizer/"):
                self.assertEqual(t["role"], "other", t["name"])
                self.assertIsNone(t["owner"])
        ckz("decompress", "-q", os.path.join(self.tmp, "t.ckz"), "-o", os.path.join(self.tmp, "t.pt"))
        assert_same(self, torch.load(pt), torch.load(os.path.join(self.tmp, "t.pt")))

    def test_trainer_folder_round_trips_every_file(self):
        hist = self.history("mlp", "trainer", steps=4, every=2)
        ckpt = os.path.join(hist, "checkpoint-4")
        ckz("compress", "-q", ckpt, "-o", os.path.join(self.tmp, "ck.ckz"))
        meta = info(os.path.join(self.tmp, "ck.ckz"))
        tensors = meta["tensors"]
        owned = [t for t in tensors if t["role"] in ("moment1", "moment2")]
        self.assertTrue(owned, "optimizer.pt moments should be linked to model.safetensors")
        for t in owned:
            self.assertTrue(t["name"].startswith("optimizer.pt:"), t["name"])
            self.assertEqual(tensors[t["owner"]]["shape"], t["shape"])
        restored = os.path.join(self.tmp, "restored")
        ckz("decompress", "-q", os.path.join(self.tmp, "ck.ckz"), "-o", restored)
        self.assertEqual(sorted(os.listdir(ckpt)), sorted(os.listdir(restored)))
        for name in os.listdir(ckpt):
            with open(os.path.join(ckpt, name), "rb") as a, open(os.path.join(restored, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        # A history of Trainer folders chains too.
        r = ckz("compress", "-q", "--lossless", hist, "-o", os.path.join(self.tmp, "hist-ckz"))
        self.assertEqual(sorted(os.listdir(os.path.join(self.tmp, "hist-ckz"))),
                         ["checkpoint-2.ckz", "checkpoint-4.ckz"])

    def test_conversions(self):
        hist = self.history("mlp", "pt", steps=2, every=2)
        pt = os.path.join(hist, "step_000002.pt")
        ckz("compress", "-q", pt, "-o", os.path.join(self.tmp, "m.ckz"))
        st = os.path.join(self.tmp, "m.safetensors")
        ckz("decompress", "-q", os.path.join(self.tmp, "m.ckz"), "-o", st)
        tensors, _ = read_safetensors(st)
        saved = torch.load(pt)
        for name, t in saved["model"].items():
            self.assertEqual(tensors["model/" + name][2], tensor_bytes(t), name)
        # safetensors -> .pt: torch.load gives an OrderedDict of the same tensors.
        src = os.path.join(self.tmp, "w.safetensors")
        torch.manual_seed(1)
        ref = collections.OrderedDict([("w", torch.randn(3, 5)), ("h", torch.randn(7).half()),
                                       ("n", torch.tensor(3)), ("e", torch.zeros(0, 2))])
        write_safetensors(src, list(ref.items()))
        ckz("compress", "-q", src, "-o", os.path.join(self.tmp, "w.ckz"))
        out = os.path.join(self.tmp, "w.pt")
        ckz("decompress", "-q", os.path.join(self.tmp, "w.ckz"), "-o", out)
        assert_same(self, ref, torch.load(out))


if __name__ == "__main__":
    BIN = sys.argv.pop(1)
    unittest.main()
