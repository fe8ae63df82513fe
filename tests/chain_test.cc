// Chains on disk: parents found by content id among siblings, the errors that name the expected
// parent, depth checks, range reads through a chain, verify, and atomic output files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "ckz/checkpoint.h"
#include "ckz/content_id.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "decompress/chunk_order.h"
#include "file_surgery.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

namespace fs = std::filesystem;

// Five steps of one tensor set, each a little moved from the previous one.
std::vector<std::vector<TestTensor>> History(int steps) {
  std::vector<std::vector<TestTensor>> out;
  std::vector<TestTensor> cur = {MakeTensor("w", DType::kF32, {200, 30}, 1),
                                 MakeTensor("b", DType::kF32, {30}, 2),
                                 MakeTensor("n", DType::kI64, {}, 3)};
  for (int s = 0; s < steps; ++s) {
    out.push_back(cur);
    for (TestTensor& t : cur)
      if (t.spec.dtype == DType::kF32) t.bytes = PerturbF32(t.bytes, uint32_t(100 + s));
  }
  return out;
}

// Writes `tensors` to `path`, as a link to `parent` when given.
ContentId WriteFile(const std::string& path, const std::vector<TestTensor>& tensors,
                    ChainReader* parent, uint32_t chunk_bytes = 4096) {
  EncodeOptions o;
  o.chunk_bytes = chunk_bytes;
  auto sink = AtomicFileSink::Create(path, true);
  EXPECT_TRUE(sink.ok()) << sink.status().ToString();
  Writer w(std::move(sink).value(), o);
  if (parent) w.SetLink(LinkTo(*parent));
  for (const TestTensor& t : tensors) {
    std::vector<uint8_t> ref;
    if (parent) {
      auto i = parent->archive().FindTensor(t.spec.name);
      if (i) {
        ref.resize(parent->archive().tensors[*i].byte_length);
        EXPECT_TRUE(parent->ReadTensor(*i, 0, MutableByteSpan(ref)).ok());
      }
    }
    EXPECT_TRUE(w.AddTensor(t.spec, ByteSpan(t.bytes), ByteSpan(ref)).ok());
  }
  auto id = w.Finish();
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  return *id;
}

class Chain : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("chain");
    history_ = History(5);
    std::unique_ptr<ChainReader> parent;
    for (size_t s = 0; s < history_.size(); ++s) {
      const std::string path = Path(s);
      ids_.push_back(WriteFile(path, history_[s], parent.get(), s % 2 ? 4096 : 1000));
      auto r = ChainReader::Open(path);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      parent = std::move(r).value();
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(size_t step) const { return dir_ + "/step" + std::to_string(step) + ".ckz"; }

  std::string dir_;
  std::vector<std::vector<TestTensor>> history_;
  std::vector<ContentId> ids_;
};

TEST_F(Chain, EveryStepDecodesThroughItsChain) {
  for (size_t s = 0; s < history_.size(); ++s) {
    auto r = ChainReader::Open(Path(s));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->depth(), s);
    EXPECT_EQ((*r)->archive().content_id, ids_[s]);
    for (size_t t = 0; t < history_[s].size(); ++t) {
      std::vector<uint8_t> out(history_[s][t].bytes.size());
      ASSERT_TRUE((*r)->ReadTensor(t, 0, MutableByteSpan(out), 3).ok());
      EXPECT_EQ(out, history_[s][t].bytes) << "step " << s << " tensor " << t;
    }
    auto report = VerifyChain(**r, 2);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->computed, ids_[s]);
  }
}

TEST_F(Chain, RangesCrossMisalignedChunksOfParentAndChild) {
  // Step 4 uses 1000-byte chunks, step 3 4096-byte chunks: ranges straddle both.
  auto r = ChainReader::Open(Path(4));
  ASSERT_TRUE(r.ok());
  const auto& want = history_[4][0].bytes;
  for (uint64_t begin : {0u, 999u, 4095u, 10000u, 23000u}) {
    const uint64_t len = std::min<uint64_t>(5000, want.size() - begin);
    std::vector<uint8_t> out(len);
    ASSERT_TRUE((*r)->ReadTensor(0, begin, MutableByteSpan(out)).ok());
    EXPECT_EQ(0, std::memcmp(out.data(), want.data() + begin, len));
  }
}

