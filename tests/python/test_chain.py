"""ckz.Chain: links against the in-memory decoded parent, keyframes, async saves under a real
training loop, resuming, and errors of background saves."""
import os
import resource
import signal

import pytest
import torch

import ckz
from helpers import Net, assert_same, checkpoint, torch_bytes, torch_roundtrip, train
from conftest import TOOLS as TOOLS_DIR


def training(steps, every, seed=0):
    """Yields (step, checkpoint) every `every` steps of a real Adam training run. The model and
    optimizer keep training in place after each yield: a save must have snapshotted."""
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10, 0.5)
    for step in range(every, steps + 1, every):
        train(model, opt, every, seed=step, scheduler=sched)
        yield step, checkpoint(model, opt, sched, step=step)


@pytest.mark.parametrize("async_save", [False, True])
def test_lossless_chain_under_a_training_loop(tmp_path, async_save):
    expected = {}
    with ckz.Chain(tmp_path / "c", keyframe_interval=4, lossless=True,
                   async_save=async_save) as chain:
        for step, ckpt in training(60, 5):
            expected[step] = torch_roundtrip(ckpt)  # what torch.save would have kept
            chain.save(ckpt, step)
    assert [s for s, _ in chain.steps()] == sorted(expected)
    depths = [ckz.info(p)["depth"] for _, p in chain.steps()]
    assert depths == [0, 1, 2, 3] * 3
    for step, path in chain.steps():
        assert_same(ckz.load(path), expected[step])


