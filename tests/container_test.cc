// The container end to end in memory: write, parse, decode; and one handcrafted corruption per
// validation rule of spec section 9, each with its exact error code.
#include <gtest/gtest.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_compressSequences, to build the literals-only frame
#include <zstd.h>

#include <optional>
#include <random>

#include "ckz/archive.h"
#include "ckz/content_id.h"
#include "ckz/decoder.h"
#include "ckz/writer.h"
#include "common/bytes.h"
#include "common/zstd_frame.h"
#include "format/chunk_layout.h"
#include "file_surgery.h"
#include "format/preamble.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

std::vector<TestTensor> EveryDtype() {
  return {
      MakeTensor("f64", DType::kF64, {3, 5}, 1),
      MakeTensor("f32", DType::kF32, {64, 33}, 2),
      MakeTensor("f16", DType::kF16, {7, 9}, 3),
      MakeTensor("bf16", DType::kBF16, {11}, 4),
      MakeTensor("i64", DType::kI64, {5}, 5),
      MakeTensor("i32", DType::kI32, {2, 2, 2}, 6),
      MakeTensor("i16", DType::kI16, {13}, 7),
      MakeTensor("i8", DType::kI8, {17}, 8),
      MakeTensor("u8", DType::kU8, {19}, 9),
      MakeTensor("bool", DType::kBool, {23}, 10),
      MakeTensor("scalar", DType::kF32, {}, 11),
      MakeTensor("empty", DType::kF32, {4, 0}, 12),
  };
}

std::vector<uint8_t> DecodeAll(const Archive& a, size_t t, ReferenceSource* ref = nullptr,
                               int threads = 1) {
  std::vector<uint8_t> out(a.tensors[t].byte_length);
  DecodeOptions options;
  options.threads = threads;
  Status s = DecodeTensorRange(a, t, 0, MutableByteSpan(out), ref, options);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

TEST(Container, RoundTripsEveryDtype) {
  const auto tensors = EveryDtype();
  const auto file = WriteToMemory(tensors);
  auto a = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(a->tensors[i].name, tensors[i].spec.name);
    EXPECT_EQ(a->tensors[i].shape, tensors[i].spec.shape);
    EXPECT_EQ(DecodeAll(*a, i), tensors[i].bytes) << tensors[i].spec.name;
  }
  EXPECT_EQ(a->tensors[10].num_elements, 1u);  // 0-d
  EXPECT_TRUE(a->tensors[11].chunks.empty());  // empty
}

TEST(Container, ManyChunksAndRandomRanges) {
  EncodeOptions options;
  options.chunk_bytes = 1000;  // rounds down to 250 f32 elements
  const auto tensors = std::vector<TestTensor>{MakeTensor("w", DType::kF32, {100, 77}, 3)};
  const auto file = WriteToMemory(tensors, options);
  auto a = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->tensors[0].chunks.size(), (7700 + 249) / 250);
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    const uint64_t begin = rng() % tensors[0].bytes.size();
    const uint64_t len = rng() % (tensors[0].bytes.size() - begin + 1);
    std::vector<uint8_t> out(len);
    ASSERT_TRUE(DecodeTensorRange(*a, 0, begin, MutableByteSpan(out), nullptr).ok());
    ASSERT_EQ(0, std::memcmp(out.data(), tensors[0].bytes.data() + begin, len));
  }
  EXPECT_EQ(DecodeAll(*a, 0, nullptr, 4), tensors[0].bytes);
}

// Limits::read_below: the parser says, now and then, below which offset it reads no more (a
// mapped file's reader drops those pages); offsets only grow, stay inside the file, and what
// is parsed is the same with the hook or without. The padding it reads is still checked.
TEST(Container, ParserSaysBelowWhichOffsetItReadsNoMore) {
  EncodeOptions options;
  options.chunk_bytes = 256;  // 64 f32 elements: 1,000 chunks
  const auto file = WriteToMemory({MakeTensor("w", DType::kF32, {1000, 64}, 3)}, options);
  std::vector<uint64_t> offsets;
  Limits limits;
  limits.read_below = [&](uint64_t offset) { offsets.push_back(offset); };
  auto with = ParseArchive(ByteSpan(file), limits);
  ASSERT_TRUE(with.ok()) << with.status().ToString();
  auto without = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(without.ok());
  ASSERT_EQ(with->tensors[0].chunks.size(), 1000u);
  EXPECT_EQ(with->tensors[0].chunks.back().offset, without->tensors[0].chunks.back().offset);
  ASSERT_GE(offsets.size(), 10u);
  EXPECT_TRUE(std::is_sorted(offsets.begin(), offsets.end()));
  EXPECT_LE(offsets.back(), file.size());
  // A nonzero padding byte past the last offset reported is still found.
  const ChunkInfo& last = with->tensors[0].chunks.back();
  const uint64_t pad = last.offset + last.stored_length;
  ASSERT_LT(pad, file.size()) << "the last chunk is followed by padding";
  std::vector<uint8_t> bad = file;
  bad[pad] = 1;
  EXPECT_EQ(ParseArchive(ByteSpan(bad), limits).status().code(), ErrorCode::kNonzeroPadding);
}