TEST_F(Chain, StreamTensorsHandsOverEveryTensorInOrderAndInPieces) {
  auto r = ChainReader::Open(Path(4));
  ASSERT_TRUE(r.ok());
  // w is 24000 bytes, b 120, n 8: with a 200-byte window, b and n share a batch and w comes in
  // 200-byte pieces; tensors may come in any order, repeated.
  const std::vector<uint32_t> order = {1, 2, 0, 1};
  for (uint64_t window : {200u, 100000u}) {
    for (int threads : {1, 3}) {
      std::vector<std::vector<uint8_t>> got(order.size());
      Status s = StreamTensors(**r, order, window, threads,
                               [&](size_t i, uint64_t offset, ByteSpan bytes) {
                                 EXPECT_EQ(offset, got[i].size()) << "pieces out of order";
                                 EXPECT_LE(bytes.size, window);
                                 got[i].insert(got[i].end(), bytes.begin(), bytes.end());
                                 return Status::Ok();
                               });
      ASSERT_TRUE(s.ok()) << s.ToString();
      for (size_t i = 0; i < order.size(); ++i)
        EXPECT_EQ(got[i], history_[4][order[i]].bytes) << "window " << window << " #" << i;
    }
  }
  // The visitor's error stops the walk and is returned.
  size_t calls = 0;
  Status s = StreamTensors(**r, order, 200, 1, [&](size_t, uint64_t, ByteSpan) {
    ++calls;
    return Status(ErrorCode::kIoError, "disk full");
  });
  EXPECT_EQ(s.code(), ErrorCode::kIoError);
  EXPECT_EQ(calls, 1u);
  EXPECT_EQ(StreamTensors(**r, {7}, 200, 1, [](size_t, uint64_t, ByteSpan) { return Status::Ok(); })
                .code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(Chain, ParentFoundByContentIdWhateverItsName) {
  fs::rename(Path(3), dir_ + "/renamed.ckz");  // the path hint no longer leads to it
  auto r = ChainReader::Open(Path(4));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->parent()->path(), dir_ + "/renamed.ckz");
}

TEST_F(Chain, ParentFoundInASearchFolder) {
  const std::string other = FreshDir("chain_other");
  fs::rename(Path(3), other + "/step3.ckz");
  ChainOptions options;
  EXPECT_EQ(ChainReader::Open(Path(4), options).status().code(), ErrorCode::kParentNotFound);
  options.search_dirs = {other};
  EXPECT_TRUE(ChainReader::Open(Path(4), options).ok());
  fs::remove_all(other);
}

TEST_F(Chain, MissingParentNamesTheExpectedId) {
  fs::remove(Path(2));
  auto r = ChainReader::Open(Path(4));
  ASSERT_EQ(r.status().code(), ErrorCode::kParentNotFound);
  EXPECT_NE(r.status().message().find(ContentIdHex(ids_[2])), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("step2.ckz"), std::string::npos);
}

TEST_F(Chain, ADifferentFileUnderTheParentsNameIsNotTaken) {
  // Overwrite step 2 with other content: same name, other content id.
  auto other = history_[2];
  other[0].bytes[0] ^= 1;
  WriteFile(Path(2), other, nullptr);
  EXPECT_EQ(ChainReader::Open(Path(3)).status().code(), ErrorCode::kParentNotFound);
}

TEST_F(Chain, ExplicitWrongParentIsRefused) {
  ChainOptions options;
  options.parent_path = Path(1);  // step 4's parent is step 3
  auto r = ChainReader::Open(Path(4), options);
  ASSERT_EQ(r.status().code(), ErrorCode::kWrongParent);
  EXPECT_NE(r.status().message().find(ContentIdHex(ids_[3])), std::string::npos);
  options.parent_path = Path(3);
  EXPECT_TRUE(ChainReader::Open(Path(4), options).ok());
}

TEST_F(Chain, InconsistentDepthsAndCyclesAreRefused) {
  // Give step 4 a link that claims depth 9 while its parent has depth 3.
  auto mapped = MappedFile::Open(Path(4));
  ASSERT_TRUE(mapped.ok());
  auto a = ParseArchive(mapped->bytes());
  ASSERT_TRUE(a.ok());
  Archive changed = *a;
  changed.link->depth = 9;
  auto bytes = Rebuild(changed, mapped->bytes());
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/deep.ckz", ByteSpan(bytes), true).ok());
  EXPECT_EQ(ChainReader::Open(dir_ + "/deep.ckz").status().code(), ErrorCode::kBadChain);

  // Two files naming each other as parent, both claiming depth 1: refused, no endless loop.
  const std::string loop = FreshDir("chain_loop");
  Archive x = changed, y = changed;
  x.content_id.fill(0xAA);
  y.content_id.fill(0xBB);
  x.link->parent_content_id = y.content_id;
  y.link->parent_content_id = x.content_id;
  x.link->depth = y.link->depth = 1;
  ASSERT_TRUE(WriteFileAtomically(loop + "/x.ckz", ByteSpan(Rebuild(x, mapped->bytes())), true).ok());
  ASSERT_TRUE(WriteFileAtomically(loop + "/y.ckz", ByteSpan(Rebuild(y, mapped->bytes())), true).ok());
  EXPECT_EQ(ChainReader::Open(loop + "/x.ckz").status().code(), ErrorCode::kBadChain);
  fs::remove_all(loop);
}

TEST_F(Chain, ParentMissingTheTensorIsAReferenceMismatch) {
  // A link whose tensor 'w' is predicted, re-pointed at a parent without 'w'.
  const std::string other = FreshDir("chain_mismatch");
  std::vector<TestTensor> no_w = {history_[0][1]};
  WriteFile(other + "/p.ckz", no_w, nullptr);
  auto p = ChainReader::Open(other + "/p.ckz");
  ASSERT_TRUE(p.ok());
  auto mapped = MappedFile::Open(Path(1));
  auto a = ParseArchive(mapped->bytes());
  ASSERT_TRUE(a.ok());
  ASSERT_NE(a->tensors[0].predictor, Predictor::kNone);
  Archive changed = *a;
  changed.link->parent_content_id = (*p)->archive().content_id;
  ASSERT_TRUE(WriteFileAtomically(other + "/c.ckz", ByteSpan(Rebuild(changed, mapped->bytes())),
                                  true).ok());
  auto c = ChainReader::Open(other + "/c.ckz");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::vector<uint8_t> out(history_[1][0].bytes.size());
  EXPECT_EQ((*c)->ReadTensor(0, 0, MutableByteSpan(out)).code(), ErrorCode::kReferenceMismatch);
  fs::remove_all(other);
}

TEST_F(Chain, VerifyCatchesAWrongDeclaredContentId) {
  auto mapped = MappedFile::Open(Path(0));
  auto a = ParseArchive(mapped->bytes());
  Archive changed = *a;
  changed.content_id[5] ^= 1;
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/liar.ckz", ByteSpan(Rebuild(changed, mapped->bytes())),
                                  true).ok());
  auto r = ChainReader::Open(dir_ + "/liar.ckz");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(VerifyChain(**r).status().code(), ErrorCode::kContentIdMismatch);
}

