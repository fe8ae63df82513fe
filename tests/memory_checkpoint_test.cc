// Checkpoints in memory, the Python binding's path: LoadCheckpointFromMemory reads what
// LoadCheckpoint reads from a file; a chain whose inputs are in-memory snapshots, written with
// decode_into_input against in-memory parents (ReferenceView), is the chain `ckz compress`
// writes from files; RestoreFileToMemory rebuilds what RestoreCheckpoint writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "ckz/checkpoint.h"
#include "ckz/io.h"
#include "ckz/torch.h"
#include "source_assembly.h"
#include "test_util.h"

namespace ckz::testing {
namespace {

namespace fs = std::filesystem;

// A state dict of a weight with both Adam moments (roles from names) and a bias, `steps`
// times, each step a little moved from the previous one.
std::vector<std::vector<TestTensor>> AdamHistory(int steps) {
  std::vector<TestTensor> cur = {MakeTensor("w", DType::kF32, {300, 40}, 1),
                                 MakeTensor("w.exp_avg", DType::kF32, {300, 40}, 2),
                                 MakeTensor("w.exp_avg_sq", DType::kF32, {300, 40}, 3),
                                 MakeTensor("b", DType::kF32, {40}, 4),
                                 MakeTensor("n", DType::kI64, {}, 5)};
  for (uint8_t& byte : cur[2].bytes) byte &= 0x7f;  // v >= 0 (sign bit of each f32 cleared)
  std::vector<std::vector<TestTensor>> out;
  for (int s = 0; s < steps; ++s) {
    out.push_back(cur);
    for (TestTensor& t : cur)
      if (t.spec.dtype == DType::kF32) t.bytes = PerturbF32(t.bytes, uint32_t(10 * s + 7), 0.05f);
  }
  return out;
}

// The bytes torch.save writes for an OrderedDict of `tensors`.
std::vector<uint8_t> TorchFileBytes(const std::vector<TestTensor>& tensors) {
  std::vector<TorchTensorSpec> specs;
  std::vector<uint32_t> indices;
  for (const TestTensor& t : tensors) {
    specs.push_back({t.spec.name, t.spec.dtype, t.spec.shape});
    indices.push_back(uint32_t(indices.size()));
  }
  auto layout = BuildTorchStateDictLayout("x.pt", "x", specs, indices);
  EXPECT_TRUE(layout.ok()) << layout.status().ToString();
  return AssembleSourceFile(*layout, [&](size_t k) -> const std::vector<uint8_t>& {
    return tensors[layout->tensors[k]].bytes;
  });
}

std::vector<uint8_t> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

class MemoryCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ckz_memory_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `input` to `path`, a link against `reference` (with `link`) when given.
  void Write(const InputCheckpoint& input, const fs::path& path, ReferenceSource* reference,
             const std::optional<LinkInfo>& link, const WriteOptions& options,
             DecodedCheckpoint* decoded, ContentId* id) {
    auto sink = AtomicFileSink::Create(path.string(), true);
    ASSERT_TRUE(sink.ok());
    Writer writer(std::move(sink).value(), EncodeOptions{});
    if (link) writer.SetLink(*link);
    ASSERT_TRUE(WriteCheckpoint(input, link ? reference : nullptr, &writer, options, decoded).ok());
    auto written = writer.Finish();
    ASSERT_TRUE(written.ok()) << written.status().ToString();
    *id = *written;
  }

