// (0.11) Codec lstm-cm (spec 7.11.7): cm's index decisions mixed with the file's LSTM model.
// The coder round trip, the writer's per-chunk choice and feature bit 10, decoding through a
// chain whose later link takes its parent's model, and rules C1 and LM4.
#include <gtest/gtest.h>

#include <random>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "ckz/writer.h"
#include "common/index_model.h"
#include "common/lstm_model.h"
#include "file_surgery.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

std::shared_ptr<const LstmModel> Model(uint32_t seed) {
  auto m = std::make_shared<LstmModel>();
  m->hidden = 8;
  m->clip = 3;
  m->recur_shift = 12;
  m->out_shift = 10;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-600, 600);
  auto fill = [&](std::vector<int16_t>& v, size_t n) {
    v.resize(n);
    for (int16_t& x : v) x = int16_t(small(rng));
  };
  fill(m->gate_bias, LstmModel::GateBiasSize(8));
  fill(m->embed, LstmModel::EmbedSize(8, 3));
  fill(m->role, LstmModel::RoleSize(8));
  fill(m->recur, LstmModel::RecurSize(8));
  fill(m->out, LstmModel::OutSize(8));
  fill(m->out_bias, kLstmSlots);
  m->mix_init.assign(LstmModel::kMixInitSize, 0);
  for (size_t i = 0; i < m->mix_init.size(); i += kLstmMixInputs) {
    m->mix_init[i] = 65536;
    m->mix_init[i + 1] = 16384;
  }
  EXPECT_TRUE(m->WellFormed());
  return m;
}

constexpr uint64_t kRows = 24, kCols = 40, kElements = kRows * kCols;
constexpr uint32_t kCentres = 11;  // not a power of two: B = 4, indices up to 11

std::vector<uint8_t> Indices(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> q(kElements);
  for (size_t i = 0; i < q.size(); ++i)
    q[i] = rng() % 3 == 0 ? uint8_t(1 + (i % kCols + rng() % 3) % kCentres) : 0;
  return q;
}

TEST(LstmIndices, TheMixedCoderRoundTripsAndCodesOtherBytesThanCm) {
  const auto model = Model(1);
  const std::vector<uint8_t> idx = Indices(1), parent = Indices(2), aux = Indices(3);
  for (int variant = 0; variant < 4; ++variant) {
    IndexModelInputs in;
    in.centres = kCentres;
    in.first = variant == 3 ? 7 : 0;  // a chunk that starts mid-row
    in.row = variant == 2 ? 0 : kCols;
    if (variant >= 1) in.parent = parent.data(), in.parent_centres = kCentres;
    if (variant >= 1) in.aux = aux.data(), in.aux_centres = kCentres;
    in.role = uint32_t(variant);
    std::vector<uint8_t> plain, mixed;
    EncodeIndexStream(in, idx.data(), idx.size(), &plain);
    in.lstm = model.get();
    EncodeIndexStream(in, idx.data(), idx.size(), &mixed);
    EXPECT_NE(plain, mixed) << variant;
    std::vector<uint8_t> out(idx.size());
    size_t bad = 0;
    ASSERT_EQ(DecodeIndexStream(in, mixed.data(), mixed.size(), out.data(), out.size(), &bad),
              IndexDecodeResult::kOk);
    EXPECT_EQ(out, idx) << variant;
    // Read without the model, the stream means other indices (or fails).
    in.lstm = nullptr;
    const auto r = DecodeIndexStream(in, mixed.data(), mixed.size(), out.data(), out.size(), &bad);
    EXPECT_TRUE(r != IndexDecodeResult::kOk || out != idx) << variant;
  }
}

