#!/usr/bin/python3
"""The LSTM model on the ExCP path (format 0.11, lstm-cm, spec 7.11.7) against cm alone and
against faithful ExCP packing + xz -9, all measured in one run on the same histories.

    tools/lstm/lstm_cm_benchmark.py [--ckz build/tools/ckz] [--cm-measure build/tools/bench/cm_measure]
                                    [--work DIR] HISTORY_DIR...

For each history (a folder of step_*.pt, as tools/history/make_history.py writes it):
  - `ckz compress --excp` and `ckz compress --excp --lstm` of the whole history (a keyframe
    and its links; with --lstm the first link's training by ckz-lstm-train is included), timed
    at 1 and 2 threads;
  - every link's file bytes both ways (the model's bytes are in the files that hold it), and
    the stored bytes of the links' quantized tensors by role (dW = Weight, m = Moment1,
    v = Moment2);
  - ExCP packing + xz -9 of the plain chain's links (cm_measure's "all links" and per-stream
    lines: 4-bit indices two per byte, fp16 centres, the unshrunk tensors and the pickle);
  - decode of the last link (the deepest) at 1 and 2 threads, best of 2, in MB/s as
    docs/lstm-benchmark-raw.md counts them (the checkpoint's bytes times the files decoded, the
    link and every parent, over the time); and that both chains restore the same bytes.
Prints one markdown table per history and a summary table.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd):
    t0 = time.monotonic()
    run(cmd)
    return time.monotonic() - t0


def info(ckz, path):
    return json.loads(run([ckz, "info", "--json", path]).stdout)


def links(chain):
    files = sorted(f for f in os.listdir(chain) if f.endswith(".ckz"))
    return [os.path.join(chain, f) for f in files[1:]]  # the first is the keyframe


def by_role(ckz, files):
    roles = {"weight": 0, "moment1": 0, "moment2": 0}
    model = 0
    for f in files:
        d = info(ckz, f)
        m = d.get("lstm_model")
        if isinstance(m, dict) and not m.get("from_parent"):
            model += int(m.get("bytes", 0))
        for t in d["tensors"]:
            if t.get("quantization") and t["role"] in roles:
                roles[t["role"]] += t["stored_bytes"]
    return roles, model


def decode_speed(ckz, link, threads, out_dir, decodes):
    """MB/s of restoring `link` as docs/lstm-benchmark-raw.md counts it: the checkpoint's bytes
    times the files decoded (the link and its parents up to the keyframe) over the time."""
    best = None
    for _ in range(2):
        shutil.rmtree(out_dir, ignore_errors=True)
        s = timed([ckz, "decompress", "-q", "-T", str(threads), link, "--output-dir", out_dir])
        best = s if best is None else min(best, s)
    raw = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    return raw * decodes / best / 1e6, raw


def excp_xz(cm_measure, chain):
    out = run([cm_measure, chain]).stdout
    m = re.search(r"^all links\s+(\d+)\s+(\d+)\s+(\d+)", out, re.M)
    streams = {k: int(v) for k, v in
               re.findall(r"^\s+(dW|m|v)\s+\d+ elements.*ExCP\+xz\s+(\d+)", out, re.M)}
    return int(m.group(2)), streams


def pct(new, old):
    return f"{100.0 * (new - old) / old:+.2f} %" if old else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("histories", nargs="+")
    ap.add_argument("--ckz", default="build/tools/ckz")
    ap.add_argument("--cm-measure", default="build/tools/bench/cm_measure")
    ap.add_argument("--work", default="/tmp/ckz-lstm-cm-bench")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    summary = []
    for h in a.histories:
        # make_history.py's layout NAME/hist: named after NAME.
        path = os.path.normpath(h)
        name = os.path.basename(path)
        if name == "hist":
            name = os.path.basename(os.path.dirname(path))
        w = os.path.join(a.work, name)
        shutil.rmtree(w, ignore_errors=True)
        os.makedirs(w)
        plain, lstm = os.path.join(w, "excp"), os.path.join(w, "excp-lstm")
        # Compress at 1 and 2 threads (the 2-thread outputs are kept; they are the same files).
        t_plain, t_lstm = {}, {}
        for t in (1, 2):
            for out, extra, times in ((plain, [], t_plain), (lstm, ["--lstm"], t_lstm)):
                shutil.rmtree(out, ignore_errors=True)
                times[t] = timed([a.ckz, "compress", "-q", "-T", str(t), "--excp", *extra, h,
                                  "-o", out])
        lp, ll = links(plain), links(lstm)
        sizes_p = [os.path.getsize(f) for f in lp]
        sizes_l = [os.path.getsize(f) for f in ll]
        roles_p, _ = by_role(a.ckz, lp)
        roles_l, model = by_role(a.ckz, ll)
        xz_links, xz_streams = excp_xz(a.cm_measure, plain)
        speeds = {}
        restored = {}
        for label, files in (("excp", lp), ("excp-lstm", ll)):
            for t in (1, 2):
                out = os.path.join(w, f"restore-{label}-T{t}")
                speeds[(label, t)], _ = decode_speed(a.ckz, files[-1], t, out, len(files) + 1)
            restored[label] = os.path.join(w, f"restore-{label}-T1")
        same = subprocess.run(["diff", "-r", "-q", restored["excp"], restored["excp-lstm"]],
                              capture_output=True).returncode == 0
        print(f"\n### {name}: {len(lp)} links (depth 1..{len(lp)}), restores identical: {same}\n")
        print("| link | ExCP + cm (bytes) | ExCP + lstm-cm (bytes) | change |")
        print("|---:|---:|---:|---:|")
        for k, (p, l) in enumerate(zip(sizes_p, sizes_l), 1):
            print(f"| {k} | {p:,} | {l:,} | {pct(l, p)} |")
        print(f"| all | {sum(sizes_p):,} | {sum(sizes_l):,} | {pct(sum(sizes_l), sum(sizes_p))} |")
        print("\n| stream | ExCP packing + xz -9 | cm | lstm-cm (model not counted) | change |")
        print("|---|---:|---:|---:|---:|")
        for role, key in (("weight", "dW"), ("moment1", "m"), ("moment2", "v")):
            print(f"| {key} | {xz_streams.get(key, 0):,} | {roles_p[role]:,} | {roles_l[role]:,} | "
                  f"{pct(roles_l[role], roles_p[role])} |")
        print(f"\nmodel bytes (stored once): {model:,}; compress the history, 1 / 2 threads: "
              f"{t_plain[1]:.2f} / {t_plain[2]:.2f} s -> {t_lstm[1]:.2f} / {t_lstm[2]:.2f} s "
              f"({t_lstm[1] / t_plain[1]:.1f}x / {t_lstm[2] / t_plain[2]:.1f}x, training "
              f"included); decode of link "
              f"{len(lp)} (MB/s of the {len(lp) + 1} files decoded), 1 / 2 threads: "
              f"{speeds[('excp', 1)]:.1f} / {speeds[('excp', 2)]:.1f} -> "
              f"{speeds[('excp-lstm', 1)]:.1f} / {speeds[('excp-lstm', 2)]:.1f}")
        summary.append((name, xz_links, sum(sizes_p), sum(sizes_l), t_plain, t_lstm, speeds))
    print("\n| history | ExCP packing + xz -9 links | ExCP + cm links | ExCP + lstm-cm links (model included) | compress 1 / 2 threads | decode deepest link, 1 / 2 threads |")
    print("|---|---:|---:|---:|---|---|")
    for name, xz, p, l, tp, tl, sp in summary:
        print(f"| {name} | {xz:,} | {p:,} | {l:,} ({pct(l, p)}) | {tp[1]:.2f} / {tp[2]:.2f} -> "
              f"{tl[1]:.2f} / {tl[2]:.2f} s | "
              f"{sp[('excp', 1)]:.0f} / {sp[('excp', 2)]:.0f} -> {sp[('excp-lstm', 1)]:.0f} / "
              f"{sp[('excp-lstm', 2)]:.0f} MB/s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
