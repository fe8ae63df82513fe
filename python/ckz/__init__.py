"""CKZ for training jobs: compressed checkpoints that feel like torch.save / torch.load.

    ckz.save(state, "step_100.pt.ckz")                          # a keyframe
    ckz.save(state, "step_200.pt.ckz", parent="step_100.pt.ckz")  # a link (lossy by default)
    state = ckz.load("step_200.pt.ckz")                         # what torch.load returned

    with ckz.safe_open("step_200.pt.ckz", framework="pt") as f:  # one tensor at a time
        w = f.get_tensor("model/fc1.weight")

    chain = ckz.Chain("ckpt", keyframe_interval=10, async_save=True)
    chain.save(state, step)                                      # every N steps

Sharded saves under torch.distributed: ckz.distributed. Built on the C++ library (ckz._ckz);
errors are CkzError, whose `code` is the library's ErrorCode name.
"""
from ._ckz import CkzError, FORMAT_VERSION, __version__
from ._api import info, load, safe_open, save, verify
from .chain import Chain

__all__ = ["CkzError", "Chain", "FORMAT_VERSION", "info", "load", "safe_open", "save", "verify"]


def __getattr__(name):
    # ckz.distributed imports torch.distributed: only when it is used.
    if name == "distributed":
        import importlib
        return importlib.import_module(".distributed", __name__)
    raise AttributeError("module 'ckz' has no attribute %r" % name)