TEST(LstmIndices, TheTraceHasOneDecisionPerSigAndTreeBitWithTheirSlots) {
  const std::vector<uint8_t> idx = {0, 3, 0, 11, 1};
  IndexModelInputs in;
  in.centres = kCentres;
  std::vector<IndexDecision> d;
  TraceIndexStream(in, idx.data(), idx.size(), &d);
  // Every element has its SIG (slot 0); non-zero ones 4 tree bits, slots 2..5, MSB first.
  ASSERT_EQ(d.size(), 5u + 3 * 4);
  EXPECT_EQ(d[0].slot, 0);
  EXPECT_EQ(d[1].element, 1u);
  EXPECT_EQ(d[1].bit, 1);
  for (int b = 0; b < 4; ++b) {
    EXPECT_EQ(d[2 + b].slot, 2 + b);
    EXPECT_EQ(d[2 + b].bit, ((3 - 1) >> (3 - b)) & 1);
  }
  uint8_t f[kLstmFeatures];
  in.row = 2;
  IndexLstmFeaturesOf(in, idx.data(), 3, 1, 3, f);  // left 0, up 3 (bucket 1 + 2*6/11 = 2)
  EXPECT_EQ(f[0], 0);
  EXPECT_EQ(f[1], 2);
  EXPECT_EQ(f[2], 7);  // no parent: 2 clip + 1
  EXPECT_EQ(f[3], 7);
  IndexLstmFeaturesOf(in, idx.data(), 4, 0, 3, f);  // a row's first column: no left
  EXPECT_EQ(f[0], 7);
  EXPECT_EQ(f[1], 0);  // up: index 0
  in.aux = idx.data() + 1, in.aux_centres = 11;  // aux 11: the last bucket, 2 clip
  IndexLstmFeaturesOf(in, idx.data(), 2, 0, 3, f);
  EXPECT_EQ(f[3], 6);
}

struct Chain {
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> decoded;
};

// A keyframe, a link that stores `model` and a link that takes it from its parent; every index
// chunk of the links coded with the model when `force`.
Chain WriteChain(const std::string& name, std::shared_ptr<const LstmModel> model, bool force) {
  Chain c;
  const std::string dir = FreshDir(name);
  EncodeOptions options;
  options.chunk_bytes = 1024;
  if (force) options.index_codec = StreamCodec::kLstmIndices;
  const std::vector<uint8_t> weights = RandomTensorBytes(DType::kF32, kElements, 7);
  std::vector<uint8_t> parent_indices;
  for (int k = 0; k < 3; ++k) {
    const std::string path = dir + "/c" + std::to_string(k) + ".ckz";
    auto sink = AtomicFileSink::Create(path, true);
    EXPECT_TRUE(sink.ok());
    Writer writer(std::move(sink).value(), k == 0 ? EncodeOptions{} : options);
    std::vector<uint8_t> decoded(kElements * 4);
    const TensorSpec spec{"w", DType::kF32, {kRows, kCols}, Role::kWeight};
    if (k == 0) {
      EXPECT_TRUE(writer.AddTensor(spec, ByteSpan(weights)).ok());
      decoded = weights;
    } else {
      auto parent = ChainReader::Open(c.paths.back());
      EXPECT_TRUE(parent.ok()) << parent.status().ToString();
      writer.SetLink(LinkTo(**parent));
      const auto& parents = (*parent)->archive().lstm_model;
      if (k == 1 || parents) {
        const Status set = k == 1 ? writer.SetLstmModel(model, false)
                                  : writer.SetLstmModel(parents, true);
        EXPECT_TRUE(set.ok()) << set.ToString();
      }
      QuantizationInfo q;
      q.kind = QuantKind::kResidual;
      q.bits = 4;
      for (uint32_t i = 0; i < kCentres; ++i) q.codebook.push_back(-0.01f + 0.002f * float(i));
      const std::vector<uint8_t> idx = Indices(uint32_t(10 + k));
      IndexContexts contexts;
      if (k == 2) contexts.parent = ByteSpan(parent_indices), contexts.parent_centres = kCentres;
      Status s = writer.AddQuantizedTensor(spec, q, ByteSpan(idx), ByteSpan(c.decoded.back()),
                                           MutableByteSpan(decoded), contexts);
      EXPECT_TRUE(s.ok()) << s.ToString();
      parent_indices = idx;
    }
    auto id = writer.Finish();
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    c.paths.push_back(path);
    c.decoded.push_back(decoded);
  }
  return c;
}

