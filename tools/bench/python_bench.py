#!/usr/bin/python3
"""Issue 14's targets for the Python API, measured (a benchmark: numbers, never assertions).

Trains the model of tools/history/make_history.py (default: the character transformer) and
checkpoints it every K steps, once per way of saving, on the same disk:
  - blocking time in the training loop of each save: torch.save to a .pt file, against
    ckz.Chain.save with async_save=True (lossy default, and lossless) and without;
  - the training loop's wall time with each (the background encoder shares the machine; the
    fastest of --rounds interleaved runs);
  - peak extra memory of an async save (VmHWM reset before the save, read after it ends,
    minus the RSS just before it), against the checkpoint's size; measured in a child process
    with MALLOC_MMAP_THRESHOLD_=65536, so that large buffers come from and go back to the
    kernel and RSS follows them (glibc would otherwise reuse freed heap that is still
    resident, and hide or invent usage);
  - ckz.load of every file of the chain (depth 0..K-1) against torch.load of the original
    .pt from a warm page cache (median of repeats), on 1 thread and on every core.

  PYTHONPATH=build/python /usr/bin/python3 tools/bench/python_bench.py --out /tmp/pybench
  ... --d-model 384 --n-layer 6   (any make_history.py model option is passed through)
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "history"))

import torch  # noqa: E402

import ckz  # noqa: E402
import make_history  # noqa: E402
from ckzhistory.train import Run  # noqa: E402

torch.set_num_threads(1)  # as make_history.py: more threads are much slower on these machines


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def train_and_save(config, save, finish=None, measure_memory=False):
    """One run of the same training; save(payload, step) at every checkpoint. Returns the
    blocking time of each save, the loop's wall time and, with measure_memory, the extra
    peak RSS of each save (save and wait back to back, nothing else running)."""
    run = Run(dict(config))
    blocking, extra = [], []
    start = time.perf_counter()
    for step in range(1, config["steps"] + 1):
        run.train_step()
        if step % config["every"] == 0:
            payload = run.pt_payload()
            if measure_memory:
                finish()  # no other save in flight
                reset_peak_rss()
                before = status_kb("VmRSS")
            t = time.perf_counter()
            save(payload, step)
            blocking.append(time.perf_counter() - t)
            if measure_memory:
                finish()
                extra.append((status_kb("VmHWM") - before) * 1024)
            del payload
    if finish:
        finish()
    return blocking, time.perf_counter() - start, extra


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def memory_phase(config, out):
    """Peak extra RSS of each async save (run in a child with MALLOC_MMAP_THRESHOLD_ set)."""
    result = {}
    for name, kwargs in (("lossy", dict()), ("lossless", dict(lossless=True))):
        chain = ckz.Chain(os.path.join(out, "mem-" + name), keyframe_interval=10,
                          async_save=True, **kwargs)
        _, _, extra = train_and_save(config, chain.save, chain.wait, measure_memory=True)
        chain.close()
        result[name] = extra
    pt_dir = os.path.join(out, "mem-pt")
    os.makedirs(pt_dir, exist_ok=True)
    _, _, result["torch.save"] = train_and_save(
        config, lambda p, s: torch.save(p, os.path.join(pt_dir, "step_%06d.pt" % s)),
        lambda: None, measure_memory=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="scratch folder on the disk to measure")
    p.add_argument("--rounds", type=int, default=3, help="training loops: fastest of N rounds")
    p.add_argument("--repeats", type=int, default=7, help="load timings: median of N")
    p.add_argument("--json", help="also write the numbers here")
    p.add_argument("--memory-phase", help=argparse.SUPPRESS)  # internal: the child's output
    args, history_args = p.parse_known_args()
    hp = make_history.build_parser()
    h = hp.parse_args(["--model", "chargpt", "--out", args.out] + history_args)
    config = make_history.make_config(h)
    if args.memory_phase:
        with open(args.memory_phase, "w") as f:
            json.dump(memory_phase(config, args.out), f)
        return
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    pt_dir = os.path.join(args.out, "pt")
    os.makedirs(pt_dir)

    def torch_save(payload, step):
        torch.save(payload, os.path.join(pt_dir, "step_%06d.pt" % step))

    results = {"config": {k: config[k] for k in ("model", "steps", "every")},
               "args": history_args, "machine": os.uname().nodename, "cpus": os.cpu_count(),
               "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
    results["params"] = sum(p.numel() for p in Run(dict(config)).model.parameters())

    ways = [("no checkpoints", None, None), ("torch.save (.pt)", None, None),
            ("ckz Chain async (lossy)", "lossy-async", dict(async_save=True)),
            ("ckz Chain async (lossless)", "lossless-async", dict(async_save=True, lossless=True)),
            ("ckz Chain sync (lossy)", "lossy-sync", dict(async_save=False))]
    rows = {name: [] for name, _, _ in ways}
    for _ in range(args.rounds):
        for name, folder, kwargs in ways:
            if folder is None:
                rows[name].append(train_and_save(
                    config, torch_save if name.startswith("torch") else lambda p, s: None))
                continue
            shutil.rmtree(os.path.join(args.out, folder), ignore_errors=True)
            chain = ckz.Chain(os.path.join(args.out, folder), keyframe_interval=10, **kwargs)
            rows[name].append(train_and_save(config, chain.save, chain.close))
    pts = [os.path.join(pt_dir, f) for f in sorted(os.listdir(pt_dir))]
    results["checkpoint_bytes"] = max(os.path.getsize(f) for f in pts)
    print("model %s %s, %d parameters, checkpoint %.2f MB, %d checkpoints (every %d steps)" % (
        config["model"], " ".join(history_args), results["params"],
        results["checkpoint_bytes"] / 1e6, len(pts), config["every"]))
    print("\n| way of saving | blocking per save: median / max (ms) | training loop wall time, "
          "fastest of %d (s) |" % args.rounds)
    print("|---|---:|---:|")
    results["loop"] = {}
    for name, runs in rows.items():
        blocking = [b for r in runs for b in r[0]]
        wall = min(r[1] for r in runs)
        med = statistics.median(blocking) * 1e3 if blocking else 0
        mx = max(blocking) * 1e3 if blocking else 0
        results["loop"][name] = {"blocking_median_ms": med, "blocking_max_ms": mx, "wall_s": wall}
        print("| %s | %s | %.2f |" % (name, "%.1f / %.1f" % (med, mx) if blocking else "-", wall))

    memory_json = os.path.join(args.out, "memory.json")
    subprocess.run([sys.executable, os.path.abspath(__file__), "--out", args.out,
                    "--memory-phase", memory_json] + history_args, check=True,
                   env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
    with open(memory_json) as f:
        results["memory"] = json.load(f)
    print("\n| save | peak extra RSS, max over saves | x checkpoint |")
    print("|---|---:|---:|")
    for name, extra in results["memory"].items():
        label = "ckz Chain async (%s)" % name if name != "torch.save" else "torch.save (.pt)"
        print("| %s | %.2f MB | %.2fx |" % (label, max(extra) / 1e6,
                                            max(extra) / results["checkpoint_bytes"]))

    # Loads from a warm page cache, depth 0..9 of each chain.
    print("\n| step | depth | torch.load .pt (ms) | ckz.load lossy link, 1 thread / %d (ms) | "
          "ckz.load lossless link, 1 thread / %d (ms) |" % (os.cpu_count(), os.cpu_count()))
    print("|---:|---:|---:|---:|---:|")
    results["load"] = []
    for step in range(config["every"], config["steps"] + 1, config["every"]):
        pt = os.path.join(pt_dir, "step_%06d.pt" % step)
        row = {"step": step, "torch_ms": median_time(lambda: torch.load(pt), args.repeats) * 1e3}
        for folder in ("lossy-async", "lossless-async"):
            path = os.path.join(args.out, folder, "step_%08d.pt.ckz" % step)
            ckz.load(path)  # warm the page cache
            row["depth"] = ckz.info(path)["depth"]
            row[folder] = [median_time(lambda: ckz.load(path, threads=t), args.repeats) * 1e3
                           for t in (1, os.cpu_count())]
        results["load"].append(row)
        print("| %d | %d | %.1f | %.1f / %.1f | %.1f / %.1f |" % (
            step, row["depth"], row["torch_ms"], *row["lossy-async"], *row["lossless-async"]))
    sizes = {folder: sum(os.path.getsize(os.path.join(args.out, folder, f))
                         for f in os.listdir(os.path.join(args.out, folder)))
             for folder in ("lossy-async", "lossless-async")}
    pt_total = sum(os.path.getsize(f) for f in pts)
    results["bytes"] = dict(sizes, pt=pt_total)
    print("\non disk: .pt %.2f MB; %s" % (pt_total / 1e6, "; ".join(
        "%s %.2f MB (%.2fx)" % (n, s / 1e6, pt_total / s) for n, s in sizes.items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
