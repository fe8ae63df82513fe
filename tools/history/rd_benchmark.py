#!/usr/bin/python3
"""Rate-distortion benchmark of the lossy coding tools: link ratio against resume damage.

For one history (a model trained by make_history.py), every point is a whole chain of steps
K..RESUME_AT compressed by `ckz compress`, restored at RESUME_AT and resumed in PyTorch by
resume_fidelity.py (same batches as the original run). Points:
  - the level tool (format 0.7, the default) at --quality 1..9;
  - our ExCP path (--excp) at beta 1, 1.5, 2 (ExCP's default) and --k-at-cap;
  - faithful ExCP packing + xz -9 of each ExCP chain (tools/bench/cm_measure: 4-bit indices two
    per byte, fp16 centres, the tensors ExCP does not shrink and the pickle, xz -9): the same
    decoded values, hence the same damage, at ExCP's own size.
It also evaluates the distortion measure of docs/rate-distortion.md on each restored checkpoint
against the original (weight error in units of the link's RMS update, m's error in units of
sqrt(v), v's error in log2; weighted by the level tool's step factors) and reports how well it
ranks the points by damage (Spearman's rank correlation).

    rd_benchmark.py --model chargpt --work /work/fid/chargpt --out docs/rd/chargpt
        [--qualities 1,2,...] [--skip-runs | --reuse-excp]

Writes OUT.json (every point), OUT.md (the table) and, with --plot, a PNG of ratio against
damage. Run with /usr/bin/python3 (Debian's python3-torch); the ckz build is build/tools.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CM_MEASURE = os.path.join(ROOT, "build", "tools", "bench", "cm_measure")
STEP_FACTORS = (2.0, 1.5, 2.0)  # RdOptions' weight_step, moment1_step, moment2_step


def excp_variants():
    return [("excp-beta1", "--excp --beta 1"), ("excp-beta1.5", "--excp --beta 1.5"),
            ("excp-beta2", "--excp"), ("excp-k-at-cap", "--excp --k-at-cap")]


def run_fidelity(args, variants, no_control=False):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "resume_fidelity.py"), "--model", args.model,
           "--work", args.work, "--json", args.out + ".fidelity.json"]
    if no_control:
        cmd.append("--no-control")
    if args.history_args:
        cmd += ["--history-args", args.history_args]
    for name, options in variants:
        cmd += ["--variant", "%s=%s" % (name, options)]
    subprocess.run(cmd, check=True)
    with open(args.out + ".fidelity.json") as f:
        return json.load(f)


def excp_xz(chain_dir):
    """Faithful ExCP packing + xz -9 bytes over the chain's links (cm_measure's 'all links')."""
    out = subprocess.run([CM_MEASURE, chain_dir], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"^all links\s+(\d+)\s+(\d+)\s+(\d+)", out, re.M)
    if not m:
        raise SystemExit("cm_measure: no 'all links' line in:\n" + out)
    return int(m.group(1)), int(m.group(2))


def params(d, names):
    st = d["optimizer"]["state"]
    ids = [i for g in d["optimizer"]["param_groups"] for i in g["params"]]
    return {n: (d["model"][n].double(), st[i]["exp_avg"].double(), st[i]["exp_avg_sq"].double())
            for n, i in zip(names, ids) if "exp_avg_sq" in st[i]}


def distortion(original, previous, restored, names):
    """The measure: mean over elements of each stream's squared error in its own units, divided
    by its step factor squared, summed over the streams."""
    o, p, r = params(original, names), params(previous, names), params(restored, names)
    sums, counts = [0.0, 0.0, 0.0], [0, 0, 0]
    for n in o:
        (w, m, v), (wp, _, _), (wr, mr, vr) = o[n], p[n], r[n]
        rms = float((w - wp).pow(2).mean().sqrt())
        if rms > 0:
            sums[0] += float(((wr - w) / rms).pow(2).sum())
        counts[0] += w.numel()
        unit = v.sqrt().clamp_min(1e-30)
        sums[1] += float(((mr - m) / unit).pow(2).sum())
        counts[1] += m.numel()
        both = (v > 0) & (vr > 0)
        sums[2] += float((torch.log2(vr[both]) - torch.log2(v[both])).pow(2).sum())
        counts[2] += v.numel()
    parts = [s / max(c, 1) / f ** 2 for s, c, f in zip(sums, counts, STEP_FACTORS)]
    return sum(parts), parts


def alternative_measures(original, previous, restored, names):
    """Two other candidates, to show the measure is chosen by what it predicts:
    'curvature': the weight error weighted by Adam's v (the Fisher diagonal's estimate) relative
    to the link's update weighted the same way, plus the same moment terms as the measure;
    'plain': each stream's squared error relative to its own mean square (W: to the update's),
    i.e. without Adam's units."""
    o, p, r = params(original, names), params(previous, names), params(restored, names)
    curv = [0.0, 0.0]
    plain = [[0.0, 0.0] for _ in range(3)]
    for n in o:
        (w, m, v), (wp, _, _), (wr, mr, vr) = o[n], p[n], r[n]
        curv[0] += float((v * (wr - w).pow(2)).sum())
        curv[1] += float((v * (w - wp).pow(2)).sum())
        for k, (err, ref) in enumerate(((wr - w, w - wp), (mr - m, m), (vr - v, v))):
            plain[k][0] += float(err.pow(2).sum())
            plain[k][1] += float(ref.pow(2).sum())
    _, parts = distortion(original, previous, restored, names)
    curvature = (curv[0] / curv[1] if curv[1] > 0 else 0.0) / STEP_FACTORS[0] ** 2
    curvature += parts[1] + parts[2]
    plain_sum = sum(a / b for a, b in plain if b > 0)
    return curvature, plain_sum


