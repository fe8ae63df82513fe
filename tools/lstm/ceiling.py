#!/usr/bin/python3
"""Issue 13's ceiling study: how many bits a learned model, mixed with the cml level coder's own
probabilities, would save on a chain's level streams (docs/lstm.md). Float, offline, trained on
the streams it is measured on: an upper bound for what a coded model can reach, not a codec.

  build/tools/bench/level_measure CHAIN_DIR --dump /tmp/x     # /tmp/x.el, /tmp/x.dec
  /usr/bin/python3 tools/lstm/ceiling.py /tmp/x [lstm|mlp] [H] [EPOCHS] [all|cm|dens] [TRAIN_FRACTION]

Per element, the model sees (causally: only what a decoder has before the element) the cml
contexts' raw values (left, up, parent and aux levels, clipped to -7..7) and, with "all", the
element's group (weight, m, v) in the parent file and the group members coded before it in
this file; "dens" adds the count and size of the last 32 levels. An LSTM runs along the chunk
(state reset per chunk; trained on windows of 256), an MLP sees one element. Every binary
decision of cml's binarization (zero flag, sign, 14 unary bins) is coded at
sigmoid(a * stretch(p_cm) + b * model_logit + c), a, b, c per role and decision: the model can
only add information. Prints the change of the coded size against cml alone, per stream.
"""
import sys, time, numpy as np, torch, torch.nn as nn
torch.set_num_threads(1)  # more threads are much slower on these machines (shared/ENV-NOTES)
prefix = sys.argv[1]
arch = sys.argv[2] if len(sys.argv) > 2 else "lstm"
H = int(sys.argv[3]) if len(sys.argv) > 3 else 32
epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
feat_set = sys.argv[5] if len(sys.argv) > 5 else "all"
train_frac = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
el = np.fromfile(prefix + ".el", dtype=np.int32).reshape(-1, 17)
dec = np.fromfile(prefix + ".dec", dtype=np.int32).reshape(-1, 5)
N = len(el)
# slots: 0 zero, 1 sign, 2..15 unary
kind, slot = dec[:, 1], dec[:, 2]
col = np.where(kind == 0, 0, np.where(kind == 1, 1, np.where(kind == 2, 2 + slot, -1)))
keep = col >= 0
p0 = np.full((N, 16), 32768, np.int32); bit = np.zeros((N, 16), np.int8); mask = np.zeros((N, 16), bool)
p0[dec[keep, 0], col[keep]] = dec[keep, 3]
bit[dec[keep, 0], col[keep]] = dec[keep, 4]
mask[dec[keep, 0], col[keep]] = True
# cost of the rest (escape + direct) stays cm's
other = dec[~keep]
pb = np.where(other[:, 4] == 1, 1 - other[:, 3] / 65536.0, other[:, 3] / 65536.0)
other_bits = -np.log2(pb).sum()
p1 = 1 - p0 / 65536.0
cm_bits_el = -(np.log2(np.where(bit == 1, p1, 1 - p1)) * mask).sum(1)
role = el[:, 1]
print(f"{prefix}: {N} elements, cm bits {cm_bits_el.sum()/8/1e3:.1f} kB + other {other_bits/8/1e3:.1f} kB")
for r, nm in enumerate("W m v".split()):
    print(f"  {nm}: {(cm_bits_el[role==r]).sum()/8/1e3:.1f} kB")

def clip(v, c=7):
    return np.clip(v, -c, c) + c  # 0..14
# causal features: role, left, up, parent, aux, group current (masked by order), group parent
left, up, P, A = el[:, 5], el[:, 6], el[:, 7], el[:, 8]
curW, curm, curv = el[:, 9], el[:, 10], el[:, 11]
parW, parm, parv = el[:, 12], el[:, 13], el[:, 14]
curW_ok = role >= 1
curm_ok = role >= 2
cats = [role, clip(left), clip(up), clip(P), clip(A) * 1,
        np.where(curW_ok, clip(curW), 15), np.where(curm_ok, clip(curm), 15),
        clip(parW), clip(parm), clip(parv), el[:, 15], el[:, 16]]
