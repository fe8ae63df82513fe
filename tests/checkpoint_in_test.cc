// LoadCheckpoint on real files: single safetensors files, folders, HF-sharded checkpoints, what
// is refused, and the roles inferred from names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "ckz/checkpoint.h"
#include "ckz/safetensors.h"

namespace ckz {
namespace {

namespace fs = std::filesystem;

struct Spec {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
};

class CheckpointInTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("ckz_checkpoint_in_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  static void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
  }
  static void WriteText(const std::string& path, const std::string& text) {
    WriteFile(path, std::vector<uint8_t>(text.begin(), text.end()));
  }

  // A safetensors file with `specs` in that order, data byte i of the file = (i * 13 + seed).
  static std::vector<uint8_t> Safetensors(
      const std::vector<Spec>& specs,
      const std::vector<std::pair<std::string, std::string>>& metadata = {}, uint8_t seed = 0) {
    std::vector<SafetensorsEntry> entries;
    for (const Spec& s : specs) entries.push_back({s.name, s.dtype, s.shape, 0, 0});
    std::vector<uint8_t> file = BuildSafetensorsProlog(entries, metadata);
    const uint64_t data = entries.empty() ? 0 : entries.back().end;
    for (uint64_t i = 0; i < data; ++i) file.push_back(uint8_t(file.size() * 13 + seed));
    return file;
  }