def spearman(x, y):
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["mlp", "cnn", "chargpt"], required=True)
    ap.add_argument("--work", required=True, help="resume_fidelity.py's working folder")
    ap.add_argument("--out", required=True, help="output path prefix (OUT.json, OUT.md)")
    ap.add_argument("--qualities", default="1,2,3,4,5,6,7,8,9")
    ap.add_argument("--history-args", default="")
    ap.add_argument("--skip-runs", action="store_true",
                    help="reuse OUT.fidelity.json instead of running resume_fidelity.py")
    ap.add_argument("--reuse-excp", action="store_true",
                    help="run only the level points; take the ExCP points (and the control) "
                    "from OUT.fidelity.json of an earlier run with the same ExCP coder")
    ap.add_argument("--plot", help="also draw ratio against damage into this PNG")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    qualities = [int(q) for q in args.qualities.split(",")]
    variants = [("levels-q%d" % q, "--quality %d" % q) for q in qualities] + excp_variants()
    if args.skip_runs:
        with open(args.out + ".fidelity.json") as f:
            fid = json.load(f)
    elif args.reuse_excp:
        with open(args.out + ".fidelity.json") as f:
            earlier = json.load(f)
        kept = [v for v in earlier["variants"]
                if v["ckz_args"] is None or v["name"].startswith("excp")]
        fid = run_fidelity(args, [v for v in variants if v[0].startswith("levels")],
                           no_control=True)
        fid["variants"] = kept[:1] + fid["variants"] + kept[1:]
        with open(args.out + ".fidelity.json", "w") as f:
            json.dump(fid, f, indent=1)
            f.write("\n")
    else:
        fid = run_fidelity(args, variants)

    hist = os.path.join(args.work, "original")
    with open(os.path.join(hist, "history.json")) as f:
        names = json.load(f)["optimizer_param_names"]
    resume_at = fid["options"]["resume_at"]
    every = fid["options"]["every"]
    original = torch.load(os.path.join(hist, "step_%06d.pt" % resume_at))
    previous = torch.load(os.path.join(hist, "step_%06d.pt" % (resume_at - every)))

    points = []
    for v in fid["variants"]:
        if v["ckz_args"] is None:
            continue  # the control
        c, f = v["compression"], v["fidelity"]
        restored = torch.load(os.path.join(args.work, "restored-%s.pt" % v["name"]))
        d, parts = distortion(original, previous, restored, names)
        links = [x for i, x in enumerate(c["per_checkpoint"])
                 if i % fid["options"]["keyframe_interval"]]
        raw = sum(x["raw"] for x in links)
        stored = sum(x["ckz"] for x in links)
        point = {"method": "levels" if v["name"].startswith("levels") else "ckz ExCP",
                 "name": v["name"], "ckz_args": v["ckz_args"], "link_raw_bytes": raw,
                 "link_stored_bytes": stored, "link_ratio": raw / stored,
                 "val_loss_max": f["eval_rel_max"], "val_loss_final": f["eval_rel_final"],
                 "train_loss_max": f["train_rel_max"], "distortion": d,
                 "distortion_parts": parts}
        point["distortion_curvature"], point["distortion_plain"] = alternative_measures(
            original, previous, restored, names)
        points.append(point)
        if point["method"] == "ckz ExCP":
            xz_raw, xz = excp_xz(os.path.join(args.work, "ckz-" + v["name"]))
            points.append(dict(point, method="ExCP packing + xz -9",
                               name=v["name"] + " + xz", link_stored_bytes=xz,
                               link_ratio=xz_raw / xz))
    measured = [p for p in points if p["method"] != "ExCP packing + xz -9"]
    rho = spearman([p["distortion"] for p in measured], [p["val_loss_max"] for p in measured])
    rho_train = spearman([p["distortion"] for p in measured],
                         [p["train_loss_max"] for p in measured])
    rho_curv = spearman([p["distortion_curvature"] for p in measured],
                        [p["val_loss_max"] for p in measured])
    rho_plain = spearman([p["distortion_plain"] for p in measured],
                         [p["val_loss_max"] for p in measured])
    result = {"model": args.model, "options": fid["options"], "points": points,
              "spearman_distortion_vs_val_max": rho,
              "spearman_distortion_vs_train_max": rho_train,
              "spearman_curvature_vs_val_max": rho_curv,
              "spearman_plain_vs_val_max": rho_plain}
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")

    reference = next(p for p in points if p["name"] == "excp-beta2 + xz")
    lines = ["| method | setting | link ratio | vs ExCP + xz | max \\|Δ val loss\\| | final Δ val "
             "loss | max \\|Δ train loss\\| | distortion |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        lines.append("| %s | %s | %.1f× | %.2f× | %.3f%% | %+.3f%% | %.3f%% | %.3g |" % (
            p["method"], p["ckz_args"] if p["method"] != "ExCP packing + xz -9" else p["name"],
            p["link_ratio"], p["link_ratio"] / reference["link_ratio"],
            100 * p["val_loss_max"], 100 * p["val_loss_final"], 100 * p["train_loss_max"],
            p["distortion"]))
    lines.append("")
    lines.append("Spearman rank correlation of the distortion measure with max |Δ val loss|: "
                 "%.2f (with max |Δ train loss|: %.2f), over the %d ckz points." %
                 (rho, rho_train, len(measured)))
    lines.append("Other candidates against max |Δ val loss|: weight error weighted by Adam's v "
                 "(curvature) %.2f; plain relative squared errors (no Adam units) %.2f." %
                 (rho_curv, rho_plain))
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for method, style in (("levels", "o-"), ("ckz ExCP", "s--"),
                              ("ExCP packing + xz -9", "^:")):
            ps = sorted((p for p in points if p["method"] == method),
                        key=lambda p: p["link_ratio"])
            ax.plot([p["link_ratio"] for p in ps], [100 * p["val_loss_max"] for p in ps], style,
                    label=method)
        ax.set_xlabel("link ratio (raw .pt / .ckz)")
        ax.set_ylabel("max |Δ val loss| after resuming (%)")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title("%s: ratio against resume damage" % args.model)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
