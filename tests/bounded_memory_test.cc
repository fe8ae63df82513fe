// Bounded memory (issue 15): what goes to temporary files instead of memory (a history's
// decoded checkpoint beyond its budget, the plans later tensors of a group still need, small
// writer batches) and the caches of a chain's decode never change a written or decoded byte.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "ckz/checkpoint.h"
#include "ckz/io.h"
#include "io/scratch_file.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

TEST(ScratchFile, WritesReadBackAndDiscardedRangesReadAsZeros) {
  const std::string dir = FreshDir("scratch");
  auto file = ScratchFile::Create(dir);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ScratchFile& f = **file;
  const uint64_t a = f.Reserve(100), b = f.Reserve(1000);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 128u);  // 64-byte aligned
  EXPECT_EQ(f.size(), 128u + 1024u);
  const std::vector<uint8_t> x = RandomTensorBytes(DType::kU8, 100, 1);
  const std::vector<uint8_t> y = RandomTensorBytes(DType::kU8, 1000, 2);
  ASSERT_TRUE(f.Write(b, ByteSpan(y)).ok());
  ASSERT_TRUE(f.Write(a, ByteSpan(x)).ok());
  std::vector<uint8_t> got(1000);
  ASSERT_TRUE(f.Read(b, MutableByteSpan(got)).ok());
  EXPECT_EQ(got, y);
  got.resize(40);
  ASSERT_TRUE(f.Read(a + 30, MutableByteSpan(got)).ok());
  EXPECT_EQ(got, std::vector<uint8_t>(x.begin() + 30, x.begin() + 70));
  // Reserved but never written (past the end of what was written): zeros.
  const uint64_t c = f.Reserve(50);
  got.assign(50, 0xff);
  ASSERT_TRUE(f.Read(c, MutableByteSpan(got)).ok());
  EXPECT_EQ(got, std::vector<uint8_t>(50, 0));
  // A discarded range reads as zeros (where the file system punches holes), the rest stays.
  f.Discard(b, 1024);
  got.resize(100);
  ASSERT_TRUE(f.Read(a, MutableByteSpan(got)).ok());
  EXPECT_EQ(got, x);
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // unlinked: nothing left behind
  std::filesystem::remove_all(dir);
}

TEST(ScratchFile, ThreadsWriteTheirOwnRanges) {
  auto file = ScratchFile::Create();
  ASSERT_TRUE(file.ok());
  ScratchFile& f = **file;
  constexpr int kThreads = 4, kPieces = 50;
  std::vector<std::vector<uint64_t>> at(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int p = 0; p < kPieces; ++p) {
        const std::vector<uint8_t> bytes(size_t(100 + p), uint8_t(t * kPieces + p));
        at[size_t(t)].push_back(f.Reserve(bytes.size()));
        EXPECT_TRUE(f.Write(at[size_t(t)].back(), ByteSpan(bytes)).ok());
      }
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t)
    for (int p = 0; p < kPieces; ++p) {
      std::vector<uint8_t> got(size_t(100 + p));
      ASSERT_TRUE(f.Read(at[size_t(t)][size_t(p)], MutableByteSpan(got)).ok());
      EXPECT_EQ(got, std::vector<uint8_t>(got.size(), uint8_t(t * kPieces + p)));
    }
}

TEST(ScratchFile, AMissingFolderIsAnError) {
  auto file = ScratchFile::Create("/nonexistent/ckz/folder");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), ErrorCode::kIoError);
  EXPECT_NE(file.status().message().find("/nonexistent/ckz/folder"), std::string::npos);
}