TEST(Container, OutputIndependentOfThreadCount) {
  EncodeOptions one, four;
  one.chunk_bytes = four.chunk_bytes = 4096;
  four.threads = 4;
  const auto tensors = EveryDtype();
  EXPECT_EQ(WriteToMemory(tensors, one), WriteToMemory(tensors, four));
}

TEST(Container, EveryCodingRoundTripsAgainstAReference) {
  auto base = MakeTensor("w", DType::kF32, {300, 7}, 21);
  TestTensor next = base;
  next.bytes = PerturbF32(base.bytes, 22);
  auto ints = MakeTensor("steps", DType::kI64, {40}, 23);
  TestTensor ints_next = ints;
  for (size_t i = 0; i < ints_next.bytes.size(); i += 8) ints_next.bytes[i] ^= 3;
  const std::vector<TestTensor> parent = {base, ints};
  MemoryReference ref(parent);
  LinkInfo link;
  link.depth = 1;
  const std::vector<std::vector<uint8_t>> refs = {base.bytes, ints.bytes};
  for (Predictor p : {Predictor::kNone, Predictor::kXorRef, Predictor::kSubRef})
    for (bool planes : {false, true})
      for (StreamCodec codec : {StreamCodec::kStored, StreamCodec::kZstd}) {
        EncodeOptions o;
        o.force_predictor = p;
        o.force_byte_planes = planes;
        o.force_codec = codec;
        o.chunk_bytes = 1024;
        const auto file = WriteToMemory({next, ints_next}, o, &link, &refs);
        auto a = ParseArchive(ByteSpan(file));
        ASSERT_TRUE(a.ok()) << a.status().ToString();
        EXPECT_EQ(a->tensors[0].predictor, p);
        EXPECT_EQ(a->tensors[0].byte_planes, planes);
        EXPECT_EQ(DecodeAll(*a, 0, &ref), next.bytes);
        EXPECT_EQ(DecodeAll(*a, 1, &ref), ints_next.bytes);
      }
}

TEST(Container, PredictedTensorNeedsItsReference) {
  auto base = MakeTensor("w", DType::kF32, {64}, 1);
  TestTensor next = base;
  next.bytes = PerturbF32(base.bytes, 2);
  LinkInfo link;
  link.depth = 1;
  EncodeOptions o;
  o.force_predictor = Predictor::kXorRef;
  const std::vector<std::vector<uint8_t>> refs = {base.bytes};
  const auto file = WriteToMemory({next}, o, &link, &refs);
  auto a = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(a.ok());
  std::vector<uint8_t> out(a->tensors[0].byte_length);
  EXPECT_EQ(DecodeTensorRange(*a, 0, 0, MutableByteSpan(out), nullptr).code(),
            ErrorCode::kReferenceRequired);
}

TEST(ContentId, IndependentOfCodingAndOrderButNotOfContent) {
  auto tensors = EveryDtype();
  ContentId plain, zstd, reordered, changed, renamed;
  EncodeOptions stored;
  stored.force_codec = StreamCodec::kStored;
  stored.force_byte_planes = false;
  WriteToMemory(tensors, stored, nullptr, nullptr, &plain);
  WriteToMemory(tensors, {}, nullptr, nullptr, &zstd);
  EXPECT_EQ(plain, zstd);
  std::reverse(tensors.begin(), tensors.end());
  WriteToMemory(tensors, {}, nullptr, nullptr, &reordered);
  EXPECT_EQ(plain, reordered);
  tensors[3].bytes[0] ^= 1;
  WriteToMemory(tensors, {}, nullptr, nullptr, &changed);
  EXPECT_NE(plain, changed);
  tensors[3].bytes[0] ^= 1;
  tensors[3].spec.name += "x";
  WriteToMemory(tensors, {}, nullptr, nullptr, &renamed);
  EXPECT_NE(plain, renamed);
}

