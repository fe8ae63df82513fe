"""Real training objects for the tests, and a deep comparison of what torch.load returns."""
import collections
import io
import math

import torch


def torch_roundtrip(obj):
    """What torch.load returns for torch.save(obj): the reference every ckz.load must match."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf)


def torch_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Net(torch.nn.Module):
    """A small MLP with batch norm (int64 and running-statistics buffers, not parameters)."""

    def __init__(self, n_in=32, hidden=48, n_out=10):
        super().__init__()
        self.fc1 = torch.nn.Linear(n_in, hidden)
        self.bn = torch.nn.BatchNorm1d(hidden)
        self.fc2 = torch.nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def train(model, optimizer, steps, seed=0, scheduler=None, batch=16):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(batch, model.fc1.in_features, generator=g)
        y = torch.randint(0, model.fc2.out_features, (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return float(loss)


def checkpoint(model, optimizer, scheduler=None, **extra):
    d = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if scheduler is not None:
        d["scheduler"] = scheduler.state_dict()
    d.update(extra)
    return d


def assert_same(got, want, path="root", tol=None):
    """Same types, same nesting (and key order), same non-tensor values, same tensor dtype,
    shape, strides, requires_grad and class; tensor values equal, or within `tol` (a function
    of the path, giving an absolute tolerance or None for exact) for lossy links."""
    assert type(got) is type(want), "%s: %s is not %s" % (path, type(got), type(want))
    if isinstance(want, torch.Tensor):
        assert got.dtype == want.dtype and got.shape == want.shape, path
        assert got.stride() == want.stride() and got.storage_offset() == want.storage_offset(), path
        assert got.requires_grad == want.requires_grad, path
        t = tol(path) if tol else None
        if t is None or not want.is_floating_point():
            assert torch.equal(got, want), path
        elif t != math.inf:
            assert torch.allclose(got, want, rtol=0, atol=t), "%s: max error %g" % (
                path, (got - want).abs().max())
    elif isinstance(want, dict):
        assert list(got.keys()) == list(want.keys()), path
        if isinstance(want, collections.OrderedDict):
            assert getattr(got, "__dict__", {}).keys() == getattr(want, "__dict__", {}).keys(), path
            for k, v in getattr(want, "__dict__", {}).items():
                assert_same(getattr(got, k), v, path + "." + k, tol)
        for k in want:
            assert_same(got[k], want[k], "%s/%s" % (path, k), tol)
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), path
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, "%s/%d" % (path, i), tol)
    elif isinstance(want, float) and want != want:
        assert got != got, path  # nan
    else:
        assert got == want, "%s: %r != %r" % (path, got, want)