TEST(MappedFile, ReleasedPagesReadTheSame) {
  const std::string dir = FreshDir("mapped"), path = dir + "/x.bin";
  const std::vector<uint8_t> bytes = RandomTensorBytes(DType::kU8, 3 << 20, 3);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
  auto m = MappedFile::Open(path);
  ASSERT_TRUE(m.ok());
  const ByteSpan view = m->bytes();
  EXPECT_EQ(std::vector<uint8_t>(view.begin(), view.end()), bytes);
  m->ReleasePages();
  EXPECT_EQ(m->bytes().data, view.data);  // views given out stay valid
  EXPECT_EQ(std::vector<uint8_t>(view.begin(), view.end()), bytes);
  std::filesystem::remove_all(dir);
}

TEST(IndexCache, LookupPartCopiesARangeOfAnEntry) {
  // The cache keys entries by the archive's bytes; an archive of any file will do.
  const std::vector<uint8_t> file = WriteToMemory({MakeTensor("t", DType::kF32, {100}, 4)});
  auto archive = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(archive.ok()) << archive.status().ToString();
  IndexCache cache;
  const std::vector<uint8_t> entry = RandomTensorBytes(DType::kU8, 1000, 5);
  cache.Insert(*archive, 0, 0, ByteSpan(entry));
  std::vector<uint8_t> part(100);
  ASSERT_TRUE(cache.LookupPart(*archive, 0, 0, 900, MutableByteSpan(part)));
  EXPECT_EQ(part, std::vector<uint8_t>(entry.begin() + 900, entry.end()));
  EXPECT_FALSE(cache.LookupPart(*archive, 0, 0, 901, MutableByteSpan(part)));  // past its end
  EXPECT_FALSE(cache.LookupPart(*archive, 0, 1, 0, MutableByteSpan(part)));    // not cached
  EXPECT_EQ(cache.stats().hits, 1u);
}

// A chain keeps its last link's levels for the next link's contexts, held in 1, 2 or 4 bytes
// each as they fit (issue 14: a lossy async save's memory): every range reads back as i32,
// in memory and spilled.
TEST(DecodedCheckpoint, LevelsReadBackWhateverWidthTheyAreHeldIn) {
  const std::vector<std::vector<int32_t>> cases = {
      {0, 1, -1, 127, -128, 5, 0, 0, 3},                 // 1 byte
      {0, 128, -129, 32767, -32768, 7, 0, 1, -300},      // 2 bytes
      {0, 32768, -32769, (1 << 24) - 1, -(1 << 24) + 1, 1, 2, 3, 4}};  // 4 bytes
  for (const bool spill : {false, true}) {
    for (const auto& levels : cases) {
      DecodedCheckpoint d;
      if (spill) d.SpillOver(0);
      TensorSpec spec{"w", DType::kF32, {levels.size()}, Role::kWeight, -1};
      std::vector<uint8_t> values(levels.size() * 4, 0);
      ByteSpan raw(reinterpret_cast<const uint8_t*>(levels.data()), levels.size() * 4);
      ASSERT_TRUE(d.AddOwned(spec, values, raw, 1, /*levels=*/true).ok());
      TensorInfo info;
      info.name = "w";
      info.dtype = DType::kF32;
      info.shape = {levels.size()};
      info.quantization.emplace();
      info.quantization->kind = QuantKind::kLevelResidual;
      for (size_t first = 0; first < levels.size(); ++first) {
        for (size_t n = 0; first + n <= levels.size(); ++n) {
          std::vector<int32_t> out(n + 1, 0x55555555);  // one more: nothing past n is written
          uint32_t centres = 0;
          ASSERT_TRUE(d.ReadReferenceIndices(info, first,
                                             MutableByteSpan(reinterpret_cast<uint8_t*>(out.data()), n * 4),
                                             &centres)
                          .ok());
          EXPECT_EQ(centres, 1u);
          EXPECT_EQ(std::vector<int32_t>(out.begin(), out.begin() + long(n)),
                    std::vector<int32_t>(levels.begin() + long(first), levels.begin() + long(first + n)))
              << "spill " << spill << " first " << first << " n " << n;
          EXPECT_EQ(out[n], 0x55555555);
        }
      }
    }
  }
}

