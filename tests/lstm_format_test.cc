// The LSTM model in the file (format 0.9, spec 7.11): the header's model table and its rules
// (LM1-LM3), a link taking its parent's model (lstm_model_from_parent, R5), the writer's
// per-chunk choice of codec 6, and decoding through a chain on disk. (0.11, spec 7.11.7) Codec
// lstm-cm on codebook indices: the coder round trip, the writer's choice and feature bit 10,
// a chain whose later link takes its parent's model, rules C1 and LM4.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
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

// A well-formed model with small random weights (its predictions need not be good: the
// writer is told to use it everywhere, or chooses per chunk).
std::shared_ptr<const LstmModel> RandomModel(uint32_t hidden, uint32_t clip, uint32_t seed) {
  auto m = std::make_shared<LstmModel>();
  m->hidden = hidden;
  m->clip = clip;
  m->recur_shift = 12;
  m->out_shift = 10;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-600, 600);
  auto fill = [&](std::vector<int16_t>& v, size_t n) {
    v.resize(n);
    for (int16_t& x : v) x = int16_t(small(rng));
  };
  fill(m->gate_bias, LstmModel::GateBiasSize(hidden));
  fill(m->embed, LstmModel::EmbedSize(hidden, clip));
  fill(m->role, LstmModel::RoleSize(hidden));
  fill(m->recur, LstmModel::RecurSize(hidden));
  fill(m->out, LstmModel::OutSize(hidden));
  fill(m->out_bias, kLstmSlots);
  m->mix_init.assign(LstmModel::kMixInitSize, 0);
  for (size_t i = 0; i < m->mix_init.size(); i += kLstmMixInputs) {
    m->mix_init[i] = 65536;       // cml's stretch(p) at weight 1
    m->mix_init[i + 1] = 16384;   // the model's logit at 1/4
  }
  EXPECT_TRUE(m->WellFormed());
  return m;
}

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  auto m = MappedFile::Open(path);
  EXPECT_TRUE(m.ok());
  return std::vector<uint8_t>(m->bytes().begin(), m->bytes().end());
}

struct Files {
  std::string dir;
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> decoded;  // the level tensor as the writer reconstructed it
};

constexpr uint64_t kRows = 24, kCols = 40, kElements = kRows * kCols;

// Levels with structure (runs of zeros, a sign that follows the column).
std::vector<int32_t> Levels(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> q(kElements);
  for (size_t i = 0; i < q.size(); ++i) {
    const int32_t mag = rng() % 5 == 0 ? int32_t(rng() % 9) : 0;
    q[i] = (i % kCols) % 2 ? -mag : mag;
  }
  return q;
}

// A keyframe, then links: `own[k]` the model link k stores itself (null: none), `from_parent[k]`
// whether it takes its parent's. Every level chunk codes with the model when it has one.
Files WriteChain(const std::string& name, const std::vector<std::shared_ptr<const LstmModel>>& own,
                 const std::vector<bool>& from_parent, bool force = true) {
  Files f;
  f.dir = FreshDir(name);
  EncodeOptions options;
  options.chunk_bytes = 1024;  // several chunks, each with a fresh LSTM state
  if (force) options.force_codec = StreamCodec::kLstmLevels;
  const std::vector<uint8_t> weights = RandomTensorBytes(DType::kF32, kElements, 7);
  for (size_t k = 0; k <= own.size(); ++k) {
    const std::string path = f.dir + "/c" + std::to_string(k) + ".ckz";
    auto sink = AtomicFileSink::Create(path, true);
    EXPECT_TRUE(sink.ok());
    Writer writer(std::move(sink).value(), k == 0 ? EncodeOptions{} : options);
    std::vector<uint8_t> decoded(kElements * 4);
    std::vector<int32_t> levels = Levels(uint32_t(k));
    std::vector<int32_t> parent_levels;
    if (k == 0) {
      EXPECT_TRUE(writer.AddTensor({"w", DType::kF32, {kRows, kCols}, Role::kWeight}, ByteSpan(weights)).ok());
      decoded = weights;
    } else {
      auto parent = ChainReader::Open(f.paths.back());
      EXPECT_TRUE(parent.ok()) << parent.status().ToString();
      writer.SetLink(LinkTo(**parent));
      if (own[k - 1]) {
        EXPECT_TRUE(writer.SetLstmModel(own[k - 1], false).ok());
      }
      if (from_parent[k - 1]) {
        EXPECT_TRUE(writer.SetLstmModel((*parent)->archive().lstm_model, true).ok());
      }
      QuantizationInfo q;
      q.kind = QuantKind::kLevelResidual;
      q.step = 0.001f;
      LevelContexts contexts;
      if (k >= 2) {
        parent_levels = Levels(uint32_t(k - 1));
        contexts.parent = parent_levels.data();
      }
      EXPECT_TRUE(writer.AddLevelTensor({"w", DType::kF32, {kRows, kCols}, Role::kWeight}, q,
                                        levels.data(), ByteSpan(f.decoded.back()), {},
                                        DType::kF32, MutableByteSpan(decoded), contexts)
                      .ok());
    }
    auto id = writer.Finish();
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    f.paths.push_back(path);
    f.decoded.push_back(decoded);
  }
  return f;
}

