// Coded prologs (format 0.5, spec 8.4): core for Zstd, full for ZstdParent.
#include "vectors.h"

#include <zstd.h>

#include <functional>

#include "ckz/checkpoint.h"
#include "format/preamble.h"

namespace ckz::vectors {
namespace {

// A PyTorch state dict ("model.pt", TorchZip) and a Trainer-like JSON file beside it.
Ckpt PrologCkpt(uint64_t seed, int64_t step) {
  Ckpt c = Single({MakeT("fc1.weight", DType::kF32, {8, 6}, seed + 1, Role::kWeight),
                   MakeT("fc1.bias", DType::kF32, {8}, seed + 2, Role::kWeight),
                   MakeT("fc2.weight", DType::kF32, {3, 8}, seed + 3, Role::kWeight),
                   MakeT("fc2.bias", DType::kF32, {3}, seed + 4, Role::kWeight),
                   MakeT("step", DType::kI64, {}, seed + 5)},
                  "model.pt");
  c.files[0].format = SourceFormat::kTorchZip;
  SrcFile state;
  state.path = "trainer_state.json";
  state.format = SourceFormat::kRaw;
  std::string json = "{\n  \"global_step\": " + std::to_string(step) + ",\n  \"log_history\": [\n";
  for (int64_t s = 10; s <= step; s += 10)
    json += "    {\"step\": " + std::to_string(s) + ", \"loss\": 2." + std::to_string(900 - s) +
            ", \"learning_rate\": 0.0003}" + (s + 10 <= step ? "," : "") + "\n";
  json += "  ]\n}\n";
  state.raw = Str(json);
  c.files.push_back(state);
  c.step = step;
  return c;
}

EncodeOptions PrologOpt(PrologCodec codec, Predictor predictor = Predictor::kNone) {
  EncodeOptions o = Opt(StreamCodec::kZstd, false, 1u << 20, predictor);
  o.prolog_codec = codec;
  return o;
}

// A keyframe with Zstd prologs and a link with ZstdParent ones (files: input.ckz, the link;
// parent-1.ckz).
struct PrologChain {
  Ckpt k, l;
  std::vector<Encoded> files;
};
PrologChain MakePrologChain() {
  PrologChain pc;
  pc.k = PrologCkpt(900, 100);
  pc.l = Next(pc.k, 901);
  pc.l.files[1].raw = PrologCkpt(900, 200).files[1].raw;
  pc.files = WriteChain({{pc.k, PrologOpt(PrologCodec::kZstd)},
                         {pc.l, PrologOpt(PrologCodec::kZstdParent, Predictor::kXorRef)}},
                        ChainNames(2));
  return pc;
}

// `frame` with a 1-byte Dictionary_ID inserted (RFC 8878 3.1.1.1.1: Dictionary_ID_Flag = 1).
Bytes WithDictionaryId(Bytes frame, uint8_t id) {
  const uint8_t fhd = frame[4];
  Check((fhd & 3) == 0, "WithDictionaryId: the frame already names a dictionary");
  const size_t at = 5 + ((fhd & 0x20) ? 0 : 1);  // after the Window_Descriptor, if any
  frame[4] = uint8_t(fhd | 1);
  frame.insert(frame.begin() + long(at), id);
  return frame;
}

}  // namespace

void PrologValid(Suite& s) {
  {
    Ckpt c = PrologCkpt(880, 50);
    s.Add(Valid("core-prolog-zstd", "core",
                "Two source files whose prologs are zstd-coded (format 0.5, spec 8.4, "
                "required feature bit 3): a torch.save state dict (its zip records and pickle; "
                "the CRC-32 bytes under its patches are stored as zeros) and a raw JSON file. "
                "Each prolog is one zstd frame that decodes, without a dictionary, to "
                "prolog_raw_length bytes with CRC-32C prolog_crc32c.",
                c, Encode(c, PrologOpt(PrologCodec::kZstd)).bytes,
                {"source:splits", "source:crc32-patches"}));
  }
  {
    // Spec 8.4: a prolog frame's window may be up to 2^30, above libzstd's default limit of
    // 2^27 for streaming decoding.
    Ckpt c = PrologCkpt(890, 30);
    Model m = FromFile(Encode(c, PrologOpt(PrologCodec::kZstd)).bytes);
    const Bytes& json = c.files[1].raw;
    Bytes frame = Zstd(json.data(), json.size(), false, false, 19);
    Check(frame[4] == 0 && m.h.files[1].prolog_length == json.size(),
          "large window: a frame with a Window_Descriptor and nothing else");
    frame[5] = 18 << 3;  // Window_Log 10 + 18: 2^28 bytes
    ZSTD_DCtx* d = ZSTD_createDCtx();
    Bytes out(json.size());
    ZSTD_inBuffer in = {frame.data(), frame.size(), 0};
    ZSTD_outBuffer o = {out.data(), out.size(), 0};
    Check(ZSTD_isError(ZSTD_decompressStream(d, &o, &in)),
          "large window: libzstd's default streaming limit must refuse the frame");
    ZSTD_freeDCtx(d);
    m.h.files[1].prolog_coded = frame;
    s.Add(Valid("core-prolog-zstd-large-window", "core",
                "The zstd frame of the raw JSON file's prolog (no content size) declares a "
                "Window_Size of 2^28 bytes: spec 8.4 allows windows up to 2^30, above the 2^27 "
                "that libzstd's streaming decoder (and the zstd tool) accept by default, so a "
                "decoder must raise that limit or decode the frame in one call into the "
                "prolog_raw_length-byte output. The torch.save file beside it is zstd-coded as "
                "usual.",
                c, Assemble(m), {"source:splits", "source:crc32-patches", "zstd:large-window"}));
  }
  {
    // Depth 2: the last link lists its files in the other order and renames the state dict,
    // so its prolog_parent_file values are 1 and 0 and one of them matches by position only.
    Ckpt k = PrologCkpt(910, 100), l1 = Next(k, 911), l2 = Next(l1, 912);
    l1.files[1].raw = PrologCkpt(910, 200).files[1].raw;
    l2.files[1].raw = PrologCkpt(910, 300).files[1].raw;
    l2.files[0].path = "model-300.pt";
    std::swap(l2.files[0], l2.files[1]);
    s.Add(ChainCase("full-prolog-zstd-parent-chain",
                    "A keyframe with zstd-coded prologs and two links whose prologs are "
                    "ZstdParent-coded (spec 8.4): each frame's history (a raw-content dictionary) "
                    "is the decoded prolog of the parent's files[prolog_parent_file]. The depth-2 "
                    "link lists its files in the other order (prolog_parent_file 1 for its first "
                    "file, 0 for its second) and names its state dict model-300.pt. Tensors are "
                    "XorRef-predicted, zstd streams.",
                    {{k, PrologOpt(PrologCodec::kZstd)},
                     {l1, PrologOpt(PrologCodec::kZstdParent, Predictor::kXorRef)},
                     {l2, PrologOpt(PrologCodec::kZstdParent, Predictor::kXorRef)}},
                    {"source:crc32-patches"}));
  }
}

void PrologInvalid(Suite& s) {
  const PrologChain pc = MakePrologChain();
  const Bytes& keyframe = pc.files[0].bytes;
  const Bytes& link = pc.files[1].bytes;
  auto key_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                      const std::string& description, const std::function<void(Model&)>& edit,
                      const std::string& profile = "core") {
    Model m = FromFile(keyframe);
    edit(m);
    return Invalid(name, profile, rule, error, description, Assemble(m));
  };
  auto link_case = [&](const std::string& name, const std::string& rule, ErrorCode error,
                       const std::string& description, const std::function<void(Model&)>& edit) {
    Model m = FromFile(link);
    edit(m);
    return ChainInvalid(name, rule, error, description, Assemble(m), keyframe);
  };
  s.Add(key_case("invalid-prolog-checksum", "C7", ErrorCode::kPrologDecodeFailed,
                 "files[0]'s zstd prolog decodes, but prolog_crc32c is off by one bit.",
                 [](Model& m) { m.h.files[0].prolog_crc32c ^= 1; }));
  s.Add(key_case("invalid-prolog-raw-length", "C7", ErrorCode::kPrologDecodeFailed,
                 "files[0].prolog_raw_length is one more than the frame's content size (splits and "
                 "patches still fit).",
                 [](Model& m) { m.h.files[0].prolog_length += 1; }));
  s.Add(key_case("invalid-prolog-not-zstd", "C7", ErrorCode::kPrologDecodeFailed,
                 "files[1]'s coded prolog is not a zstd frame.",
                 [](Model& m) { m.h.files[1].prolog_coded = Str("not a zstd frame"); }));
  s.Add(key_case("invalid-prolog-truncated", "C7", ErrorCode::kPrologDecodeFailed,
                 "files[0]'s zstd frame lacks its last byte.",
                 [](Model& m) { m.h.files[0].prolog_coded.pop_back(); }));
  s.Add(key_case("invalid-prolog-trailing-byte", "C7", ErrorCode::kPrologDecodeFailed,
                 "files[0]'s zstd frame is followed by one more byte.",
                 [](Model& m) { m.h.files[0].prolog_coded.push_back(0); }));
  s.Add(key_case("invalid-prolog-dictionary-id", "C7", ErrorCode::kPrologDecodeFailed,
                 "files[1]'s zstd frame names dictionary 7 (a coded prolog never uses a dictionary "
                 "id; its only history is the parent's prolog, for ZstdParent).",
                 [](Model& m) {
                   m.h.files[1].prolog_coded = WithDictionaryId(m.h.files[1].prolog_coded, 7);
                 }));
  s.Add(key_case("invalid-prolog-zstd-window", "C7", ErrorCode::kPrologDecodeFailed,
                 "files[0]'s prolog re-coded as a zstd frame without a content size and with a 1 "
                 "KiB window: libzstd decodes it, but spec 8.4 (as 7.2) requires Window_Size >= "
                 "prolog_raw_length.",
                 [](Model& m) {
                   SourceFileInfo& f = m.h.files[0];
                   Bytes prolog(f.prolog_length);
                   Check(ZSTD_decompress(prolog.data(), prolog.size(), f.prolog_coded.data(),
                                         f.prolog_coded.size()) == prolog.size(),
                         "prolog-zstd-window: the prolog does not decode");
                   Check(prolog.size() > 1024, "prolog-zstd-window: prolog too short");
                   f.prolog_coded = Zstd(prolog.data(), prolog.size(), false, false, 19, 10);
                 }));
  s.Add(key_case("invalid-prolog-codec", "F9", ErrorCode::kFieldOutOfRange,
                 "files[0].prolog_codec is 3 (only 0..2 exist).",
                 [](Model& m) { m.h.files[0].prolog_codec = static_cast<PrologCodec>(3); }));
  s.Add(key_case("invalid-prolog-raw-length-zero", "F9", ErrorCode::kFieldOutOfRange,
                 "files[1] has a zstd-coded prolog with prolog_raw_length 0.",
                 [](Model& m) { m.h.files[1].prolog_length = 0; })
            .WithoutRuleFails(ErrorCode::kInvalidArgument));
  s.Add(key_case("invalid-prolog-raw-length-too-large", "F9", ErrorCode::kFieldOutOfRange,
                 "files[1].prolog_raw_length is 2^30 + 1 (at most 2^30).",
                 [](Model& m) { m.h.files[1].prolog_length = (uint64_t{1} << 30) + 1; })
            .WithoutRuleFails(ErrorCode::kInvalidArgument));
  // files[1]'s prolog stored, with one of the fields only a coded prolog has.
  auto stored_with = [&](const std::string& name, const std::string& what,
                         const std::function<void(SourceFileInfo&)>& set) {
    return key_case(name, "F9", ErrorCode::kFieldOutOfRange,
                    "files[1]'s prolog is stored but the file also carries " + what + ".",
                    [&](Model& m) {
                      SourceFileInfo& f = m.h.files[1];
                      f.prolog = PrologCkpt(900, 100).files[1].raw;
                      f.prolog_codec = PrologCodec::kStored;
                      f.prolog_length = 0;
                      f.prolog_crc32c = 0;
                      set(f);
                    });
  };
  s.Add(stored_with("invalid-prolog-stored-with-crc", "a prolog_crc32c",
                    [](SourceFileInfo& f) { f.prolog_crc32c = 5; }));
  s.Add(stored_with("invalid-prolog-stored-with-raw-length", "a prolog_raw_length",
                    [](SourceFileInfo& f) { f.prolog_length = f.prolog.size(); }));
  s.Add(stored_with("invalid-prolog-stored-with-parent-file", "a prolog_parent_file",
                    [](SourceFileInfo& f) { f.prolog_parent_file = 1; }));
  s.Add(key_case("invalid-prolog-zstd-with-parent-file", "F9", ErrorCode::kFieldOutOfRange,
                 "files[1]'s prolog is Zstd-coded but names prolog_parent_file 1.",
                 [](Model& m) { m.h.files[1].prolog_parent_file = 1; }));
  s.Add(key_case("invalid-prolog-coded-empty", "F9", ErrorCode::kFieldOutOfRange,
                 "files[1]'s prolog is Zstd-coded (with its prolog_raw_length and prolog_crc32c) "
                 "but its prolog field holds no bytes.",
                 [](Model& m) { m.h.files[1].prolog_coded.clear(); })
            .WithoutRuleFails(ErrorCode::kPrologDecodeFailed));
  s.Add(key_case("invalid-prolog-parent-in-keyframe", "F10", ErrorCode::kBadLink,
                 "A keyframe's files[0].prolog_codec is ZstdParent: it has no parent.",
                 [](Model& m) { m.h.files[0].prolog_codec = PrologCodec::kZstdParent; }, "full")
            .WithoutRuleFails(ErrorCode::kReferenceMismatch));
  s.Add(key_case("invalid-prolog-feature-bit-clear", "F11", ErrorCode::kFieldOutOfRange,
                 "The prologs are zstd-coded but required feature bit 3 is clear.",
                 [](Model& m) { m.required &= ~kFeatureCodedProlog; }));
  {
    Model m = FromFile(BaseFile());
    m.required |= kFeatureCodedProlog;
    s.Add(Invalid("invalid-prolog-feature-bit-set", "core", "F11", ErrorCode::kFieldOutOfRange,
                  "Required feature bit 3 (coded prologs) is set but the only prolog is stored.",
                  Assemble(m)));
  }
  s.Add(link_case("invalid-prolog-parent-file-out-of-range", "R4", ErrorCode::kReferenceMismatch,
                  "files[0]'s ZstdParent prolog names prolog_parent_file 2; the parent has 2 "
                  "files.",
                  [](Model& m) { m.h.files[0].prolog_parent_file = 2; })
            .ByConstruction("the parent has 2 files: there is no prolog to decode the frame "
                            "against"));
  s.Add(link_case("invalid-prolog-parent-window", "C7", ErrorCode::kPrologDecodeFailed,
                  "files[0]'s ZstdParent frame (no content size, a 1 KiB window) decodes with "
                  "libzstd, but its Window_Size is below prolog_raw_length: RFC 8878 would cut "
                  "its history off after the first window of output, so spec 8.4 rejects it.",
                  [&](Model& m) {
                    SourceFileInfo mine = BuildSources(pc.l).infos[0];
                    SourceFileInfo history = BuildSources(pc.k).infos[0];
                    ClearCrc32PatchBytes(&mine);
                    ClearCrc32PatchBytes(&history);
                    Check(mine.prolog.size() > 1024, "prolog-parent-window: prolog too short");
                    m.h.files[0].prolog_coded =
                        Zstd(mine.prolog.data(), mine.prolog.size(), false, false, 19, 10,
                             ByteSpan(history.prolog));
                  }));
  s.Add(link_case("invalid-prolog-parent-wrong-history", "C7", ErrorCode::kPrologDecodeFailed,
                  "files[0]'s ZstdParent prolog names prolog_parent_file 1 (the parent's JSON "
                  "file) instead of 0 (the state dict it was coded against): decoding with that "
                  "history fails or gives bytes whose CRC-32C differs.",
                  [](Model& m) { m.h.files[0].prolog_parent_file = 1; }));
  {
    // Issue 6: a parent whose header is damaged is not a parent.
    const BaseChain bc = MakeBaseChain();
    Bytes parent = bc.p.bytes;
    parent[HeaderOffset(parent) + 20] ^= 0x10;
    s.Add(ChainInvalid("invalid-parent-header-checksum", "R1", ErrorCode::kParentNotFound,
                       "parent-1.ckz has the right content id but one bit of its header is "
                       "flipped, so it fails its header CRC-32C and is not a candidate parent: "
                       "no parent is found.",
                       bc.c.bytes, parent));
  }
}

}  // namespace ckz::vectors
