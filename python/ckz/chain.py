"""ckz.Chain: the checkpoints of one training run as a chain of .ckz files in one directory."""
import concurrent.futures
import os
import re
import shutil
import subprocess
import tempfile

from . import _api, _ckz


class Chain:
    """Writes a training run's checkpoints into `directory` as step_00000100.pt.ckz, ...: each
    save a link predicted from the previous checkpoint as decoders reconstruct it, which the
    chain keeps in memory (no re-read, no re-decode of the parent), with a keyframe every
    `keyframe_interval` saves, so any step restores with at most that many decodes.

        chain = ckz.Chain("ckpt", keyframe_interval=10, async_save=True)
        chain.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, step)
        chain.close()

    With async_save=True, save() returns once the checkpoint is snapshotted in memory (tensors
    copied, as torch.save copies them) and encodes on a background thread while training goes
    on; at most one save is pending (the next save() waits for it), and an error of a pending
    save is raised by the next save(), wait() or close(). Links are lossy (rate-distortion levels)
    unless lossless=True. Opening an existing directory continues its chain from its latest file.
    `options` are those of `ckz compress` (chunk_size, level, entropy, quality, strength,
    rd_steps, rdoq, weights_step, excp with alpha, beta, bits, k_at_cap, v_direct, fallback_k,
    and threads: encoding threads, default 1 with async_save so that
    training keeps the other cores, else all).

    lstm=True (as `ckz compress --lstm`, spec 7.11) also codes the levels of lossy links (with
    excp=True their indices, spec 7.11.7) with a small LSTM model mixed with the context model,
    chunk by chunk where that is smaller. After the first link of each keyframe group,
    ckz-lstm-train (built with libtorch; found by $CKZ_LSTM_TRAIN, on PATH or in the build tree
    beside this module) trains a model of `lstm_hidden` units on it, for `lstm_steps` optimizer
    steps (default: the CLI's budget, one per MiB of checkpoint per link still to come,
    60..400), on the saving thread (with async_save, in the background); the next link stores
    the model and the group's later links take it from their parent. Unlike the CLI, the first
    link is not written again with the model (its snapshot has become its decoded values).
    1-3.5 % smaller links on our histories, 4x slower decoding (docs/lstm.md)."""

    def __init__(self, directory, keyframe_interval=10, lossless=False, async_save=False, *,
                 prefix="step_", overwrite=True, lstm=False, lstm_hidden=8, lstm_steps=None,
                 **options):
        self.directory = os.fspath(directory)
        self._keyframe_interval = keyframe_interval
        self._lstm_hidden = lstm_hidden
        self._lstm_steps = lstm_steps
        self._lstm_trainer = None
        if lstm:
            if lossless:
                raise ValueError("lstm codes the levels or indices of lossy links: not with "
                                 "lossless")
            if lstm_hidden not in (8, 16, 24, 32):
                raise ValueError("lstm_hidden is 8, 16, 24 or 32")
            if lstm_steps is not None and not 1 <= lstm_steps <= 100000:
                raise ValueError("lstm_steps is 1..100000")
            self._lstm_trainer = _lstm_trainer()
        self.prefix = prefix
        self._pattern = re.compile(r"^%s(\d+)\.pt\.ckz$" % re.escape(prefix))
        self._overwrite = overwrite
        options.setdefault("threads", 1 if async_save else 0)
        self._writer = _ckz.ChainWriter(lossless, keyframe_interval, options)
        self._executor = (concurrent.futures.ThreadPoolExecutor(1, "ckz-chain")
                          if async_save else None)
        self._pending = None
        self.last = None  # what the last completed save wrote (content id, step, sizes...)
        os.makedirs(self.directory, exist_ok=True)
        self._remove_stale_temporaries()
        latest = self.latest()
        if latest is not None:
            self._writer.attach(latest[1])

    # ---- writing
    def save(self, obj, step, metadata=None):
        """Saves `obj` (what torch.save takes) as the checkpoint of `step`. Returns what was
        written, or None when the save continues in the background."""
        self._finish_pending()
        snapshot = _api.serialize(obj)
        if self._executor is None:
            return self._write(snapshot, step, metadata)
        self._pending = self._executor.submit(self._write, snapshot, step, metadata)
        return None

    def wait(self):
        """Waits for a pending save; raises its error, if any. Returns the last save's info."""
        self._finish_pending()
        return self.last

    def close(self):
        try:
            self._finish_pending()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            self.close()
        else:  # keep the original error; a pending save still finishes
            try:
                self.close()
            except Exception:
                pass

    def path_for(self, step):
        return os.path.join(self.directory, "%s%08d.pt.ckz" % (self.prefix, step))

    @property
    def next_depth(self):
        """Depth of the next save as a link (0: it will be a keyframe)."""
        return self._writer.next_depth

    def _write(self, snapshot, step, metadata):
        path = self.path_for(step)
        try:
            info = self._writer.write(snapshot, path, _api.source_name(path), step=step,
                                      overwrite=self._overwrite, metadata=metadata or {})
        except _api.CkzError as e:
            raise _api._explain(e) from None
        info["path"] = path
        if (self._lstm_trainer and info["depth"] > 0 and not self._writer.has_lstm_model
                and info["depth"] < self._keyframe_interval):
            info["lstm_trained"] = self._train_lstm(path, info)
        self.last = info
        return info

    def _train_lstm(self, path, info):
        # The rule of ckz compress --lstm: a budget in steps (the output never depends on the
        # machine's speed) that grows with the group's links still to come.
        steps = self._lstm_steps or _ckz.lstm_training_steps(
            info["input_bytes"], self._keyframe_interval - info["depth"])
        fd, model = tempfile.mkstemp(prefix="ckz-lstm-")
        os.close(fd)
        try:
            run = subprocess.run(
                [self._lstm_trainer, path, "-o", model, "--steps", str(steps), "--seconds",
                 "3600", "--hidden", str(self._lstm_hidden), "--search", self.directory],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if run.returncode != 0:
                raise _api.error("Unsupported", "lstm: %s failed on %s: %s" % (
                    self._lstm_trainer, path, run.stderr.strip()))
            self._writer.set_lstm_model(model)
        finally:
            os.unlink(model)
        return run.stdout.strip()

    def _finish_pending(self):
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _remove_stale_temporaries(self):
        # A job killed during a save leaves the writer's hidden temporary file behind.
        stale = re.compile(r"^\.%s\d+\.pt\.ckz\.tmp-" % re.escape(self.prefix))
        for name in os.listdir(self.directory):
            if stale.match(name):
                try:
                    os.unlink(os.path.join(self.directory, name))
                except OSError:
                    pass

    # ---- reading
    def steps(self):
        """[(step, path)] of the chain's files, by step."""
        found = []
        for name in os.listdir(self.directory):
            m = self._pattern.match(name)
            path = os.path.join(self.directory, name)
            if m and os.path.isfile(path):
                found.append((int(m.group(1)), path))
        return sorted(found)

    def latest(self):
        """(step, path) of the newest checkpoint, or None."""
        steps = self.steps()
        return steps[-1] if steps else None

    def load(self, step=None, map_location=None, **kwargs):
        """ckz.load of the checkpoint of `step` (default: the latest)."""
        if step is None:
            latest = self.latest()
            if latest is None:
                raise _api.error("IoError", "%s holds no checkpoint" % self.directory)
            step = latest[0]
        return _api.load(self.path_for(step), map_location, **kwargs)


def _lstm_trainer():
    """ckz-lstm-train: $CKZ_LSTM_TRAIN, on PATH, or in the build tree this module comes from."""
    candidates = [os.environ.get("CKZ_LSTM_TRAIN"), shutil.which("ckz-lstm-train"),
                  os.path.join(os.path.dirname(os.path.abspath(_ckz.__file__)), os.pardir,
                               os.pardir, "tools", "ckz-lstm-train")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.normpath(c)
    raise _api.error("Unsupported", "lstm: ckz-lstm-train is missing (it is built when "
                     "libtorch-dev is installed; CKZ_LSTM_TRAIN names another)")