void ExpectDecodes(const Files& f) {
  for (size_t k = 0; k < f.paths.size(); ++k) {
    auto reader = ChainReader::Open(f.paths[k]);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    for (int threads : {1, 2}) {
      std::vector<uint8_t> out(kElements * 4);
      Status s = (*reader)->ReadTensor(0, 0, MutableByteSpan(out), threads);
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(out, f.decoded[k]) << "file " << k;
    }
  }
}

uint64_t LstmChunks(const Archive& a) {
  uint64_t n = 0;
  for (size_t c = 0; c < a.tensors[0].chunks.size(); ++c) {
    auto dir = ReadStreamDirectory(a, 0, c);
    EXPECT_TRUE(dir.ok());
    n += (*dir)[0].codec == StreamCodec::kLstmLevels;
  }
  return n;
}

TEST(LstmFormat, AModelInTheHeaderAndOneTakenFromTheParentDecodeThroughTheChain) {
  const auto model = RandomModel(16, 3, 1);
  const Files f = WriteChain("lstm_chain", {model, nullptr, nullptr}, {false, true, true});
  ExpectDecodes(f);
  auto own = OpenCkzFile(f.paths[1]);
  ASSERT_TRUE(own.ok());
  const Archive& a = (*own)->archive;
  EXPECT_TRUE(a.preamble.required_features & kFeatureLstm);
  EXPECT_EQ(a.preamble.minor, kFormatMinor);
  ASSERT_TRUE(a.lstm_model && a.lstm_model_own && !a.lstm_model_from_parent);
  EXPECT_EQ(a.lstm_model->Params(), model->Params());
  EXPECT_EQ(a.lstm_model->hidden, 16u);
  EXPECT_EQ(LstmChunks(a), a.tensors[0].chunks.size());
  // The later links hold no parameters: the file alone does not know its model ...
  auto by_ref = OpenCkzFile(f.paths[3]);
  ASSERT_TRUE(by_ref.ok());
  const Archive& b = (*by_ref)->archive;
  EXPECT_TRUE(b.lstm_model_from_parent && !b.lstm_model && !b.lstm_model_own);
  EXPECT_TRUE(b.preamble.required_features & kFeatureLstm);
  // ... so a codec-6 chunk needs it resolved (ReferenceRequired), which the chain does (R5).
  std::vector<uint8_t> out(kElements * 4);
  EXPECT_EQ(DecodeTensorRange(b, 0, 0, MutableByteSpan(out), nullptr).code(),
            ErrorCode::kReferenceRequired);
  auto chain = ChainReader::Open(f.paths[3]);
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ((*chain)->archive().lstm_model, (*chain)->parent()->parent()->archive().lstm_model);
  // The keyframe and a link without a model carry nothing of it.
  auto key = OpenCkzFile(f.paths[0]);
  ASSERT_TRUE(key.ok());
  EXPECT_FALSE((*key)->archive.preamble.required_features & kFeatureLstm);
}