TEST(ContentId, TreeDigestMatchesIncrementalForm) {
  std::vector<uint8_t> bytes = RandomTensorBytes(DType::kU8, 3 * kDigestBlockBytes + 17, 4);
  TensorDigester d;
  for (size_t pos = 0; pos < bytes.size(); pos += 333333)
    d.Update(ByteSpan(bytes.data() + pos, std::min<size_t>(333333, bytes.size() - pos)));
  EXPECT_EQ(d.Finish(), TensorDigest(ByteSpan(bytes), 3));
}

TEST(Writer, RefusesWhatAReaderWouldReject) {
  Writer w(std::make_unique<MemorySink>(), {});
  TensorSpec spec{"a", DType::kF32, {2}, Role::kOther, -1};
  std::vector<uint8_t> four(4), eight(8);
  EXPECT_EQ(w.AddTensor(spec, ByteSpan(four)).code(), ErrorCode::kInvalidArgument);
  Writer w2(std::make_unique<MemorySink>(), {});
  EXPECT_TRUE(w2.AddTensor(spec, ByteSpan(eight)).ok());
  EXPECT_EQ(w2.AddTensor(spec, ByteSpan(eight)).code(), ErrorCode::kDuplicateName);
  Writer w3(std::make_unique<MemorySink>(), {});
  spec.name = std::string("bad\xff", 4);
  EXPECT_EQ(w3.AddTensor(spec, ByteSpan(eight)).code(), ErrorCode::kBadName);
  Writer w4(std::make_unique<MemorySink>(), {});
  TensorSpec moment{"m", DType::kF32, {2}, Role::kMoment1, 0};
  ASSERT_TRUE(w4.AddTensor(TensorSpec{"w", DType::kF32, {2}, Role::kOther, -1}, ByteSpan(eight)).ok());
  ASSERT_TRUE(w4.AddTensor(moment, ByteSpan(eight)).ok());
  EXPECT_EQ(w4.Finish().status().code(), ErrorCode::kBadOwner);  // owner is not a weight
}

TEST(Writer, BatchesWriteTheSameBytesOnAnyThreadCount) {
  // Small tensors (one chunk each), a multi-chunk one, an empty one, and a link's predicted ones.
  std::vector<TestTensor> tensors;
  for (int i = 0; i < 9; ++i)
    tensors.push_back(MakeTensor("t" + std::to_string(i), DType::kF32, {uint64_t(50 + 7 * i)}, i));
  tensors.push_back(MakeTensor("big", DType::kBF16, {300, 40}, 20));
  tensors.push_back(MakeTensor("empty", DType::kF32, {0, 3}, 21));
  std::vector<std::vector<uint8_t>> refs;  // the parent's bytes: one byte off each tensor's
  for (const TestTensor& t : tensors) {
    refs.push_back(t.bytes);
    if (!refs.back().empty()) refs.back()[0] ^= 1;
  }
  auto write = [&](bool batch, int threads) {
    EncodeOptions o;
    o.threads = threads;
    o.chunk_bytes = 4096;
    auto sink = std::make_unique<MemorySink>();
    MemorySink* mem = sink.get();
    Writer w(std::move(sink), o);
    LinkInfo link;
    link.depth = 1;
    w.SetLink(link);
    if (batch) w.BeginBatch();
    for (size_t i = 0; i < tensors.size(); ++i)
      EXPECT_TRUE(w.AddTensor(tensors[i].spec, ByteSpan(tensors[i].bytes), ByteSpan(refs[i])).ok());
    if (batch) {
      EXPECT_TRUE(w.EndBatch().ok());
    }
    EXPECT_TRUE(w.Finish().ok());
    return mem->bytes();
  };
  const std::vector<uint8_t> one = write(false, 1);
  auto a = ParseArchive(ByteSpan(one));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->tensors.size(), tensors.size());
  EXPECT_GT(a->tensors[9].chunks.size(), 1u);
  for (bool batch : {false, true})
    for (int threads : {1, 2, 5}) EXPECT_EQ(write(batch, threads), one) << batch << " " << threads;
  // An aborted batch fails the writer: nothing queued is encoded later.
  {
    Writer w(std::make_unique<MemorySink>(), {});
    std::vector<uint8_t> gone(8);
    w.BeginBatch();
    ASSERT_TRUE(w.AddTensor({"a", DType::kF32, {2}}, ByteSpan(gone)).ok());
    w.AbortBatch(Status(ErrorCode::kIoError, "the input went away"));
    EXPECT_EQ(w.Finish().status().code(), ErrorCode::kIoError);
  }
  // A name used twice inside one batch is refused at once.
  Writer w(std::make_unique<MemorySink>(), {});
  std::vector<uint8_t> eight(8);
  w.BeginBatch();
  ASSERT_TRUE(w.AddTensor({"a", DType::kF32, {2}}, ByteSpan(eight)).ok());
  EXPECT_EQ(w.AddTensor({"a", DType::kF32, {2}}, ByteSpan(eight)).code(), ErrorCode::kDuplicateName);
}

