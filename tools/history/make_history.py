#!/usr/bin/python3
"""Make REAL training histories (series of checkpoints) with real PyTorch.

Trains an MLP or a small CNN on Fashion-MNIST, or a small character-level GPT
on a text corpus assembled from the licence texts Debian ships, with Adam or
AdamW, and saves a checkpoint every K optimizer steps (K, 2K, ..., N) as
  DIR/step_000020.pt              torch.save({'model','optimizer','scheduler','step','epoch','config'})
  DIR/step_000020.safetensors     weights + Adam exp_avg/exp_avg_sq per parameter
  DIR/checkpoint-20/              Hugging Face Trainer-style folder
plus DIR/history.json (options, parameter count, checkpoints, losses, timings).

Resume mode (fidelity experiments):
  make_history.py --resume-from DIR/step_000100.pt --steps 100 --log resumed.json \\
      [--compare DIR/history.json]
rebuilds the run from the config stored in the .pt, loads all states and
continues; the batch sequence is a pure function of (seed, step), so the
resumed run sees exactly the batches of the original run.

Run with Debian's Python (/usr/bin/python3), which has torch 1.13.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from ckzhistory.train import (DEFAULTS, FORMATS, MODELS, OPTIMIZERS, resume,  # noqa: E402
                              run_from_scratch)

torch.set_num_threads(1)  # explicitly 1: more threads are much slower on this machine


def parse_formats(s):
    out = []
    for part in s.split(","):
        part = part.strip()
        if part == "all":
            out += ["pt", "safetensors", "trainer"]
        elif part in FORMATS:
            out.append(part)
        elif part:
            raise argparse.ArgumentTypeError("unknown format %r (choose from %s, all)" %
                                             (part, ", ".join(FORMATS)))
    return [f for f in FORMATS if f in out]


def build_parser():
    p = argparse.ArgumentParser(
        prog="make_history.py",
        description=__doc__.split("\n\n")[0] + " See docs/history.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""per-model defaults (used where an option is not given):
  mlp      steps 200, every 20, batch 64, Adam  lr 1e-3, wd 0,   scheduler none
  cnn      steps 200, every 20, batch 64, Adam  lr 1e-3, wd 0,   scheduler step (half-way, gamma 0.5)
  chargpt  steps 200, every 20, batch 32, AdamW lr 3e-3, wd 0.1, scheduler cosine with 10 warmup steps,
           grad clip 1.0

examples:
  make_history.py --model mlp --out runs/mlp
  make_history.py --model chargpt --steps 400 --every 50 --format all --out runs/gpt
  make_history.py --model cnn --steps 4 --every 2 --out /tmp/tiny
  make_history.py --resume-from runs/mlp/step_000100.pt --steps 100 --log resumed.json \\
      --compare runs/mlp/history.json""")
    g = p.add_argument_group("run")
    g.add_argument("--model", choices=MODELS, default="mlp", help="model family (default mlp)")
    g.add_argument("--out", metavar="DIR", help="output folder (created; required unless resuming)")
    g.add_argument("--steps", type=int, help="total optimizer steps (default 200); in resume "
                   "mode: steps to train after the checkpoint")
    g.add_argument("--every", type=int, metavar="K", help="checkpoint every K steps: K, 2K, ..., "
                   "and the last step (default 20)")
    g.add_argument("--eval-every", type=int, metavar="E", help="evaluate on the fixed held-out "
                   "set every E steps (default = --every; 0 = never)")
    g.add_argument("--format", type=parse_formats, default=["pt", "safetensors"],
                   help="comma-separated list of pt, safetensors, trainer, weights-bf16, "
                   "weights-f16 (weights only, one file), released-bf16, released-f16, "
                   "released-bin (weights only, a FORMAT/stepN/ folder of 2 shards with an index, as "
                   "released histories publish them), or all (= the first three); default "
                   "pt,safetensors")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g = p.add_argument_group("optimization")
    g.add_argument("--batch-size", type=int, help="batch size (mlp/cnn 64, chargpt 32)")
    g.add_argument("--lr", type=float, help="peak learning rate (mlp/cnn 1e-3, chargpt 3e-3)")
    g.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adam (default for mlp, cnn), adamw (default for chargpt), sgd "
                   "(Nesterov momentum 0.9), rmsprop (momentum 0.9), adagrad, adadelta, adamax, "
                   "nadam or radam")
    g.add_argument("--weight-decay", type=float, help="weight decay (mlp/cnn 0, chargpt 0.1); "
                   "L2 for adam, decoupled for adamw")
    g.add_argument("--beta1", type=float, default=0.9, help="Adam beta1 (default 0.9)")
    g.add_argument("--beta2", type=float, default=0.999, help="Adam beta2 (default 0.999)")
    g.add_argument("--eps", type=float, default=1e-8, help="Adam epsilon (default 1e-8)")
    g.add_argument("--no-decay-groups", action="store_true",
                   help="two param groups, HF style: no weight decay for biases/norm weights")
    g.add_argument("--grad-clip", type=float, help="clip global grad norm (0 = off; chargpt 1.0)")
    g.add_argument("--scheduler", choices=("none", "cosine", "step"),
                   help="LR scheduler stepped every optimizer step (mlp none, cnn step, "
                   "chargpt cosine)")
    g.add_argument("--warmup", type=int, help="linear warmup steps before cosine (chargpt 10)")
    g.add_argument("--min-lr-ratio", type=float, default=0.1,
                   help="cosine: final lr = lr * ratio (default 0.1)")
    g.add_argument("--step-size", type=int, help="step scheduler: period (default steps/2)")
    g.add_argument("--gamma", type=float, default=0.5, help="step scheduler: factor (0.5)")
    g = p.add_argument_group("model size")
    g.add_argument("--hidden1", type=int, default=256, help="mlp: first hidden width (256)")
    g.add_argument("--hidden2", type=int, default=128, help="mlp: second hidden width (128)")
    g.add_argument("--conv1", type=int, default=16, help="cnn: conv1 channels (16)")
    g.add_argument("--conv2", type=int, default=32, help="cnn: conv2 channels (32)")
    g.add_argument("--fc", type=int, default=64, help="cnn: hidden FC width (64)")
    g.add_argument("--no-batchnorm", action="store_true", help="cnn: no BatchNorm after conv1")
    g.add_argument("--n-layer", type=int, default=2, help="chargpt: transformer blocks (2)")
    g.add_argument("--d-model", type=int, default=128, help="chargpt: width (128)")
    g.add_argument("--n-head", type=int, default=4, help="chargpt: attention heads (4)")
    g.add_argument("--ctx", type=int, default=64, help="chargpt: context length (64)")
    g.add_argument("--dropout", type=float, default=0.0, help="chargpt: dropout (0)")
    g.add_argument("--tie-weights", action="store_true",
                   help="chargpt: head.weight shares tok_emb.weight")
    g = p.add_argument_group("data / evaluation")
    g.add_argument("--eval-examples", type=int,
                   help="mlp/cnn: first N test images used for eval (mlp 10000, cnn 2000)")
    g.add_argument("--eval-batches", type=int,
                   help="chargpt: fixed validation batches of --batch-size windows (8)")
    g.add_argument("--corpus-chars", type=int, default=2000000,
                   help="chargpt: cap on corpus characters (default 2000000; 0 = all)")
    g.add_argument("--logging-steps", type=int, default=10,
                   help="trainer format: loss averaging interval in log_history (10)")
    g = p.add_argument_group("resume mode")
    g.add_argument("--resume-from", metavar="CKPT.pt",
                   help="continue the run stored in this .pt checkpoint (model and optimizer "
                   "options come from its config; --steps counts extra steps)")
    g.add_argument("--log", metavar="JSON", help="resume mode: per-step log output (required)")
    g.add_argument("--compare", metavar="HISTORY.json",
                   help="resume mode: compare losses with an earlier run's history.json")
    return p