// A training history: weights, then (as an optimizer's state follows a model's) their Adam
// moments, a bias and an integer counter, each step moved a little from the one before.
std::vector<std::vector<TestTensor>> History(int steps) {
  std::vector<TestTensor> cur;
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> weights = {
      {"a", {96, 64}}, {"b", {50, 30}}, {"c", {4000}}};
  for (size_t i = 0; i < weights.size(); ++i)
    cur.push_back(MakeTensor(weights[i].first, DType::kF32, weights[i].second, uint32_t(i + 1)));
  for (size_t i = 0; i < weights.size(); ++i) {
    cur.push_back(MakeTensor(weights[i].first + ".exp_avg", DType::kF32, weights[i].second,
                             uint32_t(10 + i)));
    cur.push_back(MakeTensor(weights[i].first + ".exp_avg_sq", DType::kF32, weights[i].second,
                             uint32_t(20 + i)));
    for (size_t k = 0; k + 4 <= cur.back().bytes.size(); k += 4) {  // v > 0
      float v;
      std::memcpy(&v, cur.back().bytes.data() + k, 4);
      v = v * v + 1e-6f;
      std::memcpy(cur.back().bytes.data() + k, &v, 4);
    }
  }
  cur.push_back(MakeTensor("bias", DType::kF32, {64}, 30));
  cur.push_back(MakeTensor("count", DType::kI64, {}, 31));
  std::vector<std::vector<TestTensor>> out;
  for (int s = 0; s < steps; ++s) {
    out.push_back(cur);
    for (TestTensor& t : cur)
      if (t.spec.dtype == DType::kF32) t.bytes = PerturbF32(t.bytes, uint32_t(100 * s + 7), 0.05f);
  }
  return out;
}

InputCheckpoint InputOf(const std::vector<TestTensor>& tensors) {
  InputCheckpoint in;
  for (const TestTensor& t : tensors) in.tensors.push_back({t.spec, ByteSpan(t.bytes), ""});
  auto index = [&](const std::string& name) {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].spec.name == name) return int32_t(i);
    return int32_t(-1);
  };
  for (InputTensor& t : in.tensors) {
    const std::string& n = t.spec.name;
    if (n.size() > 11 && n.compare(n.size() - 11, 11, ".exp_avg_sq") == 0) {
      t.spec.role = Role::kMoment2;
      t.spec.owner = index(n.substr(0, n.size() - 11));
    } else if (n.size() > 8 && n.compare(n.size() - 8, 8, ".exp_avg") == 0) {
      t.spec.role = Role::kMoment1;
      t.spec.owner = index(n.substr(0, n.size() - 8));
    } else if (t.spec.dtype == DType::kF32) {
      t.spec.role = Role::kWeight;
    }
  }
  return in;
}

// The defaults: everything in memory, one thread.
struct Config {
  uint64_t decoded_memory = UINT64_MAX;  // DecodedCheckpoint::SpillOver
  uint64_t kept_plan_bytes = uint64_t{64} << 20;
  uint64_t batch_bytes = uint64_t{64} << 20;
  int threads = 1;
  bool release_reference_indices = false;  // WriteOptions's
};

Config Bounded(uint64_t decoded_memory, uint64_t kept_plan_bytes, uint64_t batch_bytes,
               int threads) {
  return Config{decoded_memory, kept_plan_bytes, batch_bytes, threads};
}

// Writes the history as a chain (each link against the previous step's DecodedCheckpoint, as
// `ckz compress` does) and returns the files' bytes and, per step, every tensor's decoded
// bytes and indices as that DecodedCheckpoint gives them.
struct Chain {
  std::vector<std::vector<uint8_t>> files;
  std::vector<std::vector<std::vector<uint8_t>>> decoded, symbols;
  size_t spilled_views = 0;  // tensors of a DecodedCheckpoint without a ReferenceView
};