// ---- One handcrafted file per validation rule. ----

class Corruption : public ::testing::Test {
 protected:
  void SetUp() override {
    EncodeOptions o;
    o.chunk_bytes = 512;
    o.force_codec = StreamCodec::kStored;  // chunk boundaries and bytes are predictable
    o.code_header = false;                 // header bytes at known places (CodedHeader: coded)
    tensors_ = {MakeTensor("a", DType::kF32, {300}, 1), MakeTensor("b", DType::kI64, {10}, 2)};
    tensors_[0].spec.role = Role::kWeight;
    file_ = WriteToMemory(tensors_, o);
    auto a = ParseArchive(ByteSpan(file_));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    archive_ = *a;
  }
  static ErrorCode Parse(const std::vector<uint8_t>& bytes) {
    return ParseArchive(ByteSpan(bytes)).status().code();
  }
  ErrorCode ParseRebuilt(const Archive& a) const { return Parse(Rebuild(a, ByteSpan(file_))); }

  std::vector<TestTensor> tensors_;
  std::vector<uint8_t> file_;
  Archive archive_;
};

TEST_F(Corruption, RebuildOfTheUnchangedArchiveIsValid) {
  EXPECT_EQ(ParseRebuilt(archive_), ErrorCode::kOk);
}

// Spec 9: with several faults, the first rule in the spec's order is reported.
TEST_F(Corruption, TheFirstBrokenRuleInSpecOrderIsReported) {
  Archive a = archive_;
  SourceFileInfo f;
  f.path = "model.pt";
  f.format = SourceFormat::kTorchZip;
  f.prolog.assign(100, 0);
  f.tensors = {0, 1};
  f.splits = {10, 20};
  f.crc32_patches = {{30, 0}, {40, 1}};
  a.files = {f};
  ASSERT_EQ(ParseRebuilt(a), ErrorCode::kOk);

  // F5 (splits) before F6 (a patch's reserved field).
  Archive two = a;
  two.files[0].splits = {20, 10};
  HeaderDeviations reserved;
  reserved.patch_reserved[{0, 1}] = 7;
  EXPECT_EQ(Parse(Rebuild(a, ByteSpan(file_), &reserved)), ErrorCode::kNonzeroPadding);
  EXPECT_EQ(Parse(Rebuild(two, ByteSpan(file_), &reserved)), ErrorCode::kFieldOutOfRange);
  // Within F6, patch by patch: patch 0's range before patch 1's reserved field.
  two = a;
  two.files[0].crc32_patches[0].prolog_offset = 98;
  EXPECT_EQ(Parse(Rebuild(two, ByteSpan(file_), &reserved)), ErrorCode::kFieldOutOfRange);

  // H3 (8-byte elements aligned) before T1 (a tensor's name).
  HeaderDeviations misaligned;
  misaligned.misaligned = MisalignedVector{VectorField::kSplits, 0};
  EXPECT_EQ(Parse(Rebuild(a, ByteSpan(file_), &misaligned)), ErrorCode::kHeaderMalformed);
  two = a;
  two.tensors[0].name = "";
  EXPECT_EQ(ParseRebuilt(two), ErrorCode::kBadName);
  EXPECT_EQ(Parse(Rebuild(two, ByteSpan(file_), &misaligned)), ErrorCode::kHeaderMalformed);
}

TEST_F(Corruption, Truncation) {
  for (size_t keep : {size_t(0), size_t(5), size_t(40), size_t(64), size_t(100),
                      file_.size() - 1}) {
    std::vector<uint8_t> cut(file_.begin(), file_.begin() + keep);
    const ErrorCode code = Parse(cut);
    EXPECT_TRUE(code == ErrorCode::kTruncated || code == ErrorCode::kHeaderOutOfBounds)
        << keep << " -> " << ErrorCodeName(code);
  }
}

TEST(Parse, EmptyAndNullInputs) {
  EXPECT_EQ(ParseArchive(ByteSpan()).status().code(), ErrorCode::kTruncated);
  EXPECT_EQ(ParsePreamble(ByteSpan(), 0).status().code(), ErrorCode::kTruncated);
  const uint8_t one = 'x';
  EXPECT_EQ(ParseArchive(ByteSpan(&one, 1)).status().code(), ErrorCode::kBadMagic);
}