def make_config(a):
    d = DEFAULTS[a.model]

    def pick(v, key):
        return d[key] if v is None else v

    steps = pick(a.steps, "steps")
    every = pick(a.every, "every")
    c = {"model": a.model, "seed": a.seed, "steps": steps, "every": every,
         "eval_every": every if a.eval_every is None else a.eval_every,
         "batch_size": pick(a.batch_size, "batch_size"), "lr": pick(a.lr, "lr"),
         "optimizer": pick(a.optimizer, "optimizer"),
         "weight_decay": pick(a.weight_decay, "weight_decay"),
         "betas": [a.beta1, a.beta2], "eps": a.eps, "no_decay_groups": a.no_decay_groups,
         "grad_clip": pick(a.grad_clip, "grad_clip"),
         "scheduler": pick(a.scheduler, "scheduler"), "warmup": pick(a.warmup, "warmup"),
         "min_lr_ratio": a.min_lr_ratio,
         "step_size": a.step_size if a.step_size else max(1, steps // 2),
         "gamma": a.gamma, "logging_steps": a.logging_steps}
    if a.model == "mlp":
        c.update(hidden1=a.hidden1, hidden2=a.hidden2,
                 eval_examples=pick(a.eval_examples, "eval_examples"))
    elif a.model == "cnn":
        c.update(conv1_channels=a.conv1, conv2_channels=a.conv2, fc_hidden=a.fc,
                 batchnorm=not a.no_batchnorm, eval_examples=pick(a.eval_examples, "eval_examples"))
    else:
        c.update(n_layer=a.n_layer, d_model=a.d_model, n_head=a.n_head, ctx=a.ctx,
                 dropout=a.dropout, tie_weights=a.tie_weights, corpus_chars=a.corpus_chars,
                 eval_batches=pick(a.eval_batches, "eval_batches"))
    if c["steps"] < 1 or c["every"] < 1:
        raise SystemExit("--steps and --every must be >= 1")
    if c["scheduler"] == "cosine" and c["warmup"] >= c["steps"]:
        c["warmup"] = 0
    return c


def main(argv=None):
    p = build_parser()
    a = p.parse_args(argv)
    if a.resume_from:
        if a.steps is None or not a.log:
            p.error("--resume-from needs --steps N and --log out.json")
        resume(a.resume_from, a.steps, a.log, out_dir=a.out, formats=a.format if a.out else (),
               every=a.every, eval_every=a.eval_every, compare_history=a.compare,
               verbose=not a.quiet)
        return 0
    if not a.out:
        p.error("--out DIR is required")
    run_from_scratch(make_config(a), a.out, a.format, verbose=not a.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
