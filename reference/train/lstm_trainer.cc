// The only translation unit that includes <torch/torch.h> (a heavy header: ~30 s to compile).
#include "train/lstm_trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

namespace ckz {
namespace {

constexpr int64_t kSlots = kLstmSlots;

// The training sample: windows of `window` consecutive elements, each with its features and,
// per mixed slot, cml's stretch(P0) (natural log-odds of a 0), the bit and a mask.
struct Sample {
  torch::Tensor rows;   // [N, T, 5] int64 rows of the embedding table (4 features, the role)
  torch::Tensor role;   // [N] int64
  torch::Tensor st;     // [N, T, 16] float
  torch::Tensor zero;   // [N, T, 16] float: 1 where the bit is 0 (what the model predicts)
  torch::Tensor mask;   // [N, T, 16] float
  double cml_bits = 0;  // cml alone, in bits, over the masked decisions
};

Sample Draw(const std::vector<LstmTrainingChunk>& chunks, const LstmTrainOptions& o) {
  const int64_t T = o.window;
  const int64_t V = LstmModel::Values(o.clip);
  uint64_t total = 0;
  for (const auto& c : chunks) total += c.count;
  int64_t n = int64_t(std::min<uint64_t>(o.sample_elements, total) / uint64_t(T));
  n = std::max<int64_t>(n, 1);
  // Windows chosen uniformly over all elements, then visited chunk by chunk in order so that
  // each chunk's cml states are traced once from its start.
  std::mt19937_64 rng(o.seed);
  std::vector<std::pair<size_t, uint64_t>> starts;  // (chunk, first element)
  std::vector<uint64_t> cum;
  for (const auto& c : chunks) cum.push_back((cum.empty() ? 0 : cum.back()) + c.count);
  for (int64_t w = 0; w < n; ++w) {
    const uint64_t e = total ? rng() % total : 0;
    const size_t k = size_t(std::upper_bound(cum.begin(), cum.end(), e) - cum.begin());
    const uint64_t count = chunks[k].count;
    starts.push_back({k, count > uint64_t(T) ? rng() % (count - uint64_t(T) + 1) : 0});
  }
  std::sort(starts.begin(), starts.end());
  Sample s;
  s.rows = torch::full({n, T, 5}, 0, torch::kInt64);
  s.role = torch::zeros({n}, torch::kInt64);
  s.st = torch::zeros({n, T, kSlots});
  s.zero = torch::zeros({n, T, kSlots});
  s.mask = torch::zeros({n, T, kSlots});
  auto rows = s.rows.accessor<int64_t, 3>();
  auto role = s.role.accessor<int64_t, 1>();
  auto st = s.st.accessor<float, 3>();
  auto zero = s.zero.accessor<float, 3>();
  auto mask = s.mask.accessor<float, 3>();
  std::vector<LevelModel::Decision> decisions;
  std::vector<IndexDecision> index_decisions;
  struct Mixed {
    int slot;
    uint16_t p0;
    uint8_t bit;
  };
  std::vector<Mixed> mixed;  // element i's decisions that the mixer codes, with cml's or cm's P0
  size_t w = 0;
  while (w < starts.size()) {
    const size_t k = starts[w].first;
    const LstmTrainingChunk& c = chunks[k];
    const bool indices = c.indices != nullptr;
    const uint32_t r = std::min(indices ? c.index_in.role : c.in.role, kLstmRoles - 1);
    size_t last = w;
    uint64_t end = 0;
    while (last < starts.size() && starts[last].first == k)
      end = std::max(end, starts[last++].second + uint64_t(T));
    end = std::min<uint64_t>(end, c.count);
    LevelModel model;
    const uint64_t row = indices ? c.index_in.row : c.in.row;
    uint64_t col = row ? (indices ? c.index_in.first : c.in.first) % row : 0;
    size_t next_decision = 0;
    if (indices) {
      index_decisions.clear();
      TraceIndexStream(c.index_in, c.indices, size_t(end), &index_decisions);
    }
    for (uint64_t i = 0; i < end; ++i) {
      mixed.clear();
      uint8_t f[kLstmFeatures];
      if (indices) {  // spec 7.11.7: every cm decision is mixed, its slot given
        for (; next_decision < index_decisions.size() &&
               index_decisions[next_decision].element == i;
             ++next_decision) {
          const IndexDecision& d = index_decisions[next_decision];
          mixed.push_back({int(d.slot), d.p0, d.bit});
        }
        IndexLstmFeaturesOf(c.index_in, c.indices, size_t(i), col, o.clip, f);
      } else {
        decisions.clear();
        model.Trace(LevelModel::ContextOf(c.in, c.levels, i, col), c.levels[i], &decisions);
        for (const auto& d : decisions) {
          const int slot = LstmSlotOf(d.kind, d.slot);
          if (slot >= 0) mixed.push_back({slot, d.p0, d.bit});
        }
        LstmFeaturesOf(c.in, c.levels, i, col, o.clip, f);
      }
      for (size_t v = w; v < last; ++v) {
        const uint64_t s0 = starts[v].second;
        if (i < s0 || i >= s0 + uint64_t(T)) continue;
        const int64_t t = int64_t(i - s0);
        role[int64_t(v)] = r;
        for (uint32_t j = 0; j < kLstmFeatures; ++j) rows[int64_t(v)][t][j] = j * V + f[j];
        rows[int64_t(v)][t][4] = kLstmFeatures * V + r;
        for (const Mixed& d : mixed) {
          const int slot = d.slot;
          const double p = (d.p0 + 0.5) / 65536.5;
          st[int64_t(v)][t][slot] = float(std::log(p / (1 - p)));
          zero[int64_t(v)][t][slot] = d.bit ? 0.f : 1.f;
          mask[int64_t(v)][t][slot] = 1.f;
          s.cml_bits -= std::log2(d.bit ? 1 - p : p);
        }
      }
      if (row != 0 && ++col == row) col = 0;
    }
    w = last;
  }
  return s;
}

struct Net {
  torch::Tensor embed, bias, recur, out, out_bias, mix_a, mix_b, mix_c;
  std::vector<torch::Tensor> params() const {
    return {embed, bias, recur, out, out_bias, mix_a, mix_b, mix_c};
  }
};

Net MakeNet(int64_t H, int64_t V) {
  const int64_t G = 4 * H;
  const int64_t kEmbedRows = kLstmFeatures * V + kLstmRoles;
  Net n;
  const double r = 1.0 / std::sqrt(double(H));
  n.embed = (torch::randn({kEmbedRows, G}) * 0.1).requires_grad_();
  n.bias = torch::zeros({G});
  n.bias.slice(0, H, 2 * H).fill_(1.0);  // forget gate open at first
  n.bias.requires_grad_();
  n.recur = ((torch::rand({G, H}) * 2 - 1) * r).requires_grad_();
  n.out = ((torch::rand({kSlots, H}) * 2 - 1) * r).requires_grad_();
  n.out_bias = torch::zeros({kSlots}).requires_grad_();
  n.mix_a = torch::ones({int64_t(kLstmRoles), kSlots}).requires_grad_();
  n.mix_b = torch::full({int64_t(kLstmRoles), kSlots}, 0.5).requires_grad_();
  n.mix_c = torch::zeros({int64_t(kLstmRoles), kSlots}).requires_grad_();
  return n;
}

// The exponent e with max|w| * 2^e <= 32767 (at most `cap`): Quantize's scales.
uint32_t Shift(const torch::Tensor& w, uint32_t cap);

// Quantisation-aware training (issue 13): a value rounded as the integer model rounds it on
// the forward pass, its gradient passed straight through (the rounding's own is zero).
torch::Tensor Straight(const torch::Tensor& exact, const torch::Tensor& rounded) {
  return exact + (rounded - exact).detach();
}
// A parameter as Quantize stores it: round(w * scale) within +-limit, over scale.
torch::Tensor FakeQuant(const torch::Tensor& w, double scale, double limit = 32767) {
  return Straight(w, torch::clamp(torch::round(w.detach() * scale), -limit, limit) / scale);
}
// 7.11.3's ACT of a Q10 pre-activation z (in float units): the table entry of z's bin of 8,
// the function at the bin's centre rounded to 2^-10.
torch::Tensor Act(const torch::Tensor& z, bool sigmoid) {
  const torch::Tensor zi = torch::clamp(torch::floor(z.detach() * 1024), -8192, 8191);
  const torch::Tensor centre = (torch::floor((zi + 8192) / 8) * 8 - 8188) / 1024;
  const torch::Tensor table =
      torch::round((sigmoid ? torch::sigmoid(centre) : torch::tanh(centre)) * 1024) / 1024;
  return Straight(sigmoid ? torch::sigmoid(z) : torch::tanh(z), table);
}
// Floor to a multiple of 1/units (an arithmetic shift of a fixed-point value).
torch::Tensor FloorTo(const torch::Tensor& x, double units) {
  return Straight(x, torch::floor(x.detach() * units) / units);
}

// Mean loss in bits per masked decision of a batch; with `quantized`, the forward pass rounds
// the parameters, the activations, the cell and the output as the integer inference does.
torch::Tensor Loss(const Net& n, const Sample& s, const torch::Tensor& idx, int64_t H,
                   bool quantized = false) {
  torch::Tensor embed = n.embed, bias = n.bias, recur = n.recur, out = n.out,
                out_bias = n.out_bias;
  if (quantized) {
    embed = FakeQuant(n.embed, 1024);
    bias = FakeQuant(n.bias, 1024);
    recur = FakeQuant(n.recur, std::ldexp(1.0, int(Shift(n.recur.detach(), 15))));
    const uint32_t out_shift =
        std::max<uint32_t>(2, std::min<uint32_t>(15, Shift(n.out.detach(), 13) + 2));
    out = FakeQuant(n.out, std::ldexp(1.0, int(out_shift) - 2));
    out_bias = FakeQuant(n.out_bias, 256, 2047);
  }
  const torch::Tensor rows = s.rows.index_select(0, idx);
  const int64_t B = rows.size(0), T = rows.size(1);
  const torch::Tensor x = embed.index_select(0, rows.reshape({-1})).reshape({B, T, 5, 4 * H}).sum(2) + bias;
  torch::Tensor h = torch::zeros({B, H}), c = torch::zeros({B, H});
  std::vector<torch::Tensor> hs;
  const torch::Tensor wt = recur.t();
  for (int64_t t = 0; t < T; ++t) {
    torch::Tensor z = x.select(1, t) + h.matmul(wt);
    const auto g = (quantized ? FloorTo(z, 1024) : z).chunk(4, 1);  // acc >> shift, Q10 sums
    if (quantized) {
      const torch::Tensor ig = Act(g[0], true), fg = Act(g[1], true), gg = Act(g[2], false),
                          og = Act(g[3], true);
      c = torch::clamp(FloorTo(fg * c + ig * gg, 1024), -32767.0 / 1024, 32767.0 / 1024);
      h = FloorTo(og * Act(c, false), 1024);
    } else {
      c = torch::sigmoid(g[1]) * c + torch::sigmoid(g[0]) * torch::tanh(g[2]);
      h = torch::sigmoid(g[3]) * torch::tanh(c);
    }
    hs.push_back(h);
  }
  torch::Tensor y = torch::stack(hs, 1).matmul(out.t());  // [B, T, 16]
  y = quantized ? torch::clamp(FloorTo(y, 256) + out_bias, -2047.0 / 256, 2047.0 / 256)
                : y + out_bias;
  const torch::Tensor role = s.role.index_select(0, idx);
  const torch::Tensor a = n.mix_a.index_select(0, role).unsqueeze(1);
  const torch::Tensor b = n.mix_b.index_select(0, role).unsqueeze(1);
  const torch::Tensor cc = n.mix_c.index_select(0, role).unsqueeze(1);
  const torch::Tensor logit = a * s.st.index_select(0, idx) + b * y + cc;
  const torch::Tensor mask = s.mask.index_select(0, idx);
  const torch::Tensor bce = torch::binary_cross_entropy_with_logits(
      logit, s.zero.index_select(0, idx), {}, {}, torch::Reduction::None);
  return (bce * mask).sum() / mask.sum().clamp_min(1.0) / std::log(2.0);
}

int16_t Q(double v, double scale, int32_t limit = 32767) {
  return int16_t(std::clamp<long>(std::lround(v * scale), -limit, limit));
}

// The exponent e with max|w| * 2^e <= 32767 (at most `cap`).
uint32_t Shift(const torch::Tensor& w, uint32_t cap) {
  const double m = w.abs().max().item<double>();
  if (m <= 0) return cap;
  return uint32_t(std::clamp(std::floor(std::log2(32767.0 / m)), 0.0, double(cap)));
}

LstmModel Quantize(const Net& n, int64_t H, uint32_t clip) {
  const int64_t V = LstmModel::Values(clip);
  torch::NoGradGuard no_grad;
  const int64_t G = 4 * H;
  LstmModel m;
  m.hidden = uint32_t(H);
  m.clip = clip;
  const auto embed = n.embed.contiguous();
  const auto e = embed.accessor<float, 2>();
  const auto b = n.bias.accessor<float, 1>();
  for (int64_t j = 0; j < G; ++j) m.gate_bias.push_back(Q(b[j], 1024));
  for (int64_t r = 0; r < int64_t(kLstmFeatures) * V; ++r)
    for (int64_t j = 0; j < G; ++j) m.embed.push_back(Q(e[r][j], 1024));
  for (int64_t r = 0; r < int64_t(kLstmRoles); ++r)
    for (int64_t j = 0; j < G; ++j) m.role.push_back(Q(e[kLstmFeatures * V + r][j], 1024));
  m.recur_shift = Shift(n.recur, 15);
  const auto w = n.recur.accessor<float, 2>();
  for (int64_t j = 0; j < G; ++j)
    for (int64_t k = 0; k < H; ++k) m.recur.push_back(Q(w[j][k], std::ldexp(1.0, int(m.recur_shift))));
  m.out_shift = std::max<uint32_t>(2, std::min<uint32_t>(15, Shift(n.out, 13) + 2));
  const auto v = n.out.accessor<float, 2>();
  for (int64_t s = 0; s < kSlots; ++s)
    for (int64_t k = 0; k < H; ++k) m.out.push_back(Q(v[s][k], std::ldexp(1.0, int(m.out_shift) - 2)));
  const auto ob = n.out_bias.accessor<float, 1>();
  for (int64_t s = 0; s < kSlots; ++s) m.out_bias.push_back(Q(ob[s], 256, 2047));
  const auto ma = n.mix_a.accessor<float, 2>(), mb = n.mix_b.accessor<float, 2>(),
             mc = n.mix_c.accessor<float, 2>();
  auto mix = [](double x) { return int32_t(std::clamp<long>(std::lround(x * 65536), -(1 << 20), 1 << 20)); };
  for (int64_t r = 0; r < int64_t(kLstmRoles); ++r)
    for (int64_t s = 0; s < kSlots; ++s) {
      m.mix_init.push_back(mix(ma[r][s]));
      m.mix_init.push_back(mix(mb[r][s]));
      m.mix_init.push_back(mix(mc[r][s]));  // c is a logit; its input is 1.0 (256 in Q8)
    }
  return m;
}

}  // namespace

LstmModel TrainLevelLstm(const std::vector<LstmTrainingChunk>& chunks,
                         const LstmTrainOptions& o, LstmTrainReport* report) {
  const auto t0 = std::chrono::steady_clock::now();
  // One intra-op thread: the batches are small, and libtorch's pool of more threads spins
  // (sched_yield) long after training, stealing the cores the coding then needs.
  at::set_num_threads(1);
  torch::manual_seed(o.seed);
  const int64_t H = o.hidden;
  const Sample s = Draw(chunks, o);
  Net net = MakeNet(H, LstmModel::Values(o.clip));
  torch::optim::Adam opt(net.params(), torch::optim::AdamOptions(o.learning_rate));
  const int64_t N = s.rows.size(0);
  LstmTrainReport rep;
  const double decisions = s.mask.sum().item<double>();
  rep.cml_loss = decisions > 0 ? s.cml_bits / decisions : 0;
  torch::Tensor order = torch::randperm(N, torch::kInt64);
  int64_t pos = 0;
  for (uint32_t step = 0; step < o.max_steps; ++step) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (elapsed > o.max_seconds) break;
    if (pos + int64_t(o.batch) > N) {
      order = torch::randperm(N, torch::kInt64);
      pos = 0;
    }
    const torch::Tensor idx = order.slice(0, pos, std::min<int64_t>(N, pos + o.batch));
    pos += o.batch;
    opt.zero_grad();
    // Quantisation-aware for the last quarter of the steps: the float model first finds its
    // way, then learns around the rounding the integer model will do.
    const bool qat = o.quantization_aware && step >= o.max_steps - o.max_steps / 4;
    const torch::Tensor loss = Loss(net, s, idx, H, qat);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net.params(), 1.0);
    opt.step();
    const double l = loss.item<double>();
    if (step == 0) rep.first_loss = l;
    rep.last_loss = l;
    rep.steps = step + 1;
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (report) *report = rep;
  return Quantize(net, H, o.clip);
}

}  // namespace ckz
