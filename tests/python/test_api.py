"""ckz.save / ckz.load / ckz.safe_open against real torch.save objects and the ckz CLI."""
import collections
import math
import os

import numpy as np
import pytest
import torch

import ckz
from helpers import Net, assert_same, checkpoint, torch_bytes, torch_roundtrip, train


def adam_run(opt_name="adam", sched_name="step", steps=6, seed=0):
    torch.manual_seed(seed)
    model = Net()
    params = model.parameters()
    opt = {"adam": lambda: torch.optim.Adam(params, lr=1e-2),
           "adamw": lambda: torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1),
           "sgd": lambda: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True)}[opt_name]()
    sched = {"step": lambda: torch.optim.lr_scheduler.StepLR(opt, 3, 0.5),
             "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, 20),
             "warmup-cosine": lambda: torch.optim.lr_scheduler.SequentialLR(
                 opt, [torch.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=3),
                       torch.optim.lr_scheduler.CosineAnnealingLR(opt, 20)], milestones=[3]),
             "lambda": lambda: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.95 ** s),
             "plateau": lambda: None}[sched_name]()
    train(model, opt, steps, seed, sched)
    return model, opt, sched


@pytest.mark.parametrize("opt_name,sched_name", [
    ("adam", "step"), ("adamw", "warmup-cosine"), ("sgd", "cosine"), ("adamw", "lambda")])
def test_keyframe_and_links_round_trip(tmp_path, ckz_cli, opt_name, sched_name):
    model, opt, sched = adam_run(opt_name, sched_name)
    first = checkpoint(model, opt, sched, step=6, epoch=0.25, note="run-1", best=None)
    ckz.save(first, tmp_path / "a.pt.ckz")
    assert_same(ckz.load(tmp_path / "a.pt.ckz"), torch_roundtrip(first))

    train(model, opt, 4, seed=1, scheduler=sched)
    second = checkpoint(model, opt, sched, step=10, epoch=0.4, note="run-1", best=1.5)
    want = torch_roundtrip(second)
    # A lossless link is exact; a lossy one (the default) changes float tensors only, and
    # keeps the pickle, integers (Adam's step, num_batches_tracked) and Python values exact.
    ckz.save(second, tmp_path / "b.pt.ckz", parent=tmp_path / "a.pt.ckz", lossless=True)
    assert_same(ckz.load(tmp_path / "b.pt.ckz"), want)
    info = ckz.save(second, tmp_path / "c.pt.ckz", parent=tmp_path / "a.pt.ckz")
    # SGD has no Adam v: its link stays lossless (no silent damage, README).
    assert info["depth"] == 1 and (info["quantized"] > 0) == (opt_name != "sgd")
    assert info["step"] == 10
    lossy = ckz.load(tmp_path / "c.pt.ckz")
    # Weights move by quantized residuals; optimizer moments are quantized in their own units
    # (m relative to sqrt(v), v in log2), so only their structure is compared here...
    assert_same(lossy, want, tol=lambda p: 0.02 if p.startswith("root/model") else math.inf)
    # ...and every value is exactly what the CLI restores from the same file.
    ckz_cli("decompress", "-q", tmp_path / "c.pt.ckz", "-o", tmp_path / "c.pt")
    assert_same(lossy, torch.load(tmp_path / "c.pt"))


def test_plain_state_dict_and_map_location(tmp_path):
    model, _, _ = adam_run()
    sd = model.state_dict()
    ckz.save(sd, tmp_path / "m.pt.ckz")
    got = ckz.load(tmp_path / "m.pt.ckz", map_location="cpu")
    assert_same(got, torch_roundtrip(sd))
    assert got._metadata == sd._metadata  # what load_state_dict reads
    Net().load_state_dict(got)
    # map_location as torch.load takes it: a callable on every storage
    seen = []
    ckz.load(tmp_path / "m.pt.ckz", map_location=lambda s, loc: seen.append(loc) or s)
    assert seen and set(seen) == {"cpu"}


def test_nested_python_values_dtypes_views_and_sharing(tmp_path):
    base = torch.arange(24, dtype=torch.float32)
    param = torch.nn.Parameter(torch.randn(3, 4))
    obj = {
        "ints": [0, -1, 2 ** 62, True, False], "floats": (1.5, -0.0, math.inf, math.nan),
        "text": "naïve ✓", "bytes": b"\x00\xffckz", "empty": ([], (), {}, b"", ""),
        1: "int key", (1, "t"): "tuple key", None: [None],
        "torch": [torch.Size([2, 3]), torch.device("cpu"), torch.float16, torch.bool],
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "tensors": {
            "f64": torch.randn(5, dtype=torch.float64), "f16": torch.randn(3, 2).half(),
            "bf16": torch.randn(7).bfloat16(), "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
            "u8": torch.arange(256, dtype=torch.uint8), "i16": torch.tensor([3], dtype=torch.int16),
            "i32": torch.tensor(7, dtype=torch.int32), "bool": torch.tensor([True, False]),
            "empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5),
        },
        "param": param,
        "base": base, "view": base[2:10].view(2, 4), "transposed": base.view(4, 6).t(),
        "grad": torch.ones(2, requires_grad=True),
    }
    ckz.save(obj, tmp_path / "n.pt.ckz")
    got = ckz.load(tmp_path / "n.pt.ckz")
    assert_same(got, torch_roundtrip(obj))
    # Views of one storage still share it, as after torch.load.
    assert got["view"].storage().data_ptr() == got["base"].storage().data_ptr()
    got["base"][3] = 100.0
    assert got["view"][0, 1] == 100.0


