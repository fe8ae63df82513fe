"""ckz.distributed with real torch.distributed (gloo) processes: every rank a link of its own
chain, the manifest written last, failures that leave the previous checkpoint the latest."""
import datetime
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ckz
import ckz.distributed
import dist_workers
from helpers import assert_same


def run_ranks(target, world, *args, timeout=120):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(r, world) + args) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
    return [p.exitcode for p in procs]


def results(directory, world):
    return [json.load(open(os.path.join(directory, "result_r%d.json" % r))) for r in range(world)]


def test_sharded_chain_and_a_rank_that_fails(tmp_path):
    # Lossless shards here (loads compared exactly); the next test's shards are lossy.
    d = str(tmp_path)
    assert run_ranks(dist_workers.save_and_fail, 2, d, True) == [0, 0]
    ckpt = tmp_path / "ckpt"
    r0, r1 = results(d, 2)
    # Each rank loaded its own shard of the latest checkpoint.
    assert (r0["loaded_step"], r1["loaded_step"]) == (20, 20)
    assert r0["loaded_keys"] == ["layer0.bias", "layer0.weight"]
    assert r1["loaded_keys"] == ["layer1.bias", "layer1.weight"]
    # Step 30 failed on rank 1 only; every rank knows, and no manifest names it.
    for r in (r0, r1):
        assert list(r["step30"]) == ["1"] and "step_00000030.pt.ckz" in r["step30"]["1"]
        assert r["latest_after_failure"] == 20
    assert sorted(p.name for p in ckpt.glob("*.manifest.json")) == \
        ["step_00000010.manifest.json", "step_00000020.manifest.json"]
    assert (ckpt / "rank_00000" / "step_00000030.pt.ckz").is_file()  # written, not committed
    assert ckz.distributed.read_manifest(ckpt)["step"] == 20
    manifest = ckz.distributed.read_manifest(ckpt, 20)
    assert manifest["world_size"] == 2 and [s["depth"] for s in manifest["shards"]] == [1, 1]
    for rank in (0, 1):
        # Links of their own rank's chain, parents found beside them.
        shard = ckpt / ("rank_%05d" % rank) / "step_00000020.pt.ckz"
        assert ckz.info(shard)["link"]["parent_step"] == 10
        want = torch.load(tmp_path / ("expected_r%d_s20.pt" % rank))
        got = ckz.distributed.load(ckpt, rank=rank)
        assert_same(got, want)
    # One file from the shards: sharded keys side by side, replicated ones once.
    merged = tmp_path / "merged.pt.ckz"
    out = subprocess.run([sys.executable, "-m", "ckz", "merge", str(ckpt), "-o", str(merged)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    m = ckz.load(merged)
    assert sorted(m["model"]) == ["layer0.bias", "layer0.weight", "layer1.bias", "layer1.weight"]
    assert sorted(m["optimizer"]) == ["rank0", "rank1"] and m["step"] == 20
    assert torch.equal(m["model"]["layer1.weight"],
                       ckz.distributed.load(ckpt, rank=1)["model"]["layer1.weight"])
    # Loading under torch.distributed needs the world size the checkpoint was saved with.
    dist.init_process_group("gloo", init_method="file://%s/rdzv1" % d, rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=30))
    try:
        with pytest.raises(ckz.CkzError, match="saved by 2 ranks; loading with 1"):
            ckz.distributed.load(ckpt)
    finally:
        dist.destroy_process_group()


def test_a_rank_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    d = str(tmp_path)
    codes = run_ranks(dist_workers.killed_mid_save, 2, d)
    assert codes == [0, 7]
    assert json.load(open(tmp_path / "result_r0.json"))["outcome"] == "RuntimeError"
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.glob("*.manifest.json")) == \
        ["step_00000010.manifest.json", "step_00000020.manifest.json"]
    for rank in (0, 1):
        got = ckz.distributed.load(ckpt, rank=rank)  # step 20: a lossy link of step 10
        assert got["step"] == 20 and list(got["model"]) == ["layer%d.weight" % rank,
                                                              "layer%d.bias" % rank]
        assert ckz.info(ckpt / ("rank_%05d" % rank) / "step_00000020.pt.ckz")["depth"] == 1
