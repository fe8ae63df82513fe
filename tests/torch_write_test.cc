// BuildTorchStateDictLayout: the layout of a torch.save file, checked three ways: its structure
// here (splits, CRC patches, 64-byte alignment, zip64 fields), real PyTorch loading the file
// assembled from it (tests/torch/check_torch_load.py), and a byte-for-byte comparison with
// the file torch.save writes for the same OrderedDict. The PyTorch parts are skipped when
// /usr/bin/python3 cannot import torch.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ckz/checkpoint.h"
#include "ckz/io.h"
#include "ckz/json.h"
#include "ckz/torch.h"
#include "ckz/writer.h"
#include "common/bytes.h"
#include "format/rules.h"
#include "source_assembly.h"
#include "test_util.h"

namespace ckz {
namespace {

using testing::AssembleSourceFile;

using testing::FreshDir;
using testing::RandomTensorBytes;

const char kPython[] = "/usr/bin/python3";

std::string Script() {
  return (std::filesystem::path(CKZ_TESTS_DIR) / "torch" / "check_torch_load.py")
      .string();
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command; returns its exit status and (in *output) its stdout and stderr.
int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  size_t n;
  output->clear();
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output->append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool TorchAvailable() {
  static const bool available = [] {
    std::string out;
    return RunCommand(std::string(kPython) + " -c 'import torch'", &out) == 0;
  }();
  return available;
}

#define SKIP_WITHOUT_TORCH() \
  if (!TorchAvailable()) GTEST_SKIP() << kPython << " cannot import torch"

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

struct Tensor {
  TorchTensorSpec spec;
  std::vector<uint8_t> bytes;
};

uint64_t Elements(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

Tensor Make(const std::string& name, DType dtype, std::vector<uint64_t> shape, uint32_t seed) {
  Tensor t;
  t.spec = {name, dtype, std::move(shape)};
  t.bytes = RandomTensorBytes(dtype, Elements(t.spec.shape), seed);
  if (dtype == DType::kF64 || dtype == DType::kF32) {
    // Random bit patterns too (NaN payloads, denormals): bytes must come back verbatim.
    for (size_t i = 0; i < t.bytes.size(); i += 7) t.bytes[i] = uint8_t(seed + i * 13);
  }
  return t;
}

std::vector<TorchTensorSpec> Specs(const std::vector<Tensor>& tensors) {
  std::vector<TorchTensorSpec> specs;
  for (const Tensor& t : tensors) specs.push_back(t.spec);
  return specs;
}

// Indices 1000 + k: the layout must carry them, not positions.
std::vector<uint32_t> Indices(size_t n) {
  std::vector<uint32_t> indices;
  for (size_t i = 0; i < n; ++i) indices.push_back(uint32_t(1000 + i));
  return indices;
}

// The file for `tensors`: the k-th tensor of the layout is tensors[layout.tensors[k] - 1000].
std::vector<uint8_t> AssembleFile(const SourceFileInfo& f, const std::vector<Tensor>& tensors) {
  return AssembleSourceFile(f, [&](size_t k) -> const std::vector<uint8_t>& {
    return tensors[f.tensors[k] - 1000].bytes;
  });
}

const char* DTypeJson(DType d) { return DTypeName(d); }  // F32, BF16, BOOL, ...

std::string Hex(const std::vector<uint8_t>& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}


std::string ExpectedJson(const std::vector<Tensor>& tensors, const std::string& archive) {
  std::ostringstream j;
  j << "{\"archive_name\": " << JsonQuote(archive) << ", \"tensors\": [";
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    j << (i ? ",\n" : "\n") << "{\"name\": " << JsonQuote(t.spec.name) << ", \"dtype\": \""
      << DTypeJson(t.spec.dtype) << "\", \"shape\": [";
    for (size_t d = 0; d < t.spec.shape.size(); ++d) j << (d ? ", " : "") << t.spec.shape[d];
    j << "], \"hex\": \"" << Hex(t.bytes) << "\"}";
  }
  j << "]}\n";
  return j.str();
}

// Where two files first differ, with some context.
std::string FirstDifference(const std::vector<uint8_t>& ours, const std::vector<uint8_t>& theirs) {
  size_t i = 0;
  while (i < ours.size() && i < theirs.size() && ours[i] == theirs[i]) ++i;
  if (i == ours.size() && i == theirs.size()) return "identical";
  std::ostringstream s;
  s << "sizes " << ours.size() << " (ours) and " << theirs.size() << " (torch.save); first "
    << "difference at byte " << i << ":";
  auto dump = [&](const char* who, const std::vector<uint8_t>& b) {
    s << "\n  " << who << ":";
    for (size_t k = i < 16 ? 0 : i - 16; k < b.size() && k < i + 32; ++k) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%02x", b[k]);
      s << (k == i ? " [" : " ") << buf << (k == i ? "]" : "");
    }
  };
  dump("ours ", ours);
  dump("torch", theirs);
  return s.str();
}

// Structure every layout must have, whatever the tensors.
void CheckStructure(const SourceFileInfo& f, const std::vector<TorchTensorSpec>& specs,
                    const std::vector<uint32_t>& indices) {
  EXPECT_EQ(f.format, SourceFormat::kTorchZip);
  ASSERT_EQ(f.tensors.size(), specs.size());
  ASSERT_EQ(f.splits.size(), specs.size());
  EXPECT_TRUE(CheckSourceFilePieces(f.prolog.size(), f.tensors.size(), f.splits, f.crc32_patches, "f")
                  .ok());
  // Storage keys are the positions in `specs`; the zip holds them sorted as strings.
  std::vector<std::string> keys;
  for (size_t i = 0; i < specs.size(); ++i) keys.push_back(std::to_string(i));
  std::sort(keys.begin(), keys.end());
  std::vector<uint64_t> lengths;
  for (size_t k = 0; k < keys.size(); ++k) {
    const size_t i = std::stoul(keys[k]);
    EXPECT_EQ(f.tensors[k], indices[i]) << k;
    uint64_t n, bytes;
    ASSERT_TRUE(ShapeBytes(specs[i].shape, specs[i].dtype, "t", &n, &bytes).ok());
    lengths.push_back(bytes);
  }
  // Each storage's data starts at a multiple of 64 in the file, right after its local header.
  uint64_t before = 0;
  for (size_t k = 0; k < f.splits.size(); ++k) {
    EXPECT_EQ((f.splits[k] + before) % 64, 0u) << "storage " << k;
    before += lengths[k];
  }
  // Two patches per storage, each holding 0 in the prolog: the data descriptor right after the
  // data (an empty storage has none, and its local header holds its CRC instead), and the
  // central directory.
  std::map<uint32_t, std::vector<uint64_t>> patches;
  for (const Crc32Patch& p : f.crc32_patches) {
    patches[p.tensor].push_back(p.prolog_offset);
    EXPECT_EQ(LoadLE32(f.prolog.data() + p.prolog_offset), 0u);
  }
  for (size_t k = 0; k < lengths.size(); ++k) {
    const std::vector<uint64_t>& at = patches[uint32_t(k)];
    ASSERT_EQ(at.size(), 2u) << "storage " << k;
    if (lengths[k]) {
      EXPECT_EQ(at[0], f.splits[k] + 4);
      EXPECT_EQ(LoadLE32(f.prolog.data() + f.splits[k]), 0x08074b50u);
    } else {
      EXPECT_LT(at[0], f.splits[k]);
      EXPECT_EQ(LoadLE32(f.prolog.data() + at[0] - 14), 0x04034b50u);
      EXPECT_EQ(LoadLE16(f.prolog.data() + at[0] - 14 + 6), 0x0800);
    }
    EXPECT_EQ(LoadLE32(f.prolog.data() + at[1] - 16), 0x02014b50u);
  }
}

class TorchWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir(std::string("torch_write_") +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Builds the layout, checks its structure, assembles the file; then, with torch: torch.load
  // checks it, and torch.save of the same OrderedDict must be byte-identical.
  void RoundTrip(const std::vector<Tensor>& tensors, const std::string& archive = "model") {
    const std::vector<TorchTensorSpec> specs = Specs(tensors);
    auto layout = BuildTorchStateDictLayout("sub/model.pt", archive, specs, Indices(specs.size()));
    ASSERT_TRUE(layout.ok()) << layout.status().ToString();
    EXPECT_EQ(layout->path, "sub/model.pt");
    CheckStructure(*layout, specs, Indices(specs.size()));
    const std::vector<uint8_t> file = AssembleFile(*layout, tensors);
    if (!TorchAvailable()) GTEST_SKIP() << kPython << " cannot import torch";

    const std::string ours = dir_ + "/ours.pt", expected = dir_ + "/expected.json";
    WriteFile(ours, file);
    std::ofstream(expected) << ExpectedJson(tensors, archive);
    // The script loads ours, then has torch.save write the same OrderedDict; torch names the
    // archive after the file name without its extension.
    const std::string theirs = dir_ + "/" + archive + ".pt";
    std::string out;
    ASSERT_EQ(RunCommand(std::string(kPython) + " " + Quote(Script()) + " " + Quote(ours) + " " +
                             Quote(expected) + " " + Quote(theirs),
                         &out),
              0)
        << out;
    const std::vector<uint8_t> reference = ReadFile(theirs);
    EXPECT_TRUE(file == reference) << FirstDifference(file, reference);
  }

  std::string dir_;
};

TEST_F(TorchWrite, EveryDtypeZeroDimAndEmpty) {
  std::vector<Tensor> t = {
      Make("f64", DType::kF64, {3, 5}, 1),        Make("fc.weight", DType::kF32, {2, 3}, 2),
      Make("f16", DType::kF16, {7}, 3),           Make("bf16", DType::kBF16, {1, 1, 3}, 4),
      Make("i64", DType::kI64, {2}, 5),           Make("i32", DType::kI32, {2, 2}, 6),
      Make("i16", DType::kI16, {5}, 7),           Make("i8", DType::kI8, {3}, 8),
      Make("u8", DType::kU8, {9}, 9),             Make("bool", DType::kBool, {4}, 10),
      Make("scalar", DType::kF32, {}, 11),        Make("step", DType::kI64, {}, 12),
      Make("empty", DType::kF16, {4, 0}, 13),     Make("empty1d", DType::kI8, {0}, 14),
      Make("empty3d", DType::kF32, {3, 0, 2}, 15),
      Make("five.dims", DType::kF32, {2, 1, 3, 1, 2}, 16),
      Make("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", DType::kBF16, {2}, 17),
      Make("quote\"back\\slash", DType::kU8, {1}, 18),
  };
  RoundTrip(t);
}

TEST_F(TorchWrite, OneTensorIsALoneSetItem) { RoundTrip({Make("w", DType::kF32, {3}, 1)}); }

TEST_F(TorchWrite, NoTensors) { RoundTrip({}, "empty_dict"); }

TEST_F(TorchWrite, LargeTensorAndWideSizes) {
  // 1.5M elements (BININT), a dimension above 65535, sizes of 256 and 65536 (BININT2/BININT).
  RoundTrip({Make("big", DType::kF32, {1536, 1024}, 1), Make("wide", DType::kU8, {1, 70000}, 2),
             Make("edges", DType::kI8, {256, 255}, 3), Make("exact", DType::kU8, {65536}, 4)},
            "step_000100");
}

TEST_F(TorchWrite, HundredTensorsSortedKeysAndLongMemo) {
  // Keys 0..99 sorted as strings in the zip; memo indices past 255 (LONG_BINPUT/LONG_BINGET).
  std::vector<Tensor> t;
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kI64, DType::kBool};
  for (int i = 0; i < 100; ++i)
    t.push_back(Make("layers." + std::to_string(i / 2) + (i % 2 ? ".bias" : ".weight"),
                     dtypes[i % 5], i % 7 == 0 ? std::vector<uint64_t>{}
                                               : std::vector<uint64_t>{uint64_t(i % 4 + 1), 3},
                     uint32_t(i)));
  RoundTrip(t, "ckpt-1.v2");
}

TEST_F(TorchWrite, MoreThanOneBatchOfSetItems) {
  // The pickler writes SETITEMS every 1000 items; the 1001st is a lone SETITEM.
  std::vector<Tensor> t;
  for (int i = 0; i < 1001; ++i) t.push_back(Make("t" + std::to_string(i), DType::kU8, {1}, i));
  RoundTrip(t, "archive");
}

TEST_F(TorchWrite, RestoresThroughACkzFile) {
  // Writer -> .ckz -> RestoreCheckpoint: the library's own assembly gives the same file.
  std::vector<Tensor> tensors = {Make("a", DType::kF32, {4, 4}, 1), Make("b", DType::kI64, {}, 2),
                                 Make("c", DType::kBF16, {0, 3}, 3)};
  for (int i = 0; i < 11; ++i)  // 14 storages: key "10" sorts before "2"
    tensors.push_back(Make("d" + std::to_string(i), DType::kF16, {5}, 10 + i));
  std::vector<uint32_t> indices;
  for (size_t i = 0; i < tensors.size(); ++i) indices.push_back(uint32_t(tensors.size() - 1 - i));
  auto layout = BuildTorchStateDictLayout("model.pt", "model", Specs(tensors), indices);
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  CheckStructure(*layout, Specs(tensors), indices);

  const std::string ckz = dir_ + "/model.ckz";
  {
    auto sink = AtomicFileSink::Create(ckz, /*overwrite=*/true);
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    Writer writer(std::move(sink).value(), EncodeOptions{});
    writer.AddSourceFile(*layout);
    // CKZ tensor j is tensors[n - 1 - j].
    for (size_t j = 0; j < tensors.size(); ++j) {
      const Tensor& t = tensors[tensors.size() - 1 - j];
      TensorSpec spec;
      spec.name = t.spec.name;
      spec.dtype = t.spec.dtype;
      spec.shape = t.spec.shape;
      ASSERT_TRUE(writer.AddTensor(spec, ByteSpan(t.bytes)).ok());
    }
    auto id = writer.Finish();
    ASSERT_TRUE(id.ok()) << id.status().ToString();
  }
  auto reader = ChainReader::Open(ckz);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  const std::string restored = dir_ + "/restored.pt";
  ASSERT_TRUE(RestoreCheckpoint(**reader, restored, RestoreOptions{}).ok());
  const std::vector<uint8_t> expected = AssembleSourceFile(*layout, [&](size_t k) -> const std::vector<uint8_t>& {
    return tensors[tensors.size() - 1 - layout->tensors[k]].bytes;
  });
  const std::vector<uint8_t> got = ReadFile(restored);
  EXPECT_TRUE(got == expected) << FirstDifference(got, expected);

  SKIP_WITHOUT_TORCH();
  const std::string json = dir_ + "/expected.json";
  std::ofstream(json) << ExpectedJson(tensors, "model");
  std::string out;
  EXPECT_EQ(RunCommand(std::string(kPython) + " " + Quote(Script()) + " " + Quote(restored) + " " +
                    Quote(json), &out), 0) << out;
}

TEST(TorchWriteLayout, PickleUsesTheRightIntOpcodes) {
  // Sizes the tests above cannot hold in memory: LONG1 past 2^31 - 1, with the bytes Python's
  // encode_long gives ((bit_length >> 3) + 1: 5 for 2^31, 8 for 2^63 - 1).
  auto r = BuildTorchStateDictLayout(
      "m.pt", "m",
      {{"a", DType::kU8, {uint64_t{1} << 31}}, {"b", DType::kU8, {0, (uint64_t{1} << 63) - 1}}},
      {0, 1});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string prolog(r->prolog.begin(), r->prolog.end());
  EXPECT_NE(prolog.find(std::string("\x8a\x05\x00\x00\x00\x80\x00\x85", 8)), std::string::npos);
  EXPECT_NE(prolog.find(std::string("K\x00\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f\x86", 13)),
            std::string::npos);
  // Strides of the empty tensor: (2^63 - 1, 1).
  EXPECT_NE(prolog.find(std::string("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7fK\x01\x86", 13)),
            std::string::npos);
}

// A u8 tensor of 0xFFFFFFFF bytes (zip64 because the size is >= 0xFFFFFFFF), then one whose
// local header is past 4 GiB (zip64 because of the offset).
std::vector<TorchTensorSpec> Zip64Specs() {
  return {{"big", DType::kU8, {0xFFFFFFFFull}}, {"after", DType::kF32, {3}}};
}

TEST(TorchWriteLayout, Zip64FieldsAsMinizWritesThem) {
  auto r = BuildTorchStateDictLayout("m.pt", "m", Zip64Specs(), {7, 8});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const SourceFileInfo& f = *r;
  CheckStructure(f, Zip64Specs(), {7, 8});
  const uint8_t* p = f.prolog.data();

  // Local header of m/data/0, right before split 0: zip64 field (uncompressed size, and the
  // compressed size miniz knows before writing: 0), then "FB" padding.
  const std::string name0 = "m/data/0";
  const std::string prolog(f.prolog.begin(), f.prolog.end());
  const size_t name_at = prolog.find(name0);  // first in its local header
  ASSERT_NE(name_at, std::string::npos);
  const size_t h0 = name_at - 30;
  EXPECT_EQ(LoadLE32(p + h0), 0x04034b50u);
  EXPECT_EQ(LoadLE16(p + h0 + 6), 0x0808);
  const uint8_t* x0 = p + h0 + 30 + name0.size();
  EXPECT_EQ(LoadLE16(x0), 1);
  EXPECT_EQ(LoadLE16(x0 + 2), 16);
  EXPECT_EQ(LoadLE64(x0 + 4), 0xFFFFFFFFull);
  EXPECT_EQ(LoadLE64(x0 + 12), 0u);
  EXPECT_EQ(x0[20], 'F');
  EXPECT_EQ(x0[21], 'B');
  EXPECT_EQ(LoadLE16(p + h0 + 28), 20 + 4 + LoadLE16(x0 + 22));
  EXPECT_EQ(p + f.splits[0], x0 + 24 + LoadLE16(x0 + 22));

  // Its data descriptor has 64-bit sizes; the next local header follows it.
  const uint8_t* d0 = p + f.splits[0];
  EXPECT_EQ(LoadLE32(d0), 0x08074b50u);
  EXPECT_EQ(LoadLE64(d0 + 8), 0xFFFFFFFFull);
  EXPECT_EQ(LoadLE64(d0 + 16), 0xFFFFFFFFull);
  const uint8_t* h1 = d0 + 24;
  const uint64_t h1_offset = (h1 - p) + 0xFFFFFFFFull;  // in the file
  EXPECT_EQ(LoadLE32(h1), 0x04034b50u);
  const uint8_t* x1 = h1 + 30 + name0.size();
  EXPECT_EQ(LoadLE16(x1), 1);
  EXPECT_EQ(LoadLE16(x1 + 2), 8);
  EXPECT_EQ(LoadLE64(x1 + 4), h1_offset);
  // A small entry past 4 GiB: miniz writes 64-bit descriptor sizes whenever the entry has a
  // zip64 field.
  const uint8_t* d1 = p + f.splits[1];
  EXPECT_EQ(LoadLE32(d1), 0x08074b50u);
  EXPECT_EQ(LoadLE64(d1 + 8), 12u);
  EXPECT_EQ(LoadLE64(d1 + 16), 12u);

  // The end: EOCD at the very end, the zip64 locator and record before it.
  const uint8_t* eocd = p + f.prolog.size() - 22;
  EXPECT_EQ(LoadLE32(eocd), 0x06054b50u);
  EXPECT_EQ(LoadLE16(eocd + 10), 4);
  EXPECT_EQ(LoadLE32(eocd + 16), 0xFFFFFFFFu);  // central directory offset: in zip64 only
  const uint8_t* locator = eocd - 20;
  EXPECT_EQ(LoadLE32(locator), 0x07064b50u);
  const uint8_t* record = locator - 56;
  EXPECT_EQ(LoadLE32(record), 0x06064b50u);
  EXPECT_EQ(LoadLE64(locator + 8), uint64_t(record - p) + 0xFFFFFFFFull + 12);
  const uint64_t cd_size = LoadLE64(record + 40), cd_offset = LoadLE64(record + 48);
  const uint8_t* cd = record - cd_size;
  EXPECT_EQ(uint64_t(cd - p) + 0xFFFFFFFFull + 12, cd_offset);

  // Central directory: data.pkl (no zip64 field), data/0 (sizes in the zip64 field), data/1
  // and version (offsets in the zip64 field).
  const uint8_t* c = cd;
  const uint16_t expected_extra[] = {0, 20, 12, 12};
  for (int e = 0; e < 4; ++e) {
    ASSERT_EQ(LoadLE32(c), 0x02014b50u) << e;
    const uint16_t name_len = LoadLE16(c + 28), extra_len = LoadLE16(c + 30);
    EXPECT_EQ(extra_len, expected_extra[e]) << e;
    if (e == 1) {
      EXPECT_EQ(LoadLE32(c + 20), 0xFFFFFFFFu);
      EXPECT_EQ(LoadLE32(c + 24), 0xFFFFFFFFu);
      EXPECT_EQ(LoadLE64(c + 46 + name_len + 4), 0xFFFFFFFFull);
      EXPECT_EQ(LoadLE64(c + 46 + name_len + 12), 0xFFFFFFFFull);
    }
    if (e >= 2) {
      EXPECT_EQ(LoadLE32(c + 42), 0xFFFFFFFFu);
      EXPECT_GT(LoadLE64(c + 46 + name_len + 4), 0xFFFFFFFFull);
    }
    c += 46 + name_len + extra_len;
  }
  EXPECT_EQ(c, record);
}

// The zip64 layout as a real 4 GiB file (sparse; zeros as data): torch.load reads it, zipfile
// finds it clean, and torch.save writes the same bytes. Slow (torch.save writes 4 GiB, every
// reader reads it): only with CKZ_TEST_TORCH_ZIP64=1.
TEST(TorchWriteLayout, Zip64FileMatchesTorchSave) {
  if (!std::getenv("CKZ_TEST_TORCH_ZIP64")) GTEST_SKIP() << "set CKZ_TEST_TORCH_ZIP64=1";
  SKIP_WITHOUT_TORCH();
  const std::string dir = FreshDir("torch_write_zip64");
  auto r = BuildTorchStateDictLayout("m.pt", "big", Zip64Specs(), {0, 1});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const SourceFileInfo& f = *r;
  const uint64_t lengths[] = {0xFFFFFFFFull, 12};
  uint32_t crcs[2];
  {
    std::vector<uint8_t> zeros(1 << 20, 0);
    uint32_t crc = 0;
    for (uint64_t done = 0; done < lengths[0];) {
      const uint64_t n = std::min<uint64_t>(zeros.size(), lengths[0] - done);
      crc = ZipCrc32(ByteSpan(zeros.data(), n), crc);
      done += n;
    }
    crcs[0] = crc;
    crcs[1] = ZipCrc32(ByteSpan(zeros.data(), 12));
  }
  // Sparse assembly: prolog pieces at their file offsets, holes for the data.
  std::vector<uint8_t> prolog = f.prolog;
  for (const Crc32Patch& p : f.crc32_patches)
    StoreLE32(prolog.data() + p.prolog_offset, crcs[p.tensor]);
  const std::string ours = dir + "/ours.pt";
  {
    std::FILE* out = std::fopen(ours.c_str(), "wb");
    ASSERT_NE(out, nullptr);
    uint64_t pos = 0, file_pos = 0;
    for (size_t k = 0; k <= 2; ++k) {
      const uint64_t split = k < 2 ? f.splits[k] : prolog.size();
      ASSERT_EQ(fseeko(out, off_t(file_pos), SEEK_SET), 0);
      ASSERT_EQ(std::fwrite(prolog.data() + pos, 1, split - pos, out), split - pos);
      file_pos += split - pos + (k < 2 ? lengths[k] : 0);
      pos = split;
    }
    std::fclose(out);
  }
  const std::string json = dir + "/expected.json";
  std::ofstream(json) << "{\"archive_name\": \"big\", \"tensors\": ["
                      << "{\"name\": \"big\", \"dtype\": \"U8\", \"shape\": [4294967295], "
                         "\"zeros\": true},"
                      << "{\"name\": \"after\", \"dtype\": \"F32\", \"shape\": [3], "
                         "\"zeros\": true}]}\n";
  const std::string theirs = dir + "/big.pt";
  std::string out;
  ASSERT_EQ(RunCommand(std::string(kPython) + " " + Quote(Script()) + " " + Quote(ours) + " " +
                           Quote(json) + " " + Quote(theirs),
                       &out),
            0)
      << out;
  std::string cmp_out;
  EXPECT_EQ(RunCommand("cmp " + Quote(ours) + " " + Quote(theirs), &cmp_out), 0) << cmp_out;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

TEST(TorchWriteLayout, RejectsBadInput) {
  auto code = [](const std::string& path, const std::string& archive,
                 std::vector<TorchTensorSpec> specs, std::vector<uint32_t> indices) {
    return BuildTorchStateDictLayout(path, archive, specs, indices).status().code();
  };
  const TorchTensorSpec ok{"w", DType::kF32, {2}};
  EXPECT_EQ(code("m.pt", "m", {ok}, {0}), ErrorCode::kOk);
  EXPECT_EQ(code("m.pt", "m", {ok, ok}, {0, 1}), ErrorCode::kDuplicateName);
  EXPECT_EQ(code("m.pt", "m", {{"\xC3\x28", DType::kF32, {2}}}, {0}), ErrorCode::kBadName);
  EXPECT_EQ(code("m.pt", "m", {{"", DType::kF32, {2}}}, {0}), ErrorCode::kBadName);
  EXPECT_EQ(code("m.pt", "m", {{std::string("a\0b", 3), DType::kF32, {2}}}, {0}),
            ErrorCode::kBadName);
  for (const char* bad : {"", ".", "..", "a/b", "a b", "caf\xC3\xA9", "a:b", "a\\b"})
    EXPECT_EQ(code("m.pt", bad, {ok}, {0}), ErrorCode::kBadName) << bad;
  for (const char* good : {"archive", "step_000020", "a.b-c_D9", "..."})
    EXPECT_EQ(code("m.pt", good, {ok}, {0}), ErrorCode::kOk) << good;
  EXPECT_EQ(code("", "m", {ok}, {0}), ErrorCode::kBadName);
  EXPECT_EQ(code("../m.pt", "m", {ok}, {0}), ErrorCode::kBadName);
  EXPECT_EQ(code("m.pt", "m", {{"w", DType::kInvalid, {2}}}, {0}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code("m.pt", "m", {{"w", DType(11), {2}}}, {0}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code("m.pt", "m", {ok}, {}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code("m.pt", "m", {{"w", DType::kF32, std::vector<uint64_t>(33, 1)}}, {0}),
            ErrorCode::kShapeOverflow);
  EXPECT_EQ(code("m.pt", "m", {{"w", DType::kF32, {uint64_t{1} << 61}}}, {0}),
            ErrorCode::kShapeOverflow);
  // Empty, but its strides overflow int64, as torch would find.
  EXPECT_EQ(code("m.pt", "m", {{"w", DType::kF32, {0, uint64_t{1} << 40, uint64_t{1} << 40}}},
                 {0}),
            ErrorCode::kShapeOverflow);
  EXPECT_EQ(code("m.pt", "m", {{"w", DType::kF32, {2, 0, uint64_t{1} << 62}}}, {0}),
            ErrorCode::kOk);
  // Two tensors whose bytes together overflow.
  EXPECT_EQ(code("m.pt", "m",
                 {{"a", DType::kU8, {(uint64_t{1} << 63) - 1}},
                  {"b", DType::kU8, {(uint64_t{1} << 63) - 1}},
                  {"c", DType::kU8, {(uint64_t{1} << 63) - 1}}},
                 {0, 1, 2}),
            ErrorCode::kShapeOverflow);
}

}  // namespace
}  // namespace ckz