TEST_F(Corruption, Magic) {
  auto f = file_;
  f[1] = 'X';
  EXPECT_EQ(Parse(f), ErrorCode::kBadMagic);
  // CR LF -> LF, as a text-mode transfer does.
  auto t = file_;
  t.erase(t.begin() + 4);
  EXPECT_EQ(Parse(t), ErrorCode::kTextModeCorruption);
  auto seven = file_;
  seven[0] &= 0x7F;  // 7-bit channel
  EXPECT_EQ(Parse(seven), ErrorCode::kTextModeCorruption);
}

TEST_F(Corruption, VersionAndFeatures) {
  auto f = file_;
  StoreLE16(f.data() + preamble_offset::kMajor, 1);
  FixPreambleCrc(f);
  EXPECT_EQ(Parse(f), ErrorCode::kUnsupportedVersion);
  auto minor = file_;
  StoreLE16(minor.data() + preamble_offset::kMinor, 99);  // newer minor: still readable
  FixPreambleCrc(minor);
  EXPECT_EQ(Parse(minor), ErrorCode::kOk);
  auto req = file_;
  StoreLE64(req.data() + preamble_offset::kRequiredFeatures, uint64_t{1} << 40);
  FixPreambleCrc(req);
  EXPECT_EQ(Parse(req), ErrorCode::kUnknownRequiredFeature);
  auto opt = file_;
  StoreLE64(opt.data() + preamble_offset::kOptionalFeatures, uint64_t{1} << 40);
  FixPreambleCrc(opt);
  EXPECT_EQ(Parse(opt), ErrorCode::kOk);
}

TEST_F(Corruption, PreambleAndHeaderChecksums) {
  auto f = file_;
  f[preamble_offset::kHeaderLength] ^= 1;
  EXPECT_EQ(Parse(f), ErrorCode::kPreambleChecksum);
  auto h = file_;
  h[archive_.preamble.header_offset + 20] ^= 0x10;
  EXPECT_EQ(Parse(h), ErrorCode::kHeaderChecksum);
}

TEST_F(Corruption, HeaderLocation) {
  auto past = file_;
  StoreLE64(past.data() + preamble_offset::kHeaderOffset, file_.size() + 64);
  FixPreambleCrc(past);
  EXPECT_EQ(Parse(past), ErrorCode::kHeaderOutOfBounds);
  auto big = file_;
  StoreLE64(big.data() + preamble_offset::kHeaderLength, kMaxHeaderBytes + 1);
  FixPreambleCrc(big);
  EXPECT_EQ(Parse(big), ErrorCode::kHeaderTooLarge);
  auto odd = file_;
  StoreLE64(odd.data() + preamble_offset::kHeaderOffset, archive_.preamble.header_offset - 8);
  StoreLE64(odd.data() + preamble_offset::kHeaderLength, archive_.preamble.header_length + 8);
  FixPreambleCrc(odd);
  EXPECT_EQ(Parse(odd), ErrorCode::kMisaligned);
  Limits tight;
  tight.max_header_bytes = 16;
  EXPECT_EQ(ParseArchive(ByteSpan(file_), tight).status().code(), ErrorCode::kHeaderTooLarge);
}

TEST_F(Corruption, HeaderNotAFlatBuffer) {
  auto f = file_;
  f[archive_.preamble.header_offset + 4] = 'X';  // file identifier
  FixHeaderCrc(f);
  EXPECT_EQ(Parse(f), ErrorCode::kHeaderMalformed);
  auto g = file_;
  StoreLE32(g.data() + archive_.preamble.header_offset, 0x7FFFFFF0);  // root offset
  FixHeaderCrc(g);
  EXPECT_EQ(Parse(g), ErrorCode::kHeaderMalformed);
}

