"""Times ckz.Chain saving GPT-like checkpoints of ~0.6 GB (weights + Adam moments, F32).

A keyframe and lossy links, with Adam-like updates between saves; prints each save's time, the
process's CPU time, page faults and peak RSS. Run it twice to compare the interpreter with and
without GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (docs/python.md, "Huge pages"):

  PYTHONPATH=build/python /usr/bin/python3 tools/bench/python_large_save.py /tmp/pylarge
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 PYTHONPATH=build/python /usr/bin/python3 \\
      tools/bench/python_large_save.py /tmp/pylarge
"""
import argparse
import os
import resource
import shutil
import time

import torch

import ckz


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="chain directory (replaced)")
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    d = 512
    shapes = [(50304, d), (2048, d)] + [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)] * 4
    w = [torch.randn(s) * 0.02 for s in shapes]
    m = [torch.randn(s) * 1e-4 for s in shapes]
    v = [torch.rand(s) * 1e-7 for s in shapes]

    def checkpoint():
        return {
            "model": {f"p{i}": t for i, t in enumerate(w)},
            "optimizer": {
                "state": {i: {"step": torch.tensor(100.0), "exp_avg": m[i], "exp_avg_sq": v[i]}
                          for i in range(len(w))},
                "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                  "weight_decay": 0.0, "amsgrad": False,
                                  "params": list(range(len(w)))}],
            },
        }

    shutil.rmtree(args.out, ignore_errors=True)
    chain = ckz.Chain(args.out, threads=args.threads)
    times = []
    for step in range(args.saves):
        start = time.time()
        chain.save(checkpoint(), step=step)
        times.append(time.time() - start)
        for i, shape in enumerate(shapes):  # one Adam-like step
            g = torch.randn(shape) * 1e-3
            m[i].mul_(0.9).add_(g, alpha=0.1)
            v[i].mul_(0.999).addcmul_(g, g, value=0.001)
            w[i].sub_(1e-3 * m[i] / (v[i].sqrt() + 1e-8))
    chain.close()
    r = resource.getrusage(resource.RUSAGE_SELF)
    print(f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r} saves (s) "
          + " ".join(f"{t:.2f}" for t in times)
          + f" | user {r.ru_utime:.1f} s, system {r.ru_stime:.1f} s,"
          f" {r.ru_minflt} page faults, peak RSS {r.ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
