"""Build a training run from a plain config dict, train it, evaluate it,
save checkpoints in several on-disk formats, and resume from a .pt checkpoint."""
import json
import os
import platform
import random
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from . import FORMAT_TAG
from .data import FashionMNIST, TextCorpus
from .models import MLP, CNN, CharGPT
from .safetensors_io import write_safetensors

MODELS = ("mlp", "cnn", "chargpt")
# "weights-bf16" / "weights-f16": the model's weights only, cast to 16 bits, one safetensors
# file per step. "released-bf16" / "released-f16" / "released-bin": the same weights as a
# folder FORMAT/stepN/ of shards with an index, the way released training histories (Pythia, OLMo)
# publish a checkpoint: model-0000k-of-0000n.safetensors + model.safetensors.index.json, or
# (released-bin, BF16) pytorch_model-0000k-of-0000n.bin + pytorch_model.bin.index.json.
FORMATS = ("pt", "safetensors", "trainer", "weights-bf16", "weights-f16", "released-bf16",
           "released-f16", "released-bin")
RELEASED_SHARDS = 2

# Per-model defaults; None in the CLI means "take it from here".
DEFAULTS = {
    "mlp": dict(steps=200, every=20, batch_size=64, lr=1e-3, optimizer="adam",
                weight_decay=0.0, scheduler="none", warmup=0, grad_clip=0.0,
                eval_examples=10000),
    "cnn": dict(steps=200, every=20, batch_size=64, lr=1e-3, optimizer="adam",
                weight_decay=0.0, scheduler="step", warmup=0, grad_clip=0.0,
                eval_examples=2000),
    "chargpt": dict(steps=200, every=20, batch_size=32, lr=3e-3, optimizer="adamw",
                    weight_decay=0.1, scheduler="cosine", warmup=10, grad_clip=1.0,
                    eval_batches=8),
}

_DATA_CACHE = {}

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam",
              "radam")


def make_optimizer(c, groups):
    """The torch.optim optimizer named by c["optimizer"], with the run's lr and decay; Adam's
    betas/eps go to the Adam family, SGD gets Nesterov momentum 0.9, RMSprop momentum 0.9."""
    name, lr, wd = c["optimizer"], c["lr"], c["weight_decay"]
    o = torch.optim
    if name in ("adam", "adamw", "adamax", "nadam", "radam"):
        cls = {"adam": o.Adam, "adamw": o.AdamW, "adamax": o.Adamax, "nadam": o.NAdam,
               "radam": o.RAdam}[name]
        return cls(groups, lr=lr, betas=tuple(c["betas"]), eps=c["eps"], weight_decay=wd)
    if name == "sgd":
        return o.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if name == "rmsprop":
        return o.RMSprop(groups, lr=lr, momentum=0.9, eps=c["eps"], weight_decay=wd)
    if name == "adagrad":
        return o.Adagrad(groups, lr=lr, eps=1e-10, weight_decay=wd)
    if name == "adadelta":
        return o.Adadelta(groups, lr=lr, eps=1e-6, weight_decay=wd)
    raise ValueError("unknown optimizer %r" % name)


def step_seed(seed, step):
    """Torch RNG seed used for optimizer step `step` (dropout); a pure function
    of (seed, step) so resumed runs reproduce the original exactly."""
    return (seed * 1000003 + step * 7919 + 12345) % (2 ** 63)


def get_fmnist():
    if "fmnist" not in _DATA_CACHE:
        _DATA_CACHE["fmnist"] = FashionMNIST()
    return _DATA_CACHE["fmnist"]


def get_corpus(max_chars):
    key = ("text", max_chars)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = TextCorpus(max_chars)
    return _DATA_CACHE[key]


def count_params(model):
    return sum(p.numel() for p in model.parameters())