if feat_set == "dens":  # + recent activity: nonzeros and magnitude among the previous 32 levels
    q = el[:, 4].astype(np.int64)
    key0 = el[:, 0].astype(np.int64) * 1000000 + el[:, 2] * 1000 + el[:, 3]
    nz = (q != 0).astype(np.int64); mg = np.minimum(np.abs(q), 4)
    cnz = np.cumsum(nz); cmg = np.cumsum(mg)
    first = np.r_[0, np.flatnonzero(key0[1:] != key0[:-1]) + 1]
    start_of = np.repeat(first, np.diff(np.r_[first, len(q)]))
    lo = np.maximum(np.arange(len(q)) - 32, start_of)
    def window_sum(c):
        # sum over [lo, i): c[i-1] - c[lo-1]
        hi_v = np.where(np.arange(len(q)) > 0, c[np.arange(len(q)) - 1], 0)
        lo_v = np.where(lo > 0, c[lo - 1], 0)
        return np.where(np.arange(len(q)) > lo, hi_v - lo_v, 0)
    dn = window_sum(cnz); dm = window_sum(cmg)
    cats += [np.minimum(dn, 16), np.minimum(dm // 2, 24)]
if feat_set == "cm":  # only what cml sees
    cats = [role, clip(left), clip(up), clip(P), clip(A), el[:, 15], el[:, 16]]
X = np.stack(cats, 1).astype(np.int64)
sizes = [int(X[:, j].max()) + 1 for j in range(X.shape[1])]
# sequences: chunks (state reset per chunk) cut into windows of T
T = 256
key = el[:, 0].astype(np.int64) * 1000000 + el[:, 2] * 1000 + el[:, 3]
starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
ends = np.r_[starts[1:], N]
win = []
for s, e in zip(starts, ends):
    for w in range(s, e, T):
        win.append((w, min(w + T, e)))
print(f"{len(starts)} chunks, {len(win)} windows")
idx = np.full((len(win), T), -1, np.int64)
for k, (s, e) in enumerate(win):
    idx[k, : e - s] = np.arange(s, e)

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.ModuleList([nn.Embedding(n, H) for n in sizes])
        if arch == "lstm":
            self.rnn = nn.LSTM(H, H, batch_first=True)
        else:
            self.mlp = nn.Sequential(nn.Linear(H, H), nn.Tanh())
        self.head = nn.Linear(H, 16)
        self.wa = nn.Parameter(torch.ones(3, 16))
        self.wb = nn.Parameter(torch.zeros(3, 16))
        self.bias = nn.Parameter(torch.zeros(3, 16))
    def forward(self, x, st, r):
        e = sum(m(x[..., j]) for j, m in enumerate(self.emb))
        h = self.rnn(e)[0] if arch == "lstm" else self.mlp(torch.tanh(e))
        nn_logit = self.head(h)
        return self.wa[r] * st + self.wb[r] * nn_logit + self.bias[r]

model = Model()
Xt = torch.from_numpy(X)
st_all = torch.from_numpy(np.log(p1 / (1 - p1)).astype(np.float32))
bit_t = torch.from_numpy(bit.astype(np.float32)); mask_t = torch.from_numpy(mask.astype(np.float32))
role_t = torch.from_numpy(role.astype(np.int64))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
B = 512
def batch(ids):
    ii = torch.from_numpy(idx[ids]); valid = (ii >= 0).float().unsqueeze(-1); ii = ii.clamp(min=0)
    return Xt[ii], st_all[ii], role_t[ii], bit_t[ii], mask_t[ii] * valid
t0 = time.time()
for ep in range(epochs):
    perm = np.random.permutation(len(win))[: max(1, int(len(win) * train_frac))]
    for b in range(0, len(perm), B):
        x, st, r, y, m = batch(perm[b:b + B])
        logit = model(x, st, r)
        loss = (nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none") * m).sum() / m.sum()
        opt.zero_grad(); loss.backward(); opt.step()
    # evaluate
    with torch.no_grad():
        tot = np.zeros(3)
        per_el = np.zeros(N)
        for b in range(0, len(win), 2048):
            ids = np.arange(b, min(b + 2048, len(win)))
            x, st, r, y, m = batch(ids)
            logit = model(x, st, r)
            bits = (nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none") * m).sum(-1) / np.log(2)
            ii = idx[ids]
            per_el[ii[ii >= 0]] = bits.numpy()[ii >= 0]
            for k in range(3):
                tot[k] += bits[r == k].sum().item()
    cm = [cm_bits_el[role == k].sum() for k in range(3)]
    nparam = sum(p.numel() for p in model.parameters())
    print(f"epoch {ep} {time.time()-t0:.0f}s: " + "  ".join(f"{n} {tot[k]/cm[k]*100-100:+.2f}%" for k, n in enumerate("W m v".split()))
          + f"  total {tot.sum()/sum(cm)*100-100:+.2f}%  (params {nparam}, ~{nparam/1e3:.1f} kB at 8 bit vs {sum(cm)/8e3:.0f} kB)", flush=True)

# Along the chain: does the gain grow with training (the prediction paper says it does)?
link = el[:, 0]
print("per link (model+cm against cm):", "  ".join(
    "%d: %+.2f%%" % (l, per_el[link == l].sum() / cm_bits_el[link == l].sum() * 100 - 100)
    for l in np.unique(link)))