// A lossy cm chain on disk (as `ckz compress` writes one): each link decoded against the
// DecodedReference recorded while its parent was verified gives the same bytes and content id
// as decoding it through its whole chain, the cm contexts' indices included.
TEST(DecodedReferenceTest, NextLinkDecodesAgainstTheRecordedParent) {
  const std::string dir = FreshDir("decoded_reference");
  std::vector<TestTensor> step = {MakeTensor("w", DType::kF32, {64, 40}, 1),
                                  MakeTensor("w.exp_avg", DType::kF32, {64, 40}, 2),
                                  MakeTensor("w.exp_avg_sq", DType::kF32, {64, 40}, 3),
                                  MakeTensor("n", DType::kI64, {3}, 4)};
  for (uint8_t* p = step[2].bytes.data(); p < step[2].bytes.data() + step[2].bytes.size(); p += 4) {
    float v;  // a second moment is positive
    std::memcpy(&v, p, 4);
    v = v * v + 1e-6f;
    std::memcpy(p, &v, 4);
  }
  WriteOptions write;
  write.excp = ExcpOptions{};
  EncodeOptions encode;
  encode.index_codec = StreamCodec::kCm;
  encode.chunk_bytes = 2000;
  std::vector<std::vector<TestTensor>> steps;  // alive while `previous` views them
  for (int s = 0; s < 4; ++s) {
    steps.push_back(step);
    for (size_t t = 0; t < 3; ++t) step[t].bytes = PerturbF32(step[t].bytes, uint32_t(10 * s + t), 0.05f);
  }
  DecodedCheckpoint previous;
  std::vector<std::string> paths;
  for (int s = 0; s < 4; ++s) {
    InputCheckpoint in;
    for (const TestTensor& t : steps[size_t(s)]) in.tensors.push_back({t.spec, ByteSpan(t.bytes), ""});
    in.tensors[0].spec.role = Role::kWeight;
    in.tensors[1].spec = {"w.exp_avg", DType::kF32, {64, 40}, Role::kMoment1, 0};
    in.tensors[2].spec = {"w.exp_avg_sq", DType::kF32, {64, 40}, Role::kMoment2, 0};
    paths.push_back(dir + "/e" + std::to_string(s) + ".ckz");
    auto sink = AtomicFileSink::Create(paths.back(), true);
    ASSERT_TRUE(sink.ok());
    Writer writer(std::move(sink).value(), encode);
    std::unique_ptr<ChainReader> parent;
    if (s > 0) {
      auto r = ChainReader::Open(paths[size_t(s) - 1]);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      parent = std::move(r).value();
      writer.SetLink(LinkTo(*parent));
    }
    DecodedCheckpoint next;
    WriteReport report;
    ASSERT_TRUE(WriteCheckpoint(in, s ? &previous : nullptr, &writer, write, &next, &report).ok());
    ASSERT_TRUE(writer.Finish().ok());
    EXPECT_EQ(report.quantized, s ? 3u : 0u);
    previous = std::move(next);
  }

  std::unique_ptr<DecodedReference> parent;
  for (size_t s = 0; s < paths.size(); ++s) {
    SCOPED_TRACE(paths[s]);
    auto through_chain = ChainReader::Open(paths[s]);
    auto once = ChainReader::Open(paths[s]);
    ASSERT_TRUE(through_chain.ok() && once.ok());
    if (parent) (*once)->UseDecodedParent(parent.get());
    auto recorded = DecodedReference::Create((*once)->archive(), dir);
    ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
    (*once)->RecordInto(recorded->get());
    auto report = VerifyChain(**once, 2);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->computed, (*once)->archive().content_id);
    (*once)->RecordInto(nullptr);
    const Archive& a = (*once)->archive();
    for (size_t t = 0; t < a.tensors.size(); ++t) {
      std::vector<uint8_t> want(a.tensors[t].byte_length), got(want.size()), kept(want.size());
      ASSERT_TRUE((*through_chain)->ReadTensor(t, 0, MutableByteSpan(want)).ok());
      ASSERT_TRUE((*once)->ReadTensor(t, 0, MutableByteSpan(got)).ok());
      EXPECT_EQ(got, want) << a.tensors[t].name;
      if (t == 0) {  // read before Finish: refused
        EXPECT_EQ((*recorded)->ReadReference(a.tensors[t], 0, MutableByteSpan(kept)).code(),
                  ErrorCode::kInvalidArgument);
      }
    }
    ASSERT_TRUE((*recorded)->Finish(**once).ok());
    for (size_t t = 0; t < a.tensors.size(); ++t) {
      std::vector<uint8_t> want(a.tensors[t].byte_length), kept(want.size());
      ASSERT_TRUE((*through_chain)->ReadTensor(t, 0, MutableByteSpan(want)).ok());
      ASSERT_TRUE((*recorded)->ReadReference(a.tensors[t], 0, MutableByteSpan(kept)).ok());
      EXPECT_EQ(kept, want) << a.tensors[t].name;
      std::vector<uint8_t> indices(a.tensors[t].num_elements), expected(indices.size());
      uint32_t centres = 0, expected_centres = 0;
      ASSERT_TRUE((*recorded)->ReadReferenceIndices(a.tensors[t], 0, MutableByteSpan(indices), &centres).ok());
      ASSERT_TRUE((*through_chain)->ReadReferenceIndices(a.tensors[t], 0, MutableByteSpan(expected), &expected_centres).ok());
      EXPECT_EQ(centres, expected_centres);
      if (centres) {
        EXPECT_EQ(indices, expected) << a.tensors[t].name;
      }
    }
    EXPECT_EQ(s > 0, a.tensors[0].quantization.has_value());
    TensorInfo other = a.tensors[0];
    other.name = "absent";
    std::vector<uint8_t> out(other.byte_length);
    EXPECT_EQ((*recorded)->ReadReference(other, 0, MutableByteSpan(out)).code(),
              ErrorCode::kReferenceMismatch);
    parent = std::move(recorded).value();
  }
  // What was not recorded cannot be finished.
  auto r = ChainReader::Open(paths[0]);
  auto partial = DecodedReference::Create((*r)->archive(), dir);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ((*partial)->Record(0, 1, ByteSpan((*r)->archive().file.data, (*r)->archive().tensors[0].byte_length)).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ((*partial)->Finish(**r).code(), ErrorCode::kInvalidArgument);
  fs::remove_all(dir);
}

