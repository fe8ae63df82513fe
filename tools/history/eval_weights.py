#!/usr/bin/python3
"""Validation loss of weights-only checkpoints (as make_history.py --format weights-bf16 writes
them, or as ckz restores them), against the original files of the same steps.

    eval_weights.py HISTORY_DIR RESTORED_DIR [--json out.json]

HISTORY_DIR holds history.json and step_N.weights-*.safetensors; RESTORED_DIR the restored
files under the same names. For each step: the model of the history's config, loaded with the
original weights and then with the restored ones (16-bit values widened to float32, as a
training job that resumes from them would), evaluated on the fixed held-out set; prints the
relative difference of the val loss. Run with /usr/bin/python3.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ckzhistory.safetensors_io import read_safetensors  # noqa: E402
from ckzhistory.train import Run  # noqa: E402

TORCH = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
         "I64": torch.int64}


def load(path):
    tensors, _ = read_safetensors(path)
    out = {}
    for name, (dtype, shape, raw) in tensors.items():
        t = torch.frombuffer(bytearray(raw), dtype=TORCH[dtype]).reshape(shape)
        out[name] = t.float() if t.is_floating_point() else t
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("history")
    ap.add_argument("restored")
    ap.add_argument("--json")
    a = ap.parse_args()
    with open(os.path.join(a.history, "history.json")) as f:
        config = json.load(f)["options"]
    run = Run(config)
    rows = []
    for name in sorted(f for f in os.listdir(a.history) if ".weights-" in f):
        losses = []
        for folder in (a.history, a.restored):
            run.model.load_state_dict(load(os.path.join(folder, name)))
            losses.append(run.evaluate()["eval_loss"])
        rows.append({"file": name, "original": losses[0], "restored": losses[1],
                     "relative": (losses[1] - losses[0]) / losses[0]})
        print("%s: val loss %.5f -> %.5f (%+.3f%%)" % (name, losses[0], losses[1],
                                                       100 * rows[-1]["relative"]), flush=True)
    worst = max((abs(r["relative"]) for r in rows), default=0.0)
    print("max |relative val loss difference|: %.3f%%" % (100 * worst))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
