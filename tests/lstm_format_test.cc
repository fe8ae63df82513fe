// The LSTM model in the file (format 0.9, spec 7.11): the header's model table and its rules
// (LM1-LM3), a link taking its parent's model (lstm_model_from_parent, R5), the writer's
// per-chunk choice of codec 6, and decoding through a chain on disk.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "ckz/writer.h"
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

}  // namespace
}  // namespace ckz::testing