TEST(IndexCacheTest, KeepsChunksWithinItsBudgetOldestOut) {
  Archive a, b;
  const uint8_t bytes_a[1] = {0}, bytes_b[1] = {0};
  a.file = ByteSpan(bytes_a, 1);
  b.file = ByteSpan(bytes_b, 1);  // another archive: other keys
  IndexCache cache(10);
  const std::vector<uint8_t> four = {1, 2, 3, 4}, six = {5, 6, 7, 8, 9, 10};
  cache.Insert(a, 0, 0, ByteSpan(four));
  cache.Insert(a, 0, 1, ByteSpan(six));
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(cache.Lookup(a, 0, 0, MutableByteSpan(out)));
  EXPECT_EQ(out, four);
  EXPECT_FALSE(cache.Lookup(b, 0, 0, MutableByteSpan(out)));
  std::vector<uint8_t> wrong_size(5);
  EXPECT_FALSE(cache.Lookup(a, 0, 0, MutableByteSpan(wrong_size)));
  cache.Insert(b, 0, 0, ByteSpan(four));  // 14 > 10: the oldest entry goes
  EXPECT_FALSE(cache.Lookup(a, 0, 0, MutableByteSpan(out)));
  std::vector<uint8_t> out6(6);
  ASSERT_TRUE(cache.Lookup(a, 0, 1, MutableByteSpan(out6)));
  EXPECT_EQ(out6, six);
  cache.Insert(a, 1, 0, ByteSpan(std::vector<uint8_t>(11, 1)));  // above the budget: not kept
  std::vector<uint8_t> out11(11);
  EXPECT_FALSE(cache.Lookup(a, 1, 0, MutableByteSpan(out11)));
}

