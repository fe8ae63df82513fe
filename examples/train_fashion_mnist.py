#!/usr/bin/python3
"""A training job that checkpoints through ckz.Chain, is killed part way, and resumes.

Trains a small CNN on Fashion-MNIST (Debian's dataset-fashion-mnist) with Adam and a step
scheduler, saving {model, optimizer, scheduler, step} every --every steps with
ckz.Chain(async_save=True). The job runs three times, each in its own process:

  1. uninterrupted, --steps steps (the reference curve);
  2. a job that kills itself with SIGKILL right after the save of step --kill-at returned,
     while that save is still encoding in the background;
  3. the same job started again: it opens the same Chain, loads the latest complete
     checkpoint (the killed save left none under its final name) and trains to the end.

Then it prints the loss curves side by side. Batches are a pure function of the step, so
after resuming the job sees the batches the uninterrupted run saw; with --lossless the curves
are identical, with the default lossy links (ExCP shrinking) they stay close.

  PYTHONPATH=build/python /usr/bin/python3 examples/train_fashion_mnist.py
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "history"))  # the Fashion-MNIST reader

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ckz  # noqa: E402
from ckzhistory.data import FashionMNIST  # noqa: E402
from ckzhistory.models import CNN  # noqa: E402

torch.set_num_threads(1)  # more threads are much slower on small machines like ours
SEED = 0


def job(args):
    """One training process: resumes from the chain in args.dir when it holds a checkpoint."""
    data = FashionMNIST()
    torch.manual_seed(SEED)
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=args.steps // 2, gamma=0.5)
    chain = ckz.Chain(os.path.join(args.dir, "ckpt"), keyframe_interval=args.keyframe_interval,
                      lossless=args.lossless, async_save=True)
    start = 0
    if chain.latest() is not None:
        state = chain.load()  # the latest checkpoint, decoded through its chain
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
        print("resumed from step %d (%s)" % (start, chain.latest()[1]), flush=True)
    log = open(os.path.join(args.dir, "losses.jsonl"), "a")
    for step in range(start + 1, args.steps + 1):
        x, y = data.train_batch(SEED, step, 64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        log.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")
        if step % args.every == 0:
            chain.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "step": step}, step)
            if step == args.kill_at:
                log.flush()
                print("killing myself at step %d, its save still in flight" % step, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
    chain.close()
    log.close()


def losses(path):
    by_step = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            by_step[rec["step"]] = rec["loss"]  # a resumed job's lines replace the killed one's
    return by_step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/example", help="working folder (replaced)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=25, help="checkpoint every N steps")
    p.add_argument("--kill-at", type=int, default=200, help="a checkpoint step to die after")
    p.add_argument("--keyframe-interval", type=int, default=10)
    p.add_argument("--lossless", action="store_true")
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.job:
        return job(args)
    if args.kill_at % args.every or not 0 < args.kill_at < args.steps:
        p.error("--kill-at must be a checkpoint step before --steps")

    shutil.rmtree(args.out, ignore_errors=True)
    common = [sys.executable, os.path.abspath(__file__), "--job", "--steps", str(args.steps),
              "--every", str(args.every), "--keyframe-interval", str(args.keyframe_interval)]
    if args.lossless:
        common.append("--lossless")
    runs = {"uninterrupted": os.path.join(args.out, "uninterrupted"),
            "killed+resumed": os.path.join(args.out, "killed")}
    for d in runs.values():
        os.makedirs(d)
    subprocess.run(common + ["--dir", runs["uninterrupted"], "--kill-at", "0"], check=True)
    killed = subprocess.run(common + ["--dir", runs["killed+resumed"], "--kill-at",
                                      str(args.kill_at)])
    assert killed.returncode == -signal.SIGKILL, killed.returncode
    subprocess.run(common + ["--dir", runs["killed+resumed"], "--kill-at", "0"], check=True)

    ref = losses(os.path.join(runs["uninterrupted"], "losses.jsonl"))
    res = losses(os.path.join(runs["killed+resumed"], "losses.jsonl"))
    print("\nloss (%s checkpoints every %d steps, killed after the save of step %d)"
          % ("lossless" if args.lossless else "lossy", args.every, args.kill_at))
    print("%6s %14s %16s %10s" % ("step", "uninterrupted", "killed+resumed", "diff"))
    for step in range(args.every, args.steps + 1, args.every):
        print("%6d %14.4f %16.4f %+10.4f" % (step, ref[step], res[step], res[step] - ref[step]))
    tail = range(args.steps - 4 * args.every + 1, args.steps + 1)
    mean = lambda d: sum(d[s] for s in tail) / len(tail)  # noqa: E731
    print("mean loss of the last %d steps: uninterrupted %.4f, killed+resumed %.4f (%+.2f %%)"
          % (len(tail), mean(ref), mean(res), 100 * (mean(res) / mean(ref) - 1)))
    sizes = [os.path.getsize(p) for _, p in ckz.Chain(os.path.join(
        runs["killed+resumed"], "ckpt")).steps()]
    print("checkpoints: %d files, %.2f MB in all" % (len(sizes), sum(sizes) / 1e6))


if __name__ == "__main__":
    sys.exit(main())
