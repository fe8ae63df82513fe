#!/usr/bin/python3
"""ckz.load time against chain size as the keyframe interval varies (issue 14's load target).

Saves the first ten step_*.pt of HISTORY_DIR (a make_history.py folder) through ckz.Chain with
keyframe_interval K = 1, 2, 3, 5, 10, lossy and lossless, then times ckz.load of every file
(median of --repeats, warm page cache) on 1 and 2 threads, against torch.load of the .pt files.
Prints one line per (mode, K, threads): the chain's size and ratio, mean and max load time.
A benchmark: numbers, never assertions.

  PYTHONPATH=build/python /usr/bin/python3 tools/bench/load_frontier.py HISTORY_DIR --out /tmp/lf
"""
import argparse
import glob
import os
import shutil
import statistics

import torch

import ckz
from python_bench import median_time


def median_ms(fn, repeats):
    return median_time(fn, repeats) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("history", help="a folder of step_*.pt files (make_history.py --format pt)")
    p.add_argument("--out", required=True, help="scratch folder for the chains")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--intervals", default="1,2,3,5,10")
    args = p.parse_args()
    torch.set_num_threads(1)
    pts = sorted(glob.glob(os.path.join(args.history, "step_*.pt")))[:10]
    if not pts:
        p.error("no step_*.pt in %s" % args.history)
    checkpoints = [torch.load(f) for f in pts]
    raw = sum(os.path.getsize(f) for f in pts)
    tl = [median_ms(lambda: torch.load(f), args.repeats) for f in pts]
    print("torch.load of the %d .pt (%.2f MB): mean %.1f ms, max %.1f ms" % (
        len(pts), raw / 1e6, statistics.mean(tl), max(tl)))
    print("| links | keyframe interval | chain MB (ratio) | ckz.load T1 mean / max ms "
          "| ckz.load T2 mean / max ms |")
    print("|---|---:|---:|---:|---:|")
    for lossless in (False, True):
        for k in (int(x) for x in args.intervals.split(",")):
            d = os.path.join(args.out, "%s-%d" % ("lossless" if lossless else "lossy", k))
            shutil.rmtree(d, ignore_errors=True)
            with ckz.Chain(d, keyframe_interval=k, lossless=lossless) as chain:
                for i, c in enumerate(checkpoints):
                    chain.save(c, i + 1)
            files = [path for _, path in chain.steps()]
            size = sum(os.path.getsize(f) for f in files)
            cells = []
            for threads in (1, 2):
                ls = [median_ms(lambda: ckz.load(f, threads=threads), args.repeats) for f in files]
                cells.append("%.1f / %.1f" % (statistics.mean(ls), max(ls)))
            print("| %s | %d | %.2f (%.2fx) | %s | %s |" % (
                "lossless" if lossless else "lossy", k, size / 1e6, raw / size, cells[0], cells[1]))


if __name__ == "__main__":
    main()