// Levels are held 1, 2 or 4 bytes each as they fit, read back as i32; the budget counts what is
// held; evicted entries' buffers are reused, whatever size the next entry is.
TEST(IndexCacheTest, LevelsReadBackWhateverWidthTheyAreHeldIn) {
  Archive a;
  const uint8_t bytes_a[1] = {0};
  a.file = ByteSpan(bytes_a, 1);
  const std::vector<std::vector<int32_t>> cases = {
      {0, 1, -1, 127, -128, 5},                          // 1 byte each: 6 bytes held
      {0, 128, -129, 32767, -32768, 7},                  // 2 bytes each: 12
      {0, 32768, -32769, (1 << 24) - 1, -(1 << 24) + 1, 1}};  // 4 bytes each: 24
  IndexCache cache(36);
  for (size_t k = 0; k < cases.size(); ++k)
    cache.InsertLevels(a, 0, k, cases[k].data(), cases[k].size());
  // 6 + 12 + 24 > 36: the first went when the third came.
  std::vector<int32_t> out(6, 0x55555555);
  EXPECT_FALSE(cache.LookupLevels(a, 0, 0, out.data(), out.size()));
  for (size_t k = 1; k < cases.size(); ++k) {
    ASSERT_TRUE(cache.LookupLevels(a, 0, k, out.data(), out.size())) << k;
    EXPECT_EQ(out, cases[k]) << k;
  }
  EXPECT_FALSE(cache.LookupLevels(a, 0, 1, out.data(), 5));  // another count
  std::vector<uint8_t> raw(6);
  EXPECT_FALSE(cache.Lookup(a, 0, 1, MutableByteSpan(raw)));  // levels are not raw bytes
  // A larger entry in a recycled smaller buffer, then a smaller one in a larger buffer.
  const std::vector<int32_t> big(12, -300), small = {3, -3};
  cache.InsertLevels(a, 1, 0, big.data(), big.size());
  cache.InsertLevels(a, 1, 1, small.data(), small.size());
  std::vector<int32_t> out_big(12), out_small(2);
  ASSERT_TRUE(cache.LookupLevels(a, 1, 0, out_big.data(), out_big.size()));
  ASSERT_TRUE(cache.LookupLevels(a, 1, 1, out_small.data(), out_small.size()));
  EXPECT_EQ(out_big, big);
  EXPECT_EQ(out_small, small);
}