def test_lossless_files_are_byte_identical_to_the_cli(tmp_path, ckz_cli):
    model, opt, sched = adam_run("adamw", "warmup-cosine")
    first = checkpoint(model, opt, sched, step=6)
    train(model, opt, 3, seed=2, scheduler=sched)
    second = checkpoint(model, opt, sched, step=9)
    for name, obj in (("first", first), ("second", second)):
        (tmp_path / ("%s.pt" % name)).write_bytes(torch_bytes(obj))
    os.mkdir(tmp_path / "api")
    ckz.save(first, tmp_path / "api" / "first.pt.ckz", lossless=True)
    ckz.save(second, tmp_path / "api" / "second.pt.ckz", parent=tmp_path / "api" / "first.pt.ckz",
             lossless=True)
    ckz_cli("compress", "-q", "--lossless", tmp_path / "first.pt")
    ckz_cli("compress", "-q", "--lossless", tmp_path / "second.pt", "--ref",
            tmp_path / "first.pt.ckz")
    for name in ("first", "second"):
        assert (tmp_path / "api" / ("%s.pt.ckz" % name)).read_bytes() == \
            (tmp_path / ("%s.pt.ckz" % name)).read_bytes()
    # And the CLI restores ckz.save's link to exactly the bytes torch.save wrote.
    ckz_cli("decompress", "-q", tmp_path / "api" / "second.pt.ckz", "-o", tmp_path / "out.pt")
    assert (tmp_path / "out.pt").read_bytes() == (tmp_path / "second.pt").read_bytes()
    # Lossy links too (same options, same parent): the default levels, and ExCP's codebooks.
    (tmp_path / "lossy.pt").write_bytes(torch_bytes(second))
    for api_options, cli_options in (({"quality": 3}, ("--quality", "3")),
                                     ({"excp": True, "bits": 3, "beta": 1.5},
                                      ("--excp", "--bits", "3", "--beta", "1.5"))):
        ckz.save(second, tmp_path / "api" / "lossy.pt.ckz",
                 parent=tmp_path / "api" / "first.pt.ckz", **api_options)
        ckz_cli("compress", "-q", "-f", tmp_path / "lossy.pt", "--ref",
                tmp_path / "first.pt.ckz", *cli_options)
        assert (tmp_path / "api" / "lossy.pt.ckz").read_bytes() == \
            (tmp_path / "lossy.pt.ckz").read_bytes()


def test_load_reads_cli_output_and_safetensors(tmp_path, ckz_cli):
    model, opt, sched = adam_run()
    obj = checkpoint(model, opt, sched, step=6)
    (tmp_path / "x.pt").write_bytes(torch_bytes(obj))
    ckz_cli("compress", "-q", tmp_path / "x.pt")
    assert_same(ckz.load(tmp_path / "x.pt.ckz"), torch_roundtrip(obj))
    ckz_cli("decompress", "-q", tmp_path / "x.pt.ckz", "-o", tmp_path / "x.safetensors")
    ckz_cli("compress", "-q", tmp_path / "x.safetensors")
    tensors = ckz.load(tmp_path / "x.safetensors.ckz")
    assert torch.equal(tensors["model/fc1.weight"], model.fc1.weight.detach())
    assert tensors["optimizer/state/0/exp_avg"].shape == model.fc1.weight.shape


def test_safe_open_reads_one_tensor_without_the_others(tmp_path, ckzinfo_json):
    torch.manual_seed(3)
    sd = {"a": torch.randn(64, 64), "b": torch.randn(64, 64), "c": torch.arange(10).bfloat16()}
    path = tmp_path / "s.pt.ckz"
    ckz.save(sd, path, metadata={"run": "r7", "lr": 0.5})
    with ckz.safe_open(path, framework="pt") as f:
        assert f.keys() == ["a", "b", "c"]
        assert f.metadata()["run"] == "r7" and f.metadata()["lr"] == 0.5
        assert f.tensor_info("a") == {"dtype": "F32", "shape": [64, 64], "role": "weight",
                                      "nbytes": 16384, "lossy": False}
        assert torch.equal(f.get_tensor("c"), sd["c"])
    with ckz.safe_open(path, framework="np") as f:
        assert np.array_equal(f.get_tensor("a"), sd["a"].numpy())
        with pytest.raises(ckz.CkzError, match="numpy"):
            f.get_tensor("c")
        with pytest.raises(KeyError):
            f.get_tensor("zzz")
    # Damage b's payload: a still decodes (random access decodes a's chunks only), b fails.
    b = next(t for t in ckzinfo_json(path)["tensors"] if t["name"] == "b")
    data = bytearray(path.read_bytes())
    data[b["chunks"][0]["offset"] + 10] ^= 0x40
    path.write_bytes(bytes(data))
    with ckz.safe_open(path) as f:
        assert torch.equal(f.get_tensor("a"), sd["a"])
        with pytest.raises(ckz.CkzError) as e:
            f.get_tensor("b")
    assert e.value.code.startswith("Chunk") and "'b'" in str(e.value)