Chain WriteChain(const std::vector<std::vector<TestTensor>>& history, const WriteOptions& lossy,
                 const Config& config) {
  Chain chain;
  EncodeOptions encode;
  encode.threads = config.threads;
  encode.chunk_bytes = 4096;  // several chunks per tensor
  encode.index_codec = StreamCodec::kCm;
  WriteOptions options = lossy;
  options.kept_plan_bytes = config.kept_plan_bytes;
  options.batch_bytes = config.batch_bytes;
  options.release_reference_indices = config.release_reference_indices;
  DecodedCheckpoint previous;
  std::vector<TensorInfo> previous_quantized;
  std::optional<LinkInfo> link;
  for (size_t s = 0; s < history.size(); ++s) {
    const InputCheckpoint in = InputOf(history[s]);
    auto sink = std::make_unique<MemorySink>();
    MemorySink* mem = sink.get();
    Writer writer(std::move(sink), encode);
    if (link) writer.SetLink(*link);
    DecodedCheckpoint next;
    next.SpillOver(config.decoded_memory);
    Status st = WriteCheckpoint(in, link ? &previous : nullptr, &writer, options, &next);
    EXPECT_TRUE(st.ok()) << st.ToString();
    auto id = writer.Finish();
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (!st.ok() || !id.ok()) return chain;
    // Released: the parent's indices were read for the last time.
    for (const TensorInfo& t : previous_quantized) {
      std::vector<uint8_t> sym(t.num_elements * t.quantization->SymbolBytes());
      uint32_t centres = 0;
      const Status read = previous.ReadReferenceIndices(t, 0, MutableByteSpan(sym), &centres);
      if (config.release_reference_indices)
        EXPECT_EQ(read.code(), ErrorCode::kInvalidArgument) << t.name;
      else
        EXPECT_TRUE(read.ok()) << t.name;
    }
    previous_quantized.clear();
    chain.files.push_back(std::move(mem->bytes()));
    auto archive = ParseArchive(ByteSpan(chain.files.back()));
    EXPECT_TRUE(archive.ok());
    auto& decoded = chain.decoded.emplace_back();
    auto& symbols = chain.symbols.emplace_back();
    for (const TensorInfo& t : archive->tensors) {
      std::vector<uint8_t> bytes(t.byte_length);
      EXPECT_TRUE(next.ReadReference(t, 0, MutableByteSpan(bytes)).ok()) << t.name;
      decoded.push_back(std::move(bytes));
      std::vector<uint8_t> sym;
      if (t.quantization) {
        previous_quantized.push_back(t);
        sym.resize(t.num_elements * t.quantization->SymbolBytes());
        uint32_t centres = 0;
        EXPECT_TRUE(next.ReadReferenceIndices(t, 0, MutableByteSpan(sym), &centres).ok());
        EXPECT_NE(centres, 0u) << t.name;
        // A part from the middle reads what the whole read gave there.
        const uint64_t first = t.num_elements / 3, count = t.num_elements / 4;
        const size_t sb = t.quantization->SymbolBytes();
        std::vector<uint8_t> part(count * sb);
        EXPECT_TRUE(next.ReadReferenceIndices(t, first, MutableByteSpan(part), &centres).ok());
        EXPECT_TRUE(std::equal(part.begin(), part.end(), sym.begin() + long(first * sb)))
            << t.name;
      }
      symbols.push_back(std::move(sym));
      if (!next.ReferenceView(t)) ++chain.spilled_views;
    }
    link = LinkInfo{*id, std::nullopt, "s" + std::to_string(s) + ".ckz", uint32_t(s + 1)};
    previous = std::move(next);
  }
  return chain;
}

void ExpectSameChain(const Chain& a, const Chain& b) {
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t s = 0; s < a.files.size(); ++s) {
    EXPECT_EQ(a.files[s], b.files[s]) << "file of step " << s;
    EXPECT_EQ(a.decoded[s], b.decoded[s]) << "decoded tensors of step " << s;
    EXPECT_EQ(a.symbols[s], b.symbols[s]) << "indices or levels of step " << s;
  }
}