class Run:
    """A model + optimizer + scheduler + data, built from `config` (a plain
    dict of hyperparameters, stored verbatim in every .pt checkpoint)."""

    def __init__(self, config):
        self.config = config
        c = config
        seed = c["seed"]
        random.seed(seed)
        np.random.seed(seed % (2 ** 32))
        torch.manual_seed(seed)
        if c["model"] in ("mlp", "cnn"):
            self.data = get_fmnist()
            if c["model"] == "mlp":
                self.model = MLP(c["hidden1"], c["hidden2"])
            else:
                self.model = CNN(c["conv1_channels"], c["conv2_channels"], c["fc_hidden"],
                                 c["batchnorm"])
        elif c["model"] == "chargpt":
            self.data = get_corpus(c["corpus_chars"])
            if "corpus_sha256" in c and c["corpus_sha256"] != self.data.sha256:
                print("warning: text corpus differs from the one this config was made "
                      "with (sha256 %s, config has %s)" % (self.data.sha256, c["corpus_sha256"]),
                      file=sys.stderr)
            c.setdefault("corpus_sha256", self.data.sha256)
            c.setdefault("vocab_size", self.data.vocab_size)
            if c["vocab_size"] != self.data.vocab_size:
                raise RuntimeError("vocabulary size %d != %d stored in the config"
                                   % (self.data.vocab_size, c["vocab_size"]))
            self.model = CharGPT(c["vocab_size"], c["ctx"], c["d_model"], c["n_layer"],
                                 c["n_head"], c["dropout"], c["tie_weights"])
        else:
            raise ValueError("unknown model %r" % c["model"])
        self.model.train()
        self.optimizer, self.param_names = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.step = 0
        self.train_log = []   # per step: step, loss, lr, grad_norm
        self.eval_log = []    # per eval: step, eval_loss, [eval_accuracy]

    # ----------------------------------------------------------------- build
    def _make_optimizer(self):
        c = self.config
        named = list(self.model.named_parameters())
        if c["no_decay_groups"]:
            # Hugging Face style: no weight decay on biases and norm weights.
            decay = [(n, p) for n, p in named if p.dim() >= 2]
            no_decay = [(n, p) for n, p in named if p.dim() < 2]
            groups_named = [decay, no_decay]
            groups = [{"params": [p for _, p in decay], "weight_decay": c["weight_decay"]},
                      {"params": [p for _, p in no_decay], "weight_decay": 0.0}]
        else:
            groups_named = [named]
            groups = [{"params": [p for _, p in named]}]
        opt = make_optimizer(c, groups)
        # Optimizer state ids are 0.. in param_groups order.
        names = [n for g in groups_named for n, _ in g]
        return opt, names

    def _make_scheduler(self):
        c = self.config
        s = c["scheduler"]
        opt = self.optimizer
        if s == "none":
            return None
        if s == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=c["step_size"], gamma=c["gamma"])
        if s == "cosine":
            w = c["warmup"]
            eta_min = c["lr"] * c["min_lr_ratio"]
            if w > 0:
                warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / (w + 1),
                                                         end_factor=1.0, total_iters=w)
                cos = torch.optim.lr_scheduler.CosineAnnealingLR(
                    opt, T_max=max(1, c["steps"] - w), eta_min=eta_min)
                return torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[w])
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, c["steps"]),
                                                              eta_min=eta_min)
        raise ValueError("unknown scheduler %r" % s)

    # ------------------------------------------------------------------ data
    def batch(self, step):
        c = self.config
        if c["model"] == "chargpt":
            return self.data.train_batch(c["seed"], step, c["batch_size"], c["ctx"])
        return self.data.train_batch(c["seed"], step, c["batch_size"])

    def epoch(self, step=None):
        c = self.config
        step = self.step if step is None else step
        if c["model"] == "chargpt":
            return self.data.epoch_of(step, c["batch_size"], c["ctx"])
        return self.data.epoch_of(step, c["batch_size"])

    def loss_fn(self, logits, y):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    # ------------------------------------------------------------- train/eval
    def train_step(self):
        step = self.step + 1
        torch.manual_seed(step_seed(self.config["seed"], step))
        x, y = self.batch(step)
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        loss = self.loss_fn(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.config["grad_clip"] > 0:
            gn = torch.nn.utils.clip_grad_norm_(params, self.config["grad_clip"])
        else:
            with torch.no_grad():
                gn = torch.norm(torch.stack([p.grad.norm() for p in params]))
        self.optimizer.step()
        if self.scheduler is not None:
            with warnings.catch_warnings():
                # torch 1.13 SequentialLR calls step(0) internally and warns about it.
                warnings.filterwarnings("ignore", message="The epoch parameter")
                self.scheduler.step()
        self.step = step
        rec = {"step": step, "loss": float(loss.item()), "lr": float(lr),
               "grad_norm": float(gn.item())}
        self.train_log.append(rec)
        return rec

    @torch.no_grad()
    def evaluate(self):
        c = self.config
        self.model.eval()
        tot_loss, tot_correct, tot_n = 0.0, 0, 0
        if c["model"] == "chargpt":
            it = self.data.eval_batches(c["eval_batches"], c["batch_size"], c["ctx"])
        else:
            it = self.data.eval_batches(c["eval_examples"])
        for x, y in it:
            logits = self.model(x)
            logits = logits.reshape(-1, logits.shape[-1])
            y = y.reshape(-1)
            tot_loss += float(F.cross_entropy(logits, y, reduction="sum").item())
            tot_correct += int((logits.argmax(-1) == y).sum().item())
            tot_n += y.numel()
        self.model.train()
        rec = {"step": self.step, "eval_loss": tot_loss / tot_n,
               "eval_accuracy": tot_correct / tot_n}
        self.eval_log.append(rec)
        return rec

    # ------------------------------------------------------------------ save
    def state_by_name(self):
        """[(param name, state dict)] in param_groups order."""
        sd = self.optimizer.state_dict()
        ids = [i for g in sd["param_groups"] for i in g["params"]]
        assert len(ids) == len(self.param_names)
        return [(n, sd["state"].get(i)) for n, i in zip(self.param_names, ids)]

    def pt_payload(self):
        d = {"model": self.model.state_dict(),
             "optimizer": self.optimizer.state_dict()}
        if self.scheduler is not None:
            d["scheduler"] = self.scheduler.state_dict()
        d["step"] = self.step
        d["epoch"] = self.epoch()
        d["config"] = dict(self.config)
        return d

    def save_pt(self, path):
        torch.save(self.pt_payload(), path)

    def safetensors_metadata(self):
        c = self.config
        md = {"format": FORMAT_TAG, "step": str(self.step), "model": c["model"],
              "optimizer": c["optimizer"], "scheduler": c["scheduler"],
              "lr": repr(float(self.optimizer.param_groups[0]["lr"])),
              "epoch": repr(float(self.epoch())), "seed": str(c["seed"]),
              "config": json.dumps(c, sort_keys=True)}
        steps = set()
        for _, st in self.state_by_name():
            if st is not None and "step" in st:
                steps.add(float(st["step"]))
        if len(steps) == 1:
            md["adam_step"] = repr(steps.pop())
        return md

    def save_safetensors(self, path):
        tensors = list(self.model.state_dict().items())
        params = dict(self.model.named_parameters())
        for name, st in self.state_by_name():
            if st is None:
                continue
            # Every per-parameter state tensor (exp_avg, momentum_buffer, square_avg, sum ...),
            # named P.key as the safetensors role rule expects; scalars (step) go to metadata.
            for k, t in st.items():
                if torch.is_tensor(t) and t.shape == params[name].shape and t.dim() > 0:
                    tensors.append(("%s.%s" % (name, k), t))
        write_safetensors(path, tensors, self.safetensors_metadata())

    def save_trainer(self, folder):
        """Hugging Face Trainer-style checkpoint folder."""
        os.makedirs(folder, exist_ok=True)
        # Like transformers' save_pretrained: a tensor that aliases an earlier
        # one (tied head.weight) is stored once, under its first name.
        seen, tensors = set(), []
        for name, t in self.model.state_dict().items():
            key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if t.numel() > 0 and key in seen:
                continue
            seen.add(key)
            tensors.append((name, t))
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt"})
        torch.save(self.optimizer.state_dict(), os.path.join(folder, "optimizer.pt"))
        if self.scheduler is not None:
            torch.save(self.scheduler.state_dict(), os.path.join(folder, "scheduler.pt"))
        torch.save({"python": random.getstate(), "numpy": np.random.get_state(),
                    "cpu": torch.get_rng_state()}, os.path.join(folder, "rng_state.pth"))
        with open(os.path.join(folder, "trainer_state.json"), "w") as f:
            f.write(json.dumps(self.trainer_state(), indent=2, sort_keys=True) + "\n")
        with open(os.path.join(folder, "training_args.json"), "w") as f:
            f.write(json.dumps(self.training_args(), indent=2, sort_keys=True) + "\n")

    def training_args(self):
        c = self.config
        return {"output_dir": c.get("out", ""), "max_steps": c["steps"],
                "per_device_train_batch_size": c["batch_size"],
                "learning_rate": c["lr"], "weight_decay": c["weight_decay"],
                "adam_beta1": c["betas"][0], "adam_beta2": c["betas"][1],
                "adam_epsilon": c["eps"], "max_grad_norm": c["grad_clip"],
                "lr_scheduler_type": {"none": "constant", "cosine": "cosine",
                                      "step": "step"}[c["scheduler"]],
                "warmup_steps": c["warmup"], "optim": "adamw_torch" if c["optimizer"] == "adamw"
                else "adam_torch", "seed": c["seed"], "save_steps": c["every"],
                "eval_steps": c["eval_every"], "logging_steps": c["logging_steps"],
                "save_strategy": "steps", "eval_strategy": "steps",
                "ckz_config": c}

    def trainer_state(self):
        c = self.config
        hist = []
        L = c["logging_steps"]
        evals = {e["step"]: e for e in self.eval_log}
        buf = []
        for r in self.train_log:
            buf.append(r)
            if r["step"] % L == 0:
                hist.append({"epoch": self.epoch(r["step"]),
                             "grad_norm": r["grad_norm"], "learning_rate": r["lr"],
                             "loss": round(sum(b["loss"] for b in buf) / len(buf), 4),
                             "step": r["step"]})
                buf = []
            e = evals.get(r["step"])
            if e is not None:
                hist.append({"epoch": self.epoch(e["step"]), "eval_loss": e["eval_loss"],
                             "eval_accuracy": e["eval_accuracy"], "step": e["step"]})
        return {"best_metric": None, "best_model_checkpoint": None,
                "epoch": self.epoch(), "eval_steps": c["eval_every"],
                "global_step": self.step, "is_hyper_param_search": False,
                "is_local_process_zero": True, "is_world_process_zero": True,
                "log_history": hist, "logging_steps": L, "max_steps": c["steps"],
                "num_input_tokens_seen": 0,
                "num_train_epochs": int(np.ceil(self.epoch(c["steps"]))),
                "save_steps": c["every"],
                "stateful_callbacks": {"TrainerControl": {
                    "args": {"should_epoch_stop": False, "should_evaluate": False,
                             "should_log": False, "should_save": True,
                             "should_training_stop": self.step >= c["steps"]},
                    "attributes": {}}},
                "total_flos": 0.0, "train_batch_size": c["batch_size"],
                "trial_name": None, "trial_params": None}

    def save(self, out_dir, formats):
        """Save the current step in each requested format; returns the file
        names (relative to out_dir)."""
        files = []
        tag = "step_%06d" % self.step
        if "pt" in formats:
            self.save_pt(os.path.join(out_dir, tag + ".pt"))
            files.append(tag + ".pt")
        if "safetensors" in formats:
            self.save_safetensors(os.path.join(out_dir, tag + ".safetensors"))
            files.append(tag + ".safetensors")
        if "trainer" in formats:
            folder = "checkpoint-%d" % self.step
            self.save_trainer(os.path.join(out_dir, folder))
            files.append(folder + "/")
        for fmt, dtype in (("weights-bf16", torch.bfloat16), ("weights-f16", torch.float16)):
            if fmt in formats:
                name = "%s.%s.safetensors" % (tag, fmt)
                self.save_weights(os.path.join(out_dir, name), dtype)
                files.append(name)
        for fmt, dtype in (("released-bf16", torch.bfloat16), ("released-f16", torch.float16),
                           ("released-bin", torch.bfloat16)):
            if fmt in formats:
                folder = os.path.join(fmt, "step%d" % self.step)  # one history per format
                self.save_released(os.path.join(out_dir, folder), dtype, fmt == "released-bin")
                files.append(folder + "/")
        return files

    def save_released(self, folder, dtype, torch_bin, shards=RELEASED_SHARDS):
        """The model's weights cast to `dtype`, split into `shards` files of about equal size
        (tensors kept whole, in state_dict order) with an index naming each tensor's shard."""
        os.makedirs(folder, exist_ok=True)
        tensors = [(n, t.to(dtype) if t.is_floating_point() else t)
                   for n, t in self.model.state_dict().items()]
        total = sum(t.numel() * t.element_size() for _, t in tensors)
        groups, size = [[] for _ in range(shards)], 0
        for n, t in tensors:
            groups[min(shards - 1, size * shards // max(total, 1))].append((n, t))
            size += t.numel() * t.element_size()
        groups = [g for g in groups if g]
        stem, ext = ("pytorch_model", "bin") if torch_bin else ("model", "safetensors")
        weight_map = {}
        for k, g in enumerate(groups):
            name = "%s-%05d-of-%05d.%s" % (stem, k + 1, len(groups), ext)
            if torch_bin:
                torch.save({n: t.clone() for n, t in g}, os.path.join(folder, name))
            else:
                write_safetensors(os.path.join(folder, name), g, {"format": "pt"})
            weight_map.update({n: name for n, _ in g})
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        with open(os.path.join(folder, "%s.%s.index.json" % (stem, ext)), "w") as f:
            json.dump(index, f, indent=2, sort_keys=True)
            f.write("\n")

    def save_weights(self, path, dtype):
        """The model's state_dict with floating tensors cast to `dtype`, no optimizer state."""
        tensors = [(n, t.to(dtype) if t.is_floating_point() else t)
                   for n, t in self.model.state_dict().items()]
        write_safetensors(path, tensors, {"format": "pt", "step": str(self.step)})


def file_size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, f)) for f in sorted(os.listdir(path)))
    return os.path.getsize(path)