@pytest.mark.parametrize("obj,named", [
    (np.zeros(3), "numpy"), ({1, 2}, "set"), (collections.Counter(a=1), "Counter")])
def test_python_objects_are_carried_and_loaded_only_when_asked(tmp_path, obj, named):
    # Saved like torch.save saves them (the library never runs them); loading them needs
    # weights_only=False, as with torch.load.
    ckz.save({"model": {"w": torch.ones(2)}, "extra": obj}, tmp_path / "u.pt.ckz")
    with pytest.raises(ckz.CkzError) as e:
        ckz.load(tmp_path / "u.pt.ckz")
    assert e.value.code == "PickleGlobalNotAllowed" and named in str(e.value)
    assert "weights_only=False" in str(e.value)
    back = ckz.load(tmp_path / "u.pt.ckz", weights_only=False)
    assert torch.equal(back["model"]["w"], torch.ones(2))
    assert np.array_equal(back["extra"], obj) if named == "numpy" else back["extra"] == obj


def test_unsupported_dtypes_are_refused_clearly(tmp_path):
    with pytest.raises(ckz.CkzError) as e:
        ckz.save({"z": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "u.pt.ckz")
    assert e.value.code == "UnsupportedDtype" and "Complex" in str(e.value)
    assert not os.listdir(tmp_path)  # nothing written, not even a temporary


def test_a_scheduler_outside_the_whitelist_round_trips(tmp_path):
    model, opt, _ = adam_run()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2, 4])  # milestones: a Counter
    ckz.save(checkpoint(model, opt, sched), tmp_path / "s.pt.ckz")
    with pytest.raises(ckz.CkzError, match="collections.Counter"):
        ckz.load(tmp_path / "s.pt.ckz")
    back = ckz.load(tmp_path / "s.pt.ckz", weights_only=False)
    assert back["scheduler"] == sched.state_dict()


def test_truncated_and_damaged_files(tmp_path):
    ckz.save({"w": torch.randn(100, 100)}, tmp_path / "t.pt.ckz")
    data = (tmp_path / "t.pt.ckz").read_bytes()
    for cut in (10, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.pt.ckz").write_bytes(data[:cut])
        with pytest.raises(ckz.CkzError) as e:
            ckz.load(tmp_path / "cut.pt.ckz")
        assert e.value.code_value is not None and "cut.pt.ckz" in str(e.value)
    (tmp_path / "text.pt.ckz").write_bytes(b"not a checkpoint at all, just text" * 3)
    with pytest.raises(ckz.CkzError) as e:
        ckz.load(tmp_path / "text.pt.ckz")
    assert e.value.code == "BadMagic"
    with pytest.raises(ckz.CkzError) as e:
        ckz.load(tmp_path / "absent.pt.ckz")
    assert e.value.code == "IoError"


def test_missing_parent_names_its_id_and_step(tmp_path):
    model, opt, sched = adam_run()
    os.mkdir(tmp_path / "h")
    a = ckz.save(checkpoint(model, opt, sched, step=6), tmp_path / "h" / "a.pt.ckz")
    train(model, opt, 2, seed=4)
    ckz.save(checkpoint(model, opt, sched, step=8), tmp_path / "b.pt.ckz",
             parent=tmp_path / "h" / "a.pt.ckz")
    with pytest.raises(ckz.CkzError) as e:
        ckz.load(tmp_path / "b.pt.ckz")
    assert e.value.code == "ParentNotFound" and e.value.code_value == 61
    assert a["content_id"] in str(e.value) and "step 6" in str(e.value)
    # Found where the CLI would look: a search folder, or the parent named explicitly.
    ckz.load(tmp_path / "b.pt.ckz", search=[tmp_path / "h"])
    ckz.load(tmp_path / "b.pt.ckz", parent=tmp_path / "h" / "a.pt.ckz")


def test_options_are_checked(tmp_path):
    with pytest.raises(TypeError, match="unexpected option 'alpah'"):
        ckz.save({"w": torch.ones(3)}, tmp_path / "o.pt.ckz", alpah=1e-4)
    with pytest.raises(ValueError, match="not for lossless=True"):
        ckz.save({"w": torch.ones(3)}, tmp_path / "o.pt.ckz", lossless=True, beta=1.5)
    with pytest.raises(ValueError, match="bits"):
        ckz.save({"w": torch.ones(3)}, tmp_path / "o.pt.ckz", excp=True, bits=9)
    with pytest.raises(ValueError, match="add excp=True"):
        ckz.save({"w": torch.ones(3)}, tmp_path / "o.pt.ckz", beta=1.5)
    with pytest.raises(ValueError, match="quality"):
        ckz.save({"w": torch.ones(3)}, tmp_path / "o.pt.ckz", quality=10)
