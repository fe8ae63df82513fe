#!/usr/bin/python3
"""Resume fidelity: does training resumed from a CKZ-restored checkpoint follow the original run?

ExCP's protocol on our own histories, with real PyTorch:
  1. train a run for RESUME_AT + EXTRA steps, saving a .pt every K steps (the original run;
     its per-step train losses and periodic evals are the baseline);
  2. compress the checkpoints up to step RESUME_AT with `ckz compress` as one chain (each
     link predicted from the decoded parent), once per variant (ExCP defaults, k forced to its
     cap, lossless, or any ckz options given with --variant);
  3. restore step RESUME_AT from the chain, load it in PyTorch and train EXTRA more steps
     (the batch sequence is a pure function of (seed, step), so both runs see the same data);
  4. compare, step by step, with the original run: relative train loss difference
     (resumed - original) / original, eval loss difference at every eval, eval accuracy.
A control run resumes from the original .pt: it must reproduce the original losses exactly,
which shows that every difference in the table comes from compression.

    resume_fidelity.py --model chargpt --work /tmp/fid [--resume-at 200 --extra 100 --every 20]
        [--variant NAME=CKZ_ARGS ...] [--json out.json] [--markdown out.md]

Ratios: "link" is the mean over non-keyframe links of (raw .pt bytes / .ckz bytes); "chain" is
all raw .pt bytes over all .ckz bytes, keyframes included. Run with /usr/bin/python3.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_HISTORY = os.path.join(HERE, "make_history.py")
DEFAULT_CKZ = os.path.join(HERE, "..", "..", "build", "tools", "ckz")

DEFAULT_VARIANTS = [
    ("excp", ""),                      # ExCP defaults: alpha 5e-5, beta 2, 4 bits
    ("excp-k-at-cap", "--k-at-cap"),   # the paper's regime: k = 2.5 whatever mean(v)
    ("lossless", "--lossless"),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def make_original(args, hist):
    """Trains the original run (or reuses one made with the same options)."""
    opts = ["--model", args.model, "--steps", str(args.resume_at + args.extra),
            "--every", str(args.every), "--eval-every", str(args.eval_every),
            "--seed", str(args.seed), "--format", "pt"] + shlex.split(args.history_args)
    stamp = os.path.join(hist, "made_with.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == opts:
                return
        raise SystemExit("%s holds a history made with other options; use another --work" % hist)
    run(["/usr/bin/python3", MAKE_HISTORY, "--out", hist, "--quiet"] + opts)
    with open(stamp, "w") as f:
        json.dump(opts, f)


def resume(args, pt, log, original_history):
    run(["/usr/bin/python3", MAKE_HISTORY, "--resume-from", pt, "--steps", str(args.extra),
         "--eval-every", str(args.eval_every), "--log", log, "--compare", original_history],
        stdout=subprocess.DEVNULL)
    with open(log) as f:
        return json.load(f)


def compare(original, resumed, start):
    """Per-step and per-eval differences of a resumed run against the original one."""
    ot = {r["step"]: r["loss"] for r in original["train_log"] if r["step"] > start}
    rt = {r["step"]: r["loss"] for r in resumed["train_log"]}
    steps = sorted(set(ot) & set(rt))
    rel = [(rt[s] - ot[s]) / ot[s] for s in steps]
    oe = {e["step"]: e for e in original["eval_log"] if e["step"] > start}
    re_ = {e["step"]: e for e in resumed["eval_log"]}
    evals = sorted(set(oe) & set(re_))
    erel = [(re_[s]["eval_loss"] - oe[s]["eval_loss"]) / oe[s]["eval_loss"] for s in evals]
    eacc = [re_[s].get("eval_accuracy", 0.0) - oe[s].get("eval_accuracy", 0.0) for s in evals]
    tail = rel[-10:]
    return {
        "train_steps": len(steps),
        "train_identical": sum(1 for s in steps if rt[s] == ot[s]),
        "train_rel_max": max((abs(x) for x in rel), default=0.0),
        "train_rel_final": rel[-1] if rel else 0.0,
        "train_rel_final10": sum(tail) / len(tail) if tail else 0.0,
        "train_rel_mean": sum(rel) / len(rel) if rel else 0.0,
        "evals": len(evals),
        "eval_steps": evals,
        "eval_rel": erel,
        "eval_rel_max": max((abs(x) for x in erel), default=0.0),
        "eval_rel_final": erel[-1] if erel else 0.0,
        "eval_acc_diff_final": eacc[-1] if eacc else 0.0,
        "eval_acc_diff_max": max((abs(x) for x in eacc), default=0.0),
        "final_eval_original": oe[evals[-1]] if evals else None,
        "final_eval_resumed": re_[evals[-1]] if evals else None,
    }


def compress_chain(args, hist, pts, out, ckz_args):
    if os.path.exists(out):
        subprocess.run(["rm", "-rf", out], check=True)
    t = time.perf_counter()
    run([args.ckz, "compress", "-q", *[os.path.join(hist, p) for p in pts], "-o", out,
         "--keyframe-interval", str(args.keyframe_interval), *shlex.split(ckz_args)])
    seconds = time.perf_counter() - t
    raw = [os.path.getsize(os.path.join(hist, p)) for p in pts]
    packed = [os.path.getsize(os.path.join(out, p + ".ckz")) for p in pts]
    links = [r / c for i, (r, c) in enumerate(zip(raw, packed)) if i % args.keyframe_interval]
    return {"raw_bytes": sum(raw), "ckz_bytes": sum(packed),
            "chain_ratio": sum(raw) / sum(packed),
            "link_ratio_mean": sum(links) / len(links) if links else None,
            "link_ratio_last": raw[-1] / packed[-1],
            "per_checkpoint": [{"file": p, "raw": r, "ckz": c} for p, r, c in zip(pts, raw, packed)],
            "compress_seconds": round(seconds, 3)}


def pct(x):
    return "%+.3f%%" % (100 * x)


def markdown(result):
    o = result["options"]
    lines = [
        "Resume fidelity, %s (%d parameters): chain of %d checkpoints every %d steps "
        "(keyframe interval %d), restored at step %d, trained %d more steps; eval every %d steps."
        % (o["model"], result["param_count"], result["checkpoints"], o["every"],
           o["keyframe_interval"], o["resume_at"], o["extra"], o["eval_every"]),
        "",
        "| variant | link ratio (mean / last) | chain ratio | max \\|Δ train loss\\| | final Δ train loss "
        "(last 10 steps) | max \\|Δ val loss\\| | final Δ val loss | final Δ val acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in result["variants"]:
        c, f = v["compression"], v["fidelity"]
        link = ("%.1f× / %.1f×" % (c["link_ratio_mean"], c["link_ratio_last"])
                if c.get("link_ratio_mean") else "—")
        chain = "%.2f×" % c["chain_ratio"] if "chain_ratio" in c else "—"
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %+.2f pt |" % (
            v["name"], link, chain, pct(f["train_rel_max"]), pct(f["train_rel_final10"]),
            pct(f["eval_rel_max"]), pct(f["eval_rel_final"]), 100 * f["eval_acc_diff_final"]))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["mlp", "cnn", "chargpt"], default="chargpt")
    ap.add_argument("--work", required=True, help="working folder (the original run is kept "
                    "there and reused by later calls with the same options)")
    ap.add_argument("--resume-at", type=int, default=200, help="step restored and resumed (200)")
    ap.add_argument("--extra", type=int, default=100, help="steps trained after it (100)")
    ap.add_argument("--every", type=int, default=20, help="checkpoint interval (20)")
    ap.add_argument("--eval-every", type=int, default=10, help="eval interval (10)")
    ap.add_argument("--keyframe-interval", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--history-args", default="", help="more make_history.py options, quoted "
                    "(e.g. '--n-layer 4')")
    ap.add_argument("--variant", action="append", metavar="NAME=CKZ_ARGS",
                    help="a compression variant (repeatable; default: excp, excp-k-at-cap, "
                    "lossless)")
    ap.add_argument("--no-control", action="store_true",
                    help="skip the control run resumed from the original .pt")
    ap.add_argument("--ckz", default=DEFAULT_CKZ)
    ap.add_argument("--json", help="write the full result here")
    ap.add_argument("--markdown", help="write the table here")
    args = ap.parse_args()
    if args.resume_at % args.every:
        ap.error("--resume-at must be a multiple of --every")
    variants = ([tuple(v.split("=", 1)) if "=" in v else (v, "") for v in args.variant]
                if args.variant else DEFAULT_VARIANTS)

    os.makedirs(args.work, exist_ok=True)
    hist = os.path.join(args.work, "original")
    make_original(args, hist)
    with open(os.path.join(hist, "history.json")) as f:
        original = json.load(f)
    pts = ["step_%06d.pt" % s for s in range(args.every, args.resume_at + 1, args.every)]
    result = {"options": {"model": args.model, "resume_at": args.resume_at, "extra": args.extra,
                          "every": args.every, "eval_every": args.eval_every,
                          "keyframe_interval": args.keyframe_interval, "seed": args.seed,
                          "history_args": args.history_args},
              "param_count": original["param_count"], "checkpoints": len(pts),
              "torch_version": original.get("torch_version"), "variants": []}
    history_json = os.path.join(hist, "history.json")
    if not args.no_control:
        log = resume(args, os.path.join(hist, pts[-1]),
                     os.path.join(args.work, "control.json"), history_json)
        f = compare(original, log, args.resume_at)
        result["variants"].append({"name": "control (original .pt)", "ckz_args": None,
                                   "compression": {}, "fidelity": f})
        print("control: %d/%d train losses bit-identical to the original run"
              % (f["train_identical"], f["train_steps"]), flush=True)
    for name, ckz_args in variants:
        out = os.path.join(args.work, "ckz-" + name)
        comp = compress_chain(args, hist, pts, out, ckz_args)
        restored = os.path.join(args.work, "restored-%s.pt" % name)
        run([args.ckz, "decompress", "-q", "-f", os.path.join(out, pts[-1] + ".ckz"),
             "-o", restored])
        log = resume(args, restored, os.path.join(args.work, "resumed-%s.json" % name),
                     history_json)
        f = compare(original, log, args.resume_at)
        result["variants"].append({"name": name, "ckz_args": ckz_args, "compression": comp,
                                   "fidelity": f})
        print("%s: link %.1fx (last %.1fx), chain %.2fx; train loss max %s final(10) %s; "
              "val loss max %s final %s; val acc %+.2f pt" % (
                  name, comp["link_ratio_mean"] or 0, comp["link_ratio_last"],
                  comp["chain_ratio"], pct(f["train_rel_max"]), pct(f["train_rel_final10"]),
                  pct(f["eval_rel_max"]), pct(f["eval_rel_final"]),
                  100 * f["eval_acc_diff_final"]), flush=True)
    table = markdown(result)
    print()
    print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
