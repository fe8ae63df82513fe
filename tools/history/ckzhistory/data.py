"""Datasets and deterministic batch streams.

Every training batch is a pure function of (seed, step), so a run resumed from
the checkpoint of step S sees exactly the batches the original run saw after S.
"""
import glob
import gzip
import hashlib
import os
import struct

import numpy as np
import torch

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530

# Distinct stream tags so the different random streams never coincide.
_TAG_FMNIST_EPOCH = 0xF0D0
_TAG_TEXT_BATCH = 0xC4A7


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    if magic >> 8 != 0x08:  # 0x00000801 labels, 0x00000803 images (uint8)
        raise ValueError("%s: not an unsigned-byte idx file (magic %#x)" % (path, magic))
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


class FashionMNIST:
    """Fashion-MNIST kept as uint8; batches are normalised float32 on demand."""

    def __init__(self, root=FMNIST_DIR):
        self.train_x = _read_idx(os.path.join(root, "train-images-idx3-ubyte.gz"))
        self.train_y = _read_idx(os.path.join(root, "train-labels-idx1-ubyte.gz")).astype(np.int64)
        self.test_x = _read_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"))
        self.test_y = _read_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
        assert self.train_x.shape == (60000, 28, 28) and self.test_x.shape == (10000, 28, 28)
        self._perm_epoch = None
        self._perm = None

    @staticmethod
    def to_tensor(images_u8):
        x = torch.from_numpy(images_u8.astype(np.float32) / np.float32(255.0))
        x = (x - FMNIST_MEAN) / FMNIST_STD
        return x.unsqueeze(1)  # N x 1 x 28 x 28

    def _epoch_perm(self, seed, epoch):
        if self._perm_epoch != (seed, epoch):
            rng = np.random.default_rng([seed, _TAG_FMNIST_EPOCH, epoch])
            self._perm = rng.permutation(len(self.train_y))
            self._perm_epoch = (seed, epoch)
        return self._perm

    def steps_per_epoch(self, batch_size):
        return len(self.train_y) // batch_size  # last partial batch dropped

    def train_batch(self, seed, step, batch_size):
        """Batch for optimizer step `step` (1-based): a slice of the seeded
        permutation of epoch (step-1) // steps_per_epoch."""
        i = step - 1
        spe = self.steps_per_epoch(batch_size)
        epoch, pos = divmod(i, spe)
        idx = self._epoch_perm(seed, epoch)[pos * batch_size:(pos + 1) * batch_size]
        return self.to_tensor(self.train_x[idx]), torch.from_numpy(self.train_y[idx])

    def epoch_of(self, step, batch_size):
        return step * batch_size / float(len(self.train_y))

    def eval_batches(self, n_examples, chunk=1000):
        """The first n_examples of the test set, in fixed chunks."""
        n = min(n_examples, len(self.test_y))
        for b in range(0, n, chunk):
            e = min(b + chunk, n)
            yield self.to_tensor(self.test_x[b:e]), torch.from_numpy(self.test_y[b:e])


def corpus_files():
    """Text sources in a fixed order: /usr/share/common-licenses/* (regular
    files, not symlinks) then /usr/share/doc/*/copyright, each sorted by path."""
    lic = [p for p in sorted(glob.glob("/usr/share/common-licenses/*"))
           if os.path.isfile(p) and not os.path.islink(p)]
    cop = [p for p in sorted(glob.glob("/usr/share/doc/*/copyright"))
           if os.path.isfile(p) and not os.path.islink(p)]
    return lic + cop


def load_corpus(max_chars):
    """Concatenate the corpus files (UTF-8, errors='replace', separated by a
    blank line) and cut to max_chars characters (0 = no cap)."""
    parts = []
    total = 0
    for p in corpus_files():
        with open(p, "rb") as f:
            s = f.read().decode("utf-8", errors="replace")
        parts.append(s)
        parts.append("\n\n")
        total += len(s) + 2
        if max_chars and total >= max_chars:
            break
    text = "".join(parts)
    if max_chars:
        text = text[:max_chars]
    return text


class TextCorpus:
    """Character-level corpus: vocabulary = sorted distinct characters; the
    last `val_fraction` of the text is the held-out validation split."""

    def __init__(self, max_chars, val_fraction=0.1):
        text = load_corpus(max_chars)
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.n_chars = len(text)
        self.vocab = "".join(sorted(set(text)))
        table = {c: i for i, c in enumerate(self.vocab)}
        ids = np.fromiter((table[c] for c in text), dtype=np.int64, count=len(text))
        n_val = int(len(ids) * val_fraction)
        self.train = ids[:len(ids) - n_val]
        self.val = ids[len(ids) - n_val:]

    @property
    def vocab_size(self):
        return len(self.vocab)

    def train_batch(self, seed, step, batch_size, ctx):
        """Random windows whose start positions depend only on (seed, step)."""
        rng = np.random.default_rng([seed, _TAG_TEXT_BATCH, step])
        starts = rng.integers(0, len(self.train) - ctx - 1, size=batch_size)
        win = self.train[starts[:, None] + np.arange(ctx + 1)[None, :]]
        return torch.from_numpy(win[:, :-1].copy()), torch.from_numpy(win[:, 1:].copy())

    def epoch_of(self, step, batch_size, ctx):
        return step * batch_size * ctx / float(len(self.train))

    def eval_batches(self, n_batches, batch_size, ctx):
        """Fixed, seed-independent validation windows evenly spaced over the
        validation split."""
        n = n_batches * batch_size
        hi = len(self.val) - ctx - 1
        if hi <= 0:
            raise ValueError("validation split too small for context %d" % ctx)
        starts = np.linspace(0, hi, num=n).astype(np.int64)
        for b in range(n_batches):
            s = starts[b * batch_size:(b + 1) * batch_size]
            win = self.val[s[:, None] + np.arange(ctx + 1)[None, :]]
            yield torch.from_numpy(win[:, :-1].copy()), torch.from_numpy(win[:, 1:].copy())