TEST(LstmFormat, TheWriterKeepsPerChunkTheSmallerCodingAndDropsAnUnusedModel) {
  // Unforced: a chunk takes codec 6 only when smaller. A model whose logits are all saturated
  // wrong is never smaller, so the header holds no model and no feature bit.
  auto bad = std::make_shared<LstmModel>(*RandomModel(8, 2, 3));
  for (int16_t& b : bad->out_bias) b = 2047;
  for (int16_t& o : bad->out) o = 0;
  for (size_t i = 0; i < bad->mix_init.size(); i += kLstmMixInputs) {
    bad->mix_init[i] = 0;
    bad->mix_init[i + 1] = kLstmMixLimit;  // trust the wrong logit fully
  }
  const Files f = WriteChain("lstm_unused", {bad}, {false}, /*force=*/false);
  ExpectDecodes(f);
  auto link = OpenCkzFile(f.paths[1]);
  ASSERT_TRUE(link.ok());
  EXPECT_FALSE((*link)->archive.lstm_model);
  EXPECT_FALSE((*link)->archive.preamble.required_features & kFeatureLstm);
  EXPECT_EQ(LstmChunks((*link)->archive), 0u);
}

TEST(LstmFormat, TheWriterRefusesAModelOutsideTheRules) {
  auto sink = std::make_unique<MemorySink>();
  Writer writer(std::move(sink), EncodeOptions{});
  auto big = std::make_shared<LstmModel>(*RandomModel(8, 2, 4));
  big->hidden = 40;  // would overflow the coder's state, sized for 32
  EXPECT_EQ(writer.SetLstmModel(big, false).code(), ErrorCode::kInvalidArgument);
  auto odd = std::make_shared<LstmModel>(*RandomModel(8, 2, 4));
  odd->embed.pop_back();  // arrays that do not match hidden and clip
  EXPECT_EQ(writer.SetLstmModel(odd, false).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(writer.SetLstmModel(nullptr, false).code(), ErrorCode::kInvalidArgument);
  // A model from the parent in a keyframe (no link set).
  EXPECT_EQ(writer.SetLstmModel(RandomModel(8, 2, 4), true).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(writer.SetLstmModel(RandomModel(8, 2, 4), false).ok());
}

TEST(LstmFormat, ALinkNamingTheModelOfAParentWithoutOneFailsToOpen) {
  // Link 1 has no model; link 2 claims its parent's (written by a careless writer).
  const auto model = RandomModel(8, 1, 5);
  const Files f = WriteChain("lstm_r5", {nullptr, nullptr}, {false, false});
  auto bytes = ReadFileBytes(f.paths[2]);
  auto a = ParseArchive(ByteSpan(bytes));
  ASSERT_TRUE(a.ok());
  Archive edited = *a;
  edited.lstm_model_from_parent = true;
  edited.preamble.required_features |= kFeatureLstm;
  const std::vector<uint8_t> file = Rebuild(edited, ByteSpan(bytes));
  ASSERT_TRUE(ParseArchive(ByteSpan(file)).ok());
  ASSERT_TRUE(WriteFileAtomically(f.paths[2], ByteSpan(file), true).ok());
  auto chain = ChainReader::Open(f.paths[2]);
  ASSERT_FALSE(chain.ok());
  EXPECT_EQ(chain.status().code(), ErrorCode::kReferenceMismatch);
}

TEST(LstmRules, TheParserRejectsEveryMalformedModel) {
  const auto model = RandomModel(8, 2, 9);
  const Files f = WriteChain("lstm_rules", {model, nullptr}, {false, true});
  const std::vector<uint8_t> good = ReadFileBytes(f.paths[1]);
  auto a = ParseArchive(ByteSpan(good));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto parse_with = [&](const std::function<void(Archive*, LstmModel*)>& edit,
                        const HeaderDeviations* dev = nullptr) {
    Archive broken = *a;
    auto m = std::make_shared<LstmModel>(*a->lstm_model);
    edit(&broken, m.get());
    if (broken.lstm_model) broken.lstm_model = m;
    const std::vector<uint8_t> bytes = Rebuild(broken, ByteSpan(good), dev);
    return ParseArchive(ByteSpan(bytes)).status().code();
  };
  EXPECT_EQ(parse_with([](Archive*, LstmModel*) {}), ErrorCode::kOk);
  // LM1: sizes, shifts, the blob's length, mix_init's range.
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->hidden = 12; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->hidden = 40; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->clip = 0; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->clip = 8; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->recur_shift = 16; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->out_shift = 1; }), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->out_shift = 16; }), ErrorCode::kFieldOutOfRange);
  // clip 3 with the blob of clip 2: the length says so.
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->clip = 3; }), ErrorCode::kFieldOutOfRange);
  HeaderDeviations longer;
  longer.lstm_params_delta = 2;
  EXPECT_EQ(parse_with([](Archive*, LstmModel*) {}, &longer), ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->mix_init[5] = kLstmMixLimit + 1; }),
            ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive*, LstmModel* m) { m->mix_init[7] = -kLstmMixLimit; }),
            ErrorCode::kOk);
  // LM2: not both; the reference only in a link.
  EXPECT_EQ(parse_with([](Archive* x, LstmModel*) { x->lstm_model_from_parent = true; }),
            ErrorCode::kFieldOutOfRange);
  // LM3: required feature bit 8 iff a model or a reference.
  EXPECT_EQ(parse_with([](Archive* x, LstmModel*) { x->preamble.required_features &= ~kFeatureLstm; }),
            ErrorCode::kFieldOutOfRange);
  EXPECT_EQ(parse_with([](Archive* x, LstmModel*) {
              x->lstm_model_own = false;
              x->lstm_model.reset();
            }),
            ErrorCode::kFieldOutOfRange);
  // A keyframe naming its parent's model.
  {
    const std::vector<uint8_t> key = ReadFileBytes(f.paths[0]);
    auto k = ParseArchive(ByteSpan(key));
    ASSERT_TRUE(k.ok());
    Archive broken = *k;
    broken.lstm_model_from_parent = true;
    broken.preamble.required_features |= kFeatureLstm;
    EXPECT_EQ(ParseArchive(ByteSpan(Rebuild(broken, ByteSpan(key)))).status().code(),
              ErrorCode::kBadLink);
  }
  // C1: codec 6 in a file without bit 8 (the model's bit cleared along with the model).
  {
    const std::vector<uint8_t> link2 = ReadFileBytes(f.paths[2]);
    auto l = ParseArchive(ByteSpan(link2));
    ASSERT_TRUE(l.ok());
    Archive broken = *l;
    broken.lstm_model_from_parent = false;
    broken.preamble.required_features &= ~kFeatureLstm;
    const std::vector<uint8_t> bytes = Rebuild(broken, ByteSpan(link2));
    auto parsed = ParseArchive(ByteSpan(bytes));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(ReadStreamDirectory(*parsed, 0, 0).status().code(), ErrorCode::kChunkMalformed);
  }
}

