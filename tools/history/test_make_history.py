#!/usr/bin/python3
"""Tests for make_history.py (run: /usr/bin/python3 tools/history/test_make_history.py).

Tiny configs only (well under a minute on 2 cores). The safetensors files are
parsed with the strict reader of ckzhistory.safetensors_io (struct + json + numpy, no code
shared with its writer) and compared bit-exactly with the matching .pt files.
"""
import contextlib
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_history  # noqa: E402

from ckzhistory.safetensors_io import DTYPE_NAMES, read_safetensors  # noqa: E402
from ckzhistory.safetensors_io import tensor_bytes as torch_bytes  # noqa: E402


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def run_cli(args):
    with contextlib.redirect_stdout(io.StringIO()):
        rc = make_history.main(args + ["--quiet"])
    assert rc == 0


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckzhist-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def assertSameTensor(self, st_entry, t, what):
        dtype, shape, raw = st_entry
        self.assertEqual(dtype, DTYPE_NAMES[t.dtype], what)
        self.assertEqual(shape, list(t.shape), what)
        self.assertEqual(raw, torch_bytes(t), what + ": bytes differ")

    def check_run(self, out, model, steps, every, trainer=True):
        hist = load_json(os.path.join(out, "history.json"))
        self.assertEqual(hist["model"], model)
        expected_steps = list(range(every, steps + 1, every))
        if steps % every:
            expected_steps.append(steps)
        self.assertEqual([c["step"] for c in hist["checkpoints"]], expected_steps)
        self.assertEqual(len(hist["train_log"]), steps)
        names = hist["optimizer_param_names"]
        for step in expected_steps:
            ck = torch.load(os.path.join(out, "step_%06d.pt" % step))
            self.assertEqual(ck["step"], step)
            self.assertEqual(ck["config"]["model"], model)
            self.assertIn("epoch", ck)
            sd, osd = ck["model"], ck["optimizer"]
            self.assertEqual(sum(v.numel() for k, v in sd.items()
                                 if k in names), hist["param_count"])
            st, meta = read_safetensors(os.path.join(out, "step_%06d.safetensors" % step))
            self.assertEqual(meta["step"], str(step))
            self.assertEqual(meta["model"], model)
            self.assertEqual(meta["optimizer"], ck["config"]["optimizer"])
            self.assertEqual(meta["format"], "ckz-history-v1")
            # model tensors
            for k, v in sd.items():
                self.assertSameTensor(st[k], v, k)
            # Adam state: ids in param_groups order <-> names
            ids = [i for g in osd["param_groups"] for i in g["params"]]
            self.assertEqual(len(ids), len(names))
            n_opt = 0
            for name, i in zip(names, ids):
                s = osd["state"][i]
                self.assertEqual(list(s["exp_avg"].shape), list(sd[name].shape))
                self.assertSameTensor(st[name + ".exp_avg"], s["exp_avg"], name)
                self.assertSameTensor(st[name + ".exp_avg_sq"], s["exp_avg_sq"], name)
                self.assertEqual(float(s["step"]), float(step))
                n_opt += 2
            self.assertEqual(len(st), len(sd) + n_opt)  # nothing else in the file
            self.assertEqual(float(meta["adam_step"]), float(step))
            if "scheduler" in ck:
                self.assertEqual(ck["scheduler"]["last_epoch"], step)
            if trainer:
                d = os.path.join(out, "checkpoint-%d" % step)
                mst, mmeta = read_safetensors(os.path.join(d, "model.safetensors"))
                self.assertEqual(mmeta, {"format": "pt"})
                for k, v in sd.items():
                    if k in mst:
                        self.assertSameTensor(mst[k], v, k)
                    else:  # dropped only when it aliases a stored tensor
                        self.assertTrue(any(sd[o].data_ptr() == v.data_ptr() for o in mst), k)
                opt = torch.load(os.path.join(d, "optimizer.pt"))
                self.assertEqual(opt["param_groups"], osd["param_groups"])
                for i, s in osd["state"].items():
                    for k, v in s.items():
                        self.assertTrue(torch.equal(opt["state"][i][k], v))
                if "scheduler" in ck:
                    self.assertEqual(torch.load(os.path.join(d, "scheduler.pt")), ck["scheduler"])
                rng = torch.load(os.path.join(d, "rng_state.pth"))
                self.assertEqual(set(rng), {"python", "numpy", "cpu"})
                ts = load_json(os.path.join(d, "trainer_state.json"))
                self.assertEqual(ts["global_step"], step)
                load_json(os.path.join(d, "training_args.json"))
        return hist