uint64_t Codec7Chunks(const Archive& a) {
  uint64_t n = 0;
  for (size_t c = 0; c < a.tensors[0].chunks.size(); ++c) {
    auto dir = ReadStreamDirectory(a, 0, c);
    EXPECT_TRUE(dir.ok()) << dir.status().ToString();
    n += dir.ok() && (*dir)[0].codec == StreamCodec::kLstmIndices;
  }
  return n;
}

TEST(LstmIndices, AChainOfLstmCmLinksDecodesAndSetsBit10) {
  const Chain c = WriteChain("lstm_indices_chain", Model(4), /*force=*/true);
  for (size_t k = 0; k < c.paths.size(); ++k) {
    auto reader = ChainReader::Open(c.paths[k]);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    for (int threads : {1, 2}) {
      std::vector<uint8_t> out(kElements * 4);
      Status s = (*reader)->ReadTensor(0, 0, MutableByteSpan(out), threads);
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(out, c.decoded[k]) << "file " << k;
    }
  }
  for (size_t k : {1, 2}) {
    auto f = OpenCkzFile(c.paths[k]);
    ASSERT_TRUE(f.ok());
    const Archive& a = (*f)->archive;
    EXPECT_TRUE(a.preamble.required_features & kFeatureLstmIndices);
    EXPECT_TRUE(a.preamble.required_features & kFeatureLstm);
    EXPECT_EQ(Codec7Chunks(a), a.tensors[0].chunks.size());
  }
  // The second link names its parent's model: alone, its chunks need the parent.
  auto by_ref = OpenCkzFile(c.paths[2]);
  ASSERT_TRUE(by_ref.ok());
  std::vector<uint8_t> out(kElements * 4);
  EXPECT_EQ(DecodeTensorRange((*by_ref)->archive, 0, 0, MutableByteSpan(out), nullptr).code(),
            ErrorCode::kReferenceRequired);
}

TEST(LstmIndices, UnforcedTheWriterKeepsCmWhereTheModelDoesNotPay) {
  // A model whose logit is saturated wrong and fully trusted never codes smaller.
  auto bad = std::make_shared<LstmModel>(*Model(5));
  for (int16_t& b : bad->out_bias) b = 2047;
  for (int16_t& o : bad->out) o = 0;
  for (size_t i = 0; i < bad->mix_init.size(); i += kLstmMixInputs) {
    bad->mix_init[i] = 0;
    bad->mix_init[i + 1] = kLstmMixLimit;
  }
  const Chain c = WriteChain("lstm_indices_unused", bad, /*force=*/false);
  auto f = OpenCkzFile(c.paths[1]);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE((*f)->archive.preamble.required_features & kFeatureLstmIndices);
  EXPECT_FALSE((*f)->archive.lstm_model);
  EXPECT_EQ(Codec7Chunks((*f)->archive), 0u);
}

TEST(LstmIndices, RulesC1AndLM4) {
  const Chain c = WriteChain("lstm_indices_rules", Model(6), /*force=*/true);
  auto m = MappedFile::Open(c.paths[1]);
  ASSERT_TRUE(m.ok());
  const std::vector<uint8_t> good(m->bytes().begin(), m->bytes().end());
  auto a = ParseArchive(ByteSpan(good));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  {  // C1: codec 7 in a file without bit 10.
    Archive broken = *a;
    broken.preamble.required_features &= ~kFeatureLstmIndices;
    const std::vector<uint8_t> bytes = Rebuild(broken, ByteSpan(good));
    auto parsed = ParseArchive(ByteSpan(bytes));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(ReadStreamDirectory(*parsed, 0, 0).status().code(), ErrorCode::kChunkMalformed);
  }
  {  // LM4: bit 10 without bit 8 (and without the model, so that LM3 holds).
    Archive broken = *a;
    broken.lstm_model.reset();
    broken.lstm_model_own = false;
    broken.preamble.required_features &= ~kFeatureLstm;
    const std::vector<uint8_t> bytes = Rebuild(broken, ByteSpan(good));
    EXPECT_EQ(ParseArchive(ByteSpan(bytes)).status().code(), ErrorCode::kFieldOutOfRange);
  }
}

}  // namespace
}  // namespace ckz::testing
