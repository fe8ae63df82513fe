"""Ranks of the torch.distributed tests (run in spawned processes, gloo backend)."""
import datetime
import json
import os

import torch
import torch.distributed as dist

import ckz
import ckz.chain
import ckz.distributed
from helpers import torch_bytes


def _init(rank, world, directory, timeout_s):
    dist.init_process_group("gloo", init_method="file://" + os.path.join(directory, "rdzv"),
                            rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))


def _training(rank):
    """This rank's part of the model (its own layer) and its own Adam, really training."""
    torch.manual_seed(100 + rank)
    layer = torch.nn.Linear(24, 16)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(rank)

    def step():
        loss = layer(torch.randn(8, 24, generator=g)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def state(s):
        # Sharded keys (this rank's layer and optimizer) and replicated ones (step, config).
        return {"model": {"layer%d.%s" % (rank, k): v for k, v in layer.state_dict().items()},
                "optimizer": {"rank%d" % rank: opt.state_dict()},
                "step": s, "config": {"lr": 1e-2, "world": dist.get_world_size()}}
    return step, state


def save_and_fail(rank, world, directory, lossless):
    """Saves steps 10 and 20 (each rank a link of its own chain), loads them back, then at step
    30 rank 1's shard cannot be put in place: no rank may report success."""
    _init(rank, world, directory, 60)
    step, state = _training(rank)
    result = {"rank": rank}
    for s in (10, 20):
        for _ in range(5):
            step()
        st = state(s)
        with open(os.path.join(directory, "expected_r%d_s%d.pt" % (rank, s)), "wb") as f:
            f.write(torch_bytes(st))
        ckz.distributed.save(st, os.path.join(directory, "ckpt"), s, lossless=lossless,
                             keyframe_interval=10)
    got = ckz.distributed.load(os.path.join(directory, "ckpt"))
    result["loaded_step"] = got["step"]
    result["loaded_keys"] = sorted(got["model"])
    for _ in range(5):
        step()
    if rank == 1:
        os.mkdir(os.path.join(ckz.distributed.shard_dir(os.path.join(directory, "ckpt"), 1),
                              "step_00000030.pt.ckz"))
    try:
        ckz.distributed.save(state(30), os.path.join(directory, "ckpt"), 30)
        result["step30"] = "saved"
    except ckz.distributed.ShardedSaveError as e:
        result["step30"] = {str(r): m for r, m in e.failures.items()}
    result["latest_after_failure"] = ckz.distributed.load(os.path.join(directory, "ckpt"))["step"]
    with open(os.path.join(directory, "result_r%d.json" % rank), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def killed_mid_save(rank, world, directory):
    """Async lossy sharded saves of steps 10 and 20; at step 30 rank 1 dies in its
    background save."""
    _init(rank, world, directory, 20)
    step, state = _training(rank)
    chain = ckz.distributed.ShardedChain(os.path.join(directory, "ckpt"), async_save=True)
    for s in (10, 20):
        step()
        chain.save(state(s), s)  # commits the previous step, then encodes this one
    step()
    if rank == 1:
        def die(*args):
            os._exit(7)
        ckz.chain.Chain._write = die
    chain.save(state(30), 30)  # commits step 20, then "encodes" step 30 in the background
    try:
        chain.close()  # commits step 30: rank 0 finds rank 1 gone
        outcome = "committed"
    except Exception as e:
        outcome = type(e).__name__
    with open(os.path.join(directory, "result_r%d.json" % rank), "w") as f:
        json.dump({"rank": rank, "outcome": outcome}, f)