class TestFormats(Base):
    def test_mlp_all_formats(self):
        out = os.path.join(self.tmp, "mlp")
        run_cli(["--model", "mlp", "--steps", "5", "--every", "2", "--format", "all",
                 "--eval-examples", "500", "--out", out])
        hist = self.check_run(out, "mlp", 5, 2)
        self.assertEqual(hist["param_count"], 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10)
        self.assertEqual([e["step"] for e in hist["eval_log"]], [2, 4, 5])

    def test_cnn_batchnorm_buffers_and_scheduler(self):
        out = os.path.join(self.tmp, "cnn")
        run_cli(["--model", "cnn", "--steps", "4", "--every", "2", "--format", "all",
                 "--eval-examples", "200", "--out", out])
        self.check_run(out, "cnn", 4, 2)
        st, _ = read_safetensors(os.path.join(out, "step_000004.safetensors"))
        self.assertEqual(st["bn.num_batches_tracked"][:2], ("I64", []))
        self.assertEqual(struct.unpack("<q", st["bn.num_batches_tracked"][2])[0], 4)
        self.assertNotIn("bn.running_mean.exp_avg", st)
        self.assertIn("scheduler", torch.load(os.path.join(out, "step_000004.pt")))

    def test_chargpt_tied_two_groups(self):
        out = os.path.join(self.tmp, "gpt")
        run_cli(["--model", "chargpt", "--steps", "4", "--every", "2", "--format", "all",
                 "--corpus-chars", "100000", "--n-layer", "1", "--d-model", "32",
                 "--eval-batches", "1", "--batch-size", "8", "--tie-weights",
                 "--no-decay-groups", "--dropout", "0.1", "--out", out])
        hist = self.check_run(out, "chargpt", 4, 2)
        self.assertNotIn("head.weight", hist["optimizer_param_names"])
        ck = torch.load(os.path.join(out, "step_000004.pt"))
        self.assertEqual(len(ck["optimizer"]["param_groups"]), 2)
        mst, _ = read_safetensors(os.path.join(out, "checkpoint-4", "model.safetensors"))
        self.assertNotIn("head.weight", mst)  # tied: stored once, HF style

    def test_pt_and_safetensors_only_by_default(self):
        out = os.path.join(self.tmp, "d")
        run_cli(["--model", "mlp", "--steps", "2", "--every", "2", "--eval-every", "0",
                 "--out", out])
        self.assertEqual(sorted(os.listdir(out)),
                         ["history.json", "step_000002.pt", "step_000002.safetensors"])
        self.assertEqual(load_json(os.path.join(out, "history.json"))["eval_log"], [])

    def test_reproducible_bytes(self):
        outs = [os.path.join(self.tmp, "r%d" % i) for i in range(2)]
        for o in outs:
            run_cli(["--model", "mlp", "--steps", "3", "--every", "3", "--format", "all",
                     "--eval-examples", "100", "--seed", "7", "--out", o])
        for rel in ["step_000003.pt", "step_000003.safetensors",
                    "checkpoint-3/model.safetensors", "checkpoint-3/optimizer.pt",
                    "checkpoint-3/rng_state.pth", "checkpoint-3/trainer_state.json"]:
            a = read_bytes(os.path.join(outs[0], rel))
            b = read_bytes(os.path.join(outs[1], rel))
            self.assertEqual(a, b, rel)


class TestResume(Base):
    def _resume_matches(self, model, extra):
        out = os.path.join(self.tmp, model)
        run_cli(["--model", model, "--steps", "6", "--every", "3", "--eval-every", "3",
                 "--out", out] + extra)
        log = os.path.join(self.tmp, "resumed.json")
        out2 = os.path.join(self.tmp, model + "-resumed")
        run_cli(["--resume-from", os.path.join(out, "step_000003.pt"), "--steps", "3",
                 "--log", log, "--out", out2, "--compare", os.path.join(out, "history.json")])
        r = load_json(log)
        self.assertEqual((r["start_step"], r["end_step"]), (3, 6))
        c = r["comparison"]
        self.assertEqual(c["train_steps_compared"], 3)
        self.assertEqual(c["train_losses_identical"], 3)
        self.assertEqual(c["evals_compared"], 1)
        self.assertEqual(c["eval_loss_max_abs_diff"], 0.0)
        a = torch.load(os.path.join(out, "step_000006.pt"))
        b = torch.load(os.path.join(out2, "step_000006.pt"))
        for k in a["model"]:
            self.assertTrue(torch.equal(a["model"][k], b["model"][k]), k)
        self.assertEqual(a.get("scheduler"), b.get("scheduler"))
        for i, s in a["optimizer"]["state"].items():
            for k, v in s.items():
                self.assertTrue(torch.equal(v, b["optimizer"]["state"][i][k]), (i, k))

    def test_resume_mlp(self):
        self._resume_matches("mlp", ["--eval-examples", "300", "--scheduler", "cosine",
                                     "--warmup", "2"])

    def test_resume_chargpt_dropout(self):
        self._resume_matches("chargpt", ["--corpus-chars", "100000", "--n-layer", "1",
                                         "--d-model", "32", "--eval-batches", "1",
                                         "--batch-size", "8", "--dropout", "0.2"])


class TestSafetensorsWriter(Base):
    def test_all_dtypes_roundtrip(self):
        from ckzhistory.safetensors_io import write_safetensors
        g = torch.Generator().manual_seed(1)
        ts = [("f64", torch.randn(3, 2, dtype=torch.float64, generator=g)),
              ("f32", torch.randn(5, generator=g)),
              ("f16", torch.randn(2, 3, generator=g).half()),
              ("bf16", torch.randn(7, generator=g).bfloat16()),
              ("i64", torch.tensor(5)), ("i32", torch.arange(4, dtype=torch.int32)),
              ("i16", torch.arange(-3, 3, dtype=torch.int16)),
              ("i8", torch.arange(-2, 1, dtype=torch.int8)),
              ("u8", torch.arange(9, dtype=torch.uint8).reshape(3, 3)),
              ("bool", torch.tensor([True, False, True])),
              ("empty", torch.zeros(0, 4)),
              ("noncontig", torch.arange(12.0).reshape(3, 4).t())]
        p = os.path.join(self.tmp, "x.safetensors")
        write_safetensors(p, ts, {"a": "1"})
        st, meta = read_safetensors(p)
        self.assertEqual(meta, {"a": "1"})
        self.assertEqual(list(st), [n for n, _ in ts])
        for n, t in ts:
            self.assertSameTensor(st[n], t, n)
        arr = np.frombuffer(st["f32"][2], dtype="<f4")
        self.assertTrue(np.array_equal(arr, ts[1][1].numpy()))


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
