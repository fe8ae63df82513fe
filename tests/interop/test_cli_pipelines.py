#!/usr/bin/python3
"""The ckz command line in pipelines and on history folders, on real torch.save files and
Trainer folders (Debian's python3-torch, /usr/bin/python3):

- '-' as standard input and output of single-file compress and decompress (byte-identical),
  and a clear refusal where a checkpoint of several files would have to go to stdout;
- summaries line-buffered into a pipe: after an interruption every completed output has its
  line; ckzinfo --json on several files is one JSON array, --jsonl JSON Lines; ckz compress
  --json reports sizes, time and each lossy tensor's coding;
- decompress and verify of many files of one chain decode each file once (and give the same
  bytes as decoding each alone); --output-dir gives each multi-file checkpoint its own folder;
- error messages name the file once and the error code by name;
- history folders: files that are not checkpoints, hidden files and a 'latest.pt' link are
  named in a note and never become chain members; an unreadable checkpoint stops the run
  before anything is written (or is left out with --keep-going); a re-run adds only the new
  checkpoints, as links after the last one, keeps what is there and honours the keyframe
  interval across runs.

Usage: test_cli_pipelines.py CKZ_BIN_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import test_torch_pt  # noqa: E402
from test_torch_pt import assert_same, ckz, info  # noqa: E402

MAKE_HISTORY = os.path.join(ROOT, "tools", "history", "make_history.py")


def run(args, **kwargs):
    return subprocess.run([os.path.join(test_torch_pt.BIN, args[0]), *args[1:]],
                          capture_output=True, **kwargs)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def make_history(out, model="mlp", fmt="pt", steps=6, every=2):
    subprocess.run(["/usr/bin/python3", MAKE_HISTORY, "--model", model, "--steps", str(steps),
                    "--every", str(every), "--format", fmt, "--out", out, "--quiet"], check=True)
    return out


class Pipelines(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ckz-pipes-")
        cls.hist = make_history(os.path.join(cls.tmp, "hist"))
        cls.pts = [os.path.join(cls.hist, f) for f in sorted(os.listdir(cls.hist)) if f.endswith(".pt")]
        cls.trainer = make_history(os.path.join(cls.tmp, "trainer"), fmt="trainer", steps=4)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_stdin_and_stdout(self):
        pt = self.pts[1]
        work = tempfile.mkdtemp(dir=self.tmp)
        with open(pt, "rb") as f:  # cat f.pt | ckz compress - -o s.ckz
            r = run(["ckz", "compress", "-", "-o", os.path.join(work, "s.ckz")], stdin=f)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(["ckz", "decompress", os.path.join(work, "s.ckz"), "-o", "-"], cwd=work)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, read(pt))
        self.assertFalse(os.path.exists(os.path.join(work, "-")), "no file named '-'")
        self.assertIn(b"(stdout)", r.stderr)  # the summary goes to stderr, the data to stdout
        # compress - without -o writes stdout; decompress - without -o too.
        with open(pt, "rb") as f:
            packed = run(["ckz", "compress", "-q", "-"], stdin=f)
        self.assertEqual(packed.returncode, 0, packed.stderr)
        unpacked = run(["ckz", "decompress", "-q", "-"], input=packed.stdout)
        self.assertEqual(unpacked.returncode, 0, unpacked.stderr)
        self.assertEqual(unpacked.stdout, read(pt))
        # /dev/stdin and /dev/stdout are streams too (not refused as "not a regular file").
        with open(pt, "rb") as f:
            r = run(["ckz", "compress", "/dev/stdin", "-o", os.path.join(work, "d.ckz")], stdin=f)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(["ckz", "decompress", os.path.join(work, "d.ckz"), "-o", "/dev/stdout"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, read(pt))
        # A link from stdin finds its parent in the current folder.
        ckz("compress", "-q", "--lossless", self.hist, "-o", os.path.join(work, "chain"))
        link = os.path.join(work, "chain", os.path.basename(self.pts[2]) + ".ckz")
        with open(link, "rb") as f:
            r = run(["ckz", "decompress", "-", "-o", os.path.join(work, "l.pt")], stdin=f,
                    cwd=os.path.join(work, "chain"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(os.path.join(work, "l.pt")), read(self.pts[2]))
        # A checkpoint of several files cannot be one stream.
        ckz("compress", "-q", os.path.join(self.trainer, "checkpoint-4"), "-o",
            os.path.join(work, "t.ckz"))
        r = run(["ckz", "decompress", os.path.join(work, "t.ckz"), "-o", "-"], cwd=work)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot go to standard output", r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_summaries_are_line_buffered(self):
        # SIGINT once the second output is complete: the first one's line is in the log.
        work = tempfile.mkdtemp(dir=self.tmp)
        hist = make_history(os.path.join(work, "h"), model="cnn", steps=16, every=2)
        out = os.path.join(work, "out")
        with open(os.path.join(work, "log"), "wb") as log:
            p = subprocess.Popen([os.path.join(test_torch_pt.BIN, "ckz"), "compress", hist, "-o",
                                  out, "-l", "19"], stdout=log, stderr=subprocess.DEVNULL)
            second = os.path.join(out, "step_000004.pt.ckz")
            deadline = time.time() + 120
            while not os.path.exists(second) and p.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            p.send_signal(signal.SIGINT)
            p.wait()
        self.assertEqual(p.returncode, -signal.SIGINT, "interrupted before the end")
        done = [f for f in os.listdir(out) if f.endswith(".ckz")]
        lines = read(os.path.join(work, "log")).decode().splitlines()
        self.assertGreaterEqual(len(done), 2)
        self.assertGreaterEqual(len(lines), len(done) - 1)  # the last may not be printed yet
        self.assertTrue(lines[0].startswith(os.path.join(hist, "step_000002.pt") + " => "))

    def test_json_outputs(self):
        work = tempfile.mkdtemp(dir=self.tmp)
        r = ckz("compress", "--json", self.hist, "-o", os.path.join(work, "c"))
        records = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual([x["type"] for x in records], ["checkpoint"] * len(self.pts) + ["history"])
        key, link = records[0], records[1]
        self.assertEqual((key["link_depth"], key["lossless"]), (0, True))
        self.assertEqual((link["link_depth"], link["lossless"]), (1, False))
        self.assertAlmostEqual(link["ratio"], link["input_bytes"] / link["output_bytes"], places=4)
        self.assertGreater(link["seconds"], 0)
        # The default is rate-distortion levels (spec 7.9); ExCP only on request.
        self.assertIsNone(link["excp"])
        self.assertAlmostEqual(link["rd"]["strength"], 2 ** 0.25)  # quality 4
        codings = {t["name"]: t["coding"] for t in link["lossy_tensors"]}
        self.assertTrue(codings["model/fc1.weight"].startswith("levels residual step="), codings)
        r = ckz("compress", "--json", "--excp", self.pts[0], self.pts[1],
                "-o", os.path.join(work, "e"))
        link = [json.loads(line) for line in r.stdout.splitlines()][1]
        self.assertIsNone(link["rd"])
        self.assertEqual(link["excp"]["bits"], 4)
        codings = {t["name"]: t["coding"] for t in link["lossy_tensors"]}
        self.assertTrue(codings["model/fc1.weight"].startswith("excp residual 4b/"), codings)
        files = [os.path.join(work, "c", os.path.basename(p) + ".ckz") for p in self.pts]
        # ckzinfo: one object for one file, an array for several, or JSON Lines.
        one = json.loads(run(["ckzinfo", "--json", files[0]]).stdout)
        self.assertEqual(one["file"], files[0])
        many = json.loads(run(["ckzinfo", "--json", *files]).stdout)
        self.assertEqual([x["file"] for x in many], files)
        lines = run(["ckzinfo", "--jsonl", *files]).stdout.decode().splitlines()
        self.assertEqual([json.loads(x)["file"] for x in lines], files)
        r = run(["ckz", "info", "--json", files[0], os.path.join(work, "none.ckz"), files[1]])
        self.assertEqual(r.returncode, 3)  # the missing file is reported, the array still parses
        self.assertEqual(len(json.loads(r.stdout)), 2)

    def test_many_files_of_a_chain_decode_once(self):
        work = tempfile.mkdtemp(dir=self.tmp)
        out = os.path.join(work, "c")
        ckz("compress", "-q", self.hist, "-o", out)  # lossy links: the closed loop must hold
        files = [os.path.join(out, os.path.basename(p) + ".ckz") for p in self.pts]
        shuffled = files[::-1]  # taken in chain order whatever the order given
        r = ckz("verify", *shuffled)
        lines = r.stdout.splitlines()
        self.assertEqual([x.split(":")[0] for x in lines], files)
        self.assertIn("1 decode: depth 0", lines[0])
        for line in lines[1:]:
            self.assertIn("1 decode: its parent was decoded just before", line)
        r = ckz("decompress", *shuffled, "--output-dir", os.path.join(work, "all"))
        self.assertEqual(r.stdout.count("its parent was decoded just before"), len(files) - 1)
        for i, f in enumerate(files):  # the same bytes as decoding each through its chain
            alone = os.path.join(work, "alone.pt")
            r = ckz("decompress", "-f", f, "-o", alone)
            self.assertIn("%d decode%s: depth %d" % (i + 1, "s" if i else "", i), r.stdout)
            name = os.path.basename(f)[:-4]
            self.assertEqual(read(alone), read(os.path.join(work, "all", name)), name)

    def test_report_of_a_chain(self):
        work = tempfile.mkdtemp(dir=self.tmp)
        out = os.path.join(work, "c")
        ckz("compress", "-q", self.hist, "-o", out, "--keyframe-interval", "2")
        files = [os.path.join(out, os.path.basename(p) + ".ckz") for p in self.pts]
        r = ckz("report", out, "--against", self.hist, "--json")
        rows = json.loads(r.stdout)
        self.assertEqual([row["file"] for row in rows], files)
        self.assertEqual([row["depth"] for row in rows], [0, 1, 0])
        self.assertEqual(rows[1]["parent"], os.path.basename(files[0]))
        for row, f in zip(rows, files):
            self.assertEqual(row["file_bytes"], os.path.getsize(f))
            self.assertEqual(row["step"], info(f)["step"])
            self.assertAlmostEqual(row["ratio"], row["raw_bytes"] / row["file_bytes"], places=5)
            roles = row["roles"]
            coded = sum(t["stored_bytes"] for t in info(f)["tensors"] if t["role"] == "weight")
            self.assertEqual(roles["weight"]["stored_bytes"], coded)
        # The lossy link's error, measured here on the restored checkpoint.
        self.assertNotIn("error", rows[0]["roles"]["weight"])  # a keyframe: lossless
        restored = os.path.join(work, "s.pt")
        ckz("decompress", files[1], "-o", restored)
        a = torch.load(restored)["model"]
        b = torch.load(self.pts[1])["model"]
        num = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in b)
        den = sum(float((b[k].double() ** 2).sum()) for k in b)
        err = rows[1]["roles"]["weight"]["error"]
        self.assertGreater(err["relative_rms"], 0)
        self.assertAlmostEqual(err["relative_rms"], (num / den) ** 0.5, places=6)
        # The table: a line per file in the order given, a total, the error columns.
        text = ckz("report", *files, "--against", self.hist).stdout.splitlines()
        self.assertIn("err W", text[0])
        self.assertEqual([x.split()[0] for x in text[1:4]], [os.path.basename(f) for f in files])
        self.assertTrue(text[4].startswith("total"))
        # Without the originals: sizes only; a missing file is an error that names it.
        r = run(["ckz", "report", out, os.path.join(work, "missing.ckz")])
        self.assertEqual(r.returncode, 3)
        self.assertNotIn(b"err W", r.stdout)
        self.assertIn(b"missing.ckz", r.stderr)

    def test_lstm_chain_restores_what_the_plain_chain_restores(self):
        # Format 0.9 (spec 7.11): --lstm changes the coding of the levels, never what decodes.
        if not os.path.exists(os.path.join(test_torch_pt.BIN, "ckz-lstm-train")):
            self.skipTest("ckz-lstm-train is built only with libtorch-dev")
        work = tempfile.mkdtemp(dir=self.tmp)
        hist = make_history(os.path.join(work, "h"), steps=20, every=2)  # 10 checkpoints
        plain, lstm = os.path.join(work, "plain"), os.path.join(work, "lstm")
        ckz("compress", "-q", hist, "-o", plain)
        r = ckz("compress", hist, "-o", lstm, "--lstm", "--json")
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        links = [x for x in lines if x["type"] == "checkpoint" and x["link_depth"] > 0]
        self.assertEqual(len(links), 9)
        # The first link trained a model (kept or not, it says so); once kept, the next links
        # take it from their parent.
        self.assertIsNotNone(links[0]["lstm"])
        names = sorted(f for f in os.listdir(lstm) if f.endswith(".ckz"))
        infos = [info(os.path.join(lstm, n)) for n in names]
        if infos[1]["lstm_model"] is not None:
            self.assertFalse(infos[1]["lstm_model"]["from_parent"])
            self.assertEqual(infos[1]["lstm_model"]["hidden"], 8)
            for later in infos[2:]:
                self.assertTrue(later["lstm_model"]["from_parent"])
            self.assertGreater(sum(sum(i["lstm_model"]["chunks_by_role"].values())
                                   for i in infos[1:]), 0)
        self.assertIsNone(infos[0]["lstm_model"])  # a keyframe is lossless: no levels
        # Every file restores to the same bytes as the plain chain's, through its chain.
        for n in names:
            a, b = os.path.join(work, "a.pt"), os.path.join(work, "b.pt")
            ckz("decompress", "-q", "-f", os.path.join(plain, n), "-o", a)
            ckz("decompress", "-q", "-f", "-T", "2", os.path.join(lstm, n), "-o", b)
            self.assertEqual(read(a), read(b), n)
        ckz("verify", "-q", *[os.path.join(lstm, n) for n in names])
        # Format 0.11 (spec 7.11.7): --excp --lstm codes the ExCP indices with the model, for
        # the steps --lstm-steps asks (the trainer's line, with -v); same restores as --excp.
        excp, excp_lstm = os.path.join(work, "excp"), os.path.join(work, "excp-lstm")
        ckz("compress", "-q", "--excp", hist, "-o", excp)
        r = run(["ckz", "compress", "-v", "--excp", "--lstm", "--lstm-steps", "30", hist, "-o",
                 excp_lstm])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"30 steps in", r.stderr)
        for n in names[-2:]:
            a, b = os.path.join(work, "a.pt"), os.path.join(work, "b.pt")
            ckz("decompress", "-q", "-f", os.path.join(excp, n), "-o", a)
            ckz("decompress", "-q", "-f", os.path.join(excp_lstm, n), "-o", b)
            self.assertEqual(read(a), read(b), n)
        # The trainer is a separate program: without it, --lstm says what is missing.
        env = dict(os.environ, CKZ_LSTM_TRAIN=os.path.join(work, "no-such-trainer"))
        r = run(["ckz", "compress", "-q", hist, "-o", os.path.join(work, "x"), "--lstm"], env=env)
        self.assertEqual(r.returncode, 5)
        self.assertIn(b"no-such-trainer is missing", r.stderr)
        r = run(["ckz", "compress", "-q", hist, "-o", os.path.join(work, "y"), "--lstm",
                 "--lossless"])
        self.assertEqual(r.returncode, 1)

    def test_output_dir_gives_each_multi_file_checkpoint_a_folder(self):
        work = tempfile.mkdtemp(dir=self.tmp)
        ckz("compress", "-q", "--lossless", self.trainer, "-o", os.path.join(work, "c"))
        files = sorted(os.listdir(os.path.join(work, "c")))
        self.assertEqual(files, ["checkpoint-2.ckz", "checkpoint-4.ckz"])
        ckz("decompress", "-q", *[os.path.join(work, "c", f) for f in files], "--output-dir",
            os.path.join(work, "r"))
        for ck in ("checkpoint-2", "checkpoint-4"):
            src = os.path.join(self.trainer, ck)
            for name in os.listdir(src):
                self.assertEqual(read(os.path.join(src, name)), read(os.path.join(work, "r", ck, name)))
        # A one-file checkpoint lands under its own name; one input of several files keeps
        # its files directly under DIR (as the conformance runner expects).
        ckz("compress", "-q", self.pts[0], "-o", os.path.join(work, "one.ckz"))
        ckz("decompress", "-q", os.path.join(work, "one.ckz"), "--output-dir", os.path.join(work, "r"))
        self.assertEqual(read(os.path.join(work, "r", os.path.basename(self.pts[0]))), read(self.pts[0]))
        ckz("decompress", "-q", os.path.join(work, "c", files[1]), "--output-dir", os.path.join(work, "single"))
        self.assertEqual(sorted(os.listdir(os.path.join(work, "single"))),
                         sorted(os.listdir(os.path.join(self.trainer, "checkpoint-4"))))

    def test_error_messages(self):
        work = tempfile.mkdtemp(dir=self.tmp)
        r = run(["ckz", "compress", "nonexist.pt"], cwd=work)
        self.assertEqual(r.returncode, 3)
        err = r.stderr.decode()
        self.assertEqual(err.count("nonexist.pt"), 1, err)
        self.assertTrue(err.startswith("ckz: IoError: nonexist.pt: cannot open"), err)
        self.assertNotIn("(2)", err)  # the code's number is not the exit code
        help_text = ckz("--help").stdout
        for code in ("0  success", "2  invalid or corrupt", "5  unsupported input"):
            self.assertIn(code, help_text)


class HistoryFolders(unittest.TestCase):
    """The history folder of issue 16, as users have it."""

    @classmethod
    def setUpClass(cls):
        cls.origin = tempfile.mkdtemp(prefix="ckz-history-src-")
        src = make_history(os.path.join(cls.origin, "src"), steps=12, every=2)
        cls.src = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".pt"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.origin)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckz-history-")
        self.dir = os.path.join(self.tmp, "run")
        os.makedirs(os.path.join(self.dir, "tb_logs"))
        for i, step in enumerate((20, 40, 60)):
            shutil.copy(self.src[i], os.path.join(self.dir, "step_%d.pt" % step))
        for name, text in (("README.txt", "notes"), ("config.json", "{}"), ("train.log", "loss"),
                           ("tb_logs/events", "x"), (".hidden.pt", "old"), ("empty.pt", "")):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        os.symlink("step_20.pt", os.path.join(self.dir, "latest.pt"))
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def compress(self, *extra):
        return run(["ckz", "compress", "--lossless", self.dir, "-o", self.out, *extra])

    def test_segments_give_the_files_of_one_run(self):
        hist = os.path.join(self.tmp, "six")
        os.makedirs(hist)
        for p in self.src:  # six checkpoints: keyframe groups of 2 at interval 2
            shutil.copy(p, hist)
        whole, parts = os.path.join(self.tmp, "whole"), os.path.join(self.tmp, "parts")
        r = run(["ckz", "compress", hist, "-o", whole, "--keyframe-interval", "2", "-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for seg in ("3/3", "1/3", "2/3"):  # any order, as a scheduler runs them
            r = run(["ckz", "compress", hist, "-o", parts, "--keyframe-interval", "2", "--segment", seg])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"(segment %s: 2 of 6 checkpoints)" % seg.encode(), r.stdout)
        names = sorted(os.listdir(whole))
        self.assertEqual(sorted(os.listdir(parts)), names)
        for f in names:
            self.assertEqual(read(os.path.join(whole, f)), read(os.path.join(parts, f)), f)
        # An interrupted segment continues where it stopped; the others are not touched.
        os.remove(os.path.join(parts, names[3]))
        r = run(["ckz", "compress", hist, "-o", parts, "--keyframe-interval", "2", "--segment", "2/3"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1 checkpoints added after 1 already there", r.stdout)
        self.assertEqual(read(os.path.join(whole, names[3])), read(os.path.join(parts, names[3])))
        # More segments than groups: some have nothing to do, and say so.
        r = run(["ckz", "compress", hist, "-o", parts, "--keyframe-interval", "2", "--segment", "1/5"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"has no keyframe group (3 groups of 2 checkpoints)", r.stderr)
        for bad in ("0/3", "4/3", "2", "a/b"):
            r = run(["ckz", "compress", hist, "-o", parts, "--segment", bad])
            self.assertEqual(r.returncode, 1, bad)
        r = run(["ckz", "compress", self.src[0], "-o", os.path.join(self.tmp, "x.ckz"), "--segment", "1/2"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"--segment applies to a history", r.stderr)

    def test_unreadable_checkpoint_stops_before_anything_is_written(self):
        r = self.compress()
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertIn(b"empty.pt", r.stderr)
        self.assertIn(b"nothing was written", r.stderr)
        self.assertFalse(os.path.exists(self.out))

    def test_keep_going_notes_everything_and_reruns_continue(self):
        r = self.compress("--keep-going", "--keyframe-interval", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        err = r.stderr.decode()
        self.assertIn("not compressed: README.txt, config.json, tb_logs/, train.log (not checkpoints)", err)
        self.assertIn("not compressed: .hidden.pt (hidden)", err)
        self.assertIn("not compressed: latest.pt (a link to step_20.pt)", err)
        self.assertIn("left out: UnsupportedInput: " + os.path.join(self.dir, "empty.pt"), err)
        outputs = ["step_20.pt.ckz", "step_40.pt.ckz", "step_60.pt.ckz"]
        self.assertEqual(sorted(os.listdir(self.out)), outputs)
        depths = [info(os.path.join(self.out, f))["link"] for f in outputs]
        self.assertEqual([d["depth"] if d else 0 for d in depths], [0, 1, 0])  # interval 2
        before = {f: read(os.path.join(self.out, f)) for f in outputs}
        # Two more checkpoints: a re-run adds them after step_60 and rewrites nothing.
        shutil.copy(self.src[3], os.path.join(self.dir, "step_80.pt"))
        shutil.copy(self.src[4], os.path.join(self.dir, "step_100.pt"))
        r = self.compress("--keep-going", "--keyframe-interval", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"2 checkpoints added after 3 already there", r.stdout)
        for f, data in before.items():
            self.assertEqual(read(os.path.join(self.out, f)), data, f)
        link80 = info(os.path.join(self.out, "step_80.pt.ckz"))["link"]
        self.assertEqual((link80["depth"], link80["path_hint"]), (1, "step_60.pt.ckz"))
        self.assertIsNone(info(os.path.join(self.out, "step_100.pt.ckz"))["link"])  # a keyframe
        r = run(["ckz", "decompress", "-q", *sorted(os.path.join(self.out, f) for f in os.listdir(self.out)),
                 "--output-dir", os.path.join(self.tmp, "restored")])
        self.assertEqual(r.returncode, 0, r.stderr)
        for step in (20, 40, 60, 80, 100):
            name = "step_%d.pt" % step
            self.assertEqual(read(os.path.join(self.dir, name)),
                             read(os.path.join(self.tmp, "restored", name)), name)
            assert_same(self, torch.load(os.path.join(self.dir, name)),
                        torch.load(os.path.join(self.tmp, "restored", name)), name)
        # An output that holds another checkpoint, and a hole in the chain, are refused.
        shutil.copy(self.src[5], os.path.join(self.dir, "step_40.pt"))
        r = self.compress("--keep-going")
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"holds another checkpoint than", r.stderr)
        shutil.copy(self.src[1], os.path.join(self.dir, "step_40.pt"))
        os.remove(os.path.join(self.out, "step_40.pt.ckz"))
        r = self.compress("--keep-going")
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"a chain only grows at its end", r.stderr)


if __name__ == "__main__":
    test_torch_pt.BIN = os.path.abspath(sys.argv.pop(1))
    unittest.main()
