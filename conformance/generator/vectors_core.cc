// Valid files of the core profile: the container, stored and zstd streams, byte planes,
// source files, layouts other than the streaming writer's, and what a reader of this version
// must accept from later ones.
#include "vectors.h"

#include <cstring>

#include "ckz/torch.h"
#include "ckz_generated.h"
#include "common/bytes.h"

namespace ckz::vectors {
void CoreValid(Suite& s) {
  {
    // The worked example of WORKED_EXAMPLE.md: three F32 values with exact bit patterns.
    Ckpt c = Single({FromElems("weight", DType::kF32, {3}, {0x3F800000, 0xC0000000, 0x3F000000})});
    s.Add(Valid("core-smallest-f32-stored", "core",
                "The smallest useful file: one F32 tensor 'weight' of shape [3] = [1.0, -2.0, 0.5], "
                "one chunk with one stored stream, no byte planes, one safetensors source file. "
                "conformance/WORKED_EXAMPLE.md annotates it byte by byte.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"worked-example"}));
  }
  struct Variant {
    const char* name;
    StreamCodec codec;
    bool planes;
    const char* what;
  };
  const Variant variants[] = {
      {"core-every-dtype-stored", StreamCodec::kStored, false, "stored streams, no byte planes"},
      {"core-every-dtype-zstd", StreamCodec::kZstd, false, "zstd streams, no byte planes"},
      {"core-every-dtype-planes-stored", StreamCodec::kStored, true,
       "stored streams, byte planes (one stream per byte of the element; a single stream for "
       "the 1-byte dtypes)"},
      {"core-every-dtype-planes-zstd", StreamCodec::kZstd, true,
       "zstd streams, byte planes (one stream per byte of the element)"},
  };
  uint64_t seed = 100;
  for (const Variant& v : variants) {
    Ckpt c = Single(EveryDtype(seed += 20));
    s.Add(Valid(v.name, "core",
                std::string("One tensor of every dtype (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL), "
                            "1-d to 3-d, one chunk each; ") + v.what + ".",
                c, Encode(c, Opt(v.codec, v.planes)).bytes));
  }
  {
    Ckpt c = Single({MakeT("layer.weight", DType::kF32, {32, 32}, 201, Role::kWeight),
                     MakeT("layer.bias", DType::kF32, {32}, 202, Role::kWeight)});
    s.Add(Valid("core-f32-planes-zstd", "core",
                "F32 weights with byte planes and zstd streams (the usual coding of a keyframe), "
                "1000-byte chunks: 'layer.weight' (4096 bytes) has 5 chunks of 1000,1000,1000,1000,96 bytes.",
                c, Encode(c, Opt(StreamCodec::kZstd, true, 1000)).bytes));
  }
  {
    Ckpt c = Single({MakeT("scalar.f32", DType::kF32, {}, 301), MakeT("scalar.i64", DType::kI64, {}, 302),
                     MakeT("scalar.bool", DType::kBool, {}, 303), MakeT("empty.f32", DType::kF32, {0}, 304),
                     MakeT("empty.4x0", DType::kF16, {4, 0}, 305), MakeT("empty.0x3x2", DType::kI8, {0, 3, 2}, 306),
                     MakeT("scalar.bf16", DType::kBF16, {}, 307), MakeT("ones", DType::kU8, {1, 1, 1}, 308)});
    s.Add(Valid("core-empty-and-0d", "core",
                "0-d tensors (shape [], one element), tensors with a zero dimension (no bytes, no "
                "chunks) and a [1,1,1] tensor, in one safetensors file; byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes));
  }
  {
    Ckpt c = Single({MakeT("huge.but.empty", DType::kF32, {uint64_t{1} << 40, uint64_t{1} << 40, 0}, 311),
                     MakeT("x", DType::kF32, {2}, 312)});
    s.Add(Valid("core-empty-with-huge-dims", "core",
                "A tensor of shape [2^40, 2^40, 0]: its element count is 0, so its byte length is 0 "
                "and it is valid (rule T3 is about the product, whatever the order of the factors: "
                "a reader must not report ShapeOverflow because 2^40 x 2^40 overflows before the 0).",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"shape:zero-dim-overflow-order"}));
  }
  {
    Ckpt c = Single({MakeT("w", DType::kF32, {1000}, 401), MakeT("steps", DType::kI16, {301}, 402),
                     MakeT("d", DType::kF64, {5}, 403)});
    // chunk_bytes 60: whole elements -> F32 60 bytes (15 elements), I16 60, F64 56.
    s.Add(Valid("core-many-chunks", "core",
                "Tensors split into many small chunks (60-byte target, rounded down to whole "
                "elements: F32 60 bytes = 67 chunks, I16 60 bytes = 11 chunks, F64 56 bytes = 1 "
                "chunk of 40 bytes); stored streams, so chunk ends fall at every padding length.",
                c, Encode(c, Opt(StreamCodec::kStored, false, 60)).bytes));
    Ckpt d = Single({MakeT("w", DType::kF64, {5}, 411), MakeT("h", DType::kF16, {3}, 412),
                     MakeT("b", DType::kBool, {4}, 413)});
    s.Add(Valid("core-one-element-chunks", "core",
                "Every chunk holds exactly one element (chunk size 1 byte, raised to one element); "
                "byte planes with zstd streams.",
                d, Encode(d, Opt(StreamCodec::kZstd, true, 1)).bytes));
    Ckpt z = Single({MakeT("w", DType::kF32, {600}, 421), MakeT("i", DType::kI32, {300}, 422)});
    s.Add(Valid("core-many-chunks-zstd-planes", "core",
                "Tensors of many chunks (256-byte target) with byte planes and zstd streams.",
                z, Encode(z, Opt(StreamCodec::kZstd, true, 256)).bytes));
  }
  {
    Ckpt c;
    c.tensors = {MakeT("lm_head.weight", DType::kF32, {4, 8}, 501, Role::kWeight),
                 MakeT("embed.weight", DType::kF32, {8, 4}, 502, Role::kWeight),
                 MakeT("layers.1.weight", DType::kF16, {4, 4}, 503, Role::kWeight),
                 MakeT("layers.0.bias", DType::kBF16, {4}, 504, Role::kWeight),
                 MakeT("layers.0.weight", DType::kF16, {4, 4}, 505, Role::kWeight),
                 MakeT("position_ids", DType::kI64, {1, 6}, 506)};
    SrcFile s1, s2, idx;
    s1.path = "model-00001-of-00002.safetensors";
    s1.tensors = {"embed.weight", "layers.0.bias", "layers.0.weight"};
    s1.st_metadata = {{"format", "pt"}};
    s2.path = "model-00002-of-00002.safetensors";
    s2.tensors = {"layers.1.weight", "lm_head.weight", "position_ids"};
    s2.st_metadata = {{"format", "pt"}};
    idx.path = "model.safetensors.index.json";
    idx.format = SourceFormat::kRaw;
    idx.raw = Str(
        "{\n  \"metadata\": {\n    \"total_size\": 504\n  },\n  \"weight_map\": {\n"
        "    \"embed.weight\": \"model-00001-of-00002.safetensors\",\n"
        "    \"layers.0.bias\": \"model-00001-of-00002.safetensors\",\n"
        "    \"layers.0.weight\": \"model-00001-of-00002.safetensors\",\n"
        "    \"layers.1.weight\": \"model-00002-of-00002.safetensors\",\n"
        "    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
        "    \"position_ids\": \"model-00002-of-00002.safetensors\"\n  }\n}\n");
    c.files = {idx, s1, s2};
    s.Add(Valid("core-sharded-two-files", "core",
                "A Hugging Face sharded checkpoint: two safetensors shards plus the raw "
                "model.safetensors.index.json. The header's tensor order differs from the order "
                "of the files and of each file's tensors: a file's bytes follow its own 'tensors' "
                "list. Byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes, {"source:sharded"}));
  }
  {
    Ckpt c;
    c.tensors = {MakeT("a", DType::kF32, {5}, 601), MakeT("b", DType::kI32, {3}, 602),
                 MakeT("c", DType::kU8, {7}, 603)};
    SrcFile cfg, part, deep, empty, readme;
    cfg.path = "config.json";
    cfg.format = SourceFormat::kRaw;
    cfg.raw = Str("{\"hidden_size\": 5, \"architectures\": [\"Toy\"]}\n");
    part.path = "model/part.safetensors";
    part.tensors = {"b", "a"};
    deep.path = "model/deep/er/other.safetensors";
    deep.tensors = {"c"};
    empty.path = "empty.txt";
    empty.format = SourceFormat::kRaw;
    readme.path = "docs/README";
    readme.format = SourceFormat::kRaw;
    readme.raw = Str("raw bytes, kept verbatim:\r\n\x01\x02\xff\n");
    c.files = {cfg, part, deep, empty, readme};
    s.Add(Valid("core-nested-paths-and-raw-files", "core",
                "Source files in nested folders (model/deep/er/...), raw files kept verbatim "
                "(including CR LF and non-UTF-8 bytes) and an empty raw file (a 0-byte output "
                "file). Stored streams.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"source:empty-file"}));
  }
  {
    Ckpt c;
    SrcFile cfg, st;
    cfg.path = "config.json";
    cfg.format = SourceFormat::kRaw;
    cfg.raw = Str("{}\n");
    st.path = "model.safetensors";
    c.files = {cfg, st};
    s.Add(Valid("core-no-tensors", "core",
                "A checkpoint with no tensors: a raw config.json and a safetensors file holding no "
                "tensor (its prolog is the whole file). The content id covers zero tensors.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"tensors:none"}));
  }
  {
    Ckpt c = Single({MakeT("fc.weight", DType::kF32, {4, 3}, 651, Role::kWeight),
                     MakeT("fc.bias", DType::kF32, {4}, 652, Role::kWeight),
                     MakeT("steps", DType::kI64, {}, 653), MakeT("half", DType::kF16, {5}, 654),
                     MakeT("mask", DType::kBool, {3}, 655), MakeT("empty", DType::kF32, {0, 2}, 656)},
                    "model.pt");
    c.files[0].format = SourceFormat::kTorchZip;
    s.Add(Valid("core-torch-zip", "core",
                "A PyTorch torch.save file (format 0.2 TorchZip): the zip's bytes other than the "
                "storages are the prolog; each storage's data goes in at its split; the zip "
                "CRC-32 of each storage is written at its patches (data descriptor and central "
                "directory; the local header for the empty storage). The output is the file "
                "torch.save writes for this OrderedDict. Byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes,
                {"source:torch-zip", "source:splits", "source:crc32-patches"}));
  }
  {
    // Spec 8.1: "a tensor whose split equals q comes before prolog byte q", for a CRC-32 patch
    // at a split (q = 0) and at a run of three equal splits (q = 12), one tensor of it empty.
    Ckpt c = Single({MakeT("a", DType::kF32, {3}, 661), MakeT("b", DType::kF16, {5}, 662),
                     MakeT("c", DType::kBF16, {3}, 663), MakeT("e", DType::kF32, {0, 4}, 664),
                     MakeT("d", DType::kI32, {2}, 665)},
                    "patched.bin");
    SourceFileInfo lay;
    const std::string text = std::string(4, '\0') + "--mid1--" + std::string(4, '\0') +
                             "mid2EEEEtail" + std::string(4, '\0');
    lay.prolog.assign(text.begin(), text.end());
    Check(lay.prolog.size() == 32, "patch-at-split prolog");
    lay.splits = {0, 12, 12, 12, 32};
    lay.crc32_patches = {{0, 1}, {12, 0}, {20, 3}, {28, 4}};
    c.files[0].format = SourceFormat::kTorchZip;
    c.files[0].layout = lay;
    // Spec 8.1 here, independently of the library, with the patch placed after the tensors
    // whose split is <= q (mode 0, the spec), only < q (1), or < q plus the first tensor of a
    // run of splits equal to q (2).
    auto assemble = [&](int mode) {
      std::vector<const Bytes*> t;
      for (const std::string& name : c.files[0].tensors) t.push_back(&c.Find(name)->bytes);
      Bytes out;
      uint64_t pos = 0;
      for (size_t k = 0; k < t.size(); ++k) {
        out.insert(out.end(), lay.prolog.begin() + pos, lay.prolog.begin() + lay.splits[k]);
        out.insert(out.end(), t[k]->begin(), t[k]->end());
        pos = lay.splits[k];
      }
      out.insert(out.end(), lay.prolog.begin() + pos, lay.prolog.end());
      for (const Crc32Patch& patch : lay.crc32_patches) {
        const uint64_t q = patch.prolog_offset;
        uint64_t x = q;
        bool first = true;
        for (size_t j = 0; j < t.size(); ++j) {
          const bool at = lay.splits[j] == q;
          if (lay.splits[j] < q || (at && (mode == 0 || (mode == 2 && first))))
            x += t[j]->size();
          if (at) first = false;
        }
        StoreElem(out.data() + x, 4, ZipCrc32(ByteSpan(*t[patch.tensor])));
      }
      return out;
    };
    const Bytes spec = assemble(0);
    Check(BuildSources(c).outputs.at("patched.bin") == spec,
          "patch at a split: the file differs from spec 8.1's assembly");
    Check(assemble(1) != spec, "patch at a split: placing tensors after byte q changes nothing");
    Check(assemble(2) != spec, "patch at a split: only the run's first tensor changes nothing");
    s.Add(Valid("core-crc32-patch-at-split", "core",
                "Spec 8.1: a tensor whose split equals a CRC-32 patch's prolog_offset q comes "
                "BEFORE prolog byte q, so the patch lands after it (X = q + the lengths of every "
                "tensor with split <= q). One source file 'patched.bin' (format TorchZip as a "
                "label only; the prolog is 32 bytes: 4 zero bytes, '--mid1--', 4 zero bytes, "
                "'mid2EEEEtail', 4 zero bytes, not a zip), tensors a (F32 [3], split 0), b (F16 "
                "[5], split 12), c (BF16 [3], split 12), e (F32 [0, 4], empty, split 12), d (I32 "
                "[2], split 32 = the prolog's length). Patches: q = 0 with b's CRC-32 (at a's "
                "split: written at file offset 12, after a's 12 bytes); q = 12 with a's CRC-32 "
                "(at the run of equal splits of b, c, e: written after all three, at 12 + 12 + "
                "10 + 6 = 40, not after b alone); q = 20 with e's (empty: 0x00000000 over 'EEEE'); "
                "q = 28 with d's (just before d). The file is 32 + 12 + 10 + 6 + 0 + 8 = 68 "
                "bytes. Stored streams.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes,
                {"source:splits", "source:crc32-patches", "source:crc32-patch-at-split",
                 "shape:empty"}));
  }
  {
    Ckpt c = Single({MakeT("w", DType::kF32, {6}, 701, Role::kWeight)});
    c.files[0].st_metadata = {{"format", "pt"}, {"note", "metadata \"quoted\" \\ and \xc3\xa9"}};
    c.step = 1000;
    double lr, nan;
    const uint64_t lr_bits = 0x3F33A92A30553261ull, nan_bits = 0x7FF8000000000123ull;
    std::memcpy(&lr, &lr_bits, 8);
    std::memcpy(&nan, &nan_bits, 8);
    c.metadata = {{"framework", std::string("pytorch 2.1")}, {"learning_rate", lr},
                  {"epoch", int64_t{7}},                     {"offset", int64_t{-5}},
                  {"rng_state", std::vector<uint8_t>{0, 1, 2, 254, 255}},
                  {"resumed", true},                         {"nan_payload", nan},
                  {"empty", std::string()}};
    s.Add(Valid("core-metadata-every-type", "core",
                "Header metadata of every value type (int, float with a NaN payload, string, "
                "bytes, bool), a step, and safetensors __metadata__ in the prolog. Header metadata "
                "does not change the decoded files.",
                c, Encode(c, Opt(StreamCodec::kZstd, false)).bytes, {"metadata:every-type"}));
  }
  {
    Ckpt c;
    c.tensors = {MakeT("fc.weight", DType::kF32, {4, 3}, 801, Role::kWeight),
                 MakeT("fc.bias", DType::kF32, {3}, 802, Role::kWeight),
                 MakeT("fc.weight.exp_avg", DType::kF32, {4, 3}, 803, Role::kMoment1, 0),
                 MakeT("fc.weight.exp_avg_sq", DType::kF32, {4, 3}, 804, Role::kMoment2, 0),
                 MakeT("fc.bias.exp_avg", DType::kF32, {3}, 805, Role::kMoment1, 1),
                 MakeT("fc.bias.exp_avg_sq", DType::kF32, {3}, 806, Role::kMoment2, 1),
                 MakeT("other.momentum_buffer", DType::kF32, {2}, 807, Role::kMoment1, -1),
                 MakeT("step", DType::kI64, {}, 808)};
    SrcFile m, o;
    m.path = "model.safetensors";
    m.tensors = {"fc.bias", "fc.weight"};
    o.path = "optimizer.safetensors";
    o.tensors = {"fc.weight.exp_avg", "fc.weight.exp_avg_sq", "fc.bias.exp_avg",
                 "fc.bias.exp_avg_sq", "other.momentum_buffer", "step"};
    c.files = {m, o};
    s.Add(Valid("core-roles-and-owners", "core",
                "Weights, Adam moments owned by their weights (owner = index of the weight), a "
                "moment of unknown owner (-1) and a scalar; model and optimizer in two files.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes));
  }
  {
    Ckpt c;
    const std::vector<std::string> names = {
        "layer.0.weight", "Zeta", "alpha", "\xc3\xa9", "\xc3\xa4.bias", "\xe2\x82\xac",
        "\xef\xbd\x9e", "\xf0\x9f\x98\x80", "quote\"back\\slash", "tab\there\nnewline",
        "space name", "../not/a/path", "/also:fine"};
    uint64_t k = 900;
    for (const std::string& n : names) c.tensors.push_back(MakeT(n, DType::kF32, {2}, ++k));
    SrcFile f;
    f.path = "model.safetensors";
    for (auto it = names.rbegin(); it != names.rend(); ++it) f.tensors.push_back(*it);
    c.files = {f};
    s.Add(Valid("core-unicode-and-odd-names", "core",
                "Tensor names with 2-, 3- and 4-byte UTF-8 (U+00E9, U+20AC, U+FF5E, U+1F600), JSON "
                "escapes, control characters, spaces, and path-like text (tensor names are not "
                "paths). The content id sorts names by their UTF-8 bytes: U+FF5E (EF BD 9E) comes "
                "before U+1F600 (F0 9F 98 80), unlike in UTF-16 order.",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"names:unicode"}));
  }
  {
    Ckpt c = Single({MakeT(std::string(4096, 'n'), DType::kF32, {2}, 951), MakeT("short", DType::kU8, {3}, 952)});
    s.Add(Valid("core-name-4096-bytes", "core",
                "A tensor name of exactly 4096 bytes, the longest allowed (rule N1).",
                c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"names:max-length"}));
  }
  {
    Ckpt c = Single({
        FromElems("f32", DType::kF32, {14},
                  {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001,
                   0x7F800001, 0x7FBFFFFF, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x3F800000,
                   0x7FC0DEAD, 0xFFFFFFFF}),
        FromElems("f16", DType::kF16, {10},
                  {0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x7C01, 0x0001, 0x83FF, 0x7BFF}),
        FromElems("bf16", DType::kBF16, {10},
                  {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x0001, 0x807F, 0x7F7F}),
        FromElems("f64", DType::kF64, {9},
                  {0x0ull, 0x8000000000000000ull, 0x7FF0000000000000ull, 0xFFF0000000000000ull,
                   0x7FF8000000000000ull, 0x7FF0000000000001ull, 0x0000000000000001ull,
                   0x7FEFFFFFFFFFFFFFull, 0xFFF8DEADBEEF0001ull}),
    });
    s.Add(Valid("core-special-floats", "core",
                "Signed zeros, infinities, quiet and signalling NaNs with payloads, subnormals and "
                "extremes of F32, F16, BF16 and F64: decoding handles bit patterns, never values. "
                "Byte planes, zstd.",
                c, Encode(c, Opt(StreamCodec::kZstd, true)).bytes, {"floats:special"}));
  }
  // Layouts other than the streaming writer's.
  {
    Ckpt c = Single({MakeT("a", DType::kF32, {40}, 1001), MakeT("b", DType::kI16, {50}, 1002),
                     MakeT("c", DType::kU8, {9}, 1003)});
    const Bytes file = Encode(c, Opt(StreamCodec::kZstd, false, 64)).bytes;
    Model m = FromFile(file);
    m.header_first = true;
    s.Add(Valid("core-layout-header-first", "core",
                "The header right after the preamble, the chunks after it (section 5: the order of "
                "regions is free; readers must not assume the header is last).",
                c, Assemble(m), {"layout:header-first"}));
    Model r = FromFile(file);
    r.reverse_chunks = true;
    s.Add(Valid("core-layout-chunks-reversed", "core",
                "Chunks stored in the reverse of their tensor and chunk order (the last chunk of "
                "the last tensor first), the header last.",
                c, Assemble(r), {"layout:chunks-reversed"}));
  }
  {
    // Per-stream codec choice inside one chunk: planes 0 and 1 stored, planes 2 and 3 zstd.
    Ckpt c = Single({MakeT("w", DType::kF32, {64}, 1101), MakeT("d", DType::kF64, {16}, 1102)});
    Model m = FromFile(Encode(c, Opt(StreamCodec::kStored, true, 128)).bytes);
    for (size_t t = 0; t < m.h.tensors.size(); ++t) {
      const TensorInfo& ti = m.h.tensors[t];
      const size_t w = DTypeSize(ti.dtype);
      for (size_t k = 0; k < ti.chunks.size(); ++k) {
        const ChunkInfo& ch = ti.chunks[k];
        const auto planes = Planes(c.tensors[t].bytes.data() + ch.raw_offset, ch.raw_length, w);
        std::vector<std::pair<StreamCodec, Bytes>> streams;
        for (size_t p = 0; p < w; ++p) {
          if ((p + k) % 2 == 0) streams.push_back({StreamCodec::kStored, planes[p]});
          else streams.push_back({StreamCodec::kZstd, Zstd(planes[p])});
        }
        m.stored[t][k] = MakeChunk(streams);
      }
    }
    s.Add(Valid("core-mixed-stream-codecs", "core",
                "Byte-plane chunks whose streams use different codecs: in each chunk, stored and "
                "zstd streams alternate (the codec is chosen per stream, section 7.1).",
                c, Assemble(m), {"codec:mixed-in-chunk"}));
  }
  {
    // zstd frames in the forms a writer may produce: with or without checksum, without the
    // content size, raw and RLE blocks.
    Ckpt c = Single({MakeT("w", DType::kF32, {96}, 1201), MakeT("constant", DType::kU8, {200}, 1202),
                     MakeT("noise", DType::kU8, {150}, 1203)});
    std::fill(c.tensors[1].bytes.begin(), c.tensors[1].bytes.end(), 7);
    Rng r(1204);
    for (uint8_t& b : c.tensors[2].bytes) b = uint8_t(r.Next());
    Model m = FromFile(Encode(c, Opt(StreamCodec::kZstd, false, 128)).bytes);
    auto data = [&](size_t t, size_t k) {
      const ChunkInfo& ch = m.h.tensors[t].chunks[k];
      return Bytes(c.tensors[t].bytes.begin() + long(ch.raw_offset),
                   c.tensors[t].bytes.begin() + long(ch.raw_offset + ch.raw_length));
    };
    m.stored[0][0] = MakeChunk({{StreamCodec::kZstd, Zstd(data(0, 0), true, true)}});
    m.stored[0][1] = MakeChunk({{StreamCodec::kZstd, Zstd(data(0, 1), false, false)}});
    m.stored[0][2] = MakeChunk({{StreamCodec::kZstd, Zstd(data(0, 2), true, false)}});
    s.Add(Valid("core-zstd-frame-variants", "core",
                "zstd streams in every form section 7.2 allows: with a frame checksum (which must be "
                "checked), without the frame content size, both; an RLE block (constant bytes) and "
                "raw blocks (random bytes that zstd cannot shrink).",
                c, Assemble(m), {"zstd:checksum", "zstd:no-content-size", "zstd:rle-block", "zstd:raw-block"}));
  }
  // Forward compatibility: what a reader of this version must accept.
  {
    Ckpt c = BaseCkpt();
    const Bytes file = Encode(c, Opt(StreamCodec::kZstd, true, 64)).bytes;
    Model o = FromFile(file);
    o.optional = (uint64_t{1} << 0) | (uint64_t{1} << 17) | (uint64_t{1} << 63);
    s.Add(Valid("valid-unknown-optional-feature", "core",
                "Optional feature bits 0, 17 and 63 set, none of them defined (0.6 defines no "
                "optional bit): a reader MUST ignore unknown optional bits and decode the file "
                "(section 12).",
                c, Assemble(o), {"feature-bits:optional"}));
    Model v = FromFile(file);
    v.minor = 7;
    s.Add(Valid("valid-newer-minor-version", "core",
                "Minor version 7 (a later 0.x): a reader MUST accept any minor version of its major "
                "version (section 12).",
                c, Assemble(v), {"version:minor"}));
    Model r = FromFile(file);
    r.reserved0 = 0xDEADBEEF;
    r.reserved1 = 0x0123456789ABCDEFull;
    s.Add(Valid("valid-nonzero-reserved-preamble-fields", "core",
                "reserved0 and reserved1 of the preamble are not zero (the preamble CRC covers "
                "them): readers ignore them (section 2).",
                c, Assemble(r), {"preamble:reserved"}));
    Model u = FromFile(file);
    u.tweaks.unknown_fields = true;
    s.Add(Valid("valid-unknown-header-fields", "core",
                "Header and Tensor tables carry fields a later minor version might append, at "
                "field ids 40 and 41 of both tables (a scalar: u64 in Header, u32 in Tensor; "
                "and a string), their vtables grown to hold them: readers ignore fields they do "
                "not know (section 12, schema evolution).",
                c, Assemble(u), {"schema:unknown-fields"}));
    // Spec 4.1's verification, exactly: what it does not check.
    Model m = FromFile(file);
    m.code_header = [](const Bytes& buffer) {
      Bytes b = buffer;
      const fb::Header* h = fb::GetHeader(b.data());
      const size_t root = VtablePosition(b, h), tensor = VtablePosition(b, h->tensors()->Get(0));
      Check(root != tensor, "table sizes: two vtables");
      StoreLE16(b.data() + root + 2, 4);  // only the table's soffset: every field lies past it
      StoreLE16(b.data() + tensor + 2, 0xFFFC);
      Check(TablePosition(b, h->tensors()->Get(0)) + 0xFFFC > b.size(),
            "table sizes: the tensor's declared size must reach past the buffer");
      return b;
    };
    s.Add(Valid("valid-header-table-sizes-unchecked", "core",
                "Spec 4.1: verification does not check the table size that a vtable declares "
                "(its second u16), and a field need only lie inside the buffer, not inside that "
                "size. Here the Header table's vtable declares a size of 4 (its soffset alone: "
                "every Header field lies past it) and the vtable of tensors[0] declares 65532 "
                "bytes, past the end of the buffer. FlatBuffers' verifier accepts both, "
                "and so must a reader.",
                c, Assemble(m), {"header:table-size"}));
  }
  {
    // Spec 4.1: a bool is false when 0, true otherwise.
    Ckpt c = BaseCkpt();
    c.metadata = {{"resumed", true}};
    Model m = FromFile(Encode(c, Opt(StreamCodec::kZstd, true, 64)).bytes);
    m.code_header = [](const Bytes& buffer) {
      Bytes b = buffer;
      const fb::Header* h = fb::GetHeader(b.data());
      for (uint32_t t = 0; t < h->tensors()->size(); ++t) {
        const size_t at = FieldPosition(b, h->tensors()->Get(t), fb::Tensor::VT_BYTE_PLANES);
        Check(b[at] == 1, "bool: byte planes expected");
        b[at] = uint8_t(2 + t);
      }
      const size_t at = FieldPosition(b, h->metadata()->Get(0)->value_as_BoolValue(),
                                      fb::BoolValue::VT_VALUE);
      Check(b[at] == 1, "bool: a true BoolValue expected");
      b[at] = 0x80;
      return b;
    };
    s.Add(Valid("valid-bool-not-0-or-1", "core",
                "Spec 4.1: a bool field is false when its byte is 0 and true otherwise. "
                "Tensor.byte_planes is stored as 2 for 'a' and 3 for 'b' (both tensors have byte "
                "plane chunks), and the BoolValue of metadata 'resumed' as 0x80. A reader that "
                "took only 1 as true would read the chunks' streams as whole elements.",
                c, Assemble(m), {"header:bool-values"}));
  }
  {
    // Spec 8: a bare tensor set (no source files); its output is the reader's choice.
    const Ckpt c = BareCkpt();
    Case k = Valid("core-bare-tensor-set", "core",
                   "A checkpoint with tensors but no source files (Header.files empty, spec 8): "
                   "a bare tensor set. A reader decodes and checks every tensor, but how it hands "
                   "them out is its own choice, so this case expects no particular file: it "
                   "passes when the decoder exits with status 0. (The reference writes one "
                   "safetensors file named after the input.) Stored streams.",
                   c, Encode(c, Opt(StreamCodec::kStored, false)).bytes, {"files:none"});
    k.output_reader_defined = true;
    s.Add(std::move(k));
  }
}

}  // namespace ckz::vectors