// (0.6, spec 4.1, rule H8) The header region holds one zstd frame when bit 5 is set.
TEST_F(Corruption, CodedHeader) {
  const uint64_t at = archive_.preamble.header_offset;
  const std::vector<uint8_t> plain(file_.begin() + long(at),
                                   file_.begin() + long(at + archive_.preamble.header_length));
  // `header` placed as the header region, bit 5 as given, checksums fixed.
  auto with_header = [&](const std::vector<uint8_t>& header, bool coded) {
    std::vector<uint8_t> f(file_.begin(), file_.begin() + long(at));
    f.insert(f.end(), header.begin(), header.end());
    Preamble p = archive_.preamble;
    p.header_length = header.size();
    if (coded) p.required_features |= kFeatureCodedHeader;
    EncodePreamble(p, f.data());
    FixHeaderCrc(f);
    return f;
  };
  auto zstd = [](const std::vector<uint8_t>& src, bool content_size) {
    std::vector<uint8_t> out(ZSTD_compressBound(src.size()));
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size ? 1 : 0);
    out.resize(ZSTD_compress2(c, out.data(), out.size(), src.data(), src.size()));
    ZSTD_freeCCtx(c);
    return out;
  };
  const std::vector<uint8_t> frame = zstd(plain, true);
  auto ok = ParseArchive(ByteSpan(with_header(frame, true)));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->header_bytes, plain.size());
  EXPECT_EQ(ok->tensors.size(), archive_.tensors.size());
  EXPECT_EQ(Parse(with_header(plain, true)), ErrorCode::kHeaderMalformed);   // not a frame
  EXPECT_EQ(Parse(with_header(frame, false)), ErrorCode::kHeaderMalformed);  // bit 5 clear
  EXPECT_EQ(Parse(with_header(zstd(plain, false), true)), ErrorCode::kHeaderMalformed);
  std::vector<uint8_t> cut(frame.begin(), frame.end() - 3), longer = frame;
  longer.push_back(0);
  EXPECT_EQ(Parse(with_header(cut, true)), ErrorCode::kHeaderMalformed);
  EXPECT_EQ(Parse(with_header(longer, true)), ErrorCode::kHeaderMalformed);
  std::vector<uint8_t> junk = plain;
  junk[4] = 'X';  // decodes, but not to a CKZH FlatBuffer
  EXPECT_EQ(Parse(with_header(zstd(junk, true), true)), ErrorCode::kHeaderMalformed);
  Limits small;
  small.max_header_bytes = plain.size() - 1;  // the declared size is checked before decoding
  const std::vector<uint8_t> f = with_header(frame, true);
  EXPECT_EQ(ParseArchive(ByteSpan(f), small).status().code(), ErrorCode::kHeaderTooLarge);
}

// Spec 4.1: a coded header's declared size is read from the frame header alone, before the
// frame's window, dictionary id and blocks are judged (so a broken frame that is too large is
// HeaderTooLarge).
TEST(ZstdDeclaredSize, ReadsTheFrameHeaderOnly) {
  std::vector<uint8_t> src(70000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 7 / 13);
  for (size_t n : {0, 1, 255, 256, 300, 65791, 65792, 70000}) {
    for (int content_size : {0, 1}) {
      std::vector<uint8_t> out(ZSTD_compressBound(n));
      ZSTD_CCtx* c = ZSTD_createCCtx();
      ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size);
      ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 10);  // frames with a Window_Descriptor too
      out.resize(ZSTD_compress2(c, out.data(), out.size(), src.data(), n));
      ZSTD_freeCCtx(c);
      const std::optional<uint64_t> got = ZstdDeclaredSize(ByteSpan(out));
      const unsigned long long want = ZSTD_getFrameContentSize(out.data(), out.size());
      if (want == ZSTD_CONTENTSIZE_UNKNOWN) {
        EXPECT_FALSE(got.has_value()) << n;
      } else {
        ASSERT_TRUE(got.has_value()) << n;
        EXPECT_EQ(*got, want);
        EXPECT_FALSE(ZstdDeclaredSize(ByteSpan(out.data(), 5)).has_value());  // cut header
        out[4] |= 0x08;  // the reserved bit
        EXPECT_FALSE(ZstdDeclaredSize(ByteSpan(out)).has_value());
      }
    }
  }
  // A Window_Descriptor of 2^40 bytes (libzstd refuses the whole frame header), a 4-byte
  // Dictionary_ID and an 8-byte Frame_Content_Size: only the size is read.
  std::vector<uint8_t> f = {0x28, 0xB5, 0x2F, 0xFD, 0xC3, 30 << 3, 1, 2, 3, 4};
  for (int i = 0; i < 8; ++i) f.push_back(uint8_t(((uint64_t{1} << 26) + 1) >> (8 * i)));
  EXPECT_EQ(ZstdDeclaredSize(ByteSpan(f)), (uint64_t{1} << 26) + 1);
  EXPECT_EQ(ZSTD_getFrameContentSize(f.data(), f.size()), ZSTD_CONTENTSIZE_ERROR);
  f[0] = 0x29;  // not the magic
  EXPECT_FALSE(ZstdDeclaredSize(ByteSpan(f)).has_value());
}

