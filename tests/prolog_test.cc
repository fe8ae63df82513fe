// Coded prologs (format 0.5, spec 8.4): the encoder's choice, the decoder's checks, and a chain
// on disk whose link codes its prologs against the parent's and restores every file exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "ckz/safetensors.h"
#include "ckz/writer.h"
#include "common/crc32c.h"
#include "compress/prolog_encoder.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// A Trainer-style log: compressible, and each step's version mostly repeats the previous one.
std::string TrainerState(int steps) {
  std::string s = "{\"log_history\": [";
  for (int i = 1; i <= steps; ++i)
    s += "{\"step\": " + std::to_string(i * 10) + ", \"loss\": 1." + std::to_string(1000 - i) +
         ", \"learning_rate\": 0.0003},";
  return s + "]}";
}

SourceFileInfo RawFile(const std::string& path, const std::string& content) {
  SourceFileInfo f;
  f.path = path;
  f.format = SourceFormat::kRaw;
  f.prolog = Bytes(content);
  return f;
}

TEST(PrologEncoder, PicksTheSmallestCoding) {
  // Incompressible and short: stays stored.
  SourceFileInfo tiny = RawFile("a", std::string("\x01\x7f\x33", 3));
  ASSERT_TRUE(EncodeProlog(&tiny, {}, std::nullopt).ok());
  EXPECT_EQ(tiny.prolog_codec, PrologCodec::kStored);
  EXPECT_TRUE(tiny.prolog_coded.empty());

  // Compressible: zstd, with length and CRC of the prolog.
  SourceFileInfo log = RawFile("trainer_state.json", TrainerState(40));
  ASSERT_TRUE(EncodeProlog(&log, {}, std::nullopt).ok());
  EXPECT_EQ(log.prolog_codec, PrologCodec::kZstd);
  EXPECT_LT(log.prolog_coded.size(), log.prolog.size() / 3);
  EXPECT_EQ(log.prolog_length, log.prolog.size());
  EXPECT_EQ(log.prolog_crc32c, Crc32c(log.prolog.data(), log.prolog.size()));

  // With the previous step's log as history the frame is far smaller still.
  const std::vector<uint8_t> previous = Bytes(TrainerState(39));
  SourceFileInfo linked = RawFile("trainer_state.json", TrainerState(40));
  ASSERT_TRUE(EncodeProlog(&linked, ByteSpan(previous), std::nullopt).ok());
  EXPECT_EQ(linked.prolog_codec, PrologCodec::kZstdParent);
  EXPECT_LT(linked.prolog_coded.size(), log.prolog_coded.size() / 4);
}

TEST(PrologEncoder, ForcedCodings) {
  const std::vector<uint8_t> previous = Bytes(TrainerState(9));
  for (PrologCodec codec : {PrologCodec::kStored, PrologCodec::kZstd, PrologCodec::kZstdParent}) {
    SourceFileInfo f = RawFile("x", "ab");  // coding never pays here: forced anyway
    ASSERT_TRUE(EncodeProlog(&f, ByteSpan(previous), codec).ok());
    EXPECT_EQ(f.prolog_codec, codec);
  }
  SourceFileInfo f = RawFile("x", "ab");
  EXPECT_EQ(EncodeProlog(&f, {}, PrologCodec::kZstdParent).code(), ErrorCode::kInvalidArgument);
  SourceFileInfo empty = RawFile("x", "");
  EXPECT_EQ(EncodeProlog(&empty, {}, PrologCodec::kZstd).code(), ErrorCode::kInvalidArgument);
}

TEST(PrologDecoder, RoundTripsAndChecksLengthAndCrc) {
  const std::vector<uint8_t> previous = Bytes(TrainerState(19));
  for (PrologCodec codec : {PrologCodec::kZstd, PrologCodec::kZstdParent}) {
    SourceFileInfo f = RawFile("trainer_state.json", TrainerState(20));
    const std::vector<uint8_t> original = f.prolog;
    ASSERT_TRUE(EncodeProlog(&f, ByteSpan(previous), codec).ok());

    SourceFileInfo parsed = f;  // what ParseArchive gives: the frame, no prolog yet
    parsed.prolog.clear();
    EXPECT_FALSE(parsed.PrologDecoded());
    ASSERT_TRUE(DecodeProlog(&parsed, ByteSpan(previous)).ok());
    EXPECT_EQ(parsed.prolog, original);

    SourceFileInfo bad_crc = f;
    bad_crc.prolog.clear();
    bad_crc.prolog_crc32c ^= 0x100;
    EXPECT_EQ(DecodeProlog(&bad_crc, ByteSpan(previous)).code(), ErrorCode::kPrologDecodeFailed);
    EXPECT_TRUE(bad_crc.prolog.empty());  // nothing half-decoded is left behind

    SourceFileInfo bad_length = f;
    bad_length.prolog.clear();
    bad_length.prolog_length -= 1;
    EXPECT_EQ(DecodeProlog(&bad_length, ByteSpan(previous)).code(),
              ErrorCode::kPrologDecodeFailed);
  }
  // A ZstdParent frame decoded against another history fails (zstd error or CRC).
  SourceFileInfo f = RawFile("trainer_state.json", TrainerState(20));
  ASSERT_TRUE(EncodeProlog(&f, ByteSpan(previous), PrologCodec::kZstdParent).ok());
  f.prolog.clear();
  const std::vector<uint8_t> other = Bytes(TrainerState(3) + std::string(500, 'q'));
  EXPECT_EQ(DecodeProlog(&f, ByteSpan(other)).code(), ErrorCode::kPrologDecodeFailed);
}