// Workers take runs of neighbouring chunks (a link's neighbours read the same parent chunk):
// one worker takes the priority order itself; a second starts in the middle of the run the
// first is walking, and a worker whose run is used up splits the longest run left.
TEST(ChunkOrderTest, WorkersWalkRunsOfNeighbours) {
  std::set<size_t> ready;
  for (size_t i = 0; i < 16; ++i) ready.insert(i);
  std::vector<size_t> last(1, kNoItem);
  std::vector<size_t> order;
  for (std::set<size_t> left = ready; !left.empty();) {
    const size_t i = NextItem(left, last, 0);
    left.erase(i);
    last[0] = i;
    order.push_back(i);
  }
  EXPECT_EQ(order, std::vector<size_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));

  last.assign(2, kNoItem);
  auto take = [&](size_t w) {
    const size_t i = NextItem(ready, last, w);
    ready.erase(i);
    last[w] = i;
    return i;
  };
  EXPECT_EQ(take(0), 0u);
  EXPECT_EQ(take(1), 8u);  // 1..15 is walked into from 0: its middle
  for (size_t k = 1; k < 8; ++k) {
    EXPECT_EQ(take(0), k);
    EXPECT_EQ(take(1), 8 + k);
  }
  EXPECT_TRUE(ready.empty());
  // A run used up: the longest run left is split if another worker walks into it.
  ready = {3, 4, 5, 6, 7, 8, 9, 12, 13};
  last = {15, 2};
  EXPECT_EQ(take(0), 6u);  // 3..9 follows worker 1's 2: its middle
  EXPECT_EQ(take(1), 3u);  // its own next
  last[1] = 11;
  EXPECT_EQ(take(1), 12u);  // its own next
  last[0] = 20;
  ready = {4, 5, 9};
  EXPECT_EQ(take(0), 4u);  // 4..5 follows nobody's last item: its start
  // Items that are not neighbours (dependencies decide what is ready) are taken in order.
  ready = {1, 5, 9};
  last = {kNoItem, kNoItem};
  EXPECT_EQ(take(1), 1u);
  EXPECT_EQ(take(0), 5u);
}

TEST(AtomicFile, NothingAppearsUntilCommitAndNothingRemainsOnAbort) {
  const std::string dir = FreshDir("atomic");
  const std::string path = dir + "/out.ckz";
  {
    auto sink = AtomicFileSink::Create(path, false);
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->Write(ByteSpan(std::vector<uint8_t>(1000, 7))).ok());
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::exists((*sink)->temp_path()));
  }  // destroyed without Commit: an interrupted write
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(dir)) << "temporary file left behind";

  ASSERT_TRUE(WriteFileAtomically(path, ByteSpan(std::vector<uint8_t>(10, 1)), false).ok());
  EXPECT_EQ(fs::file_size(path), 10u);
  EXPECT_EQ(WriteFileAtomically(path, ByteSpan(std::vector<uint8_t>(5, 1)), false).code(),
            ErrorCode::kIoError);  // exists, no overwrite
  EXPECT_EQ(fs::file_size(path), 10u);
  ASSERT_TRUE(WriteFileAtomically(path, ByteSpan(std::vector<uint8_t>(5, 1)), true).ok());
  EXPECT_EQ(fs::file_size(path), 5u);

  // The signal-handler path: pending temporaries are unlinked.
  auto sink = AtomicFileSink::Create(dir + "/other.ckz", false);
  ASSERT_TRUE(sink.ok());
  EXPECT_TRUE(fs::exists((*sink)->temp_path()));
  RemovePendingTemporaryFiles();
  EXPECT_FALSE(fs::exists((*sink)->temp_path()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ckz::testing