// Spec Appendix A: a zstd stream is the smaller of zstd's own frame and a literals-only frame
// (no matches). A float's exponent plane, nearly independent bytes, gets the literals-only one;
// a plane of repeated rows keeps the frame with matches.
TEST(Writer, KeepsTheSmallerOfTheMatchedAndTheLiteralsOnlyFrame) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 0.02f);
  const size_t n = 1 << 16;
  TestTensor iid = MakeTensor("iid", DType::kF32, {n}, 1);
  TestTensor rows = MakeTensor("rows", DType::kF32, {n}, 2);
  for (size_t i = 0; i < n; ++i) {
    const float v = normal(rng), w = (i % 1000 < 500 ? 1.f : 3.f) * float(i % 1000 + 1);
    std::memcpy(iid.bytes.data() + 4 * i, &v, 4);
    std::memcpy(rows.bytes.data() + 4 * i, &w, 4);  // exponents repeat every 1000 values
  }
  EncodeOptions o;
  o.force_byte_planes = true;
  o.chunk_bytes = 4 * n;
  const auto file = WriteToMemory({iid, rows}, o);
  auto a = ParseArchive(ByteSpan(file));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ZSTD_CCtx* c = ZSTD_createCCtx();
  auto frame_size = [&](const std::vector<uint8_t>& plane, bool literals_only) {
    std::vector<uint8_t> out(ZSTD_compressBound(plane.size()));
    ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, EncodeOptions{}.zstd_level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    return literals_only ? ZSTD_compressSequences(c, out.data(), out.size(), nullptr, 0,
                                                  plane.data(), plane.size())
                         : ZSTD_compress2(c, out.data(), out.size(), plane.data(), plane.size());
  };
  for (size_t t = 0; t < 2; ++t) {
    const TestTensor& x = t == 0 ? iid : rows;
    std::vector<uint8_t> high(n);  // byte plane 3: the sign and the exponent's top 7 bits
    for (size_t i = 0; i < n; ++i) high[i] = x.bytes[4 * i + 3];
    const size_t matched = frame_size(high, false), literals = frame_size(high, true);
    ASSERT_FALSE(ZSTD_isError(matched) || ZSTD_isError(literals));
    EXPECT_LT(t == 0 ? literals : matched, t == 0 ? matched : literals) << t;
    ASSERT_EQ(a->tensors[t].chunks.size(), 1u);
    const uint8_t* entry = file.data() + a->tensors[t].chunks[0].offset + 3 * kStreamEntryBytes;
    EXPECT_EQ(entry[0], uint8_t(StreamCodec::kZstd)) << t;
    EXPECT_EQ(LoadLE32(entry + 1), std::min(matched, literals)) << t;
    EXPECT_EQ(DecodeAll(*a, t), x.bytes);
  }
  ZSTD_freeCCtx(c);
}

TEST(Writer, CodesTheHeaderWhenThatIsSmaller) {
  std::vector<TestTensor> many;
  for (int i = 0; i < 40; ++i)
    many.push_back(MakeTensor("layer." + std::to_string(i) + ".weight", DType::kF32, {8}, i));
  for (bool code : {true, false}) {
    EncodeOptions o;
    o.code_header = code;
    const std::vector<uint8_t> file = WriteToMemory(many, o);
    auto a = ParseArchive(ByteSpan(file));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ((a->preamble.required_features & kFeatureCodedHeader) != 0, code);
    if (code) {
      EXPECT_LT(a->preamble.header_length, a->header_bytes);
    } else {
      EXPECT_EQ(a->preamble.header_length, a->header_bytes);
    }
  }
}

TEST_F(Corruption, EnumsAndFixedSizesOutOfRange) {
  Archive a = archive_;
  a.tensors[0].dtype = static_cast<DType>(77);
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kFieldOutOfRange);
  a = archive_;
  a.tensors[0].role = static_cast<Role>(4);
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kFieldOutOfRange);
  a = archive_;
  a.link = LinkInfo{};
  a.link->depth = 1;
  a.preamble.required_features = kFeatureReferenceChain;
  a.tensors[0].predictor = static_cast<Predictor>(3);
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kFieldOutOfRange);
  a = archive_;
  a.files.push_back({"x.safetensors", static_cast<SourceFormat>(9), {}, {0, 1}});
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kFieldOutOfRange);
  a = archive_;
  a.files.push_back({"x.safetensors", SourceFormat::kSafetensors, {}, {0, 7}});
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kFieldOutOfRange);
  a = archive_;
  a.files.push_back({"x.safetensors", SourceFormat::kSafetensors, {}, {0}});
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kFieldOutOfRange);  // tensor 1 in no file
}

