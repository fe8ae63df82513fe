#!/usr/bin/python3
"""Draws ratio and lossy error along a compressed history from `ckz report --json`.

    ckz report OUT_DIR --against HISTORY --json > report.json
    python3 tools/history/plot_report.py report.json -o chain.png     ('-' reads stdin)

Needs Debian's python3-matplotlib. Top: each file's ratio (keyframes marked); bottom, when the
report was made with --against: the relative RMS error of each lossy role.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="ckz report --json output, or - for stdin")
    ap.add_argument("-o", "--output", required=True, help="image to write (.png, .svg, .pdf)")
    args = ap.parse_args()
    rows = json.load(sys.stdin if args.report == "-" else open(args.report))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_report: needs matplotlib (apt install python3-matplotlib)")
    x = [r["step"] if r["step"] is not None else i for i, r in enumerate(rows)]
    has_error = any("error" in s for r in rows for s in r["roles"].values())
    fig, axes = plt.subplots(2 if has_error else 1, 1, sharex=True, figsize=(8, 6 if has_error else 3.5),
                             squeeze=False)
    ax = axes[0][0]
    ax.plot(x, [r["ratio"] for r in rows], marker="o", label="ratio")
    keys = [(xi, r["ratio"]) for xi, r in zip(x, rows) if r["depth"] == 0]
    if keys:
        ax.scatter(*zip(*keys), s=80, facecolors="none", edgecolors="k", label="keyframe", zorder=3)
    ax.set_ylabel("ratio (raw / file)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_error:
        ax = axes[1][0]
        for role, label in (("weight", "W"), ("moment1", "m"), ("moment2", "v")):
            pts = [(xi, 100 * r["roles"][role]["error"]["relative_rms"]) for xi, r in zip(x, rows)
                   if role in r["roles"] and "error" in r["roles"][role]]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=label)
        ax.set_ylabel("RMS error / RMS (%)")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)


if __name__ == "__main__":
    main()