def test_async_lossy_chain_is_the_cli_history(tmp_path, ckz_cli):
    """Async saves of a lossy chain write exactly what `ckz compress HISTORY -o DIR` writes
    for the same checkpoints saved as .pt files: each link is predicted from its parent as
    decoders reconstruct it."""
    os.mkdir(tmp_path / "pt")
    with ckz.Chain(tmp_path / "api", keyframe_interval=3, async_save=True) as chain:
        for step, ckpt in training(40, 5):
            (tmp_path / "pt" / ("step_%08d.pt" % step)).write_bytes(torch_bytes(ckpt))
            chain.save(ckpt, step)
    ckz_cli("compress", "-q", tmp_path / "pt", "-o", tmp_path / "cli", "--keyframe-interval", 3)
    names = sorted(os.listdir(tmp_path / "api"))
    assert names == sorted(os.listdir(tmp_path / "cli")) and len(names) == 8
    for name in names:
        assert (tmp_path / "api" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    # ckz.load gives what the CLI restores.
    ckz_cli("decompress", "-q", tmp_path / "api" / names[-1], "-o", tmp_path / "last.pt")
    assert_same(chain.load(), torch.load(tmp_path / "last.pt"))


@pytest.mark.parametrize("excp", [False, True])
def test_lstm_chain_restores_what_the_plain_chain_restores(tmp_path, ckzinfo_json, excp):
    """lstm=True (spec 7.11; with excp=True on the indices, 7.11.7) changes how the levels or
    indices are coded, never what decodes: after the
    first link of each keyframe group a model is trained (ckz-lstm-train), the next link
    stores it, later links take it from their parent, a keyframe starts over; a resumed chain
    goes on with its model."""
    trainer = TOOLS_DIR / "ckz-lstm-train"
    if not trainer.exists():
        pytest.skip("ckz-lstm-train is built only with libtorch-dev")
    os.environ.setdefault("CKZ_LSTM_TRAIN", str(trainer))
    plain, lstm = tmp_path / "plain", tmp_path / "lstm"
    torch.manual_seed(0)
    model = Net(n_in=128, hidden=192)  # enough levels for the model to win some chunks
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for step in range(5, 61, 5):
        train(model, opt, 5, seed=step)
        history.append((step, torch_roundtrip(checkpoint(model, opt, step=step))))
    with ckz.Chain(plain, keyframe_interval=5, excp=excp) as a, \
            ckz.Chain(lstm, keyframe_interval=5, lstm=True, excp=excp) as b:
        for step, ckpt in history[:8]:
            a.save(ckpt, step)
            info = b.save(ckpt, step)
            assert ("lstm_trained" in info) == (info["depth"] == 1), info
    with ckz.Chain(plain, keyframe_interval=5, excp=excp) as a, \
            ckz.Chain(lstm, keyframe_interval=5, lstm=True, excp=excp) as b:  # resumed at depth 2
        for step, ckpt in history[8:]:
            a.save(ckpt, step)
            b.save(ckpt, step)
    for (step, p), (_, q) in zip(a.steps(), b.steps()):
        assert_same(ckz.load(p), ckz.load(q))
    # Depths 0 1 2 3 4 | 0 1 2 3 4 | 0 1: the model is in the header from depth 2 on, the
    # link's own at depth 2 and its parent's after.
    models = [ckzinfo_json(p)["lstm_model"] for _, p in b.steps()]
    for k, m in enumerate(models):
        depth = k % 5
        if depth < 2:
            assert m is None, k  # keyframes, and first links (the model is trained on them)
        elif m is not None and m["from_parent"]:
            assert models[k - 1] is not None, k  # taken from a parent that holds it
        elif m is not None:
            assert m["chunks_by_role"], k  # an own model is stored only where chunks use it
    assert [m is not None for m in models] == [False, False, True, True, True] * 2 + [False] * 2
    assert [m["from_parent"] for m in models if m] == [False, True, True] * 2
    with pytest.raises(ValueError):
        ckz.Chain(tmp_path / "x", lossless=True, lstm=True)
    with pytest.raises(ValueError):
        ckz.Chain(tmp_path / "y", lstm=True, lstm_steps=0)


def test_resumed_chain_continues_where_it_stopped(tmp_path):
    """A Chain opened on an existing directory links its first save to the latest file, read
    from disk; the files are the ones an uninterrupted chain writes."""
    run = list(training(40, 5))
    with ckz.Chain(tmp_path / "whole", keyframe_interval=5) as chain:
        for step, ckpt in run:
            chain.save(ckpt, step)
    with ckz.Chain(tmp_path / "resumed", keyframe_interval=5) as chain:
        for step, ckpt in run[:3]:
            chain.save(ckpt, step)
    # the job dies here, leaving a temporary file of an interrupted save
    (tmp_path / "resumed" / ".step_00000020.pt.ckz.tmp-abcdefgh").write_bytes(b"partial")
    with ckz.Chain(tmp_path / "resumed", keyframe_interval=5) as chain:
        assert chain.latest()[0] == 15 and chain.next_depth == 3
        assert chain.load()["step"] == 15
        for step, ckpt in run[3:]:
            chain.save(ckpt, step)
    assert sorted(os.listdir(tmp_path / "resumed")) == sorted(os.listdir(tmp_path / "whole"))
    for name in os.listdir(tmp_path / "whole"):
        assert (tmp_path / "resumed" / name).read_bytes() == \
            (tmp_path / "whole" / name).read_bytes(), name


def test_background_errors_surface_on_the_next_call(tmp_path):
    chain = ckz.Chain(tmp_path / "e", async_save=True, lossless=True)
    good = {"w": torch.randn(8, 8), "step": 1}
    chain.save(good, 1)
    # A dtype the library refuses: the background save fails.
    assert chain.save({"w": torch.randn(8, 8), "z": torch.zeros(2, dtype=torch.complex64)},
                      2) is None
    with pytest.raises(ckz.CkzError, match="UnsupportedDtype"):
        chain.wait()
    chain.wait()  # reported once
    # The chain goes on from the last good checkpoint.
    chain.save({"w": good["w"] + 1, "step": 3}, 3)
    (tmp_path / "e" / "step_00000004.pt.ckz").mkdir()  # the next file cannot be put in place
    chain.save({"w": good["w"] + 2, "step": 4}, 4)
    with pytest.raises(ckz.CkzError) as e:
        chain.save({"w": good["w"] + 3, "step": 5}, 5)
    assert e.value.code == "IoError" and "step_00000004.pt.ckz" in str(e.value)
    chain.close()
    assert ckz.info(tmp_path / "e" / "step_00000003.pt.ckz")["depth"] == 1
    assert torch.equal(ckz.load(tmp_path / "e" / "step_00000003.pt.ckz")["w"], good["w"] + 1)
    assert [s for s, _ in chain.steps()] == [1, 3]


def test_a_link_that_fails_half_written_leaves_the_chain_whole(tmp_path):
    """A lossy link gives up its parent's indices tensor by tensor as it is written (so a
    chain holds one link's indices): when the write fails half way (here: the file size limit),
    the next save reads the parent from its file instead, and writes what a chain that never
    saw the failed step writes."""
    run = list(training(40, 5))
    failed = 3  # run[3] is not saved
    options = dict(keyframe_interval=10, chunk_size=1024)  # many chunks and batches per link
    with ckz.Chain(tmp_path / "whole", **options) as chain:
        for i, (step, ckpt) in enumerate(run):
            if i != failed:
                chain.save(ckpt, step)
    with ckz.Chain(tmp_path / "c", **options) as chain:
        for step, ckpt in run[:failed]:
            chain.save(ckpt, step)
        limit = os.path.getsize(chain.path_for(run[failed - 1][0])) // 2
        old_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
        try:
            with pytest.raises(ckz.CkzError) as e:
                chain.save(run[failed][1], run[failed][0])
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_signal)
        assert e.value.code == "IoError", e.value
        for step, ckpt in run[failed + 1:]:
            chain.save(ckpt, step)
    names = sorted(os.listdir(tmp_path / "whole"))
    assert sorted(os.listdir(tmp_path / "c")) == names and len(names) == len(run) - 1
    for name in names:
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_chain_snapshot_is_taken_before_save_returns(tmp_path):
    w = torch.zeros(1000)
    with ckz.Chain(tmp_path / "s", async_save=True, lossless=True) as chain:
        chain.save({"w": w}, 1)
        w.add_(1)  # training changes the tensor while the save is pending
        chain.save({"w": w}, 2)
        w.add_(1)
    assert torch.equal(chain.load(1)["w"], torch.zeros(1000))
    assert torch.equal(chain.load(2)["w"], torch.ones(1000))


def test_example_training_job_resumes_after_being_killed(tmp_path):
    """examples/train_fashion_mnist.py, shortened: killed with a save in flight, it resumes
    from the checkpoint before and follows the uninterrupted run's loss curve."""
    import subprocess
    import sys
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                           "train_fashion_mnist.py")
    out = subprocess.run([sys.executable, example, "--out", str(tmp_path), "--steps", "30",
                          "--every", "5", "--kill-at", "20", "--keyframe-interval", "3"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resumed from step 15" in out.stdout  # the save of step 20 died with the job
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [5, 10, 15, 20, 25, 30]
    assert all(r[1] == r[2] for r in rows[:3])  # the same run up to the checkpoint
    assert all(abs(float(r[3])) < 0.05 for r in rows)