class SpillChain : public ::testing::TestWithParam<bool> {
 protected:
  WriteOptions Lossy() const {
    WriteOptions w;
    if (GetParam())
      w.excp = ExcpOptions{};
    else
      w.rd = RdOptions{};
    return w;
  }
};

// Everything to temporary files (a budget of 0 bytes), one tensor per batch: the same files,
// the same decoded references.
TEST_P(SpillChain, NoMemoryBudgetWritesTheSameChain) {
  const auto history = History(4);
  const Chain in_memory = WriteChain(history, Lossy(), Config{});
  const Chain spilled = WriteChain(history, Lossy(), Bounded(0, 0, 1, 1));
  ExpectSameChain(in_memory, spilled);
  // Links had lossy tensors, and those were spilled (no view) only with the budget.
  size_t quantized = 0;
  for (const auto& step : in_memory.symbols)
    for (const auto& sym : step) quantized += !sym.empty();
  EXPECT_GE(quantized, 9u * 3u);  // a, b, c and their moments in each link
  EXPECT_EQ(in_memory.spilled_views, 0u);
  EXPECT_GE(spilled.spilled_views, quantized);
}

// A budget that holds some tensors and not others, two threads, batches of a few tensors.
TEST_P(SpillChain, PartialBudgetAndThreadsWriteTheSameChain) {
  const auto history = History(3);
  const Chain in_memory = WriteChain(history, Lossy(), Config{});
  ExpectSameChain(in_memory, WriteChain(history, Lossy(), Bounded(40000, 5000, 30000, 2)));
}

// A chain's parent gives up its indices as the link is written (Python's ckz.Chain): the same
// files, and the parent's indices are gone afterwards.
TEST_P(SpillChain, ReleasingTheParentsIndicesWritesTheSameChain) {
  const auto history = History(4);
  const Chain kept = WriteChain(history, Lossy(), Config{});
  for (const uint64_t batch : {uint64_t{1}, uint64_t{30000}, uint64_t{64} << 20}) {
    Config released = Bounded(UINT64_MAX, batch, batch, 1);
    released.release_reference_indices = true;
    ExpectSameChain(kept, WriteChain(history, Lossy(), released));
  }
}

INSTANTIATE_TEST_SUITE_P(Planners, SpillChain, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Excp" : "RateDistortion";
                         });

// A chain read back in small windows (parts of chunks: through the chunk cache) and on two
// threads gives what whole reads give.
TEST(ChainReader, PartialReadsMatchWholeReads) {
  const std::string dir = FreshDir("bounded_chain");
  const auto history = History(3);
  const Chain chain = WriteChain(history, [] {
    WriteOptions w;
    w.rd = RdOptions{};
    return w;
  }(), Config{});
  ASSERT_EQ(chain.files.size(), 3u);
  for (size_t s = 0; s < chain.files.size(); ++s)
    std::ofstream(dir + "/s" + std::to_string(s) + ".ckz", std::ios::binary)
        .write(reinterpret_cast<const char*>(chain.files[s].data()), long(chain.files[s].size()));
  auto reader = ChainReader::Open(dir + "/s2.ckz");
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const Archive& a = (*reader)->archive();
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    const uint64_t n = a.tensors[t].byte_length;
    std::vector<uint8_t> whole(n), parts(n);
    ASSERT_TRUE((*reader)->ReadTensor(t, 0, MutableByteSpan(whole), 2).ok());
    EXPECT_EQ(whole, chain.decoded[2][t]) << a.tensors[t].name;
    for (uint64_t at = 0; at < n; at += 1000) {
      const uint64_t len = std::min<uint64_t>(1000, n - at);
      ASSERT_TRUE((*reader)->ReadTensor(t, at, MutableByteSpan(parts.data() + at, len), 1).ok());
      (*reader)->ReleaseMemory();
    }
    EXPECT_EQ(parts, whole) << a.tensors[t].name;
  }
  reader->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ckz::testing