  fs::path dir_;
};

TEST_F(MemoryCheckpoint, FromMemoryReadsWhatTheFileReaderReads) {
  const std::vector<uint8_t> bytes = TorchFileBytes(AdamHistory(1)[0]);
  std::ofstream(dir_ / "x.pt", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
  auto from_file = LoadCheckpoint((dir_ / "x.pt").string());
  auto from_memory = LoadCheckpointFromMemory(ByteSpan(bytes), "x.pt");
  ASSERT_TRUE(from_file.ok() && from_memory.ok()) << from_memory.status().ToString();
  EXPECT_EQ(from_memory->kind, from_file->kind);
  EXPECT_TRUE(from_memory->mappings.empty());
  ASSERT_EQ(from_memory->tensors.size(), from_file->tensors.size());
  for (size_t i = 0; i < from_file->tensors.size(); ++i) {
    const InputTensor &a = from_file->tensors[i], &b = from_memory->tensors[i];
    EXPECT_EQ(b.spec.name, a.spec.name);
    EXPECT_EQ(b.spec.shape, a.spec.shape);
    EXPECT_EQ(b.spec.role, a.spec.role);
    EXPECT_EQ(b.spec.owner, a.spec.owner);
    EXPECT_EQ(b.data.data, bytes.data() + (a.data.data - from_file->mappings[0].bytes().data));
  }
  EXPECT_EQ(from_memory->tensors[1].spec.role, Role::kMoment1);  // "w.exp_avg" of "w"
  ASSERT_EQ(from_memory->files.size(), 1u);
  EXPECT_EQ(from_memory->files[0].path, "x.pt");
  EXPECT_EQ(from_memory->files[0].prolog, from_file->files[0].prolog);
  EXPECT_EQ(from_memory->files[0].splits, from_file->files[0].splits);

  auto refused = LoadCheckpointFromMemory(ByteSpan(bytes.data(), 100), "x.pt");
  EXPECT_EQ(refused.status().code(), ErrorCode::kZipMalformed);
}

// A lossy chain from in-memory snapshots, each decoded over its own input and kept as the
// next link's parent: byte for byte the chain written from files the CLI's way.
TEST_F(MemoryCheckpoint, SnapshotChainIsTheFileChain) {
  const auto history = AdamHistory(4);
  WriteOptions lossy;
  lossy.excp = ExcpOptions{};
  WriteOptions in_place = lossy;
  in_place.decode_into_input = true;

  DecodedCheckpoint from_files, from_memory;
  std::vector<uint8_t> parent_snapshot;  // the memory `from_memory` views
  std::optional<LinkInfo> link;
  size_t shrunk = 0;
  for (size_t s = 0; s < history.size(); ++s) {
    const std::vector<uint8_t> bytes = TorchFileBytes(history[s]);
    const fs::path pt = dir_ / ("step_" + std::to_string(s) + ".pt");
    std::ofstream(pt, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
    auto file_input = LoadCheckpoint(pt.string());
    ASSERT_TRUE(file_input.ok());
    DecodedCheckpoint next_files, next_memory;
    ContentId a, b;
    Write(*file_input, dir_ / ("a_" + std::to_string(s) + ".ckz"), &from_files, link, lossy,
          &next_files, &a);
    next_files.KeepAlive(std::move(file_input).value());

    std::vector<uint8_t> snapshot = bytes;
    auto memory_input = LoadCheckpointFromMemory(ByteSpan(snapshot), "step_" + std::to_string(s) + ".pt");
    ASSERT_TRUE(memory_input.ok());
    Write(*memory_input, dir_ / ("b_" + std::to_string(s) + ".ckz"), &from_memory, link,
          in_place, &next_memory, &b);
    EXPECT_EQ(a, b);
    EXPECT_EQ(ReadFile(dir_ / ("a_" + std::to_string(s) + ".ckz")),
              ReadFile(dir_ / ("b_" + std::to_string(s) + ".ckz")))
        << "step " << s;

    // What both keep as the next parent: the same decoded bytes; the snapshot holds them.
    for (const InputTensor& t : memory_input->tensors) {
      TensorInfo info;
      info.name = t.spec.name;
      info.dtype = t.spec.dtype;
      info.shape = t.spec.shape;
      std::vector<uint8_t> x(t.data.size), y(t.data.size);
      ASSERT_TRUE(next_files.ReadReference(info, 0, MutableByteSpan(x)).ok());
      ASSERT_TRUE(next_memory.ReadReference(info, 0, MutableByteSpan(y)).ok());
      EXPECT_EQ(x, y) << t.spec.name;
      const std::optional<ByteSpan> view = next_memory.ReferenceView(info);
      ASSERT_TRUE(view && view->data == t.data.data) << t.spec.name;
      if (std::vector<uint8_t>(t.data.begin(), t.data.end()) !=
          std::vector<uint8_t>(bytes.begin() + (t.data.data - snapshot.data()),
                               bytes.begin() + (t.data.data - snapshot.data()) + long(t.data.size)))
        ++shrunk;  // decoded over the input: a lossy tensor
    }
    TensorInfo other_shape;
    other_shape.name = "w";
    other_shape.dtype = DType::kF32;
    other_shape.shape = {40, 300};
    EXPECT_FALSE(next_memory.ReferenceView(other_shape));

    from_files = std::move(next_files);
    from_memory = std::move(next_memory);
    parent_snapshot = std::move(snapshot);
    link = LinkInfo{a, std::nullopt, "a_" + std::to_string(s) + ".ckz", uint32_t(s + 1)};
  }
  // w and its two moments in each of the three links; b has no Adam v, so it stays lossless.
  EXPECT_EQ(shrunk, 3u * 3u);
}

TEST_F(MemoryCheckpoint, RestoreToMemoryIsTheRestoredFile) {
  const auto history = AdamHistory(2);
  std::vector<ContentId> ids(2);
  DecodedCheckpoint parent;
  std::vector<std::vector<uint8_t>> snapshots;
  for (size_t s = 0; s < 2; ++s) {
    snapshots.push_back(TorchFileBytes(history[s]));
    auto input = LoadCheckpointFromMemory(ByteSpan(snapshots.back()), "x.pt");
    ASSERT_TRUE(input.ok());
    WriteOptions lossy;
    lossy.excp = ExcpOptions{};
    DecodedCheckpoint next;
    std::optional<LinkInfo> link;
    if (s) link = LinkInfo{ids[0], std::nullopt, "k.ckz", 1};
    Write(*input, dir_ / (s ? "l.ckz" : "k.ckz"), &parent, link, lossy, &next, &ids[s]);
    parent = std::move(next);
  }
  auto reader = ChainReader::Open((dir_ / "l.ckz").string());
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  ASSERT_TRUE(RestoreCheckpoint(**reader, (dir_ / "l.pt").string(), RestoreOptions{}).ok());
  const std::vector<uint8_t> file = ReadFile(dir_ / "l.pt");
  ASSERT_EQ(RestoredFileSize(**reader, 0), file.size());

  std::vector<uint8_t> out(file.size());
  ASSERT_TRUE(RestoreFileToMemory(**reader, 0, MutableByteSpan(out), 2).ok());
  EXPECT_EQ(out, file);

  // The structure alone: every prolog byte in place, tensors' ranges untouched.
  std::vector<uint8_t> prolog_only(file.size(), 0xAB);
  ASSERT_TRUE(RestoreProlog(**reader, 0, MutableByteSpan(prolog_only)).ok());
  const std::vector<uint64_t> offsets = RestoredTensorOffsets(**reader, 0);
  const Archive& a = (*reader)->archive();
  ASSERT_EQ(offsets.size(), a.files[0].tensors.size());
  std::vector<bool> in_tensor(file.size(), false);
  for (size_t i = 0; i < offsets.size(); ++i) {
    const TensorInfo& t = a.tensors[a.files[0].tensors[i]];
    std::vector<uint8_t> decoded(t.byte_length);
    ASSERT_TRUE((*reader)->ReadTensor(a.files[0].tensors[i], 0, MutableByteSpan(decoded)).ok());
    EXPECT_TRUE(std::equal(decoded.begin(), decoded.end(), file.begin() + long(offsets[i])));
    for (uint64_t k = 0; k < t.byte_length; ++k) in_tensor[offsets[i] + k] = true;
  }
  size_t differing_outside = 0;
  for (size_t k = 0; k < file.size(); ++k) {
    if (in_tensor[k]) EXPECT_EQ(prolog_only[k], 0xAB);
    else if (prolog_only[k] != file[k]) ++differing_outside;  // only the zip CRC-32 fields
  }
  EXPECT_LE(differing_outside, 4u * a.files[0].crc32_patches.size());

  std::vector<uint8_t> wrong(file.size() + 1);
  EXPECT_EQ(RestoreFileToMemory(**reader, 0, MutableByteSpan(wrong), 1).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(RestoreProlog(**reader, 1, MutableByteSpan(out)).code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace ckz::testing