TEST_F(Corruption, Names) {
  Archive a = archive_;
  a.tensors[1].name = "a";
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kDuplicateName);
  a = archive_;
  a.tensors[1].name = std::string("\xc0\x80", 2);  // overlong NUL
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadName);
  a = archive_;
  a.files.push_back({"../escape", SourceFormat::kRaw, {1, 2}, {}});
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadName);
  a = archive_;
  a.metadata = {{"k", int64_t{1}}, {"k", int64_t{2}}};
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kDuplicateName);
}

TEST_F(Corruption, ShapeOverflow) {
  Archive a = archive_;
  a.tensors[0].shape = {uint64_t{1} << 40, uint64_t{1} << 40};
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kShapeOverflow);
  a.tensors[0].shape.assign(33, 1);
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kShapeOverflow);
}

TEST_F(Corruption, ChunkRanges) {
  Archive a = archive_;
  a.tensors[0].chunks[0].offset = a.preamble.header_offset + 4096;
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kRangeOutOfFile);
  a = archive_;
  a.tensors[0].chunks[1].offset = a.tensors[0].chunks[0].offset;
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kRangeOverlap);
  a = archive_;
  a.tensors[0].chunks[1].offset += 64;  // leaves a gap larger than padding
  a.tensors[0].chunks[1].stored_length = 8;
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kUnexplainedBytes);
  a = archive_;
  a.tensors[0].chunks[0].offset += 1;
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kMisaligned);
  a = archive_;
  a.tensors[0].chunks[0].raw_length -= 4;
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kChunkLayout);
  a = archive_;
  a.tensors[0].chunks[0].raw_length -= 1;  // not whole elements
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kChunkLayout);
}

TEST_F(Corruption, TrailingBytesAndPadding) {
  auto f = file_;
  f.insert(f.end(), 64, 0);
  EXPECT_EQ(Parse(f), ErrorCode::kUnexplainedBytes);
  // The first chunk of "a" is a stream directory plus 512 stored bytes; padding follows it.
  const ChunkInfo& c = archive_.tensors[0].chunks[0];
  auto p = file_;
  p[c.offset + c.stored_length] = 1;
  EXPECT_EQ(Parse(p), ErrorCode::kNonzeroPadding);
}

TEST_F(Corruption, LinkRules) {
  Archive a = archive_;
  a.link = LinkInfo{};
  a.link->depth = 0;
  a.preamble.required_features = kFeatureReferenceChain;
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadLink);
  a.link->depth = 1;
  a.preamble.required_features = 0;  // link without its feature bit
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadLink);
  a = archive_;
  a.tensors[0].predictor = Predictor::kXorRef;  // predicted, but no link
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadLink);
}

TEST_F(Corruption, Owners) {
  Archive a = archive_;
  a.tensors[1].role = Role::kMoment1;
  a.tensors[1].owner = 0;  // shape differs
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadOwner);
  a.tensors[1].owner = 1;  // itself
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadOwner);
  a.tensors[1].owner = 5;
  EXPECT_EQ(ParseRebuilt(a), ErrorCode::kBadOwner);
}

TEST_F(Corruption, PayloadBitFlipIsCaughtByTheChunkChecksum) {
  const ChunkInfo& c = archive_.tensors[0].chunks[1];
  auto f = file_;
  f[c.offset + 100] ^= 0x20;  // inside a stored stream
  auto a = ParseArchive(ByteSpan(f));
  ASSERT_TRUE(a.ok());  // the header is intact
  std::vector<uint8_t> out(c.raw_length);
  ChunkDecoder d;
  EXPECT_EQ(d.Decode(*a, 0, 1, {}, MutableByteSpan(out)).code(), ErrorCode::kChunkChecksum);
  auto g = file_;
  g[c.offset] = 7;  // stream codec
  auto b = ParseArchive(ByteSpan(g));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(d.Decode(*b, 0, 1, {}, MutableByteSpan(out)).code(), ErrorCode::kChunkMalformed);
  auto h = file_;
  StoreLE32(h.data() + c.offset + 1, 100);  // stream length no longer adds up
  auto e = ParseArchive(ByteSpan(h));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(d.Decode(*e, 0, 1, {}, MutableByteSpan(out)).code(), ErrorCode::kChunkMalformed);
  auto z = file_;
  z[c.offset] = uint8_t(StreamCodec::kZstd);  // stored bytes are no zstd frame
  auto y = ParseArchive(ByteSpan(z));
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(d.Decode(*y, 0, 1, {}, MutableByteSpan(out)).code(), ErrorCode::kChunkDecodeFailed);
}

}  // namespace
}  // namespace ckz::testing