def env_info():
    return {"torch_version": torch.__version__, "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "torch_num_threads": torch.get_num_threads(), "machine": platform.machine()}


def _fmt_eval(e):
    if e is None:
        return ""
    return "  eval_loss %.4f  eval_acc %.4f" % (e["eval_loss"], e["eval_accuracy"])


def train_loop(run, end_step, out_dir=None, formats=(), every=None, eval_every=None,
               verbose=True):
    """Train `run` until run.step == end_step. Checkpoints at multiples of
    `every` and at end_step (when out_dir is given), evaluations at multiples
    of `eval_every` (absolute step numbers). Returns the checkpoint list."""
    checkpoints = []
    t0 = time.perf_counter()
    while run.step < end_step:
        rec = run.train_step()
        s = rec["step"]
        ev = None
        if eval_every and (s % eval_every == 0 or s == end_step):
            ev = run.evaluate()
        saving = out_dir is not None and formats and every and (s % every == 0 or s == end_step)
        if saving:
            files = run.save(out_dir, formats)
            checkpoints.append({"step": s, "files": files, "train_loss": rec["loss"],
                                "lr": rec["lr"],
                                "bytes": {f: file_size(os.path.join(out_dir, f)) for f in files}})
        if verbose and (saving or (not out_dir and every and s % every == 0) or s == end_step):
            print("step %6d/%d  loss %.4f  lr %.3e%s  %6.1fs" %
                  (s, end_step, rec["loss"], rec["lr"], _fmt_eval(ev), time.perf_counter() - t0),
                  flush=True)
    return checkpoints


def state_dict_summary(run):
    return [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            for k, v in run.model.state_dict().items()]


def run_from_scratch(config, out_dir, formats, verbose=True):
    """Train a fresh run according to `config`, writing checkpoints and
    history.json into out_dir. Returns the history dict."""
    os.makedirs(out_dir, exist_ok=True)
    t_start = time.perf_counter()
    run = Run(config)
    t_built = time.perf_counter()
    n_params = count_params(run.model)
    if verbose:
        print("model %s: %d parameters (%d state_dict tensors), optimizer %s, scheduler %s, "
              "%d steps, checkpoint every %d -> %s" %
              (config["model"], n_params, len(run.model.state_dict()), config["optimizer"],
               config["scheduler"], config["steps"], config["every"], out_dir), flush=True)
    ckpts = train_loop(run, config["steps"], out_dir, formats, config["every"],
                       config["eval_every"], verbose)
    t_end = time.perf_counter()
    hist = {"format": FORMAT_TAG, "model": config["model"], "param_count": n_params,
            "options": dict(config, formats=list(formats), out=out_dir),
            "state_dict": state_dict_summary(run),
            "optimizer_param_names": run.param_names,
            "checkpoints": ckpts, "eval_log": run.eval_log, "train_log": run.train_log,
            "wall_time_s": round(t_end - t_start, 3),
            "setup_time_s": round(t_built - t_start, 3),
            "train_time_s": round(t_end - t_built, 3)}
    hist.update(env_info())
    with open(os.path.join(out_dir, "history.json"), "w") as f:
        json.dump(hist, f, indent=1)
        f.write("\n")
    if verbose:
        last_e = run.eval_log[-1] if run.eval_log else None
        print("done: %d checkpoints, final train loss %.4f%s, wall %.1fs (setup %.1fs)" %
              (len(ckpts), run.train_log[-1]["loss"] if run.train_log else float("nan"),
               _fmt_eval(last_e), t_end - t_start, t_built - t_start), flush=True)
    return hist


def resume(ckpt_path, n_steps, log_path, out_dir=None, formats=(), every=None,
           eval_every=None, compare_history=None, verbose=True):
    """Rebuild the run stored in a .pt checkpoint, continue for n_steps and write
    a JSON log of per-step train losses and evaluations."""
    t_start = time.perf_counter()
    ckpt = torch.load(ckpt_path, map_location="cpu")
    config = dict(ckpt["config"])
    run = Run(config)
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if run.scheduler is not None:
        run.scheduler.load_state_dict(ckpt["scheduler"])
    run.step = int(ckpt["step"])
    start = run.step
    end = start + n_steps
    if eval_every is None:
        eval_every = config["eval_every"]
    if every is None:
        every = config["every"]
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    if verbose:
        print("resumed %s at step %d (model %s, %d parameters); training to step %d" %
              (ckpt_path, start, config["model"], count_params(run.model), end), flush=True)
    ckpts = train_loop(run, end, out_dir, formats, every, eval_every, verbose)
    t_end = time.perf_counter()
    log = {"format": FORMAT_TAG, "resumed_from": os.path.abspath(ckpt_path),
           "start_step": start, "end_step": end, "config": config,
           "train_log": run.train_log, "eval_log": run.eval_log, "checkpoints": ckpts,
           "wall_time_s": round(t_end - t_start, 3)}
    log.update(env_info())
    if compare_history:
        with open(compare_history) as f:
            ref = json.load(f)
        log["comparison"] = compare_logs(ref, log)
        if verbose:
            cmp = log["comparison"]
            print("compared with %s: %d common steps, %d bit-identical train losses, "
                  "max |dloss| %.3g; %d common evals, max |deval_loss| %.3g" %
                  (compare_history, cmp["train_steps_compared"], cmp["train_losses_identical"],
                   cmp["train_loss_max_abs_diff"], cmp["evals_compared"],
                   cmp["eval_loss_max_abs_diff"]), flush=True)
    with open(log_path, "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")
    return log


def compare_logs(ref, new):
    """Compare per-step train losses and evals of two logs on common steps."""
    rt = {r["step"]: r["loss"] for r in ref.get("train_log", [])}
    nt = {r["step"]: r["loss"] for r in new.get("train_log", [])}
    common = sorted(set(rt) & set(nt))
    diffs = [abs(rt[s] - nt[s]) for s in common]
    re_ = {r["step"]: r["eval_loss"] for r in ref.get("eval_log", [])}
    ne = {r["step"]: r["eval_loss"] for r in new.get("eval_log", [])}
    ce = sorted(set(re_) & set(ne))
    ediffs = [abs(re_[s] - ne[s]) for s in ce]
    return {"train_steps_compared": len(common),
            "train_losses_identical": sum(1 for s in common if rt[s] == nt[s]),
            "train_loss_max_abs_diff": max(diffs) if diffs else 0.0,
            "evals_compared": len(ce),
            "eval_loss_max_abs_diff": max(ediffs) if ediffs else 0.0}