// ------------------------------------------------------------------------------------------
// (0.11) lstm-cm: codebook indices mixed with the model (spec 7.11.7).

constexpr uint32_t kCentres = 11;  // not a power of two: B = 4, indices up to 11

std::vector<uint8_t> IndexData(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> q(kElements);
  for (size_t i = 0; i < q.size(); ++i)
    q[i] = rng() % 3 == 0 ? uint8_t(1 + (i % kCols + rng() % 3) % kCentres) : 0;
  return q;
}

TEST(LstmIndices, TheMixedCoderRoundTripsAndCodesOtherBytesThanCm) {
  const auto model = RandomModel(8, 3, 1);
  const std::vector<uint8_t> idx = IndexData(1), parent = IndexData(2), aux = IndexData(3);
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

struct IndexChain {
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> decoded;
};

// A keyframe, a link that stores `model` and a link that takes it from its parent; every index
// chunk of the links coded with the model when `force`.
IndexChain WriteIndexChain(const std::string& name, std::shared_ptr<const LstmModel> model,
                           bool force) {
  IndexChain c;
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
      const std::vector<uint8_t> idx = IndexData(uint32_t(10 + k));
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
  const IndexChain c = WriteIndexChain("lstm_indices_chain", RandomModel(8, 3, 4), /*force=*/true);
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
  auto bad = std::make_shared<LstmModel>(*RandomModel(8, 3, 5));
  for (int16_t& b : bad->out_bias) b = 2047;
  for (int16_t& o : bad->out) o = 0;
  for (size_t i = 0; i < bad->mix_init.size(); i += kLstmMixInputs) {
    bad->mix_init[i] = 0;
    bad->mix_init[i + 1] = kLstmMixLimit;
  }
  const IndexChain c = WriteIndexChain("lstm_indices_unused", bad, /*force=*/false);
  auto f = OpenCkzFile(c.paths[1]);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE((*f)->archive.preamble.required_features & kFeatureLstmIndices);
  EXPECT_FALSE((*f)->archive.lstm_model);
  EXPECT_EQ(Codec7Chunks((*f)->archive), 0u);
}

TEST(LstmIndices, RulesC1AndLM4) {
  const IndexChain c = WriteIndexChain("lstm_indices_rules", RandomModel(8, 3, 6), /*force=*/true);
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