TEST(PrologWriter, ClearsCrc32PatchBytesOnly) {
  SourceFileInfo f = RawFile("m.pt", "0123456789abcdef");
  f.format = SourceFormat::kTorchZip;
  f.crc32_patches = {{2, 0}, {10, 0}, {14, 0}};  // the last one leaves no 4 bytes: left alone
  ClearCrc32PatchBytes(&f);
  EXPECT_EQ(f.prolog, Bytes(std::string("01\0\0\0\0" "6789\0\0\0\0ef", 16)));
}

// A keyframe and a link, each with a safetensors file and a Trainer log; the link lists them
// in the other order, so its prolog_parent_file values cross.
TEST(PrologChain, LinkCodesAgainstTheParentsPrologsAndRestoresExactly) {
  const std::string dir = FreshDir("prolog_chain");
  const TestTensor w0 = MakeTensor("w", DType::kF32, {64, 8}, 7);
  TestTensor w1 = w0;
  w1.bytes = PerturbF32(w0.bytes, 8);
  auto safetensors = [](const TestTensor& t) {
    SourceFileInfo f;
    f.path = "model.safetensors";
    f.format = SourceFormat::kSafetensors;
    std::vector<SafetensorsEntry> entries = {{t.spec.name, t.spec.dtype, t.spec.shape, 0, 0}};
    f.prolog = BuildSafetensorsProlog(entries, {{"step", "1"}});
    f.tensors = {0};
    return f;
  };

  const std::string parent_path = dir + "/step1.ckz", link_path = dir + "/step2.ckz";
  {
    auto sink = AtomicFileSink::Create(parent_path, true);
    ASSERT_TRUE(sink.ok());
    Writer w(std::move(sink).value(), {});
    w.AddSourceFile(safetensors(w0));
    w.AddSourceFile(RawFile("trainer_state.json", TrainerState(30)));
    ASSERT_TRUE(w.AddTensor(w0.spec, ByteSpan(w0.bytes)).ok());
    ASSERT_TRUE(w.Finish().ok());
  }
  auto parent = ChainReader::Open(parent_path);
  ASSERT_TRUE(parent.ok()) << parent.status().ToString();
  const std::vector<SourceFileInfo>& pf = (*parent)->archive().files;
  ASSERT_EQ(pf.size(), 2u);
  EXPECT_EQ(pf[1].prolog_codec, PrologCodec::kZstd);
  EXPECT_EQ(pf[1].prolog, Bytes(TrainerState(30)));  // decoded by Open
  {
    auto sink = AtomicFileSink::Create(link_path, true);
    ASSERT_TRUE(sink.ok());
    Writer w(std::move(sink).value(), {});
    w.SetLink(LinkTo(**parent));
    w.AddSourceFile(RawFile("trainer_state.json", TrainerState(31)), ByteSpan(pf[1].prolog), 1);
    w.AddSourceFile(safetensors(w1), ByteSpan(pf[0].prolog), 0);
    ASSERT_TRUE(w.AddTensor(w1.spec, ByteSpan(w1.bytes), ByteSpan(w0.bytes)).ok());
    ASSERT_TRUE(w.Finish().ok());
  }
  auto link = ChainReader::Open(link_path);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  const std::vector<SourceFileInfo>& lf = (*link)->archive().files;
  EXPECT_EQ(lf[0].prolog_codec, PrologCodec::kZstdParent);
  EXPECT_EQ(lf[0].prolog_parent_file, 1u);
  EXPECT_LT(lf[0].prolog_coded.size(), 40u);  // one new log line against the parent's log
  EXPECT_EQ(lf[0].prolog, Bytes(TrainerState(31)));
  EXPECT_EQ(lf[1].prolog_parent_file, 0u);

  const std::string out = dir + "/restored";
  ASSERT_TRUE(RestoreFilesInto(**link, out, "x.safetensors", {}).ok());
  std::ifstream log(out + "/trainer_state.json", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(log), {}), TrainerState(31));
  std::vector<uint8_t> expected = safetensors(w1).prolog;
  expected.insert(expected.end(), w1.bytes.begin(), w1.bytes.end());
  std::ifstream model(out + "/model.safetensors", std::ios::binary);
  EXPECT_EQ(std::vector<uint8_t>(std::istreambuf_iterator<char>(model), {}), expected);

  // Without its link the writer refuses a ZstdParent prolog.
  Writer orphan(std::make_unique<MemorySink>(), {});
  orphan.AddSourceFile(RawFile("trainer_state.json", TrainerState(31)), ByteSpan(pf[1].prolog), 1);
  EXPECT_EQ(orphan.Finish().status().code(), ErrorCode::kInvalidArgument);
  fs::remove_all(dir);
}

// Spec 8: paths that clash as files (one a folder of another) fail the restore and leave
// nothing behind.
TEST(RestoreFiles, PathsThatClashLeaveNoFileBehind) {
  const std::string dir = FreshDir("path_clash");
  const std::string path = dir + "/clash.ckz";
  {
    auto sink = AtomicFileSink::Create(path, true);
    ASSERT_TRUE(sink.ok());
    Writer w(std::move(sink).value(), {});
    w.AddSourceFile(RawFile("config.json", "{}"));
    w.AddSourceFile(RawFile("notes.txt", "a file"));
    w.AddSourceFile(RawFile("notes.txt/inner", "and a folder"));
    ASSERT_TRUE(w.Finish().ok());
  }
  auto reader = ChainReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const std::string out = dir + "/out";
  EXPECT_EQ(RestoreFilesInto(**reader, out, "x.safetensors", {}).code(), ErrorCode::kIoError);
  EXPECT_FALSE(fs::exists(out + "/config.json"));
  EXPECT_FALSE(fs::exists(out + "/notes.txt"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ckz::testing