  fs::path dir_;
};

#define EXPECT_MESSAGE_HAS(status, text) \
  EXPECT_NE((status).message().find(text), std::string::npos) << (status).message()

TEST_F(CheckpointInTest, SingleFile) {
  const std::vector<uint8_t> bytes = Safetensors({{"w", DType::kF32, {2, 3}},
                                                  {"ids", DType::kI64, {4}},
                                                  {"scalar", DType::kBF16, {}},
                                                  {"none", DType::kF16, {0, 7}}},
                                                 {{"step", "1500"}, {"format", "pt"}});
  const std::string path = Path("model.safetensors");
  WriteFile(path, bytes);
  Result<InputCheckpoint> in = LoadCheckpoint(path);
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->kind, "safetensors");
  EXPECT_EQ(in->step, 1500);
  EXPECT_TRUE(in->metadata.empty());  // kept verbatim in the prolog instead
  ASSERT_EQ(in->files.size(), 1u);
  const SourceFileInfo& f = in->files[0];
  EXPECT_EQ(f.path, "model.safetensors");
  EXPECT_EQ(f.format, SourceFormat::kSafetensors);
  Result<SafetensorsHeader> h = ParseSafetensors(bytes);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(f.prolog, std::vector<uint8_t>(bytes.begin(), bytes.begin() + h->data_start));
  ASSERT_EQ(in->tensors.size(), 4u);
  EXPECT_EQ(f.tensors, (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(in->tensors[0].spec.name, "w");
  EXPECT_EQ(in->tensors[0].spec.shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(in->tensors[0].data.size, 24u);
  EXPECT_EQ(in->tensors[1].spec.name, "ids");
  EXPECT_EQ(in->tensors[2].spec.name, "scalar");
  EXPECT_EQ(in->tensors[2].spec.dtype, DType::kBF16);
  EXPECT_TRUE(in->tensors[2].spec.shape.empty());
  EXPECT_EQ(in->tensors[2].data.size, 2u);
  EXPECT_EQ(in->tensors[3].spec.name, "none");
  EXPECT_EQ(in->tensors[3].data.size, 0u);
  // The prolog followed by the tensors' bytes in order is the file again.
  std::vector<uint8_t> rebuilt = f.prolog;
  for (uint32_t t : f.tensors)
    rebuilt.insert(rebuilt.end(), in->tensors[t].data.begin(), in->tensors[t].data.end());
  EXPECT_EQ(rebuilt, bytes);
  EXPECT_EQ(in->TotalBytes(), bytes.size() - h->data_start);
  EXPECT_EQ(in->mappings.size(), 1u);
}

TEST_F(CheckpointInTest, StepOnlyFromADecimalInteger) {
  for (const char* step : {"12a", "", "1.5", "+3", "99999999999999999999", " 7"}) {
    WriteFile(Path("m.safetensors"), Safetensors({{"w", DType::kF32, {1}}}, {{"step", step}}));
    Result<InputCheckpoint> in = LoadCheckpoint(Path("m.safetensors"));
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    EXPECT_FALSE(in->step.has_value()) << step;
  }
  WriteFile(Path("m.safetensors"), Safetensors({{"w", DType::kF32, {1}}}, {{"step", "-4"}}));
  EXPECT_EQ(LoadCheckpoint(Path("m.safetensors"))->step, -4);
  WriteFile(Path("m.safetensors"), Safetensors({{"w", DType::kF32, {1}}}));
  EXPECT_FALSE(LoadCheckpoint(Path("m.safetensors"))->step.has_value());
}

TEST_F(CheckpointInTest, EmptyAndTensorlessFiles) {
  WriteFile(Path("none.safetensors"), Safetensors({}));
  Result<InputCheckpoint> in = LoadCheckpoint(Path("none.safetensors"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_TRUE(in->tensors.empty());
  EXPECT_EQ(in->TotalBytes(), 0u);
  WriteFile(Path("zero.safetensors"), {});
  EXPECT_EQ(LoadCheckpoint(Path("zero.safetensors")).status().code(),
            ErrorCode::kSafetensorsMalformed);
}

TEST_F(CheckpointInTest, FolderWithOneSafetensorsFile) {
  const std::vector<uint8_t> bytes = Safetensors({{"w", DType::kF32, {3}}});
  WriteFile(Path("ckpt/model.safetensors"), bytes);
  WriteText(Path("ckpt/config.json"), "{}");
  // With the files beside it, the folder is the checkpoint: every file is restored.
  Result<InputCheckpoint> in = LoadCheckpoint(Path("ckpt"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->kind, "folder");
  ASSERT_EQ(in->files.size(), 2u);
  EXPECT_EQ(in->files[0].path, "config.json");
  EXPECT_EQ(in->files[0].format, SourceFormat::kRaw);
  EXPECT_EQ(in->files[1].path, "model.safetensors");
  ASSERT_EQ(in->tensors.size(), 1u);
  // Alone in its folder, the file is the checkpoint.
  WriteFile(Path("alone/model.safetensors"), bytes);
  in = LoadCheckpoint(Path("alone"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->kind, "safetensors");
  ASSERT_EQ(in->files.size(), 1u);
  EXPECT_EQ(in->files[0].path, "model.safetensors");
}

TEST_F(CheckpointInTest, SafetensorsWhoseLengthLooksLikeAPickle) {
  // A JSON header of 0x180 bytes: the file starts with 0x80, like a pickle stream.
  std::vector<uint8_t> bytes;
  for (size_t pad = 0; pad < 400; ++pad) {
    bytes = Safetensors({{"w", DType::kF32, {2}}}, {{"pad", std::string(pad, 'x')}});
    if (bytes[0] == 0x80 && bytes[1] == 0x01) break;
  }
  ASSERT_EQ(bytes[0], 0x80);
  for (const char* name : {"model.safetensors", "model.bin"}) {
    WriteFile(Path(name), bytes);
    Result<InputCheckpoint> in = LoadCheckpoint(Path(name));
    ASSERT_TRUE(in.ok()) << name << ": " << in.status().ToString();
    EXPECT_EQ(in->kind, "safetensors") << name;
  }
}

TEST_F(CheckpointInTest, RefusedInputs) {
  EXPECT_EQ(LoadCheckpoint(Path("missing")).status().code(), ErrorCode::kIoError);
  fs::create_directories(Path("empty"));
  Status s = LoadCheckpoint(Path("empty")).status();
  EXPECT_EQ(s.code(), ErrorCode::kUnsupportedInput);
  EXPECT_MESSAGE_HAS(s, "accepted");
  WriteFile(Path("two/a.safetensors"), Safetensors({{"a", DType::kF32, {1}}}));
  WriteFile(Path("two/b.safetensors"), Safetensors({{"b", DType::kF32, {1}}}));
  EXPECT_EQ(LoadCheckpoint(Path("two")).status().code(), ErrorCode::kUnsupportedInput);
  WriteText(Path("notes.txt"), "hello, this is not a checkpoint");
  s = LoadCheckpoint(Path("notes.txt")).status();
  EXPECT_EQ(s.code(), ErrorCode::kUnsupportedInput);
  EXPECT_MESSAGE_HAS(s, "notes.txt");
  // Named or shaped like safetensors: the parse error itself is what the user needs.
  std::vector<uint8_t> broken = Safetensors({{"w", DType::kF32, {2}}});
  broken.pop_back();
  WriteFile(Path("broken.safetensors"), broken);
  s = LoadCheckpoint(Path("broken.safetensors")).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "broken.safetensors");
  WriteFile(Path("broken.bin"), broken);
  EXPECT_EQ(LoadCheckpoint(Path("broken.bin")).status().code(), ErrorCode::kSafetensorsMalformed);
}

class ShardedTest : public CheckpointInTest {
 protected:
  void SetUp() override {
    CheckpointInTest::SetUp();
    shard1_ = Safetensors({{"b.weight", DType::kF32, {2, 2}}, {"a.weight", DType::kBF16, {3}}},
                          {{"step", "42"}}, 1);
    shard2_ =
        Safetensors({{"a.weight.exp_avg", DType::kF32, {3}}, {"b.bias", DType::kI32, {2}}}, {}, 2);
    WriteFile(Path("ckpt/model-00001-of-00002.safetensors"), shard1_);
    WriteFile(Path("ckpt/sub/model-00002-of-00002.safetensors"), shard2_);
  }

  std::string Index(const std::string& extra_map_entries = "",
                    const std::string& bias_shard = "sub/model-00002-of-00002.safetensors") {
    return R"({"metadata": {"total_size": 40},
  "weight_map": {
    "a.weight.exp_avg": "sub/model-00002-of-00002.safetensors",
    "b.weight": "model-00001-of-00002.safetensors",
    "a.weight": "model-00001-of-00002.safetensors",
    "b.bias": ")" +
           bias_shard + "\"" + extra_map_entries + "}}\n";
  }

  std::vector<uint8_t> shard1_, shard2_;
};

TEST_F(ShardedTest, IndexFileOrFolder) {
  const std::string index = Index();
  WriteText(Path("ckpt/model.safetensors.index.json"), index);
  for (const std::string& path : {Path("ckpt/model.safetensors.index.json"), Path("ckpt")}) {
    Result<InputCheckpoint> in = LoadCheckpoint(path);
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    EXPECT_EQ(in->kind, "safetensors-sharded");
    EXPECT_EQ(in->step, 42);
    ASSERT_EQ(in->files.size(), 3u);
    EXPECT_EQ(in->files[0].path, "model.safetensors.index.json");
    EXPECT_EQ(in->files[0].format, SourceFormat::kRaw);
    EXPECT_EQ(in->files[0].prolog, std::vector<uint8_t>(index.begin(), index.end()));
    EXPECT_TRUE(in->files[0].tensors.empty());
    // Shards in first-seen order of the weight map.
    EXPECT_EQ(in->files[1].path, "sub/model-00002-of-00002.safetensors");
    EXPECT_EQ(in->files[2].path, "model-00001-of-00002.safetensors");
    EXPECT_EQ(in->files[1].format, SourceFormat::kSafetensors);
    EXPECT_EQ(in->files[1].tensors, (std::vector<uint32_t>{0, 1}));
    EXPECT_EQ(in->files[2].tensors, (std::vector<uint32_t>{2, 3}));
    std::vector<std::string> names;
    for (const InputTensor& t : in->tensors) names.push_back(t.spec.name);
    EXPECT_EQ(names,
              (std::vector<std::string>{"a.weight.exp_avg", "b.bias", "b.weight", "a.weight"}));
    // Each shard rebuilds byte for byte from its prolog and tensors.
    for (size_t f = 1; f < 3; ++f) {
      std::vector<uint8_t> rebuilt = in->files[f].prolog;
      for (uint32_t t : in->files[f].tensors)
        rebuilt.insert(rebuilt.end(), in->tensors[t].data.begin(), in->tensors[t].data.end());
      EXPECT_EQ(rebuilt, f == 1 ? shard2_ : shard1_);
    }
    // Roles work across shards: the moment is in another shard than its weight.
    EXPECT_EQ(in->tensors[0].spec.role, Role::kMoment1);
    EXPECT_EQ(in->tensors[0].spec.owner, 3);
    EXPECT_EQ(in->tensors[1].spec.role, Role::kOther);
    EXPECT_EQ(in->tensors[2].spec.role, Role::kWeight);
    EXPECT_EQ(in->tensors[3].spec.role, Role::kWeight);
    EXPECT_EQ(in->mappings.size(), 3u);
  }
}

TEST_F(ShardedTest, AnyIndexJsonName) {
  WriteText(Path("ckpt/custom.index.json"), Index());
  Result<InputCheckpoint> in = LoadCheckpoint(Path("ckpt/custom.index.json"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->files[0].path, "custom.index.json");
  // Only *.safetensors.index.json counts as a shard index in a folder: this one is then a
  // folder of one checkpoint file and other files (the index kept verbatim, the shard in a
  // subfolder too), all restored as they are.
  in = LoadCheckpoint(Path("ckpt"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->kind, "folder");
  ASSERT_EQ(in->files.size(), 3u);
  EXPECT_EQ(in->files[0].path, "custom.index.json");
  EXPECT_EQ(in->files[0].format, SourceFormat::kRaw);
  EXPECT_EQ(in->files[1].path, "model-00001-of-00002.safetensors");
  EXPECT_EQ(in->files[2].format, SourceFormat::kSafetensors);
}

TEST_F(ShardedTest, WeightMapMustAgreeWithTheShards) {
  const std::string index = Path("ckpt/model.safetensors.index.json");
  // The map puts a tensor in the wrong shard.
  WriteText(index, Index("", "model-00001-of-00002.safetensors"));
  Status s = LoadCheckpoint(index).status();
  EXPECT_EQ(s.code(), ErrorCode::kShardIndexMalformed);
  EXPECT_MESSAGE_HAS(s, "'b.bias'");
  // The map names a tensor no shard holds.
  WriteText(index, Index(R"(, "ghost": "model-00001-of-00002.safetensors")"));
  s = LoadCheckpoint(index).status();
  EXPECT_EQ(s.code(), ErrorCode::kShardIndexMalformed);
  EXPECT_MESSAGE_HAS(s, "'ghost'");
  // A shard holds a tensor the map lacks.
  WriteText(index, R"({"weight_map": {"b.weight": "model-00001-of-00002.safetensors"}})");
  s = LoadCheckpoint(index).status();
  EXPECT_EQ(s.code(), ErrorCode::kShardIndexMalformed);
  EXPECT_MESSAGE_HAS(s, "'a.weight'");
  // A shard that is not there.
  WriteText(index, Index(R"(, "x": "missing.safetensors")"));
  EXPECT_EQ(LoadCheckpoint(index).status().code(), ErrorCode::kIoError);
  // A malformed index, and a malformed shard.
  WriteText(index, R"({"weight_map": []})");
  EXPECT_EQ(LoadCheckpoint(index).status().code(), ErrorCode::kShardIndexMalformed);
  WriteText(index, Index());
  WriteText(Path("ckpt/sub/model-00002-of-00002.safetensors"), "junk");
  EXPECT_EQ(LoadCheckpoint(index).status().code(), ErrorCode::kSafetensorsMalformed);
}

TEST_F(ShardedTest, TheSameTensorInTwoShards) {
  WriteFile(Path("ckpt/sub/model-00002-of-00002.safetensors"),
            Safetensors({{"a.weight.exp_avg", DType::kF32, {3}},
                         {"b.bias", DType::kI32, {2}},
                         {"b.weight", DType::kF32, {2, 2}}}));
  WriteText(Path("ckpt/model.safetensors.index.json"), Index());
  Status s = LoadCheckpoint(Path("ckpt")).status();
  EXPECT_EQ(s.code(), ErrorCode::kShardIndexMalformed);
  EXPECT_MESSAGE_HAS(s, "'b.weight'");
}

TEST_F(ShardedTest, TwoIndexesInAFolderAreAmbiguous) {
  WriteText(Path("ckpt/model.safetensors.index.json"), Index());
  WriteText(Path("ckpt/other.safetensors.index.json"), Index());
  EXPECT_EQ(LoadCheckpoint(Path("ckpt")).status().code(), ErrorCode::kUnsupportedInput);
}

TEST_F(CheckpointInTest, RolesFromNames) {
  WriteFile(Path("m.safetensors"),
            Safetensors({
                {"w", DType::kF32, {2, 3}},
                {"w.exp_avg", DType::kF32, {2, 3}},
                {"w.exp_avg_sq", DType::kF32, {2, 3}},
                {"v", DType::kBF16, {4}},
                {"v.momentum_buffer", DType::kF32, {4}},  // mixed precision is fine
                {"x", DType::kF32, {5}},
                {"x.exp_avg", DType::kF32, {6}},          // shape differs: no owner
                {"orphan.exp_avg_sq", DType::kF32, {2}},  // no tensor "orphan"
                {"ids", DType::kI64, {3}},
                {"ids.exp_avg", DType::kF32, {3}},    // owner not floating
                {"mask.exp_avg", DType::kBool, {3}},  // not floating
                {"mask", DType::kF32, {3}},
                {"w.exp_avg.exp_avg", DType::kF32, {2, 3}},  // owner is itself a moment
                {"step", DType::kI64, {}},
                {"f64", DType::kF64, {1}},
                {"f16", DType::kF16, {1}},
                {"u8", DType::kU8, {1}},
                {"bn.running_mean", DType::kF32, {4}},
                {"bn.running_var", DType::kF32, {4}},
                // Other optimizers' state (RMSprop, Adagrad, Adadelta, Adamax).
                {"r", DType::kF32, {7}},
                {"r.square_avg", DType::kF32, {7}},
                {"r.grad_avg", DType::kF32, {7}},
                {"a", DType::kF32, {8}},
                {"a.sum", DType::kF32, {8}},
                {"d", DType::kF32, {9}},
                {"d.acc_delta", DType::kF32, {9}},
                {"d.exp_inf", DType::kF32, {9}},
            }));
  Result<InputCheckpoint> in = LoadCheckpoint(Path("m.safetensors"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < in->tensors.size(); ++i) index[in->tensors[i].spec.name] = i;
  auto role = [&](const std::string& name) { return in->tensors[index.at(name)].spec.role; };
  auto owner = [&](const std::string& name) { return in->tensors[index.at(name)].spec.owner; };
  EXPECT_EQ(role("w"), Role::kWeight);
  EXPECT_EQ(role("w.exp_avg"), Role::kMoment1);
  EXPECT_EQ(owner("w.exp_avg"), int32_t(index["w"]));
  EXPECT_EQ(role("w.exp_avg_sq"), Role::kMoment2);
  EXPECT_EQ(owner("w.exp_avg_sq"), int32_t(index["w"]));
  EXPECT_EQ(role("v"), Role::kWeight);
  EXPECT_EQ(role("v.momentum_buffer"), Role::kMoment1);
  EXPECT_EQ(owner("v.momentum_buffer"), int32_t(index["v"]));
  EXPECT_EQ(role("r.square_avg"), Role::kMoment2);
  EXPECT_EQ(owner("r.square_avg"), int32_t(index["r"]));
  EXPECT_EQ(role("r.grad_avg"), Role::kMoment1);
  EXPECT_EQ(role("a.sum"), Role::kMoment2);
  EXPECT_EQ(owner("a.sum"), int32_t(index["a"]));
  // Which optimizer made a moment (the lossy planner shrinks only Adam's).
  auto key = [&](const std::string& name) { return in->tensors[index.at(name)].state_key; };
  EXPECT_EQ(key("w.exp_avg_sq"), "exp_avg_sq");
  EXPECT_EQ(key("r.square_avg"), "square_avg");
  EXPECT_EQ(key("a.sum"), "sum");
  EXPECT_EQ(key("w"), "");
  for (const char* weight : {"x", "mask", "f64", "f16", "r", "a", "d"}) {
    EXPECT_EQ(role(weight), Role::kWeight) << weight;
    EXPECT_EQ(owner(weight), -1) << weight;
  }
  // Optimizer state without its parameter, batch-norm statistics and non-floating tensors are
  // not weights.
  for (const char* other : {"x.exp_avg", "orphan.exp_avg_sq", "ids.exp_avg", "w.exp_avg.exp_avg",
                            "bn.running_mean", "bn.running_var", "ids", "mask.exp_avg", "step",
                            "u8", "d.acc_delta", "d.exp_inf"}) {
    EXPECT_EQ(role(other), Role::kOther) << other;
    EXPECT_EQ(owner(other), -1) << other;
  }
}

// Real torch.save files (tests/data/torch): tensors found inside Python objects are named by
// their paths, a tensor that is the whole pickle gets a name the writer accepts, and what the
// pickle holds besides its named tensors is described in metadata torch.pickle.
TEST_F(CheckpointInTest, TorchPicklesDescribeWhatTheyHold) {
  const fs::path fixtures = fs::path(CKZ_TESTS_DIR) / "data" / "torch";
  auto load = [&](const char* name) {
    Result<InputCheckpoint> in = LoadCheckpoint((fixtures / name).string());
    EXPECT_TRUE(in.ok()) << name << ": " << in.status().ToString();
    return in;
  };
  auto description = [](const InputCheckpoint& in) -> std::string {
    for (const MetaEntry& e : in.metadata)
      if (e.key == kTorchPickleMetadataKey) return std::get<std::string>(e.value);
    return "";
  };
  auto names = [](const InputCheckpoint& in) {
    std::vector<std::string> out;
    for (const InputTensor& t : in.tensors) out.push_back(t.spec.name);
    return out;
  };
  auto root = load("tensor_root.pt");
  EXPECT_EQ(names(*root), std::vector<std::string>{"storage/0"});
  auto views = load("views.pt");
  EXPECT_EQ(description(*views),
            "{\"tied\": {\"same\": \"base\", \"tied/head.weight\": \"tied/emb.weight\"}, "
            "\"tied_total\": 2, \"views\": [\"row\", \"col\", \"flat_slice\"], "
            "\"views_total\": 3, \"objects\": []}");
  auto adam = load("adam.pt");
  EXPECT_EQ(description(*adam), "");  // nothing but named tensors and plain values
  auto ns = load("namespace.pt");
  EXPECT_EQ(names(*ns), (std::vector<std::string>{"args/init", "w"}));
  EXPECT_NE(description(*ns).find("\"objects\": [\"argparse.Namespace\"]"), std::string::npos);
  auto onecycle = load("onecycle.pt");
  const std::string d = description(*onecycle);
  for (const char* g : {"__builtin__.getattr", "torch.optim.lr_scheduler.OneCycleLR",
                        "collections.defaultdict"})
    EXPECT_NE(d.find(g), std::string::npos) << g;
  // The optimizer object inside the scheduler holds the model's parameters: tied to them.
  EXPECT_NE(d.find("\"scheduler/anneal_func/0/optimizer/param_groups/0/params/0\": \"model/0.weight\""),
            std::string::npos) << d;
  // Its moments are still linked from the optimizer's state_dict.
  bool linked = false;
  for (const InputTensor& t : onecycle->tensors)
    linked = linked || (t.spec.name == "optimizer/state/0/momentum_buffer" && t.spec.role == Role::kMoment1);
  EXPECT_TRUE(linked);
}

}  // namespace
}  // namespace ckz
